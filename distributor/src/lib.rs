//! Distributor: per-customer and per-content P2P configuration (ARCHITECTURE.md §3 step 2).
//!
//! An agent starts every session with `GET /v1/config?customer=…&content=…&version=…` and gets a
//! [`protocol::api::ConfigResponse`]: whether it uses P2P (the content's switch and its rollout
//! percentage applied to a stable bucket of the session), the peering rules, the URLs of the
//! tracker, signalling and analytics, and a short-lived token for the tracker's `init`.
//!
//! Content owners set contents in the config file ([`Config::contents`]) and change them at
//! runtime with `PUT /v1/admin/contents/{customer}/{content}` (a [`protocol::api::ContentSettings`]
//! body, `Authorization: Bearer <admin_token>`); `GET` on the same path reads them back.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = swarmcast_distributor::Config { secret: "s3cret".into(), ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! swarmcast_distributor::run(config, listener, service::shutdown_signal()).await
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod catalog;
mod config;
mod error;
mod routes;
mod shard;

use std::future::Future;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use service::Metrics;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError, ContentConfig};
pub use error::ApiError;

use catalog::Catalog;

/// Shared state of the distributor's handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    catalog: RwLock<Catalog>,
    config_requests: Family<[(&'static str, &'static str); 1], Counter>,
    admin_updates: Counter,
}

impl AppState {
    /// Builds the state from a validated `config` and registers the distributor's metrics
    /// (`distributor_config_requests{p2p}`, `distributor_admin_updates`) in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not pass [`Config::validate`].
    pub fn new(config: Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut catalog = Catalog::new(config.max_contents);
        for c in &config.contents {
            // validate() checked that the contents fit in max_contents.
            catalog
                .put(&c.customer, &c.content, c.settings())
                .map_err(|_| ConfigError::TooManyContents(config.contents.len()))?;
        }
        let config_requests = Family::default();
        let admin_updates = Counter::default();
        metrics.register(
            "distributor_config_requests",
            "Config requests answered, by P2P decision",
            config_requests.clone(),
        );
        metrics.register(
            "distributor_admin_updates",
            "Content settings changed through the admin API",
            admin_updates.clone(),
        );
        let inner = Inner { config, catalog: RwLock::new(catalog), config_requests, admin_updates };
        Ok(Self { inner: Arc::new(inner) })
    }
}

/// The distributor's routes (`/v1/config`, `/v1/admin/contents/{customer}/{content}`); request
/// bodies are bounded by [`protocol::api::MAX_REQUEST_BYTES`].
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/config", get(routes::config::get_config))
        .route(
            "/v1/admin/contents/{customer}/{content}",
            get(routes::admin::get_content).put(routes::admin::put_content),
        )
        .with_state(state)
}

/// Serves the distributor on `listener` until `shutdown` resolves (see [`service::run_server`]).
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
