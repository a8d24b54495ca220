//! Signalling on a real socket with real websocket clients: relays, refusals and closes.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::PeerId;
use protocol::signal::{CLOSE_IDLE, CLOSE_REPLACED, ClientMessage, MAX_MESSAGE_BYTES, ServerMessage, Signal};
use protocol::token::{self, Claims};
use service::LoopbackServer;
use swarmcast_signalling::{Config, run};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &[u8] = b"test-secret";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Server {
    addr: String,
    _running: LoopbackServer,
}

async fn start(config: Config) -> Server {
    let running = service::spawn_on_loopback(|listener, stop| run(config, listener, stop)).await.unwrap();
    Server { addr: running.addr().to_string(), _running: running }
}

fn config() -> Config {
    Config { secret: String::from_utf8(SECRET.to_vec()).unwrap(), ..Config::default() }
}

fn id(s: &str) -> PeerId {
    s.parse().unwrap()
}

fn peer_token(peer: &str, content: &str, expires_in_s: i64) -> String {
    let expires_at_s = service::unix_now_s().saturating_add_signed(expires_in_s);
    let claims =
        Claims { customer: "acme".into(), content: content.into(), peer_id: Some(id(peer)), expires_at_s, rules: None };
    token::sign(SECRET, &claims)
}

impl Server {
    async fn try_connect(&self, query: &str) -> Result<Ws, tungstenite::Error> {
        tokio_tungstenite::connect_async(format!("ws://{}/v1/ws?{query}", self.addr)).await.map(|(ws, _)| ws)
    }

    async fn connect(&self, peer: &str, content: &str) -> Ws {
        self.try_connect(&format!("peer_id={peer}&token={}", peer_token(peer, content, 60))).await.unwrap()
    }
}

/// What a client sees next: a message, or the close (with its code, if any).
#[derive(Debug, PartialEq)]
enum Seen {
    Message(ServerMessage),
    Closed(Option<u16>),
}

async fn next(ws: &mut Ws) -> Seen {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no frame within 10 s");
        match frame {
            Some(Ok(Message::Text(text))) => return Seen::Message(ServerMessage::parse(text.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => return Seen::Closed(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Seen::Closed(None),
        }
    }
}

async fn send(ws: &mut Ws, message: &ClientMessage) {
    ws.send(Message::text(serde_json::to_string(message).unwrap())).await.unwrap();
}

fn relay(to: &str, signal: Signal) -> ClientMessage {
    ClientMessage::Relay { to: id(to), signal }
}

fn error(reason: &str) -> Seen {
    Seen::Message(ServerMessage::Error { reason: reason.into() })
}

#[tokio::test]
async fn signals_relay_both_ways_between_two_peers() {
    let server = start(config()).await;
    let (mut a, mut b) = (server.connect("a", "live").await, server.connect("b", "live").await);
    send(&mut a, &ClientMessage::Introduce { intro: intro_for("a", &["b"], "live") }).await;
    send(&mut a, &relay("b", Signal::Offer { sdp: "v=0 offer".into() })).await;
    let offer = ServerMessage::Relay { from: id("a"), signal: Signal::Offer { sdp: "v=0 offer".into() } };
    assert_eq!(next(&mut b).await, Seen::Message(offer));
    let candidate =
        Signal::Candidate { candidate: "candidate:1".into(), sdp_mid: Some("0".into()), sdp_m_line_index: Some(0) };
    send(&mut b, &relay("a", candidate.clone())).await;
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Relay { from: id("b"), signal: candidate }));
    send(&mut a, &ClientMessage::Ping).await;
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Pong));

    let metrics = reqwest::get(format!("http://{}/metrics", server.addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("signalling_relayed_total 2"), "{metrics}");
    assert!(metrics.contains("signalling_connections 2"), "{metrics}");
}

#[tokio::test]
async fn unknown_and_other_content_peers_are_undeliverable() {
    let server = start(config()).await;
    let (mut a, mut c) = (server.connect("a", "live").await, server.connect("c", "other").await);
    for to in ["nobody", "c"] {
        send(&mut a, &relay(to, Signal::Bye)).await;
        let undeliverable = ServerMessage::Undeliverable { to: id(to), reason: "unknown_peer".into() };
        assert_eq!(next(&mut a).await, Seen::Message(undeliverable));
    }
    // Nothing reached "c": its next frame is the answer to its own ping.
    send(&mut c, &ClientMessage::Ping).await;
    assert_eq!(next(&mut c).await, Seen::Message(ServerMessage::Pong));
}

#[tokio::test]
async fn bad_missing_expired_and_foreign_tokens_get_401_before_upgrade() {
    let server = start(config()).await;
    let foreign = token::sign(
        b"another-secret",
        &Claims {
            customer: "acme".into(),
            content: "live".into(),
            peer_id: Some(id("a")),
            expires_at_s: u64::MAX,
            rules: None,
        },
    );
    let queries = [
        "peer_id=a&token=garbage".to_owned(),
        "peer_id=a".to_owned(),
        format!("peer_id=b&token={}", peer_token("a", "live", 60)),
        format!("peer_id=a&token={}", peer_token("a", "live", -1)),
        format!("peer_id=a&token={foreign}"),
        format!("peer_id=bad%20id&token={}", peer_token("a", "live", 60)),
    ];
    for query in queries {
        match server.try_connect(&query).await {
            Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 401, "{query}"),
            other => panic!("{query}: expected 401, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn malformed_and_binary_frames_get_errors_and_the_connection_stays() {
    let server = start(config()).await;
    let mut a = server.connect("a", "live").await;
    a.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut a).await, error("malformed"));
    a.send(Message::text(r#"{"type":"relay","to":"b"}"#)).await.unwrap();
    assert_eq!(next(&mut a).await, error("malformed"));
    a.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(next(&mut a).await, error("binary_not_supported"));
    send(&mut a, &ClientMessage::Ping).await;
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Pong));
}

#[tokio::test]
async fn an_oversize_frame_closes_the_connection() {
    let server = start(config()).await;
    let mut a = server.connect("a", "live").await;
    let huge =
        format!(r#"{{"type":"relay","to":"b","signal":{{"kind":"offer","sdp":"{}"}}}}"#, "x".repeat(MAX_MESSAGE_BYTES));
    // The server may close while the client is still writing; either way the next thing seen is the close.
    let _ = a.send(Message::text(huge)).await;
    assert!(matches!(next(&mut a).await, Seen::Closed(_)));
}

#[tokio::test]
async fn a_second_connection_replaces_the_first() {
    let server = start(config()).await;
    let mut first = server.connect("a", "live").await;
    let mut second = server.connect("a", "live").await;
    assert_eq!(next(&mut first).await, Seen::Closed(Some(CLOSE_REPLACED)));
    let mut b = server.connect("b", "live").await;
    send(&mut b, &ClientMessage::Introduce { intro: intro_for("b", &["a"], "live") }).await;
    let offer = Signal::Offer { sdp: "v=0".into() };
    send(&mut b, &relay("a", offer.clone())).await;
    assert_eq!(next(&mut second).await, Seen::Message(ServerMessage::Relay { from: id("b"), signal: offer }));
}

#[tokio::test]
async fn senders_over_their_rate_get_rate_limited() {
    let server = start(Config { max_messages_per_s: 1, burst_messages: 2, ..config() }).await;
    let mut a = server.connect("a", "live").await;
    for _ in 0..3 {
        send(&mut a, &ClientMessage::Ping).await;
    }
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Pong));
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Pong));
    assert_eq!(next(&mut a).await, error("rate_limited"));
}

#[tokio::test]
async fn silent_connections_close_after_the_idle_timeout() {
    let server = start(Config { idle_timeout_s: 1, ..config() }).await;
    let mut a = server.connect("a", "live").await;
    assert_eq!(next(&mut a).await, Seen::Closed(Some(CLOSE_IDLE)));
}

#[tokio::test]
async fn plain_http_without_upgrade_is_refused() {
    let server = start(config()).await;
    let url = format!("http://{}/v1/ws?peer_id=a&token={}", server.addr, peer_token("a", "live", 60));
    let res = reqwest::get(url).await.unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

fn intro_for(from: &str, peers: &[&str], content: &str) -> String {
    let intro = protocol::intro::Introduction {
        customer: "acme".into(),
        content: content.into(),
        from: id(from),
        peers: peers.iter().map(|p| id(p)).collect(),
        expires_at_s: service::unix_now_s() + 60,
    };
    protocol::intro::sign(SECRET, &intro)
}

fn undeliverable(to: &str, reason: &str) -> Seen {
    Seen::Message(ServerMessage::Undeliverable { to: id(to), reason: reason.into() })
}

/// Checks that nothing is waiting for `ws`: its next frame is the answer to its own ping.
async fn nothing_pending(ws: &mut Ws) {
    send(ws, &ClientMessage::Ping).await;
    assert_eq!(next(ws).await, Seen::Message(ServerMessage::Pong));
}

#[tokio::test]
async fn offers_need_the_trackers_introduction_by_default() {
    assert!(config().require_introduction);
    let server = start(config()).await;
    let (mut a, mut b) = (server.connect("a", "live").await, server.connect("b", "live").await);
    let offer = Signal::Offer { sdp: "v=0".into() };
    // No introduction: neither the offer nor a candidate gets through.
    send(&mut a, &relay("b", offer.clone())).await;
    assert_eq!(next(&mut a).await, undeliverable("b", "not_introduced"));
    send(&mut a, &relay("b", Signal::Bye)).await;
    assert_eq!(next(&mut a).await, undeliverable("b", "not_linked"));
    // Introductions for another sender, another content, or forged, are refused.
    for bad in [intro_for("b", &["a"], "live"), intro_for("a", &["b"], "other"), "x.y".to_owned()] {
        send(&mut a, &ClientMessage::Introduce { intro: bad }).await;
        assert_eq!(next(&mut a).await, error("bad_intro"));
    }
    send(&mut a, &relay("b", offer.clone())).await;
    assert_eq!(next(&mut a).await, undeliverable("b", "not_introduced"));
    nothing_pending(&mut b).await;
    // The tracker's introduction of "b" to "a" opens the way: offer, answer, candidates.
    send(&mut a, &ClientMessage::Introduce { intro: intro_for("a", &["b"], "live") }).await;
    send(&mut a, &relay("b", offer.clone())).await;
    assert_eq!(next(&mut b).await, Seen::Message(ServerMessage::Relay { from: id("a"), signal: offer }));
    let answer = Signal::Answer { sdp: "v=0 answer".into() };
    send(&mut b, &relay("a", answer.clone())).await;
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Relay { from: id("b"), signal: answer }));
    send(&mut b, &relay("a", Signal::Bye)).await;
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Relay { from: id("b"), signal: Signal::Bye }));

    let metrics = reqwest::get(format!("http://{}/metrics", server.addr)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"signalling_rejected_total{reason="not_introduced"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"signalling_rejected_total{reason="bad_intro"} 3"#), "{metrics}");
}

#[tokio::test]
async fn offers_pass_without_introductions_when_not_required() {
    let server = start(Config { require_introduction: false, ..config() }).await;
    let (mut a, mut b) = (server.connect("a", "live").await, server.connect("b", "live").await);
    let offer = Signal::Offer { sdp: "v=0".into() };
    send(&mut a, &relay("b", offer.clone())).await;
    assert_eq!(next(&mut b).await, Seen::Message(ServerMessage::Relay { from: id("a"), signal: offer }));
}

#[tokio::test]
async fn an_answer_without_a_matching_offer_is_dropped() {
    let server = start(config()).await;
    let (mut a, mut b) = (server.connect("a", "live").await, server.connect("b", "live").await);
    let answer = Signal::Answer { sdp: "v=0 answer".into() };
    send(&mut b, &relay("a", answer.clone())).await;
    assert_eq!(next(&mut b).await, undeliverable("a", "no_offer"));
    nothing_pending(&mut a).await;
    // After a's offer, b's answer passes once.
    send(&mut a, &ClientMessage::Introduce { intro: intro_for("a", &["b"], "live") }).await;
    send(&mut a, &relay("b", Signal::Offer { sdp: "v=0".into() })).await;
    assert!(matches!(next(&mut b).await, Seen::Message(ServerMessage::Relay { .. })));
    send(&mut b, &relay("a", answer.clone())).await;
    assert_eq!(next(&mut a).await, Seen::Message(ServerMessage::Relay { from: id("b"), signal: answer.clone() }));
    send(&mut b, &relay("a", answer)).await;
    assert_eq!(next(&mut b).await, undeliverable("a", "no_offer"));
    nothing_pending(&mut a).await;
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server = start(Config { max_connections_per_ip: 2, ..config() }).await;
    let (_a, b) = (server.connect("a", "live").await, server.connect("b", "live").await);
    let query = format!("peer_id=c&token={}", peer_token("c", "live", 60));
    match server.try_connect(&query).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
    // A slot frees when a connection ends.
    drop(b);
    let mut c = None;
    for _ in 0..100 {
        if let Ok(ws) = server.try_connect(&query).await {
            c = Some(ws);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nothing_pending(c.as_mut().expect("the freed slot is reusable")).await;
}

#[tokio::test]
async fn an_undeliverable_message_is_reported_within_5_s() {
    let server = start(config()).await;
    let mut a = server.connect("a", "live").await;
    let started = std::time::Instant::now();
    send(&mut a, &relay("gone", Signal::Offer { sdp: "v=0".into() })).await;
    assert_eq!(next(&mut a).await, undeliverable("gone", "unknown_peer"));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
