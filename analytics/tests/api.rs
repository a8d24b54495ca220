//! Analytics on a real socket: ingest, idempotence, summaries and bad input.
#![allow(clippy::unwrap_used)]

use protocol::api::{CdnBytesByReason, ErrorBody, MAX_NAME_LEN, MAX_REQUEST_BYTES, Summary, UsageReport};
use reqwest::StatusCode;
use service::LoopbackServer;
use swarmcast_analytics::{Config, run};

struct Server {
    base: String,
    http: reqwest::Client,
    _running: LoopbackServer,
}

async fn start(config: Config) -> Server {
    let running = service::spawn_on_loopback(|listener, stop| run(config, listener, stop)).await.unwrap();
    Server { base: running.url(), http: reqwest::Client::new(), _running: running }
}

fn report(session: &str, seq: u64, http_bytes: u64, p2p_down_bytes: u64) -> UsageReport {
    UsageReport {
        customer: "acme".into(),
        content: "live".into(),
        session: session.into(),
        seq,
        http_bytes,
        p2p_down_bytes,
        p2p_up_bytes: 7,
        peers: 2,
        rendition: 0,
        stalls: 1,
        // A fifth of the CDN bytes were a joiner's, the rest seeding.
        cdn_bytes: CdnBytesByReason {
            startup_alone: http_bytes / 5,
            seed: http_bytes - http_bytes / 5,
            ..Default::default()
        },
    }
}

impl Server {
    async fn post(&self, body: String) -> reqwest::Response {
        self.http.post(format!("{}/v1/usage", self.base)).body(body).send().await.unwrap()
    }

    async fn report(&self, report: &UsageReport) -> StatusCode {
        self.post(serde_json::to_string(report).unwrap()).await.status()
    }

    async fn summary(&self, query: &str) -> reqwest::Response {
        self.http.get(format!("{}/v1/summary?{query}", self.base)).send().await.unwrap()
    }
}

async fn error_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    (status, res.json::<ErrorBody>().await.unwrap().error)
}

#[tokio::test]
async fn reports_add_up_into_a_summary_and_repeats_count_once() {
    let server = start(Config::default()).await;
    assert_eq!(server.report(&report("a", 0, 1_000, 0)).await, StatusCode::NO_CONTENT);
    assert_eq!(server.report(&report("a", 2, 1_000, 3_000)).await, StatusCode::NO_CONTENT);
    // A retry of seq 2 and a late seq 1 change nothing.
    assert_eq!(server.report(&report("a", 2, 1_000, 3_000)).await, StatusCode::NO_CONTENT);
    assert_eq!(server.report(&report("a", 1, 1_000, 1_000)).await, StatusCode::NO_CONTENT);
    assert_eq!(server.report(&report("b", 0, 0, 4_000)).await, StatusCode::NO_CONTENT);

    let res = server.summary("content=live").await;
    assert_eq!(res.status(), StatusCode::OK);
    let s: Summary = res.json().await.unwrap();
    assert_eq!(
        (s.viewers, s.sessions, s.http_bytes, s.p2p_down_bytes, s.p2p_up_bytes, s.stalls),
        (2, 2, 1_000, 7_000, 14, 2)
    );
    assert!((s.offload_ratio - 0.875).abs() < 1e-9, "{}", s.offload_ratio);

    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"analytics_reports_total{outcome="stale"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"analytics_bytes_total{kind="p2p_down"} 7000"#), "{metrics}");
    assert!(metrics.contains("analytics_sessions 2"), "{metrics}");
    assert!(metrics.contains(r#"analytics_cdn_bytes_total{reason="seed"} 800"#), "{metrics}");
    assert!(metrics.contains(r#"analytics_cdn_bytes_total{reason="startup_alone"} 200"#), "{metrics}");
}

#[tokio::test]
async fn unknown_content_has_an_empty_summary() {
    let server = start(Config::default()).await;
    let s: Summary = server.summary("content=nothing").await.json().await.unwrap();
    assert_eq!((s.content.as_str(), s.viewers, s.sessions, s.offload_ratio), ("nothing", 0, 0, 0.0));
}

#[tokio::test]
async fn malformed_and_oversize_reports_are_refused() {
    let server = start(Config::default()).await;
    let mut long = report("a", 0, 0, 0);
    long.session = "s".repeat(MAX_NAME_LEN + 1);
    let mut empty = report("a", 0, 0, 0);
    empty.content = String::new();
    let negative = serde_json::to_string(&report("a", 0, 0, 0)).unwrap().replace("\"seq\":0", "\"seq\":-1");
    for body in [
        "{oops".to_owned(),
        "{}".to_owned(),
        negative,
        serde_json::to_string(&long).unwrap(),
        serde_json::to_string(&empty).unwrap(),
    ] {
        assert_eq!(
            error_of(server.post(body.clone()).await).await,
            (StatusCode::BAD_REQUEST, "bad_request".into()),
            "{body}"
        );
    }
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_REQUEST_BYTES));
    assert_eq!(error_of(server.post(huge).await).await, (StatusCode::PAYLOAD_TOO_LARGE, "too_large".into()));
    let s: Summary = server.summary("content=live").await.json().await.unwrap();
    assert_eq!(s.sessions, 0);
}

#[tokio::test]
async fn summary_needs_a_sane_content() {
    let server = start(Config::default()).await;
    let long = format!("content={}", "x".repeat(MAX_NAME_LEN + 1));
    for query in ["", "content=", long.as_str()] {
        assert_eq!(
            error_of(server.summary(query).await).await,
            (StatusCode::BAD_REQUEST, "bad_request".into()),
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_full_content_table_answers_503() {
    let server = start(Config { max_contents: 1, ..Config::default() }).await;
    assert_eq!(server.report(&report("a", 0, 1, 0)).await, StatusCode::NO_CONTENT);
    let mut other = report("b", 0, 1, 0);
    other.content = "other".into();
    assert_eq!(
        error_of(server.post(serde_json::to_string(&other).unwrap()).await).await,
        (StatusCode::SERVICE_UNAVAILABLE, "full".into())
    );
}
