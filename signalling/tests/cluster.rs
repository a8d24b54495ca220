//! Two signalling nodes joined by a real `redis-server`: relays across nodes, refusals returned
//! from the far node, a peer moving between nodes, and the clients of a stopped node
//! reconnecting (with the agent's jittered backoff) to the other one.
//!
//! Skipped, with a message, when `redis-server` is not installed (`cargo xtask deps` installs it).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::PeerId;
use protocol::signal::{CLOSE_REPLACED, ClientMessage, ServerMessage, Signal};
use protocol::token::{self, Claims};
use service::LoopbackServer;
use swarmcast_signalling::testing::LocalRedis;
use swarmcast_signalling::{Config, run};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "cluster-secret";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn redis() -> Option<LocalRedis> {
    let redis = LocalRedis::start().await;
    if redis.is_none() {
        println!("SKIPPED: redis-server is not installed (run `cargo xtask deps`)");
    }
    redis
}

async fn node(redis: &LocalRedis, name: &str) -> LoopbackServer {
    let config =
        Config { secret: SECRET.into(), broker_url: redis.url().into(), node_id: name.into(), ..Config::default() };
    service::spawn_on_loopback(|listener, stop| run(config, listener, stop)).await.unwrap()
}

fn id(s: &str) -> PeerId {
    s.parse().unwrap()
}

fn url(node: &LoopbackServer, peer: &str, content: &str) -> String {
    let claims = Claims {
        customer: "acme".into(),
        content: content.into(),
        peer_id: Some(id(peer)),
        expires_at_s: service::unix_now_s() + 600,
        rules: None,
    };
    format!("ws://{}/v1/ws?peer_id={peer}&token={}", node.addr(), token::sign(SECRET.as_bytes(), &claims))
}

async fn connect(node: &LoopbackServer, peer: &str, content: &str) -> Ws {
    tokio_tungstenite::connect_async(url(node, peer, content)).await.unwrap().0
}

async fn send(ws: &mut Ws, to: &str, signal: Signal) {
    let text = serde_json::to_string(&ClientMessage::Relay { to: id(to), signal }).unwrap();
    ws.send(Message::text(text)).await.unwrap();
}

/// Hands `ws` (peer `from`) the tracker's introduction of `peers`, as the agent does before it
/// offers (signalling requires it by default).
async fn introduce(ws: &mut Ws, from: &str, peers: &[&str]) {
    let intro = protocol::intro::Introduction {
        customer: "acme".into(),
        content: "live".into(),
        from: id(from),
        peers: peers.iter().map(|p| id(p)).collect(),
        expires_at_s: service::unix_now_s() + 600,
    };
    let text = ClientMessage::Introduce { intro: protocol::intro::sign(SECRET.as_bytes(), &intro) };
    ws.send(Message::text(serde_json::to_string(&text).unwrap())).await.unwrap();
}

/// The next server message, or the close code (`Err`).
async fn next(ws: &mut Ws) -> Result<ServerMessage, Option<u16>> {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no frame within 10 s");
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(ServerMessage::parse(text.as_str()).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return Err(None),
        }
    }
}

fn from(peer: &str, signal: Signal) -> ServerMessage {
    ServerMessage::Relay { from: id(peer), signal }
}

fn undeliverable(to: &str, reason: &str) -> ServerMessage {
    ServerMessage::Undeliverable { to: id(to), reason: reason.into() }
}

fn offer() -> Signal {
    Signal::Offer { sdp: "v=0 offer".into() }
}

fn answer() -> Signal {
    Signal::Answer { sdp: "v=0 answer".into() }
}

fn candidate(n: u32) -> Signal {
    Signal::Candidate { candidate: format!("candidate:{n}"), sdp_mid: Some("0".into()), sdp_m_line_index: Some(0) }
}

#[tokio::test]
async fn signals_cross_nodes_and_refusals_come_back() {
    let Some(redis) = redis().await else { return };
    let (n1, n2) = (node(&redis, "n1").await, node(&redis, "n2").await);
    let mut a = connect(&n1, "a", "live").await;
    let mut b = connect(&n2, "b", "live").await;
    let mut c = connect(&n2, "c", "other").await;

    introduce(&mut a, "a", &["b", "c", "nobody", "ghost"]).await;
    send(&mut a, "b", offer()).await;
    assert_eq!(next(&mut b).await, Ok(from("a", offer())));
    send(&mut b, "a", answer()).await;
    assert_eq!(next(&mut a).await, Ok(from("b", answer())));
    for n in 0..3 {
        send(&mut a, "b", candidate(n)).await;
        send(&mut b, "a", candidate(n + 10)).await;
    }
    for n in 0..3 {
        assert_eq!(next(&mut b).await, Ok(from("a", candidate(n))), "in order");
        assert_eq!(next(&mut a).await, Ok(from("b", candidate(n + 10))), "in order");
    }

    // The answer consumed the offer: the sender's node refuses a second one.
    send(&mut b, "a", answer()).await;
    assert_eq!(next(&mut b).await, Ok(undeliverable("a", "no_offer")));
    // Another content's peer on the far node: refused there, reported back through the broker.
    send(&mut a, "c", offer()).await;
    assert_eq!(next(&mut a).await, Ok(undeliverable("c", "unknown_peer")));
    // Nobody holds this peerId.
    send(&mut a, "nobody", offer()).await;
    assert_eq!(next(&mut a).await, Ok(undeliverable("nobody", "unknown_peer")));
    // The directory names a node that is gone: nobody receives the publish.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("HSET")
        .arg("swarmcast:sig:v2:peer:ghost")
        .arg("node")
        .arg("dead")
        .arg("epoch")
        .arg(1)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    send(&mut a, "ghost", offer()).await;
    assert_eq!(next(&mut a).await, Ok(undeliverable("ghost", "unknown_peer")));
    // Nothing strayed to "c".
    c.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next(&mut c).await, Ok(ServerMessage::Pong));

    let metrics = reqwest::get(format!("{}/metrics", n1.url())).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("signalling_forwarded_total 5"), "{metrics}");
}

#[tokio::test]
async fn connecting_to_another_node_replaces_the_old_connection() {
    let Some(redis) = redis().await else { return };
    let (n1, n2) = (node(&redis, "r1").await, node(&redis, "r2").await);
    let mut old = connect(&n1, "a", "live").await;
    let mut new = connect(&n2, "a", "live").await;
    assert_eq!(next(&mut old).await, Err(Some(CLOSE_REPLACED)));
    // The peer is reachable on its new node, also from its old node.
    let mut b = connect(&n1, "b", "live").await;
    introduce(&mut b, "b", &["a"]).await;
    send(&mut b, "a", offer()).await;
    assert_eq!(next(&mut new).await, Ok(from("b", offer())));
}

async fn node_with(redis: &LocalRedis, name: &str, config: Config) -> LoopbackServer {
    let config = Config { secret: SECRET.into(), broker_url: redis.url().into(), node_id: name.into(), ..config };
    service::spawn_on_loopback(|listener, stop| run(config, listener, stop)).await.unwrap()
}

async fn redis_conn(redis: &LocalRedis) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

fn entry_key(peer: &str) -> String {
    format!("swarmcast:sig:v2:peer:{peer}")
}

async fn ping(ws: &mut Ws) -> Result<ServerMessage, Option<u16>> {
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    next(ws).await
}

#[tokio::test]
async fn a_late_eviction_by_an_older_connection_is_ignored() {
    let Some(redis) = redis().await else { return };
    let n1 = node(&redis, "e1").await;
    let mut a = connect(&n1, "a", "live").await;
    assert_eq!(ping(&mut a).await, Ok(ServerMessage::Pong));
    // An eviction from a connection that claimed "a" before this one (epoch 1) reaches the node
    // late: the newer connection stays, and so does its directory entry.
    let mut conn = redis_conn(&redis).await;
    let late = r#"{"t":"evict","peer":"a","epoch":1}"#;
    let receivers: i64 =
        redis::cmd("PUBLISH").arg("swarmcast:sig:v2:node:e1").arg(late).query_async(&mut conn).await.unwrap();
    assert_eq!(receivers, 1);
    assert_eq!(ping(&mut a).await, Ok(ServerMessage::Pong));
    let node: Option<String> = redis::cmd("HGET").arg(entry_key("a")).arg("node").query_async(&mut conn).await.unwrap();
    assert_eq!(node.as_deref(), Some("e1"));
}

#[tokio::test]
async fn a_connection_whose_eviction_was_lost_closes_at_the_next_refresh() {
    let Some(redis) = redis().await else { return };
    // Refreshed every second.
    let n1 = node_with(&redis, "l1", Config { peer_ttl_s: 3, ..Config::default() }).await;
    let mut a = connect(&n1, "a", "live").await;
    assert_eq!(ping(&mut a).await, Ok(ServerMessage::Pong));
    // A newer connection on another node claimed "a", and its eviction never arrived.
    let mut conn = redis_conn(&redis).await;
    redis::cmd("HSET")
        .arg(entry_key("a"))
        .arg("node")
        .arg("elsewhere")
        .arg("epoch")
        .arg(u64::MAX / 1024)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    assert_eq!(next(&mut a).await, Err(Some(CLOSE_REPLACED)));
    // The newer connection's entry is left alone.
    let node: Option<String> = redis::cmd("HGET").arg(entry_key("a")).arg("node").query_async(&mut conn).await.unwrap();
    assert_eq!(node.as_deref(), Some("elsewhere"));
}

#[tokio::test]
async fn departed_peers_leave_the_directory_promptly_even_all_at_once() {
    let Some(redis) = redis().await else { return };
    // More peers than one removal batch.
    let n1 = node_with(&redis, "d1", Config { max_connections_per_ip: 1000, ..Config::default() }).await;
    let peers: Vec<String> = (0..300).map(|n| format!("p{n}")).collect();
    let mut sockets = Vec::new();
    for peer in &peers {
        sockets.push(connect(&n1, peer, "live").await);
    }
    let mut conn = redis_conn(&redis).await;
    let keys: Vec<String> = peers.iter().map(|p| entry_key(p)).collect();
    let present: i64 = redis::cmd("EXISTS").arg(&keys).query_async(&mut conn).await.unwrap();
    assert_eq!(present, 300);
    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
    // Well within the 30 s the entries would take to expire.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let present: i64 = redis::cmd("EXISTS").arg(&keys).query_async(&mut conn).await.unwrap();
        if present == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{present} entries left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A test agent following the browser agent's reconnect rule: after a close that is not
/// "replaced", wait `backoff_ms(attempt, jitter)` (500 ms doubling to 30 s, times 0.5–1.5) and try
/// the next node of its list (a load balancer would do the choosing).
struct Agent {
    urls: Vec<String>,
    at: usize,
    attempt: u32,
    ws: Ws,
    reconnects: u32,
}

fn backoff_ms(attempt: u32, jitter: f64) -> u64 {
    let base = 500u64.saturating_mul(1 << attempt.min(16)).min(30_000);
    (base as f64 * (0.5 + jitter.clamp(0.0, 1.0))) as u64
}

fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    f64::from(nanos % 1000) / 1000.0
}

impl Agent {
    async fn connect(urls: Vec<String>) -> Self {
        let ws = tokio_tungstenite::connect_async(&urls[0]).await.unwrap().0;
        Self { urls, at: 0, attempt: 0, ws, reconnects: 0 }
    }

    /// The next server message, reconnecting as often as needed.
    async fn next(&mut self) -> ServerMessage {
        loop {
            match next(&mut self.ws).await {
                Ok(message) => return message,
                Err(Some(CLOSE_REPLACED)) => panic!("replaced"),
                Err(_) => self.reconnect().await,
            }
        }
    }

    async fn reconnect(&mut self) {
        loop {
            tokio::time::sleep(Duration::from_millis(backoff_ms(self.attempt, jitter()))).await;
            self.attempt += 1;
            self.at = (self.at + 1) % self.urls.len();
            if let Ok((ws, _)) = tokio_tungstenite::connect_async(&self.urls[self.at]).await {
                self.ws = ws;
                self.attempt = 0;
                self.reconnects += 1;
                return;
            }
        }
    }

    async fn send(&mut self, to: &str, signal: Signal) {
        send(&mut self.ws, to, signal).await;
    }
}

#[tokio::test]
async fn clients_of_a_stopped_node_reconnect_to_the_other_and_keep_signalling() {
    let Some(redis) = redis().await else { return };
    let (n1, n2) = (node(&redis, "f1").await, node(&redis, "f2").await);
    let urls = |peer: &str| vec![url(&n1, peer, "live"), url(&n2, peer, "live")];
    let (a_urls, b_urls) = (urls("a"), urls("b"));
    let mut a = Agent::connect(a_urls).await;
    let mut b = Agent::connect(b_urls.into_iter().rev().collect()).await;
    introduce(&mut a.ws, "a", &["b"]).await;
    introduce(&mut b.ws, "b", &["a"]).await;
    a.send("b", offer()).await;
    assert_eq!(b.next().await, from("a", offer()));
    b.send("a", answer()).await;
    assert_eq!(a.next().await, from("b", answer()));

    // n1 goes away: "a" sees the close (1001), and while it is between nodes a signal to it
    // comes back undeliverable within 5 s.
    let stopped = Instant::now();
    drop(n1);
    assert!(next(&mut a.ws).await.is_err());
    b.send("a", Signal::Bye).await;
    assert_eq!(b.next().await, undeliverable("a", "unknown_peer"));
    assert!(stopped.elapsed() < Duration::from_secs(5));
    // It backs off with jitter and lands on n2 with the same peerId and token.
    a.reconnect().await;
    assert_eq!((a.reconnects, a.at), (1, 1));
    let restart = Signal::Offer { sdp: "restart".into() };
    b.send("a", restart.clone()).await;
    assert_eq!(a.next().await, from("b", restart));
    // The session goes on: answer and candidates both ways, now on one node.
    a.send("b", answer()).await;
    assert_eq!(b.next().await, from("a", answer()));
    a.send("b", candidate(1)).await;
    assert_eq!(b.next().await, from("a", candidate(1)));
    b.send("a", candidate(2)).await;
    assert_eq!(a.next().await, from("b", candidate(2)));
}
