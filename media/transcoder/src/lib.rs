//! Transcoder: supervises ffmpeg encoding an ABR ladder pushed to the origin.
//!
//! [`run`] launches one ffmpeg process ([`ffmpeg::args`]) that encodes a live test source into
//! every rung of [`Config::ladder`] and uploads HLS to [`Config::origin_url`] over HTTP `PUT`
//! and `DELETE`. When ffmpeg exits, or reports no progress for [`Config::stall_timeout_s`], it is
//! restarted after a backoff that doubles up to [`Config::max_restart_backoff_ms`]; media
//! sequence numbers keep rising across restarts (see [`ffmpeg`]). Shutdown kills ffmpeg.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = swarmcast_transcoder::Config {
//!     origin_url: "http://127.0.0.1:8000/live/live".into(),
//!     ingest_token: "s3cret".into(),
//!     segment_duration_s: 2,
//!     ..Default::default()
//! };
//! swarmcast_transcoder::run(config, service::shutdown_signal()).await
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
pub mod ffmpeg;
mod supervisor;

use std::future::Future;

pub use config::{Config, ConfigError, MAX_RUNGS, Rung};
pub use supervisor::{STABLE_RUN, Status, run_with_status};

/// Supervises ffmpeg for `config` until `shutdown` resolves.
///
/// # Errors
/// `InvalidInput` for an invalid config; the spawn error when the first launch fails (e.g.
/// `NotFound` when ffmpeg is not installed).
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
    let (status, _) = tokio::sync::watch::channel(Status::default());
    run_with_status(config, shutdown, status).await
}
