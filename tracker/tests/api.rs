//! The tracker on a real socket: init, track and peers, and every kind of bad input.
#![allow(clippy::unwrap_used)]

use protocol::api::{
    ErrorBody, InitRequest, InitResponse, MAX_REQUEST_BYTES, PeersRequest, PeersResponse, RenewRequest, RenewResponse,
    TrackRequest,
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
    token::sign(
        SECRET,
        &Claims { customer: "acme".into(), content: content.into(), peer_id: None, expires_at_s, rules: None },
    )
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

fn peer_token(peer: &PeerId, expires_in_s: i64) -> String {
    let expires_at_s = service::unix_now_s().saturating_add_signed(expires_in_s);
    let claims = Claims {
        customer: "acme".into(),
        content: "live".into(),
        peer_id: Some(peer.clone()),
        expires_at_s,
        rules: None,
    };
    token::sign(SECRET, &claims)
}

#[tokio::test]
async fn renewal_keeps_the_peer_id_and_extends_the_token() {
    let server = start(config()).await;
    let session = server.init().await;
    assert_eq!(session.token_ttl_s, Config::default().token_ttl_s);
    // Due shortly: renewal gives a token good for the whole TTL again, for the same peer.
    let due = peer_token(&session.peer_id, 5);
    let res = server.post("/v1/renew", &RenewRequest { peer_id: session.peer_id.clone(), token: due }).await;
    assert_eq!(res.status(), StatusCode::OK);
    let renewed: RenewResponse = res.json().await.unwrap();
    let claims = token::verify(SECRET, &renewed.token, service::unix_now_s()).unwrap();
    assert_eq!(claims.peer_id.as_ref(), Some(&session.peer_id));
    assert!(claims.expires_at_s >= service::unix_now_s() + renewed.token_ttl_s - 5);
    let renewed_session = InitResponse { token: renewed.token, ..session };
    assert_eq!(server.track(&renewed_session, 0).await, StatusCode::NO_CONTENT);
    // A token that expired a minute ago (a throttled background tab) still renews.
    let late = peer_token(&renewed_session.peer_id, -60);
    let res = server.post("/v1/renew", &RenewRequest { peer_id: renewed_session.peer_id.clone(), token: late }).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn renewal_refuses_old_foreign_and_peerless_tokens() {
    let server = start(config()).await;
    let session = server.init().await;
    let other: PeerId = "someoneelse".parse().unwrap();
    let cases = [
        (peer_token(&session.peer_id, -3_600), session.peer_id.clone(), StatusCode::UNAUTHORIZED, "token_expired"),
        (session.token.clone(), other, StatusCode::FORBIDDEN, "forbidden"),
        (distributor_token("live", 60), session.peer_id.clone(), StatusCode::FORBIDDEN, "forbidden"),
        (format!("{}x", session.token), session.peer_id.clone(), StatusCode::UNAUTHORIZED, "bad_token"),
    ];
    for (token, peer_id, status, error) in cases {
        let res = server.post("/v1/renew", &RenewRequest { peer_id, token }).await;
        assert_eq!(error_of(res).await, (status, error.to_owned()));
    }
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
    let foreign =
        Claims { customer: "acme".into(), content: "live".into(), peer_id: None, expires_at_s: u64::MAX, rules: None };
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

#[tokio::test]
async fn candidates_come_with_the_trackers_introduction() {
    let server = start(config()).await;
    let (a, b, c) = (server.init().await, server.init().await, server.init().await);
    assert_eq!(server.track(&a, 0).await, StatusCode::NO_CONTENT);
    assert_eq!(server.track(&b, 0).await, StatusCode::NO_CONTENT);
    let req = PeersRequest { peer_id: c.peer_id.clone(), token: c.token.clone(), rendition: 0, max: 10 };
    let answer: PeersResponse = server.post("/v1/peers", &req).await.json().await.unwrap();
    let intro = protocol::intro::verify(SECRET, &answer.intro, service::unix_now_s()).unwrap();
    assert_eq!((intro.from, intro.peers), (c.peer_id.clone(), answer.peers.clone()));
    assert_eq!((intro.customer.as_str(), intro.content.as_str()), ("acme", "live"));
    assert!(intro.expires_at_s <= service::unix_now_s() + Config::default().offer_ttl_s);
    // Nobody to introduce: no introduction.
    let lonely = server.init().await;
    let req = PeersRequest { peer_id: lonely.peer_id.clone(), token: lonely.token.clone(), rendition: 7, max: 10 };
    let answer: PeersResponse = server.post("/v1/peers", &req).await.json().await.unwrap();
    assert_eq!((answer.peers.len(), answer.intro.as_str()), (0, ""));
}

#[tokio::test]
async fn answers_count_the_askers_swarm() {
    let server = start(config()).await;
    let (a, b, c) = (server.init().await, server.init().await, server.init().await);
    assert_eq!(server.track(&a, 0).await, StatusCode::NO_CONTENT);
    assert_eq!(server.track(&b, 0).await, StatusCode::NO_CONTENT);
    // Another rendition is another swarm.
    assert_eq!(server.track(&c, 1).await, StatusCode::NO_CONTENT);
    let ask = |s: &InitResponse, rendition| PeersRequest {
        peer_id: s.peer_id.clone(),
        token: s.token.clone(),
        rendition,
        max: 1,
    };
    // Counted even when fewer candidates are asked for, the asker included.
    let answer: PeersResponse = server.post("/v1/peers", &ask(&a, 0)).await.json().await.unwrap();
    assert_eq!((answer.peers.len(), answer.swarm_peers), (1, Some(2)));
    let answer: PeersResponse = server.post("/v1/peers", &ask(&c, 1)).await.json().await.unwrap();
    assert_eq!((answer.peers.len(), answer.swarm_peers), (0, Some(1)));
}

#[tokio::test]
async fn the_content_owners_rules_from_the_distributor_token_apply() {
    let server = start(config()).await;
    let init_with = |rules: protocol::api::PeeringRules| {
        let claims = Claims {
            customer: "acme".into(),
            content: "live".into(),
            peer_id: None,
            expires_at_s: service::unix_now_s() + 60,
            rules: Some(rules),
        };
        init_request(token::sign(SECRET, &claims))
    };
    let rules = protocol::api::PeeringRules { max_peers: 1, ..Default::default() };
    let res = server.post("/v1/init", &init_with(rules.clone())).await;
    let asker: InitResponse = res.json().await.unwrap();
    for _ in 0..3 {
        let s = server.init().await;
        assert_eq!(server.track(&s, 0).await, StatusCode::NO_CONTENT);
    }
    assert_eq!(server.peers(&asker, 0, 10).await.len(), 1);
    // The rules are per content: the latest token's rules hold for everyone of it.
    let res = server.post("/v1/init", &init_with(protocol::api::PeeringRules { upload_allowed: false, ..rules })).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(server.peers(&asker, 0, 10).await, Vec::<PeerId>::new());
}

#[tokio::test]
async fn a_peer_report_ranks_and_filters_candidates() {
    let server = start(config()).await;
    let (a, b, c) = (server.init().await, server.init().await, server.init().await);
    let report = |s: &InitResponse, report: protocol::api::PeerReport| protocol::api::PeersRequestWithReport {
        request: PeersRequest { peer_id: s.peer_id.clone(), token: s.token.clone(), rendition: 0, max: 10 },
        report,
    };
    let fast = protocol::api::PeerReport { uplink_kbps: Some(50_000), ..Default::default() };
    assert_eq!(server.post("/v1/peers", &report(&a, fast)).await.status(), StatusCode::OK);
    let leech = protocol::api::PeerReport { upload_allowed: false, ..Default::default() };
    assert_eq!(server.post("/v1/peers", &report(&b, leech)).await.status(), StatusCode::OK);
    // "b" does not upload, so "c" gets only "a"; "a" gets "c" (who has not said otherwise) and not "b".
    assert_eq!(server.peers(&c, 0, 10).await, vec![a.peer_id.clone()]);
    let failed = protocol::api::PeerReport { failed: vec![c.peer_id.clone()], ..Default::default() };
    let answer: PeersResponse = server.post("/v1/peers", &report(&a, failed)).await.json().await.unwrap();
    assert_eq!(answer.peers, vec![c.peer_id.clone()]);
    let too_long = protocol::api::PeerReport { failed: vec![c.peer_id.clone(); 65], ..Default::default() };
    assert_eq!(error_of(server.post("/v1/peers", &report(&a, too_long)).await).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_as_database_alone_ranks_a_same_as_candidate_first() {
    let asn_mmdb = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/asn.mmdb").to_owned();
    let server = start(Config { ip_asn_mmdb: asn_mmdb, trust_forwarded_for: true, ..config() }).await;
    let from = |s: &InitResponse, ip: &str| {
        let req = PeersRequest { peer_id: s.peer_id.clone(), token: s.token.clone(), rendition: 0, max: 10 };
        server.http.post(format!("{}/v1/peers", server.base)).header("x-forwarded-for", ip).json(&req).send()
    };
    let (near, near6, far, asker) =
        (server.init().await, server.init().await, server.init().await, server.init().await);
    // Joined oldest first, so without locality the answer would be newest first: far, near6, near.
    assert_eq!(from(&near, "198.51.100.7").await.unwrap().status(), StatusCode::OK);
    assert_eq!(from(&near6, "2001:db8:200::5").await.unwrap().status(), StatusCode::OK);
    assert_eq!(from(&far, "192.0.2.9").await.unwrap().status(), StatusCode::OK);
    // The database puts 198.51.100.0/24 and 203.0.113.0/24 in AS 64600, and two IPv6 /40s in AS
    // 64601; 192.0.2.9 is in none.
    let ids = |answer: PeersResponse| answer.peers;
    let v4 = ids(from(&asker, "203.0.113.5").await.unwrap().json().await.unwrap());
    assert_eq!(v4, vec![near.peer_id.clone(), far.peer_id.clone(), near6.peer_id.clone()]);
    let v6 = ids(from(&asker, "2001:db8:1ff::1").await.unwrap().json().await.unwrap());
    assert_eq!(v6, vec![near6.peer_id.clone(), far.peer_id.clone(), near.peer_id.clone()]);
    let metrics = server.http.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tracker_mmdb_lookup_errors_total 0"), "{metrics}");
}

#[tokio::test]
async fn an_unusable_database_stops_the_tracker_at_start() {
    let truncated = std::env::temp_dir().join(format!("swarmcast-api-truncated-{}.mmdb", std::process::id()));
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/city.mmdb")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 40]).unwrap();
    let config = Config { ip_region_mmdb: truncated.display().to_string(), ..config() };
    let err = swarmcast_tracker::AppState::new(config, &service::Metrics::new()).err().unwrap();
    std::fs::remove_file(&truncated).unwrap();
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("ip_region_mmdb: {}: not a usable MaxMind DB", truncated.display())), "{shown}");
}
