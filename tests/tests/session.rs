//! A viewing session across the distributor, tracker, signalling and analytics, run in-process on
//! loopback ports with one shared secret and driven the way the browser agent drives them
//! (ARCHITECTURE.md §3), plus refusals that only show when the servers are used together.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::api::{
    ConfigResponse, ContentSettings, ErrorBody, InitRequest, InitResponse, PeersRequest, PeersResponse, Summary,
    TrackRequest, UsageReport,
};
use protocol::signal::{ClientMessage, ServerMessage, Signal};
use protocol::{PROTOCOL_VERSION, PeerId};
use reqwest::StatusCode;
use serde::Serialize;
use service::LoopbackServer;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The HMAC key every server shares.
const SECRET: &str = "session-test-secret";
/// Bearer token of the distributor's admin API.
const ADMIN: &str = "admin-token";
const CUSTOMER: &str = "acme";
/// Longest wait for a websocket frame that must come.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[tokio::test]
async fn a_session_runs_through_all_four_servers() {
    let stack = Stack::start().await;
    let mut a = stack.join("live", "viewer-a").await;
    let mut b = stack.join("live", "viewer-b").await;
    assert_eq!(a.config.rules, protocol::api::PeeringRules::default());
    assert_eq!(a.session.protocol_version, PROTOCOL_VERSION);
    assert_ne!(a.peer_id(), b.peer_id());

    // Both play rendition 1: one swarm, each the other's only candidate.
    assert_eq!(stack.track(&a, 1).await, StatusCode::NO_CONTENT);
    assert_eq!(stack.track(&b, 1).await, StatusCode::NO_CONTENT);
    assert_eq!(stack.peers(&mut a, 1).await, vec![b.peer_id()]);
    assert_eq!(stack.peers(&mut b, 1).await, vec![a.peer_id()]);

    // WebRTC setup through signalling: offer, answer, and trickled candidates both ways.
    relay(&mut a, &mut b, Signal::Offer { sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n".into() }).await;
    relay(&mut b, &mut a, Signal::Answer { sdp: "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n".into() }).await;
    relay(&mut a, &mut b, candidate("candidate:1 1 udp 2122260223 10.0.0.1 50000 typ host")).await;
    relay(&mut b, &mut a, candidate("candidate:2 1 udp 2122260223 10.0.0.2 50001 typ host")).await;

    // Usage from both; the summary adds them up: 4000 of 8000 downloaded bytes came from peers.
    assert_eq!(stack.usage(&a, 3_000, 1_000, 3_000).await, StatusCode::NO_CONTENT);
    assert_eq!(stack.usage(&b, 1_000, 3_000, 1_000).await, StatusCode::NO_CONTENT);
    let summary = stack.summary(&a, "live").await;
    assert_eq!(
        (summary.viewers, summary.sessions, summary.http_bytes, summary.p2p_down_bytes, summary.p2p_up_bytes),
        (2, 2, 4_000, 4_000, 4_000)
    );
    assert!((summary.offload_ratio - 0.5).abs() < 1e-9, "{}", summary.offload_ratio);
}

#[tokio::test]
async fn a_distributor_token_does_not_open_signalling() {
    let stack = Stack::start().await;
    let agent = stack.join("live", "viewer-a").await;
    let url = &agent.config.signalling_url;
    let distributor_token = &agent.config.token;
    // The distributor's token names no peer, so it speaks for nobody: not for an invented peerId,
    // not for the one the tracker issued, not with no peerId at all.
    for query in [
        format!("peer_id=someone&token={distributor_token}"),
        format!("peer_id={}&token={distributor_token}", agent.peer_id()),
        format!("token={distributor_token}"),
    ] {
        assert_eq!(refusal(connect(&format!("{url}?{query}")).await), (401, "bad_token".into()), "{query}");
    }
}

#[tokio::test]
async fn a_token_for_one_content_cannot_reach_another() {
    let stack = Stack::start().await;
    let mut a = stack.join("live", "viewer-a").await;
    let mut c = stack.join("other", "viewer-c").await;

    // Neither the distributor's token nor the peer token of "live" starts a session of "other".
    for token in [a.config.token.clone(), a.session.token.clone()] {
        let res = stack.init(&a.config, "other", token).await;
        assert_eq!(error_of(res).await, (StatusCode::FORBIDDEN, "forbidden".into()));
    }
    // A track or peers call has no content field: the token alone decides the swarm, so "a" on
    // rendition 0 of "live" and "c" on rendition 0 of "other" never see each other.
    assert_eq!(stack.track(&a, 0).await, StatusCode::NO_CONTENT);
    assert_eq!(stack.peers(&mut c, 0).await, Vec::<PeerId>::new());
    assert_eq!(stack.peers(&mut a, 0).await, Vec::<PeerId>::new());
    // Nor can "a" borrow "c"'s peerId with its own token.
    let as_c = TrackRequest { peer_id: c.peer_id(), token: a.session.token.clone(), rendition: 0 };
    let res = stack.post(&format!("{}/v1/track", a.config.tracker_url), &as_c).await;
    assert_eq!(error_of(res).await, (StatusCode::FORBIDDEN, "forbidden".into()));
    // Signalling does not route across contents either.
    send(&mut a, &ClientMessage::Relay { to: c.peer_id(), signal: Signal::Bye }).await;
    let undeliverable = ServerMessage::Undeliverable { to: c.peer_id(), reason: "unknown_peer".into() };
    assert_eq!(next(&mut a.ws).await, undeliverable);
    send(&mut c, &ClientMessage::Ping).await;
    assert_eq!(next(&mut c.ws).await, ServerMessage::Pong);
}

#[tokio::test]
async fn p2p_switched_off_by_the_admin_api_gives_no_token() {
    let stack = Stack::start().await;
    let off = ContentSettings { p2p_enabled: false, ..ContentSettings::default() };
    let res = stack
        .http
        .put(format!("{}/v1/admin/contents/{CUSTOMER}/live", stack.distributor.url()))
        .bearer_auth(ADMIN)
        .json(&off)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let config = stack.config("live", "viewer-a").await;
    assert!(!config.p2p_enabled);
    assert!(config.token.is_empty());
    // Without a token there is no way into the tracker.
    let res = stack.init(&config, "live", config.token.clone()).await;
    assert_eq!(error_of(res).await, (StatusCode::UNAUTHORIZED, "bad_token".into()));
    // Other contents keep P2P.
    assert!(stack.config("other", "viewer-a").await.p2p_enabled);
}

/// The four servers on loopback ports, sharing [`SECRET`]; they stop when this is dropped.
struct Stack {
    distributor: LoopbackServer,
    http: reqwest::Client,
    _others: [LoopbackServer; 3],
}

/// One viewer: what the distributor and the tracker told it, and its signalling websocket.
struct Agent {
    config: ConfigResponse,
    session: InitResponse,
    ws: Ws,
}

impl Agent {
    fn peer_id(&self) -> PeerId {
        self.session.peer_id.clone()
    }
}

impl Stack {
    /// Starts tracker, signalling and analytics, then the distributor that points agents at them.
    async fn start() -> Self {
        let secret = SECRET.to_owned();
        let tracker_config = tracker::Config { secret: secret.clone(), ..Default::default() };
        let tracker = service::spawn_on_loopback(|l, stop| tracker::run(tracker_config, l, stop)).await.unwrap();
        let signalling_config = signalling::Config { secret: secret.clone(), ..Default::default() };
        let signalling =
            service::spawn_on_loopback(|l, stop| signalling::run(signalling_config, l, stop)).await.unwrap();
        let analytics_config = analytics::Config::default();
        let analytics = service::spawn_on_loopback(|l, stop| analytics::run(analytics_config, l, stop)).await.unwrap();
        let distributor_config = distributor::Config {
            secret,
            tracker_url: tracker.url(),
            signalling_url: format!("ws://{}/v1/ws", signalling.addr()),
            analytics_url: analytics.url(),
            admin_token: ADMIN.into(),
            ..Default::default()
        };
        let distributor =
            service::spawn_on_loopback(|l, stop| distributor::run(distributor_config, l, stop)).await.unwrap();
        Self { distributor, http: reqwest::Client::new(), _others: [tracker, signalling, analytics] }
    }

    /// `GET /v1/config` at the distributor for `content`, with `session` as the rollout key.
    async fn config(&self, content: &str, session: &str) -> ConfigResponse {
        let query = format!("customer={CUSTOMER}&content={content}&version=0.1.0&session={session}");
        let res = self.http.get(format!("{}/v1/config?{query}", self.distributor.url())).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    /// `POST /v1/init` at the tracker `config` names, for `content` with `token`.
    async fn init(&self, config: &ConfigResponse, content: &str, token: String) -> reqwest::Response {
        let req = InitRequest {
            customer: CUSTOMER.into(),
            content: content.into(),
            token,
            protocol_version: PROTOCOL_VERSION,
        };
        self.post(&format!("{}/v1/init", config.tracker_url), &req).await
    }

    /// The agent's start of session: config, init, then the signalling websocket with its peerId.
    async fn join(&self, content: &str, viewer: &str) -> Agent {
        let config = self.config(content, viewer).await;
        assert!(config.p2p_enabled, "{content}");
        let res = self.init(&config, content, config.token.clone()).await;
        assert_eq!(res.status(), StatusCode::OK);
        let session: InitResponse = res.json().await.unwrap();
        let url = format!("{}?peer_id={}&token={}", config.signalling_url, session.peer_id, session.token);
        let ws = connect(&url).await.unwrap();
        Agent { config, session, ws }
    }

    async fn track(&self, agent: &Agent, rendition: u32) -> StatusCode {
        let req = TrackRequest { peer_id: agent.peer_id(), token: agent.session.token.clone(), rendition };
        self.post(&format!("{}/v1/track", agent.config.tracker_url), &req).await.status()
    }

    /// `POST /v1/peers`; like the agent, hands the tracker's introduction to signalling, which
    /// needs it before it relays the agent's offers to those peers.
    async fn peers(&self, agent: &mut Agent, rendition: u32) -> Vec<PeerId> {
        let req = PeersRequest { peer_id: agent.peer_id(), token: agent.session.token.clone(), rendition, max: 10 };
        let res = self.post(&format!("{}/v1/peers", agent.config.tracker_url), &req).await;
        assert_eq!(res.status(), StatusCode::OK);
        let PeersResponse { peers, intro, .. } = res.json().await.unwrap();
        if !peers.is_empty() {
            send(agent, &ClientMessage::Introduce { intro }).await;
        }
        peers
    }

    /// `POST /v1/usage` at analytics: the agent's first report, with these byte counts.
    async fn usage(&self, agent: &Agent, http_bytes: u64, p2p_down_bytes: u64, p2p_up_bytes: u64) -> StatusCode {
        let report = UsageReport {
            customer: CUSTOMER.into(),
            content: "live".into(),
            session: agent.peer_id().to_string(),
            seq: 0,
            http_bytes,
            p2p_down_bytes,
            p2p_up_bytes,
            peers: 1,
            rendition: 1,
            stalls: 0,
            cdn_bytes: Default::default(),
        };
        self.post(&format!("{}/v1/usage", agent.config.analytics_url), &report).await.status()
    }

    async fn summary(&self, agent: &Agent, content: &str) -> Summary {
        let url = format!("{}/v1/summary?content={content}", agent.config.analytics_url);
        let res = self.http.get(url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json().await.unwrap()
    }

    async fn post(&self, url: &str, body: &impl Serialize) -> reqwest::Response {
        self.http.post(url).json(body).send().await.unwrap()
    }
}

async fn error_of(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    (status, res.json::<ErrorBody>().await.unwrap().error)
}

async fn connect(url: &str) -> Result<Ws, tungstenite::Error> {
    tokio_tungstenite::connect_async(url).await.map(|(ws, _)| ws)
}

/// The status and error code of a refused websocket upgrade.
fn refusal(connected: Result<Ws, tungstenite::Error>) -> (u16, String) {
    let Err(tungstenite::Error::Http(res)) = connected else {
        panic!("expected an HTTP refusal");
    };
    let body: ErrorBody = serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
    (res.status().as_u16(), body.error)
}

async fn send(agent: &mut Agent, message: &ClientMessage) {
    agent.ws.send(Message::text(serde_json::to_string(message).unwrap())).await.unwrap();
}

/// The next signalling message `ws` receives.
async fn next(ws: &mut Ws) -> ServerMessage {
    loop {
        let frame = tokio::time::timeout(FRAME_TIMEOUT, ws.next()).await.expect("no frame in time");
        match frame {
            Some(Ok(Message::Text(text))) => return ServerMessage::parse(text.as_str()).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Sends `signal` from `from` to `to` through signalling and checks that `to` gets it, from `from`.
async fn relay(from: &mut Agent, to: &mut Agent, signal: Signal) {
    send(from, &ClientMessage::Relay { to: to.peer_id(), signal: signal.clone() }).await;
    assert_eq!(next(&mut to.ws).await, ServerMessage::Relay { from: from.peer_id(), signal });
}

fn candidate(line: &str) -> Signal {
    Signal::Candidate { candidate: line.into(), sdp_mid: Some("0".into()), sdp_m_line_index: Some(0) }
}
