//! The demo's web server: the viewer page, the agent's npm package, hls.js, and `/config.json`
//! telling the page where the distributor and the stream are.

use std::future::Future;
use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

/// What the viewer page reads from `/config.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PageConfig {
    pub(crate) customer: String,
    pub(crate) content: String,
    pub(crate) distributor_url: String,
    pub(crate) master_url: String,
    pub(crate) analytics_url: String,
}

pub(crate) async fn run(
    root: PathBuf,
    page: PageConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/config.json", get(move || async move { axum::Json(page) }))
        .nest_service("/agent", ServeDir::new(root.join("client-wasm/js")))
        .nest_service("/vendor", ServeDir::new(root.join("node_modules/hls.js/dist")))
        .fallback_service(ServeDir::new(root.join("demo")))
        // The page and agent change while developing; never let a browser keep a stale copy.
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    service::serve(listener, app, service::Metrics::new(), shutdown).await
}
