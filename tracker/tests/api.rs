//! The tracker on a real socket: init, track and peers, and every kind of bad input.
#![allow(clippy::unwrap_used)]

use protocol::api::{
    ErrorBody, InitRequest, InitResponse, MAX_REQUEST_BYTES, PeersRequest, PeersResponse, TrackRequest,
};
use protocol::token::{self, Claims};
use protocol::{PROTOCOL_VERSION, PeerId};
use reqwest::StatusCode;
use serde::Serialize;
use service::LoopbackServer;
use swarmcast_tracker::{Config, run};

const SECRET: &[u8] = b"test-secret";

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
    Config { secret: String::from_utf8(SECRET.to_vec()).unwrap(), ..Config::default() }
}

fn distributor_token(content: &str, expires_in_s: i64) -> String {
    let expires_at_s = service::unix_now_s().saturating_add_signed(expires_in_s);
    token::sign(SECRET, &Claims { customer: "acme".into(), content: content.into(), peer_id: None, expires_at_s })
}

fn init_request(token: String) -> InitRequest {
    InitRequest { customer: "acme".into(), content: "live".into(), token, protocol_version: PROTOCOL_VERSION }
}

impl Server {
    async fn post(&self, path: &str, body: &impl Serialize) -> reqwest::Response {
        self.post_raw(path, serde_json::to_string(body).unwrap()).await
    }

    async fn post_raw(&self, path: &str, body: String) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.base)).body(body).send().await.unwrap()
    }

    async fn init(&self) -> InitResponse {
        let res = self.post("/v1/init", &init_request(distributor_token("live", 60))).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    async fn track(&self, session: &InitResponse, rendition: u32) -> StatusCode {
        let req = TrackRequest { peer_id: session.peer_id.clone(), token: session.token.clone(), rendition };
        self.post("/v1/track", &req).await.status()
    }

    async fn peers(&self, session: &InitResponse, rendition: u32, max: u32) -> Vec<PeerId> {
        let req = PeersRequest { peer_id: session.peer_id.clone(), token: session.token.clone(), rendition, max };
        let res = self.post("/v1/peers", &req).await;
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<PeersResponse>().await.unwrap().peers
    }
}

async fn error_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    (status, res.json::<ErrorBody>().await.unwrap().error)
}

#[tokio::test]
async fn init_issues_a_bound_peer_token() {
    let server = start(config()).await;
    let session = server.init().await;
    assert_eq!(session.peer_id.as_str().len(), 16);
    assert_eq!(session.protocol_version, PROTOCOL_VERSION);
    assert_eq!(session.peers_interval_ms, Config::default().peers_interval_ms);
    let claims = token::verify(SECRET, &session.token, service::unix_now_s()).unwrap();
    assert_eq!(claims.peer_id, Some(session.peer_id.clone()));
    assert_eq!(claims.content, "live");
    assert_ne!(server.init().await.peer_id, session.peer_id);
}

#[tokio::test]
async fn peers_come_from_the_same_swarm_newest_first() {
    let server = start(config()).await;
    let (a, b, c, d) = (server.init().await, server.init().await, server.init().await, server.init().await);
    assert_eq!(server.track(&a, 0).await, StatusCode::NO_CONTENT);
    assert_eq!(server.track(&b, 0).await, StatusCode::NO_CONTENT);
    assert_eq!(server.track(&c, 1).await, StatusCode::NO_CONTENT);
    assert_eq!(server.peers(&d, 0, 10).await, vec![b.peer_id.clone(), a.peer_id.clone()]);
    assert_eq!(server.peers(&a, 0, 10).await, vec![d.peer_id.clone(), b.peer_id.clone()]);
    assert_eq!(server.peers(&c, 1, 10).await, Vec::<PeerId>::new());
    // A rendition switch moves the peer to the other swarm.
    assert_eq!(server.track(&b, 1).await, StatusCode::NO_CONTENT);
    assert_eq!(server.peers(&c, 1, 10).await, vec![b.peer_id.clone()]);
    assert_eq!(server.peers(&a, 0, 1).await, vec![d.peer_id.clone()]);
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tracker_inits_total 4"), "{metrics}");
    assert!(metrics.contains("tracker_peers 4"), "{metrics}");
}

#[tokio::test]
async fn answers_are_capped_by_config() {
    let server = start(Config { max_peers_per_response: 2, ..config() }).await;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let s = server.init().await;
        assert_eq!(server.track(&s, 0).await, StatusCode::NO_CONTENT);
        sessions.push(s);
    }
    assert_eq!(server.peers(&sessions[0], 0, 100).await.len(), 2);
}

#[tokio::test]
async fn init_refuses_bad_versions_and_tokens() {
    let server = start(config()).await;
    let mut old = init_request(distributor_token("live", 60));
    old.protocol_version = PROTOCOL_VERSION + 1;
    assert_eq!(error_of(server.post("/v1/init", &old).await).await, (StatusCode::BAD_REQUEST, "bad_request".into()));
    let cases = [
        (init_request("garbage".into()), StatusCode::UNAUTHORIZED, "bad_token"),
        (init_request(distributor_token("live", -1)), StatusCode::UNAUTHORIZED, "token_expired"),
        (init_request(distributor_token("other", 60)), StatusCode::FORBIDDEN, "forbidden"),
    ];
    for (req, status, code) in cases {
        assert_eq!(error_of(server.post("/v1/init", &req).await).await, (status, code.to_owned()));
    }
    let foreign = Claims { customer: "acme".into(), content: "live".into(), peer_id: None, expires_at_s: u64::MAX };
    let req = init_request(token::sign(b"another-secret", &foreign));
    assert_eq!(error_of(server.post("/v1/init", &req).await).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn track_and_peers_refuse_other_peers_tokens() {
    let server = start(config()).await;
    let (a, b) = (server.init().await, server.init().await);
    let as_b = TrackRequest { peer_id: b.peer_id.clone(), token: a.token.clone(), rendition: 0 };
    assert_eq!(error_of(server.post("/v1/track", &as_b).await).await.0, StatusCode::FORBIDDEN);
    let pre_init =
        PeersRequest { peer_id: a.peer_id.clone(), token: distributor_token("live", 60), rendition: 0, max: 5 };
    assert_eq!(error_of(server.post("/v1/peers", &pre_init).await).await.0, StatusCode::FORBIDDEN);
    let forged = PeersRequest { peer_id: a.peer_id.clone(), token: "x.y".into(), rendition: 0, max: 5 };
    assert_eq!(error_of(server.post("/v1/peers", &forged).await).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn malformed_and_oversize_bodies_are_refused() {
    let server = start(config()).await;
    let bad_id = r#"{"peer_id":"no/slash","token":"t","rendition":0}"#;
    for (path, body) in
        [("/v1/init", "{"), ("/v1/track", "[]"), ("/v1/peers", "{\"peer_id\":1}"), ("/v1/track", bad_id)]
    {
        let res = server.post_raw(path, body.into()).await;
        assert_eq!(error_of(res).await, (StatusCode::BAD_REQUEST, "bad_request".into()), "{path} {body}");
    }
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_REQUEST_BYTES));
    let res = server.post_raw("/v1/peers", huge).await;
    assert_eq!(error_of(res).await, (StatusCode::PAYLOAD_TOO_LARGE, "too_large".into()));
}

#[tokio::test]
async fn a_full_tracker_answers_503() {
    let server = start(Config { max_peers_total: 1, ..config() }).await;
    let (a, b) = (server.init().await, server.init().await);
    assert_eq!(server.track(&a, 0).await, StatusCode::NO_CONTENT);
    assert_eq!(server.track(&b, 0).await, StatusCode::SERVICE_UNAVAILABLE);
    let res = server.post("/v1/init", &init_request(distributor_token("live", 60))).await;
    assert_eq!(error_of(res).await, (StatusCode::SERVICE_UNAVAILABLE, "full".into()));
    // The tracked peer keeps working.
    assert_eq!(server.track(&a, 1).await, StatusCode::NO_CONTENT);
}
