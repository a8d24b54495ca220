//! Tracker: session init and peer lists matched per swarm (ARCHITECTURE.md §3 steps 3 and 5).
//!
//! - `POST /v1/init` ([`protocol::api::InitRequest`], with the distributor's token) issues a
//!   fresh peerId and a token bound to it.
//! - `POST /v1/renew` ([`protocol::api::RenewRequest`]) issues a fresh token for the same peerId
//!   before (or shortly after) the current one expires.
//! - `POST /v1/track` ([`protocol::api::TrackRequest`]) puts the peer in the swarm of its current
//!   rendition; 204.
//! - `POST /v1/peers` ([`protocol::api::PeersRequest`]) does the same and answers other peers of
//!   that swarm, most recently active first.
//!
//! A swarm is (customer, content) from the token plus the rendition from the body, so a peer can
//! never join another content's swarm. Peers silent for [`Config::peer_timeout_s`] are dropped by
//! a timer task. All swarm logic lives in the pure `swarm` module.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = swarmcast_tracker::Config { secret: "s3cret".into(), ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! swarmcast_tracker::run(config, listener, service::shutdown_signal()).await
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod error;
mod locality;
mod mmdb;
mod peer_key;
mod probe;
mod routes;
mod swarm;
mod tls;
mod webtorrent;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use service::Metrics;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError};
pub use error::ApiError;
pub use locality::{IpTable, MAX_RANGES, MAX_REGIONS, TableError};
pub use mmdb::{MAX_MMDB_BYTES, MmdbError};
pub use probe::StateProbe;
pub use webtorrent::WebTorrentProbe;

use std::collections::HashMap;
use std::sync::RwLock;

use protocol::api::PeeringRules;
use swarm::SwarmRegistry;

/// Shared state of the tracker's handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    locator: locality::Locator,
    /// Peering rules per (customer, content), from the distributor's tokens at `init`.
    rules: RwLock<HashMap<(String, String), PeeringRules>>,
    registry: Mutex<SwarmRegistry>,
    webtorrent: webtorrent::Hub,
    peers: Gauge,
    swarms: Gauge,
    inits: Counter,
    renewals: Counter,
    peers_requests: Counter,
    track_requests: Counter,
}

impl AppState {
    /// Builds the state from a validated `config` and registers the tracker's metrics
    /// (`tracker_peers`, `tracker_swarms`, `tracker_inits`, `tracker_renewals`, `tracker_peers_requests`,
    /// `tracker_track_requests`, `tracker_mmdb_lookup_errors`) in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not pass [`Config::validate`], or its IP table or
    /// MaxMind databases cannot be loaded.
    pub fn new(config: Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        config.validate()?;
        let mmdb_lookup_errors = Counter::default();
        let locator = locality::Locator::from_config(&config, mmdb_lookup_errors.clone())?;
        let registry =
            SwarmRegistry::new(Duration::from_secs(config.peer_timeout_s), config.max_peers_total, config.scan_limit);
        let inner = Inner {
            webtorrent: webtorrent::Hub::new(&config, metrics),
            config,
            locator,
            rules: RwLock::default(),
            registry: Mutex::new(registry),
            peers: Gauge::default(),
            swarms: Gauge::default(),
            inits: Counter::default(),
            renewals: Counter::default(),
            peers_requests: Counter::default(),
            track_requests: Counter::default(),
        };
        metrics.register("tracker_peers", "Peers tracked now", inner.peers.clone());
        metrics.register("tracker_swarms", "Swarms with at least one peer now", inner.swarms.clone());
        metrics.register("tracker_inits", "Sessions started (peerIds issued)", inner.inits.clone());
        metrics.register("tracker_renewals", "Session tokens renewed for the same peerId", inner.renewals.clone());
        metrics.register("tracker_peers_requests", "Peer list requests answered", inner.peers_requests.clone());
        metrics.register("tracker_track_requests", "Rendition changes recorded", inner.track_requests.clone());
        metrics.register(
            "tracker_mmdb_lookup_errors",
            "MaxMind database lookups that failed on a malformed record (located as unknown)",
            mmdb_lookup_errors,
        );
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Drops peers silent for the configured timeout; returns how many were dropped.
    pub fn expire(&self, now: Instant) -> usize {
        self.with_registry(|registry| registry.expire(now))
    }

    /// Remembers the peering rules of a content (bounded by [`Config::max_contents`]).
    fn set_rules(&self, customer: &str, content: &str, rules: PeeringRules) {
        // Plain map updates cannot leave the map inconsistent; a poisoned lock is still usable.
        let mut all = self.inner.rules.write().unwrap_or_else(|e| e.into_inner());
        let key = (customer.to_owned(), content.to_owned());
        if all.len() < self.inner.config.max_contents || all.contains_key(&key) {
            all.insert(key, rules);
        }
    }

    /// The peering rules of a content: the last ones a distributor token carried, or the defaults.
    fn rules_of(&self, customer: &str, content: &str) -> PeeringRules {
        let all = self.inner.rules.read().unwrap_or_else(|e| e.into_inner());
        all.get(&(customer.to_owned(), content.to_owned())).cloned().unwrap_or_default()
    }

    /// Runs `f` on the registry under its lock, then refreshes the peer and swarm gauges.
    fn with_registry<R>(&self, f: impl FnOnce(&mut SwarmRegistry) -> R) -> R {
        // A poisoned lock means a panic inside the pure registry code, which does not leave it
        // half-updated in a way that breaks later calls; keep serving.
        let mut registry = self.inner.registry.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut registry);
        self.inner.peers.set(i64::try_from(registry.peer_count()).unwrap_or(i64::MAX));
        self.inner.swarms.set(i64::try_from(registry.swarm_count()).unwrap_or(i64::MAX));
        out
    }
}

/// The tracker's routes (`/v1/init`, `/v1/renew`, `/v1/track`, `/v1/peers`); request bodies are bounded by
/// [`protocol::api::MAX_REQUEST_BYTES`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/init", post(routes::init::init))
        .route("/v1/renew", post(routes::renew::renew))
        .route("/v1/track", post(routes::track::track))
        .route("/v1/peers", post(routes::peers::peers))
        .route("/announce", get(webtorrent::upgrade))
        .route("/", get(webtorrent::upgrade))
        .with_state(state)
}

/// Serves the tracker on `listener` until `shutdown` resolves (see [`service::run_server`]), with
/// a timer task that expires silent peers every quarter of the peer timeout. With
/// [`Config::tls_cert_pem`] and [`Config::tls_key_pem`] set, the listener speaks TLS (https and
/// wss), with the same `/healthz`, `/metrics` and CORS.
///
/// # Errors
/// `InvalidInput` when `config` is invalid; IO errors from the listener.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let period = Duration::from_secs((config.peer_timeout_s / 4).max(1));
    if !config.tls_cert_pem.is_empty() {
        return run_tls(config, listener, shutdown, period).await;
    }
    service::run_server(listener, shutdown, |metrics| {
        let state = AppState::new(config, metrics)?;
        // The task ends by itself with the state; its handle is not needed.
        let _expiry = spawn_expiry(&state, period);
        Ok::<_, ConfigError>(router(state))
    })
    .await
}

async fn run_tls(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    period: Duration,
) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let acceptor = tls::acceptor(&config.tls_cert_pem, &config.tls_key_pem).map_err(invalid)?;
    let metrics = Metrics::new();
    let state_send_buffer = config.tcp_send_buffer_bytes;
    let state = AppState::new(config, &metrics).map_err(|e| invalid(e.to_string()))?;
    let _expiry = spawn_expiry(&state, period);
    let app = router(state)
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(axum::middleware::map_request(tls::plain_connect_info))
        .layer(tower_http::cors::CorsLayer::permissive());
    let listener = tls::TlsListener::new(listener, acceptor, state_send_buffer)?;
    tracing::info!(addr = %listener_addr(&listener), "listening with TLS");
    axum::serve(listener, app.into_make_service_with_connect_info::<tls::TlsAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

fn listener_addr(listener: &tls::TlsListener) -> String {
    use axum::serve::Listener as _;
    listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// Spawns the task that calls [`AppState::expire`] every `period`. It holds the state weakly, so
/// it ends by itself once the server and its connections are gone.
fn spawn_expiry(state: &AppState, period: Duration) -> tokio::task::JoinHandle<()> {
    let state = Arc::downgrade(&state.inner);
    tokio::spawn(async move {
        let mut timer = tokio::time::interval(period);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            timer.tick().await;
            let Some(inner) = state.upgrade() else { break };
            inner.webtorrent.clean();
            let dropped = AppState { inner }.expire(Instant::now());
            if dropped > 0 {
                tracing::debug!(dropped, "expired silent peers");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_expiry_task_ends_with_the_state() {
        let config = Config { secret: "s".into(), ..Config::default() };
        let state = AppState::new(config, &Metrics::new()).unwrap();
        let expiry = spawn_expiry(&state, Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!expiry.is_finished());
        drop(state);
        tokio::time::timeout(Duration::from_secs(10), expiry).await.unwrap().unwrap();
    }
}
