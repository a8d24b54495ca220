//! Websocket clients of the signalling bench: tokens and introductions minted with the servers'
//! secret (as the tracker mints them), and connections from chosen loopback source addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use protocol::PeerId;
use protocol::intro::{self, Introduction};
use protocol::token::{self, Claims};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// A bench client's websocket.
pub(crate) type Ws = WebSocketStream<TcpStream>;

/// Customer and content of every bench peer.
const SCOPE: &str = "bench";

/// Client websocket buffers, in bytes (small, so that the load generator fits many clients).
const CLIENT_BUFFER_BYTES: usize = 4096;

/// Connections being opened at once per process.
const OPENING_AT_ONCE: usize = 512;

/// One signalling node as the bench reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// `ws://ip:port/v1/ws`.
    pub url: String,
    /// Its socket address.
    pub addr: SocketAddr,
}

impl Node {
    /// Parses `ws://ip:port/…` (an IP address, not a host name).
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url)?;
        let host = parsed.host_str().context("url without host")?;
        let port = parsed.port().context("url without port")?;
        let addr = format!("{host}:{port}").parse().context("the bench url needs an IP address")?;
        Ok(Self { url: url.to_owned(), addr })
    }
}

/// The idle connections' peerId for global index `i`.
pub(crate) fn idle_peer(i: usize) -> String {
    format!("b{i:x}")
}

/// The source address of idle connection `i`: 127.0.0.1 for the first `per_source`, then
/// 127.0.0.2, … (one address has about 28k ephemeral ports).
pub(crate) fn idle_source(i: usize, per_source: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 1 + u8::try_from(i / per_source.max(1)).unwrap_or(253).min(253))
}

/// A session token for bench peer `peer`, valid for a day.
pub(crate) fn peer_token(secret: &str, peer: &PeerId) -> String {
    let claims = Claims {
        customer: SCOPE.into(),
        content: SCOPE.into(),
        peer_id: Some(peer.clone()),
        expires_at_s: service::unix_now_s() + 24 * 3600,
        rules: None,
    };
    token::sign(secret.as_bytes(), &claims)
}

/// The tracker's introduction of `to` to `from` (what `POST /v1/peers` returns), valid for the
/// offer lifetime signalling allows anyway (it caps it at its `offer_ttl_s`).
pub(crate) fn introduction(secret: &str, from: &PeerId, to: &[PeerId]) -> String {
    let intro = Introduction {
        customer: SCOPE.into(),
        content: SCOPE.into(),
        from: from.clone(),
        peers: to.to_vec(),
        expires_at_s: service::unix_now_s() + 3600,
    };
    intro::sign(secret.as_bytes(), &intro)
}

/// Opens one client for `peer` from `source` to `node`, with `TCP_NODELAY`.
pub(crate) async fn connect(source: Ipv4Addr, node: &Node, peer: &str, secret: &str) -> anyhow::Result<Ws> {
    let peer_id: PeerId = peer.parse().with_context(|| format!("bench peerId {peer}"))?;
    let url = format!("{}?peer_id={peer}&token={}", node.url, peer_token(secret, &peer_id));
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(node.addr).await?;
    stream.set_nodelay(true)?;
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = CLIENT_BUFFER_BYTES;
    config.write_buffer_size = CLIENT_BUFFER_BYTES;
    let (ws, _) = client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// Opens idle connections `first..first + count` ([`idle_peer`] ids, [`idle_source`]
/// addresses), `OPENING_AT_ONCE` at a time; connection `i` goes to node `i % nodes.len()`.
/// Returns them in index order.
pub(crate) async fn open_idle(
    nodes: &[Node],
    first: usize,
    count: usize,
    per_source: usize,
    secret: &str,
) -> anyhow::Result<Vec<Ws>> {
    anyhow::ensure!(!nodes.is_empty(), "no node to connect to");
    let gate = Arc::new(Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for i in first..first + count {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let node = nodes[i % nodes.len()].clone();
        let secret = secret.to_owned();
        tasks.spawn(async move {
            let ws = connect(idle_source(i, per_source), &node, &idle_peer(i), &secret).await;
            drop(permit);
            ws.map(|ws| (i - first, ws)).with_context(|| format!("connection {i} to {}", node.addr))
        });
    }
    let mut conns: Vec<Option<Ws>> = (0..count).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (at, ws) = joined??;
        conns[at] = Some(ws);
    }
    Ok(conns.into_iter().flatten().collect())
}
