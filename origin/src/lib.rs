//! Live HLS origin and its CDN layer: HTTP ingest, sliding live window, DVR and live-to-VOD,
//! segment digests, content steering, and the caching edge/shield ([`edge`]).
//!
//! An encoder (ffmpeg's HLS muxer with `-method PUT`) writes every segment and then the playlist
//! that lists it with `PUT /live/{content}/{path}` and removes segments that left the window with
//! `DELETE`, both with `Authorization: Bearer <ingest_token>`; bodies may be chunked and the
//! connection kept alive. Playlists are validated before they replace the previous version
//! ([`playlist`]); the live window is held in memory ([`store`]), and with `archive_url` every
//! segment and every DVR log change is also written to an object store that serves the
//! timeshift window and from which [`Origin::restore`] rebuilds the DVR and VOD playlists after
//! a restart ([`archive`]). Viewers and CDNs read the same paths
//! with `GET`/`HEAD`, with `Range` support, media types and `Cache-Control` (short for
//! playlists, long and `immutable` for segments).
//!
//! What ffmpeg 5.1's HLS muxer sends (`-method PUT -http_persistent 1`, observed on the wire):
//! every upload is a `PUT` with `Transfer-Encoding: chunked` and the custom headers; a rung's
//! segment and then its playlist go over one kept-alive connection per rung; the master playlist
//! follows the first media playlists (and is re-sent with `-master_pl_publish_rate`); a segment
//! that left the window is removed with a `DELETE` on a new connection once `hls_list_size + 1`
//! newer segments exist. When an upload fails ffmpeg retries on a new connection and keeps
//! encoding, so a refused playlist only delays the stream until the window refills.
//!
//! Beyond the live window (`/live/…`):
//! - `/dvr/{content}/{path}` and `/vod/{content}/{path}`: the timeshift and VOD playlists
//!   ([`dvr`]), over the same segments;
//! - `/live/{content}/{name}.json`: the signed digest sidecar of `{name}.m3u8` ([`digest`]);
//! - `/steer/…`: content steering across CDN pathways, fed by a built-in prober ([`steering`]).
//!
//! [`run`] starts either the origin or, with `mode = "edge"`, an edge ([`edge::run`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let config = swarmcast_origin::Config { ingest_token: "s3cret".into(), ..Default::default() };
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! swarmcast_origin::run(config, listener, service::shutdown_signal()).await
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod archive;
mod config;
pub mod digest;
pub mod dvr;
pub mod edge;
mod error;
mod metrics;
pub mod monitor;
pub mod path;
pub mod playlist;
pub mod range;
mod recorded;
mod routes;
pub mod steering;
pub mod store;
pub mod window;

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::http::{HeaderMap, header};
use axum::routing::get;
use service::Metrics;
use tokio::net::TcpListener;

pub use config::{Config, ConfigError, EdgeConfig, MAX_DVR_WINDOW_S, Mode};
pub use error::ApiError;

use metrics::OriginMetrics;
use store::Store;

/// Shared state of the origin's handlers; cheap to clone.
#[derive(Clone)]
pub struct Origin {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Mutex<Store>,
    /// The store's millisecond clock reads `clock_base_ms` at this instant.
    started: Instant,
    /// The store clock at `started`: the timeshift window, so that entries a rebuilt DVR log
    /// recorded up to a window before the start still have a time on it.
    clock_base_ms: u64,
    metrics: OriginMetrics,
    /// Signs the digest sidecars.
    signing_key: Option<ed25519_dalek::SigningKey>,
    /// Content steering, when pathways are configured.
    steering: Option<Arc<steering::Steering>>,
    /// Segment archive, when `archive_url` is set.
    archive: Option<archive::Archive>,
    /// Whether DVR and VOD playlists are rendered under the store's lock on every request, as
    /// before renderings were shared (for comparison benchmarks only).
    render_in_lock: AtomicBool,
}

impl Origin {
    /// Builds the state from `config` and registers the `origin_*` metrics in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not pass [`Config::validate`], or
    /// [`ConfigError::Archive`] when the archive cannot be opened (it needs a tokio runtime).
    pub fn new(config: Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        config.validate()?;
        let store = Mutex::new(Store::new(config.limits()));
        let signing_key = digest::parse_key(&config.digest_signing_key);
        let steering = (!config.steering.pathways.is_empty()).then(|| steering::Steering::new(config.steering.clone()));
        let archive = match config.archive_url.as_str() {
            "" => None,
            url => {
                let retention = std::time::Duration::from_secs(config.dvr_window_s);
                let opened = archive::Archive::open(url, retention, metrics);
                Some(opened.map_err(|e| ConfigError::Archive(e.to_string()))?)
            }
        };
        let metrics = OriginMetrics::register(metrics);
        let clock_base_ms = config.dvr_window_s.saturating_mul(1000);
        let started = Instant::now();
        let render_in_lock = AtomicBool::new(false);
        let inner =
            Inner { config, store, started, clock_base_ms, metrics, signing_key, steering, archive, render_in_lock };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Content steering state, when pathways are configured.
    pub fn steering(&self) -> Option<&Arc<steering::Steering>> {
        self.inner.steering.as_ref()
    }

    /// The segment archive, when `archive_url` is set.
    pub fn archive(&self) -> Option<&archive::Archive> {
        self.inner.archive.as_ref()
    }

    /// Renders every DVR and VOD playlist request under the store's lock, as the origin did
    /// before renderings were shared and made outside it: only to measure the difference.
    #[doc(hidden)]
    pub fn set_dvr_render_in_lock(&self, on: bool) {
        self.inner.render_in_lock.store(on, Ordering::Relaxed);
    }

    pub(crate) fn dvr_render_in_lock(&self) -> bool {
        self.inner.render_in_lock.load(Ordering::Relaxed)
    }

    pub(crate) fn signing_key(&self) -> Option<&ed25519_dalek::SigningKey> {
        self.inner.signing_key.as_ref()
    }

    /// Content ids that have a multivariant playlist (`master.m3u8`), for the prober.
    pub fn live_contents(&self) -> Vec<String> {
        self.with_store_read(|store, now| {
            store
                .contents()
                .into_iter()
                .filter(|c| path::ObjectPath::new(c, "master.m3u8").is_ok_and(|p| store.get(now, &p).is_some()))
                .collect()
        })
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    pub(crate) fn metrics(&self) -> &OriginMetrics {
        &self.inner.metrics
    }

    /// The store's clock, in milliseconds (it starts at the timeshift window).
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        elapsed.saturating_add(self.inner.clock_base_ms)
    }

    /// The store clock and the wall clock, now.
    fn clock(&self, store_now_ms: u64) -> dvr::Clock {
        let unix_now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        dvr::Clock { store_now_ms, unix_now_ms }
    }

    /// Hands the archive what the last store operation produced: the segment just stored (if
    /// any) and the DVR log changes. Called with the store locked, so that the archive's queue
    /// follows the store's order (a log object after the segments it lists); never waits.
    pub(crate) fn archive_changes(
        &self,
        store: &mut Store,
        now_ms: u64,
        segment: Option<(&path::ObjectPath, bytes::Bytes)>,
    ) {
        let Some(archive) = self.archive() else { return };
        if let Some((path, bytes)) = segment {
            archive.submit(&path.content, &path.path, bytes);
        }
        for m in store.take_master_updates() {
            archive.submit_master(&m.content, &m.path, m.bytes);
        }
        let updates = store.take_log_updates();
        if !updates.is_empty() {
            let clock = self.clock(now_ms);
            for u in updates {
                archive.submit_log(&u.content, &u.path, u.update, clock);
            }
        }
    }

    /// Rebuilds the DVR logs from the archive (see [`archive::Archive::rebuild`]) so that
    /// `/dvr/…` and `/vod/…` serve what was recorded before a restart; [`run`] calls it before
    /// serving. Without an archive it does nothing.
    ///
    /// # Errors
    /// [`archive::ArchiveError`] when the archive cannot be listed.
    pub async fn restore(&self) -> Result<archive::RebuildReport, archive::ArchiveError> {
        let Some(archive) = self.archive() else { return Ok(archive::RebuildReport::default()) };
        let limits = self.inner.config.limits();
        let clock = self.clock(self.now_ms());
        let (rebuilt, mut report) = archive.rebuild(clock, limits.dvr_window_ms, limits.max_streams).await?;
        report.skipped += self.install(rebuilt);
        Ok(report)
    }

    /// Installs what a rebuild restored (logs first, then the multivariant playlists of their
    /// streams), replacing logs of the same paths; returns how many did not fit (too many
    /// streams, or multivariant playlists). [`Origin::restore`] calls it.
    pub fn install(&self, rebuilt: archive::Rebuilt) -> usize {
        self.with_store(|store, _| {
            let mut skipped = 0;
            for log in rebuilt.logs {
                let Ok(path) = path::ObjectPath::new(&log.content, &log.path) else { continue };
                if store.restore_log(&path, log.log).is_err() {
                    skipped += 1;
                }
            }
            for master in rebuilt.masters {
                let Ok(path) = path::ObjectPath::new(&master.content, &master.path) else { continue };
                if !store.restore_master(&path, master.bytes) {
                    skipped += 1;
                }
            }
            skipped
        })
    }

    /// Runs `f` on the locked store with the current time and refreshes the store gauges.
    pub(crate) fn with_store<T>(&self, f: impl FnOnce(&mut Store, u64) -> T) -> T {
        let now = self.now_ms();
        // A poisoned lock means a panic inside a store operation; the store's invariants are
        // restored by the next sweep, so keep serving rather than failing every request.
        let mut store = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
        let out = f(&mut store, now);
        self.inner.metrics.set_store(store.stats());
        out
    }

    /// Runs `f` on the locked store with the current time, without touching the gauges.
    pub(crate) fn with_store_read<T>(&self, f: impl FnOnce(&Store, u64) -> T) -> T {
        let now = self.now_ms();
        let store = self.inner.store.lock().unwrap_or_else(|e| e.into_inner());
        f(&store, now)
    }

    /// Checks `Authorization: Bearer <ingest_token>`: 401 when absent, 403 when wrong.
    pub(crate) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
        let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized);
        }
        if constant_time_eq(token.trim().as_bytes(), self.inner.config.ingest_token.as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// Counts a refused ingest request by reason.
    pub(crate) fn count_ingest_result(&self, err: Option<&ApiError>) {
        if let Some(e) = err {
            let (status, code) = e.status_and_code();
            if status == axum::http::StatusCode::NOT_FOUND {
                // An encoder deleting what an earlier origin process held: harmless.
                tracing::debug!(reason = code, error = %e, "ingest refused");
            } else {
                tracing::warn!(reason = code, error = %e, "ingest refused");
            }
            self.inner.metrics.ingest_rejected.get_or_create(&[("reason", code)]).inc();
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The origin's routes: `GET`/`HEAD`/`PUT`/`DELETE` on `/live/{content}/{path}`, `GET`/`HEAD`
/// on `/dvr/…` and `/vod/…`, and the steering endpoints under `/steer/`.
pub fn router(state: Origin) -> Router {
    Router::new()
        .route("/live/{*path}", get(routes::get_object).put(routes::put_object).delete(routes::delete_object))
        .route("/dvr/{*path}", get(routes::get_dvr))
        .route("/vod/{*path}", get(routes::get_vod))
        .route("/steer/health", get(steering::get_health))
        .route("/steer/{content}/master.m3u8", get(steering::get_master))
        .route("/steer/{content}/steering.json", get(steering::get_manifest))
        .with_state(state)
}

/// Serves the origin on `listener` until `shutdown` resolves (through [`service::serve`], which
/// adds `/healthz`, `/metrics`, tracing and CORS).
///
/// # Errors
/// `InvalidInput` when `config` is invalid; IO errors from the listener.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if config.mode == Mode::Edge {
        return edge::run(config, listener, shutdown).await;
    }
    let metrics = Metrics::new();
    let origin = Origin::new(config, &metrics).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    match origin.restore().await {
        Ok(r) if r == archive::RebuildReport::default() => {}
        Ok(r) => tracing::info!(
            logs = r.logs,
            segments = r.entries,
            objects = r.objects,
            masters = r.masters,
            malformed = r.malformed,
            oversized = r.oversized,
            expired = r.expired,
            skipped = r.skipped,
            gaps = r.gaps,
            elapsed_ms = r.elapsed.as_millis() as u64,
            "DVR logs rebuilt from the archive"
        ),
        // Serve the live stream anyway; the timeshift window restarts empty.
        Err(e) => tracing::warn!(error = %e, "DVR rebuild failed"),
    }
    let prober = origin.steering().cloned().map(|steering| {
        let o = origin.clone();
        tokio::spawn(steering::probe::run(steering, move || o.live_contents()))
    });
    let served = service::serve(listener, router(origin), metrics, shutdown).await;
    if let Some(p) = prober {
        p.abort();
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
