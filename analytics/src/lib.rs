//! Analytics: usage reports and per-content offload summaries (ARCHITECTURE.md §3 step 5).
//!
//! Agents `POST /v1/usage` a [`protocol::api::UsageReport`] every few seconds (204). Counters in
//! a report are cumulative since the session started, so the server keeps per session only the
//! report with the highest `seq`: repeated, lost or reordered reports neither double-count nor
//! lose bytes. `GET /v1/summary?content=…` answers a [`protocol::api::Summary`]: viewers (sessions
//! that reported within [`Config::active_window_s`]), sessions seen, bytes by source, the
//! offload ratio, and the CDN bytes split by reason. State is in memory and bounded ([`Config::max_sessions`],
//! [`Config::max_contents`]); the aggregation lives in the pure `usage` module.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! swarmcast_analytics::run(Default::default(), listener, service::shutdown_signal()).await
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod error;
mod routes;
mod usage;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service::Metrics;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError};
pub use error::ApiError;

use usage::UsageStore;

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;

/// Shared state of the analytics handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Mutex<UsageStore>,
    reports: Labelled,
    sessions: Gauge,
    bytes: Labelled,
    cdn_bytes: Labelled,
}

impl AppState {
    /// Builds the state from a validated `config` and registers the analytics metrics
    /// (`analytics_reports{outcome}`, `analytics_sessions`, `analytics_bytes{kind}`,
    /// `analytics_cdn_bytes{reason}`) in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not pass [`Config::validate`].
    pub fn new(config: Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        config.validate()?;
        let window = Duration::from_secs(config.active_window_s);
        let inner = Inner {
            store: Mutex::new(UsageStore::new(config.max_sessions, config.max_contents, window)),
            reports: Family::default(),
            sessions: Gauge::default(),
            bytes: Family::default(),
            cdn_bytes: Family::default(),
        };
        metrics.register("analytics_reports", "Usage reports received, by outcome", inner.reports.clone());
        metrics.register("analytics_sessions", "Sessions held now", inner.sessions.clone());
        metrics.register("analytics_bytes", "Segment bytes reported, by source", inner.bytes.clone());
        metrics.register(
            "analytics_cdn_bytes",
            "CDN segment bytes reported, by why the agent went to the CDN",
            inner.cdn_bytes.clone(),
        );
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Runs `f` on the store under its lock, then refreshes the sessions gauge.
    fn with_store<R>(&self, f: impl FnOnce(&mut UsageStore) -> R) -> R {
        // The store's updates cannot be left half-done by a panic in a way that breaks later calls.
        let mut store = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut store);
        self.inner.sessions.set(i64::try_from(store.session_count()).unwrap_or(i64::MAX));
        out
    }
}

/// The analytics routes (`POST /v1/usage`, `GET /v1/summary`); request bodies are bounded by
/// [`protocol::api::MAX_REQUEST_BYTES`].
pub fn router(state: AppState) -> Router {
    Router::new().route("/v1/usage", post(routes::usage)).route("/v1/summary", get(routes::summary)).with_state(state)
}

/// Serves analytics on `listener` until `shutdown` resolves (see [`service::run_server`]).
///
/// # Errors
/// `InvalidInput` when `config` is invalid; IO errors from the listener.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    service::run_server(listener, shutdown, |metrics| AppState::new(config, metrics).map(router)).await
}
