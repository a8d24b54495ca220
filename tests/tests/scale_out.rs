//! Scale-out: a distributor handing each content its tracker shard, two tracker shards, and two
//! signalling nodes joined by a real `redis-server`; two viewers of one content on different
//! signalling nodes set up a connection, and one survives the loss of its node.
//!
//! Skipped, with a message, when `redis-server` is not installed (`cargo xtask deps` installs it).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::api::{ConfigResponse, InitRequest, InitResponse, PeersRequest, PeersResponse, TrackRequest};
use protocol::signal::{ClientMessage, ServerMessage, Signal};
use protocol::{PROTOCOL_VERSION, PeerId};
use service::LoopbackServer;
use signalling::testing::LocalRedis;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const SECRET: &str = "scale-out-secret";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct Viewer {
    tracker: String,
    session: InitResponse,
    ws: Ws,
}

async fn config(distributor: &LoopbackServer, content: &str) -> ConfigResponse {
    let url = format!("{}/v1/config?customer=acme&content={content}&version=0.1.0", distributor.url());
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

async fn post<T: serde::de::DeserializeOwned>(url: String, body: &impl serde::Serialize) -> Option<T> {
    let res = reqwest::Client::new().post(url).json(body).send().await.unwrap();
    if res.status().as_u16() == 204 { None } else { Some(res.json().await.unwrap()) }
}

fn ws_url(node: &LoopbackServer, session: &InitResponse) -> String {
    format!("ws://{}/v1/ws?peer_id={}&token={}", node.addr(), session.peer_id, session.token)
}

/// config → init at the content's shard → signalling websocket on `node` → track rendition 1.
async fn join(distributor: &LoopbackServer, node: &LoopbackServer, content: &str) -> Viewer {
    let config = config(distributor, content).await;
    let init = InitRequest {
        customer: "acme".into(),
        content: content.into(),
        token: config.token,
        protocol_version: PROTOCOL_VERSION,
    };
    let session: InitResponse = post(format!("{}/v1/init", config.tracker_url), &init).await.unwrap();
    let ws = tokio_tungstenite::connect_async(ws_url(node, &session)).await.unwrap().0;
    let track = TrackRequest { peer_id: session.peer_id.clone(), token: session.token.clone(), rendition: 1 };
    post::<()>(format!("{}/v1/track", config.tracker_url), &track).await;
    Viewer { tracker: config.tracker_url, session, ws }
}

async fn peers(viewer: &Viewer) -> PeersResponse {
    let req = PeersRequest {
        peer_id: viewer.session.peer_id.clone(),
        token: viewer.session.token.clone(),
        rendition: 1,
        max: 10,
    };
    post::<PeersResponse>(format!("{}/v1/peers", viewer.tracker), &req).await.unwrap()
}

/// Asks the tracker for candidates and hands its introduction to signalling, as the agent does
/// before offering; returns the candidates.
async fn introduce(viewer: &mut Viewer) -> Vec<PeerId> {
    let PeersResponse { peers, intro, .. } = peers(viewer).await;
    let message = ClientMessage::Introduce { intro };
    viewer.ws.send(Message::text(serde_json::to_string(&message).unwrap())).await.unwrap();
    peers
}

async fn next(ws: &mut Ws) -> Option<ServerMessage> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("no frame within 10 s") {
            Some(Ok(Message::Text(text))) => return Some(ServerMessage::parse(text.as_str()).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn relay(from: &mut Viewer, to: &mut Viewer, signal: Signal) {
    let message = ClientMessage::Relay { to: to.session.peer_id.clone(), signal: signal.clone() };
    from.ws.send(Message::text(serde_json::to_string(&message).unwrap())).await.unwrap();
    assert_eq!(next(&mut to.ws).await, Some(ServerMessage::Relay { from: from.session.peer_id.clone(), signal }));
}

#[tokio::test]
async fn viewers_on_two_nodes_and_two_shards_connect_and_survive_a_node_loss() {
    let Some(redis) = LocalRedis::start().await else {
        println!("SKIPPED: redis-server is not installed (run `cargo xtask deps`)");
        return;
    };
    let mut shards = Vec::new();
    for _ in 0..2 {
        let config = tracker::Config { secret: SECRET.into(), ..Default::default() };
        shards.push(service::spawn_on_loopback(|l, stop| tracker::run(config, l, stop)).await.unwrap());
    }
    let mut nodes = Vec::new();
    for name in ["s1", "s2"] {
        let config = signalling::Config {
            secret: SECRET.into(),
            broker_url: redis.url().into(),
            node_id: name.into(),
            ..Default::default()
        };
        nodes.push(service::spawn_on_loopback(|l, stop| signalling::run(config, l, stop)).await.unwrap());
    }
    let distributor_config = distributor::Config {
        secret: SECRET.into(),
        tracker_shards: shards.iter().map(LoopbackServer::url).collect(),
        signalling_url: format!("ws://{}/v1/ws", nodes[0].addr()),
        ..Default::default()
    };
    let distributor =
        service::spawn_on_loopback(|l, stop| distributor::run(distributor_config, l, stop)).await.unwrap();

    // Contents spread over both shards; one content always gets the same shard.
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..16 {
        let content = format!("live{i}");
        let url = config(&distributor, &content).await.tracker_url;
        assert_eq!(config(&distributor, &content).await.tracker_url, url);
        seen.insert(url);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // Two viewers of "live" on different signalling nodes find each other on their shard.
    let mut a = join(&distributor, &nodes[0], "live").await;
    let mut b = join(&distributor, &nodes[1], "live").await;
    assert_eq!(a.tracker, b.tracker);
    assert_eq!(introduce(&mut a).await, vec![b.session.peer_id.clone()]);
    let other = shards.iter().map(LoopbackServer::url).find(|u| *u != a.tracker).unwrap();
    let unknown =
        PeersRequest { peer_id: a.session.peer_id.clone(), token: a.session.token.clone(), rendition: 1, max: 10 };
    let res = reqwest::Client::new().post(format!("{other}/v1/peers")).json(&unknown).send().await.unwrap();
    let found = if res.status().is_success() { res.json::<PeersResponse>().await.unwrap().peers } else { Vec::new() };
    assert!(found.is_empty(), "the other shard holds no swarm of this content: {found:?}");

    relay(&mut a, &mut b, Signal::Offer { sdp: "v=0 a".into() }).await;
    relay(&mut b, &mut a, Signal::Answer { sdp: "v=0 b".into() }).await;
    let candidate = |c: &str| Signal::Candidate { candidate: c.into(), sdp_mid: None, sdp_m_line_index: Some(0) };
    relay(&mut a, &mut b, candidate("candidate:1")).await;
    relay(&mut b, &mut a, candidate("candidate:2")).await;

    // Node s1 stops: "a" is closed, waits a jittered backoff (250–750 ms) and reconnects to s2
    // with its peerId and token; its session goes on.
    drop(nodes.remove(0));
    assert_eq!(next(&mut a.ws).await, None);
    let jitter = u64::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_millis());
    tokio::time::sleep(Duration::from_millis(250 + jitter / 2)).await;
    a.ws = tokio_tungstenite::connect_async(ws_url(&nodes[0], &a.session)).await.unwrap().0;
    assert_eq!(introduce(&mut b).await, vec![a.session.peer_id.clone()]);
    relay(&mut b, &mut a, Signal::Offer { sdp: "v=0 restart".into() }).await;
    relay(&mut a, &mut b, Signal::Answer { sdp: "v=0 again".into() }).await;
}
