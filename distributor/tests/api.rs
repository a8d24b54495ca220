//! The distributor on a real socket: config decisions, tokens, the admin API and bad input.
#![allow(clippy::unwrap_used)]

use protocol::api::{ConfigResponse, ContentSettings, ErrorBody, MAX_REQUEST_BYTES, PeeringRules};
use protocol::token;
use reqwest::StatusCode;
use service::LoopbackServer;
use swarmcast_distributor::{Config, ContentConfig, run};
use tokio::net::TcpListener;

const SECRET: &str = "test-secret";
const ADMIN: &str = "admin-token";

struct Server {
    base: String,
    http: reqwest::Client,
    _running: LoopbackServer,
}

async fn start(config: Config) -> Server {
    let running = service::spawn_on_loopback(|listener, stop| run(config, listener, stop)).await.unwrap();
    Server { base: running.url(), http: reqwest::Client::new(), _running: running }
}

fn config() -> Config {
    let content = |name: &str, enabled, rollout| ContentConfig {
        customer: "acme".into(),
        content: name.into(),
        p2p_enabled: enabled,
        rollout_percent: rollout,
        rules: PeeringRules { max_peers: 5, ..PeeringRules::default() },
    };
    Config {
        secret: SECRET.into(),
        admin_token: ADMIN.into(),
        default_p2p_enabled: false,
        contents: vec![content("live", true, 100), content("off", false, 100), content("dark", true, 0)],
        ..Config::default()
    }
}

impl Server {
    async fn get_config(&self, query: &str) -> reqwest::Response {
        self.http.get(format!("{}/v1/config?{query}", self.base)).send().await.unwrap()
    }

    async fn put_content(&self, path: &str, auth: Option<&str>, body: String) -> reqwest::Response {
        let mut req = self.http.put(format!("{}/v1/admin/contents/{path}", self.base)).body(body);
        if let Some(auth) = auth {
            req = req.bearer_auth(auth);
        }
        req.send().await.unwrap()
    }
}

async fn error_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    (status, res.json::<ErrorBody>().await.unwrap().error)
}

#[tokio::test]
async fn enabled_content_gets_p2p_rules_urls_and_a_valid_token() {
    let server = start(config()).await;
    let res = server.get_config("customer=acme&content=live&version=0.1.0").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: ConfigResponse = res.json().await.unwrap();
    assert!(body.p2p_enabled);
    assert!(body.rollout_bucket < 100);
    assert_eq!(body.rules.max_peers, 5);
    assert_eq!(body.tracker_url, Config::default().tracker_url);
    let claims = token::verify(SECRET.as_bytes(), &body.token, service::unix_now_s()).unwrap();
    assert_eq!((claims.customer.as_str(), claims.content.as_str()), ("acme", "live"));
    assert_eq!(claims.peer_id, None);
    assert!(claims.expires_at_s > service::unix_now_s() + 3000);
}

#[tokio::test]
async fn cdn_access_token_and_digest_key_are_issued_when_configured() {
    let plain: ConfigResponse =
        start(config()).await.get_config("customer=acme&content=live").await.json().await.unwrap();
    assert!(plain.cdn_token.is_empty() && plain.digest_public_key.is_empty());
    let server = start(Config { cdn_secret: "edge".into(), digest_public_key: "ab".repeat(32), ..config() }).await;
    let body: ConfigResponse = server.get_config("customer=acme&content=live").await.json().await.unwrap();
    assert_eq!(body.digest_public_key, "ab".repeat(32));
    let now = service::unix_now_s();
    let grant = protocol::access::verify(b"edge", &body.cdn_token, "/live/live/360p/seg_1.ts", None, now).unwrap();
    assert!(grant.expires_at_s > now + 3600);
    let other = protocol::access::verify(b"edge", &body.cdn_token, "/live/other/a.ts", None, now);
    assert_eq!(other, Err(protocol::access::AccessError::WrongPath));
}

#[tokio::test]
async fn disabled_zero_rollout_and_unknown_contents_get_no_p2p_and_no_token() {
    let server = start(config()).await;
    for query in ["customer=acme&content=off", "customer=acme&content=dark", "customer=x&content=y"] {
        let body: ConfigResponse = server.get_config(query).await.json().await.unwrap();
        assert!(!body.p2p_enabled, "{query}");
        assert!(body.token.is_empty(), "{query}");
    }
}

#[tokio::test]
async fn unknown_content_follows_default_switch() {
    let server = start(Config { default_p2p_enabled: true, ..config() }).await;
    let body: ConfigResponse = server.get_config("customer=x&content=y").await.json().await.unwrap();
    assert!(body.p2p_enabled);
    assert_eq!(body.rules, PeeringRules::default());
}

#[tokio::test]
async fn same_session_gets_the_same_bucket() {
    let server = start(config()).await;
    let a: ConfigResponse = server.get_config("customer=acme&content=live&session=s1").await.json().await.unwrap();
    let b: ConfigResponse = server.get_config("customer=acme&content=live&session=s1").await.json().await.unwrap();
    assert_eq!(a.rollout_bucket, b.rollout_bucket);
}

#[tokio::test]
async fn missing_or_oversize_params_are_400() {
    let server = start(config()).await;
    let long = "x".repeat(protocol::api::MAX_NAME_LEN + 1);
    for query in ["content=live".to_owned(), "customer=acme".to_owned(), format!("customer=acme&content={long}")] {
        assert_eq!(error_of(server.get_config(&query).await).await, (StatusCode::BAD_REQUEST, "bad_request".into()));
    }
}

#[tokio::test]
async fn admin_update_changes_decisions_at_runtime() {
    let server = start(config()).await;
    let off = ContentSettings { p2p_enabled: false, ..ContentSettings::default() };
    let res = server.put_content("acme/live", Some(ADMIN), serde_json::to_string(&off).unwrap()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: ConfigResponse = server.get_config("customer=acme&content=live").await.json().await.unwrap();
    assert!(!body.p2p_enabled);

    // A brand-new content through the admin API.
    let res = server.put_content("acme/new", Some(ADMIN), r#"{"rules":{"max_peers":3}}"#.into()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: ConfigResponse = server.get_config("customer=acme&content=new").await.json().await.unwrap();
    assert!(body.p2p_enabled);
    assert_eq!(body.rules.max_peers, 3);
    let read = server.http.get(format!("{}/v1/admin/contents/acme/new", server.base)).bearer_auth(ADMIN);
    let read: ContentSettings = read.send().await.unwrap().json().await.unwrap();
    assert_eq!(read.rules.max_peers, 3);
}

#[tokio::test]
async fn admin_refuses_bad_tokens_and_bad_bodies() {
    let server = start(config()).await;
    let ok = r#"{"p2p_enabled":true}"#.to_owned();
    assert_eq!(error_of(server.put_content("acme/live", None, ok.clone()).await).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(server.put_content("acme/live", Some("nope"), ok).await).await.0, StatusCode::UNAUTHORIZED);
    for bad in ["{not json", r#"{"rollout_percent":101}"#, r#"{"rollout_percent":"x"}"#, r#"{"unknown":1}"#] {
        let res = server.put_content("acme/live", Some(ADMIN), bad.into()).await;
        assert_eq!(error_of(res).await, (StatusCode::BAD_REQUEST, "bad_request".into()), "{bad}");
    }
    let huge = format!(r#"{{"rules":{{"max_peers":1}},"pad":"{}"}}"#, "x".repeat(MAX_REQUEST_BYTES));
    let res = server.put_content("acme/live", Some(ADMIN), huge).await;
    assert_eq!(error_of(res).await, (StatusCode::PAYLOAD_TOO_LARGE, "too_large".into()));
}

#[tokio::test]
async fn admin_api_is_absent_without_an_admin_token() {
    let server = start(Config { admin_token: String::new(), ..config() }).await;
    let res = server.put_content("acme/live", Some(""), "{}".into()).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn run_refuses_an_empty_secret() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = run(Config::default(), listener, std::future::pending()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}
