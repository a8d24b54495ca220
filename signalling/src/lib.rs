//! Signalling: relays SDP offers/answers and ICE candidates between peers
//! (ARCHITECTURE.md §3 step 4).
//!
//! An agent opens `GET /v1/ws?peer_id=…&token=…` with the token the tracker issued for that
//! peerId (401 before the upgrade otherwise) and keeps it for the session. It sends
//! [`protocol::signal::ClientMessage`] text frames; a `relay` reaches the addressed peer as a
//! [`protocol::signal::ServerMessage::Relay`] when that peer is connected to the same customer and
//! content, else the sender gets `undeliverable` (`unknown_peer`, or `slow_peer` when the
//! recipient's queue was full and it was dropped). `ping` gets `pong`; malformed, binary and
//! over-rate frames get `error` and the connection stays.
//!
//! Connections close with [`protocol::signal::CLOSE_REPLACED`] when the same peerId connects
//! again, [`protocol::signal::CLOSE_SLOW_CONSUMER`] when they do not keep up, and
//! [`protocol::signal::CLOSE_IDLE`] after [`Config::idle_timeout_s`] of silence. Routing
//! decisions live in the pure `relay` module; `ws` is the socket shell.
//!
//! With [`Config::broker_url`] set, nodes sharing one Redis form a cluster: a peer may signal a
//! peer connected to another node (module `cluster`, Redis in `broker`; docs/ARCHITECTURE.md,
//! "Scale-out").
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = swarmcast_signalling::Config { secret: "s3cret".into(), ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! swarmcast_signalling::run(config, listener, service::shutdown_signal()).await
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod broker;
mod cluster;
mod config;
mod error;
mod links;
mod per_ip;
mod relay;
pub mod testing;
mod ws;

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service::Metrics;
use tokio::net::TcpListener;

pub use broker::BrokerError;
pub use config::{Config, ConfigError};
pub use error::ApiError;

use broker::Broker;
use links::Policy;
use per_ip::PerIp;
use relay::Registry;
use ws::ConnHandle;

/// Shared state of the signalling handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    policy: Policy,
    registry: Mutex<Registry<ConnHandle>>,
    per_ip: PerIp,
    connections: Gauge,
    relayed: Counter,
    forwarded: Counter,
    broker: Option<Broker>,
    /// Departed peers whose directory entries are to be removed (with a broker).
    releases: Option<cluster::Releases>,
    rejected: Family<[(&'static str, &'static str); 1], Counter>,
    /// Turns true when the server shuts down, so open websockets close with "going away".
    stopping: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// Builds the state from a validated `config` and registers the signalling metrics
    /// (`signalling_connections`, `signalling_relayed`, `signalling_rejected{reason}`) in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not pass [`Config::validate`].
    pub fn new(config: Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        Self::build(config, metrics, None)
    }

    /// [`AppState::new`] for a cluster node reaching other nodes through `broker`, queueing the
    /// directory entries of departed peers on `releases`.
    fn build(
        config: Config,
        metrics: &Metrics,
        cluster: Option<(Broker, cluster::Releases)>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let policy = Policy {
            require_intro: config.require_introduction,
            offer_ttl: Duration::from_secs(config.offer_ttl_s),
            max_links: config.max_links,
        };
        let inner = Inner {
            per_ip: PerIp::new(config.max_connections_per_ip),
            config,
            policy,
            registry: Mutex::new(Registry::new()),
            connections: Gauge::default(),
            relayed: Counter::default(),
            forwarded: Counter::default(),
            rejected: Family::default(),
            stopping: tokio::sync::watch::Sender::new(false),
            broker: cluster.as_ref().map(|(broker, _)| broker.clone()),
            releases: cluster.map(|(_, releases)| releases),
        };
        metrics.register("signalling_connections", "Open websocket connections", inner.connections.clone());
        metrics.register("signalling_relayed", "Signals delivered to their recipient's queue", inner.relayed.clone());
        metrics.register(
            "signalling_forwarded",
            "Signals published to the recipient's node through the broker",
            inner.forwarded.clone(),
        );
        metrics.register("signalling_rejected", "Refused upgrades and frames, by reason", inner.rejected.clone());
        Ok(Self { inner: Arc::new(inner) })
    }

    fn registry(&self) -> MutexGuard<'_, Registry<ConnHandle>> {
        // Registry operations are plain map updates that cannot leave it inconsistent, so a lock
        // poisoned by a panic elsewhere is still safe to use.
        self.inner.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reject(&self, reason: &'static str) {
        self.inner.rejected.get_or_create(&[("reason", reason)]).inc();
    }
}

/// The signalling route (`GET /v1/ws`).
pub fn router(state: AppState) -> Router {
    Router::new().route("/v1/ws", get(ws::upgrade)).with_state(state)
}

/// Serves signalling on `listener` until `shutdown` resolves (see [`service::serve`]). With a
/// [`Config::broker_url`], connects to the broker and subscribes to this node's channel first.
///
/// # Errors
/// `InvalidInput` when `config` is invalid; `ConnectionRefused` when the broker cannot be reached
/// (a [`BrokerError`] inside); IO errors from the listener.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Signals are small and latency-bound: no Nagle delay. Linux copies the option to every
    // accepted socket.
    socket2::SockRef::from(&listener).set_tcp_nodelay(true)?;
    let metrics = Metrics::new();
    config.validate().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let refused = |e: BrokerError| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, e);
    let cluster = if config.broker_url.is_empty() {
        None
    } else {
        let timeout = Duration::from_millis(config.broker_timeout_ms);
        let node = config.node_id_or_random();
        let broker = Broker::connect(&config.broker_url, node, config.peer_ttl_s, timeout).await.map_err(refused)?;
        let pubsub = broker.subscribe().await.map_err(refused)?;
        tracing::info!(node = broker.node(), "joined the signalling cluster");
        Some((broker, pubsub))
    };
    let (releases, release_queue) = tokio::sync::mpsc::channel(cluster::RELEASE_QUEUE);
    let releasing =
        cluster.as_ref().map(|(broker, _)| tokio::spawn(cluster::drain_releases(broker.clone(), release_queue)));
    let state = AppState::build(config, &metrics, cluster.as_ref().map(|(broker, _)| (broker.clone(), releases)))
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tasks = match cluster {
        Some((broker, pubsub)) => cluster::start(&state, broker, pubsub),
        None => Vec::new(),
    };
    let stopping = state.clone();
    let shutdown = async move {
        shutdown.await;
        stopping.inner.stopping.send_replace(true);
    };
    let served = service::serve(listener, router(state), metrics, shutdown).await;
    for task in tasks {
        task.abort();
    }
    // The departures of the connections closed by the shutdown: their queue ends when the last
    // of them has finished.
    if let Some(releasing) = releasing {
        let _ = tokio::time::timeout(Duration::from_secs(service::DRAIN_TIMEOUT_S), releasing).await;
    }
    served
}
