//! The shared server shell: everything a Swarmcast server needs that is not its own job.
//!
//! A server crate builds its `axum::Router` and hands it to [`serve`] with an already-bound
//! listener and a shutdown future; [`serve`] adds `GET /healthz`, `GET /metrics` (Prometheus text
//! format), request tracing, CORS, and graceful shutdown; [`run_server`] does the same for a
//! router built on a fresh [`Metrics`] registry. Config comes from [`load_config`] (defaults <
//! TOML file < environment variables). Handlers read bounded JSON bodies with [`JsonBody`] and
//! answer errors as `{"error": code, "message": detail}` with [`error_response`].
//! [`spawn_on_loopback`] runs a server in-process on `127.0.0.1:0`. No domain logic lives here.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod http;
mod loopback;
mod metrics;

use std::future::Future;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

pub use config::{ConfigError, load_config};
pub use http::{BodyRejection, JsonBody, error_response};
pub use loopback::{LoopbackServer, StopSignal, spawn_on_loopback};
pub use metrics::Metrics;

/// How long [`serve`] waits for in-flight requests after shutdown begins, in seconds.
pub const DRAIN_TIMEOUT_S: u64 = 5;

/// Installs the global `tracing` subscriber: JSON lines when `SWARMCAST_LOG_FORMAT=json`,
/// human-readable otherwise; filtered by `RUST_LOG` (default `info`). Safe to call many times.
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        // Another subscriber may already be installed (e.g. by a test harness); that is fine.
        let _ = if std::env::var("SWARMCAST_LOG_FORMAT").as_deref() == Ok("json") {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
    });
}

/// Serves `app` on `listener` until `shutdown` resolves, then drains for up to [`DRAIN_TIMEOUT_S`].
///
/// Adds `GET /healthz` (200 `ok`), `GET /metrics` (the text exposition of `metrics`), a request
/// tracing layer and a permissive CORS layer (agents call from any page origin).
///
/// # Errors
/// IO errors from accepting connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    let app = app
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(move || async move { metrics.render() }))
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::permissive());
    tracing::info!(%addr, "listening");
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let graceful = async move {
        shutdown.await;
        let _ = drain_tx.send(());
    };
    // Small writes (a response head, a signalling frame) must not wait for Nagle + delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "TCP_NODELAY not set");
        }
    });
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(graceful);
    let deadline = async move {
        // Only start the drain clock once shutdown has begun.
        if drain_rx.await.is_ok() {
            tokio::time::sleep(Duration::from_secs(DRAIN_TIMEOUT_S)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        res = server => res,
        () = deadline => {
            tracing::warn!(%addr, "drain timed out; closing remaining connections");
            Ok(())
        }
    }
}

/// Builds a router with `build` on a fresh [`Metrics`] registry (where `build` registers the
/// server's metrics), then [`serve`]s it on `listener` until `shutdown` resolves.
///
/// # Errors
/// `InvalidInput` carrying `build`'s error (typically an invalid config); IO errors from the
/// listener.
pub async fn run_server<E>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    build: impl FnOnce(&Metrics) -> Result<Router, E>,
) -> std::io::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let metrics = Metrics::new();
    let app = build(&metrics).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    serve(listener, app, metrics, shutdown).await
}

/// Resolves when the process receives SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown signal received");
}

/// Wall-clock time in seconds since the Unix epoch (for token expiry).
pub fn unix_now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_healthz_and_metrics_and_shuts_down() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Metrics::new();
        let counter = prometheus_client::metrics::counter::Counter::<u64>::default();
        metrics.register("test_requests", "Requests seen by the test", counter.clone());
        counter.inc();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, Router::new(), metrics, async move {
            let _ = rx.await;
        }));
        let health = reqwest::get(format!("http://{addr}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        assert_eq!(health.text().await.unwrap(), "ok");
        let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
        assert!(text.contains("test_requests_total 1"), "{text}");
        tx.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}
