//! The WebTorrent endpoint on a real socket, spoken to as bittorrent-tracker clients do: offers
//! and answers relayed, answers without an offer refused, `stopped`, scrape, and the same over TLS.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use swarmcast_tracker::{Config, run};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const HASH: &str = "aaaaaaaaaaaaaaaaaaaa";

fn config() -> Config {
    Config { secret: "s".into(), ..Config::default() }
}

fn peer(n: u8) -> String {
    format!("-PM0203-{}", char::from(b'a' + n).to_string().repeat(12))
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, value: Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("a frame within 10 s");
        if let Some(Ok(Message::Text(text))) = frame {
            return serde_json::from_str(text.as_str()).unwrap();
        }
        assert!(matches!(frame, Some(Ok(_))), "closed: {frame:?}");
    }
}

fn announce(n: u8, offers: usize) -> Value {
    let offers: Vec<Value> = (0..offers)
        .map(|i| json!({"offer": {"type": "offer", "sdp": format!("v=0 from {n}")}, "offer_id": format!("{i:0>20}")}))
        .collect();
    json!({"action": "announce", "info_hash": HASH, "peer_id": peer(n), "event": "started", "left": 1, "numwant": offers.len(), "offers": offers, "uploaded": 0, "downloaded": 0})
}

/// Runs the offer/answer exchange of two clients on `a` and `b`.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(a: &mut WebSocketStream<S>, b: &mut WebSocketStream<S>) {
    send(a, announce(0, 0)).await;
    assert_eq!(
        next(a).await,
        json!({"action": "announce", "info_hash": HASH, "complete": 0, "incomplete": 1, "interval": 120})
    );
    send(b, announce(1, 2)).await;
    let offer = next(a).await;
    assert_eq!(offer["peer_id"], json!(peer(1)));
    assert_eq!(offer["offer"], json!({"type": "offer", "sdp": "v=0 from 1"}));
    let response = next(b).await;
    assert_eq!(response["incomplete"], json!(2));
    // An answer to an offer never made is refused.
    let forged = json!({"action": "announce", "info_hash": HASH, "peer_id": peer(0), "to_peer_id": peer(1), "offer_id": "99999999999999999999", "answer": {"type": "answer", "sdp": "v=0"}});
    send(a, forged).await;
    assert!(next(a).await["failure reason"].as_str().unwrap().contains("Could not find the offer"));
    let answer = json!({"action": "announce", "info_hash": HASH, "peer_id": peer(0), "to_peer_id": peer(1), "offer_id": offer["offer_id"], "answer": {"type": "answer", "sdp": "v=0 answer"}});
    send(a, answer).await;
    let relayed = next(b).await;
    assert_eq!((relayed["peer_id"].clone(), relayed["offer_id"].clone()), (json!(peer(0)), offer["offer_id"].clone()));
    assert_eq!(relayed["answer"]["sdp"], json!("v=0 answer"));
    // Scrape counts both; after "stopped" one is left.
    send(b, json!({"action": "announce", "info_hash": HASH, "peer_id": peer(1), "event": "stopped"})).await;
    send(b, json!({"action": "scrape", "info_hash": [HASH]})).await;
    let scrape = next(b).await;
    assert_eq!(scrape, json!({"action": "scrape", "files": {HASH: {"complete": 0, "incomplete": 1, "downloaded": 0}}}));
    // As bittorrent-tracker's server, no announce response to an answer: `a`'s next frame is its scrape.
    send(a, json!({"action": "scrape", "info_hash": HASH})).await;
    assert_eq!(next(a).await["action"], json!("scrape"));
}

#[tokio::test]
async fn offers_and_answers_flow_between_two_webtorrent_clients() {
    let server = service::spawn_on_loopback(|l, stop| run(config(), l, stop)).await.unwrap();
    let url = format!("ws://{}/announce", server.addr());
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    exchange(&mut a, &mut b).await;
    // A closed connection's peer leaves at once.
    drop(a);
    let (mut c, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let mut left = false;
    for _ in 0..100 {
        send(&mut c, json!({"action": "scrape", "info_hash": HASH})).await;
        if next(&mut c).await["files"][HASH]["incomplete"] == json!(0) {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(left, "the closed connection's peer is still in the swarm");
    send(&mut c, json!({"action": "announce", "info_hash": "short"})).await;
    assert!(next(&mut c).await["failure reason"].is_string());
}

#[tokio::test]
async fn the_endpoint_speaks_tls_with_a_self_signed_certificate() {
    let dir = std::env::temp_dir().join(format!("tracker-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let config = Config {
        tls_cert_pem: cert_path.display().to_string(),
        tls_key_pem: key_path.display().to_string(),
        ..config()
    };
    let server = service::spawn_on_loopback(|l, stop| run(config, l, stop)).await.unwrap();

    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let tls = connector.connect("localhost".try_into().unwrap(), tcp).await.unwrap();
        let (ws, _) =
            tokio_tungstenite::client_async(format!("wss://localhost:{}/", server.addr().port()), tls).await.unwrap();
        clients.push(ws);
    }
    let (mut a, mut b) = (clients.remove(0), clients.remove(0));
    exchange(&mut a, &mut b).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn websocket_framing_pings_fragments_and_bounds() {
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    let server = service::spawn_on_loopback(|l, stop| run(config(), l, stop)).await.unwrap();
    // A plain GET is not an upgrade.
    let plain = reqwest::get(format!("http://{}/announce", server.addr())).await.unwrap();
    assert_eq!(plain.status(), 400);

    let url = format!("ws://{}/announce", server.addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // A ping is answered with its payload.
    ws.send(Message::Ping(b"hi".to_vec().into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap();
    assert!(matches!(&pong, Some(Ok(Message::Pong(p))) if p.as_ref() == b"hi"), "{pong:?}");
    // Binary frames are ignored; the connection stays open.
    ws.send(Message::binary(b"{}".to_vec())).await.unwrap();
    // A request in three fragments is joined and answered.
    let text = json!({"action": "scrape", "info_hash": HASH}).to_string().into_bytes();
    let (head, rest) = text.split_at(5);
    let (middle, tail) = rest.split_at(10);
    ws.send(Message::Frame(Frame::message(head.to_vec(), OpCode::Data(Data::Text), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message(middle.to_vec(), OpCode::Data(Data::Continue), false))).await.unwrap();
    ws.send(Message::Frame(Frame::message(tail.to_vec(), OpCode::Data(Data::Continue), true))).await.unwrap();
    assert_eq!(next(&mut ws).await["action"], json!("scrape"));
    // Invalid UTF-8 in a text frame closes that connection (RFC 6455 §8.1); the server goes on.
    ws.send(Message::Frame(Frame::message(b"{\"action\":\"\xff\"}".to_vec(), OpCode::Data(Data::Text), true)))
        .await
        .ok();
    // Fragments adding up to more than 64 KiB close the connection.
    let (mut big, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let chunk = vec![b' '; 40 * 1024];
    big.send(Message::Frame(Frame::message(chunk.clone(), OpCode::Data(Data::Text), false))).await.unwrap();
    let _ = big.send(Message::Frame(Frame::message(chunk, OpCode::Data(Data::Continue), true))).await;
    let end = tokio::time::timeout(Duration::from_secs(10), big.next()).await.expect("closed within 10 s");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
}
