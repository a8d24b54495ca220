//! Write-through archive of ingested segments and of the DVR logs, in an object store, for the
//! timeshift window and across restarts.
//!
//! The live window is served from memory ([`crate::store`]); with an archive, every segment is
//! also handed to a bounded background writer as it is ingested ([`Archive::submit`] never
//! waits), which stores it at `{prefix}/{content}/{path}`. DVR and VOD reads of segments that
//! memory no longer holds come from here ([`Archive::read`]). Every change of a DVR log goes
//! through the same queue ([`Archive::submit_log`]) and is stored as a small log object at
//! `{prefix}/{content}/{path}.dvr/{seq:020}.m3u8` ([`crate::dvr::persist`]), from which
//! [`Archive::rebuild`] restores the logs when the origin starts. The multivariant playlists go
//! through the same queue too ([`Archive::submit_master`]) and are stored at
//! `{prefix}/{content}/{path}.master`, so that the DVR and VOD multivariant playlists also
//! survive a restart (`master`). Retention: a background task deletes every archived segment and
//! log object last modified more than the timeshift window ago, and a multivariant playlist
//! together with the last log object of its content ([`Archive::purge`]).
//!
//! `archive_url` picks the store: `file:///var/lib/swarmcast/archive` (local filesystem, the
//! directory is created on first write), `memory://` (in process), and with the crate's `s3`
//! feature `s3://bucket/prefix` (S3-compatible; credentials, region and endpoint from the
//! `AWS_*` environment variables, e.g. `AWS_ENDPOINT` for MinIO).
//!
//! A failing archive never fails ingest: write errors and jobs dropped because the queue is full
//! are logged and counted (`origin_archive_writes{result="error"|"dropped"}` for segments,
//! `origin_archive_log_writes{…}` for log objects). Such a segment is remembered as lost
//! ([`Archive::lost_paths`], the newest [`MAX_LOST`]): the DVR and VOD playlists, and the log
//! objects written after it (the single writer stores them in submission order, so a log object
//! is written after the segments it lists were), mark it `EXT-X-GAP` instead of listing media
//! the archive cannot serve. A lost log object leaves a gap that the rebuild marks with
//! `EXT-X-DISCONTINUITY`.
//!
//! Layout: the handle here, the writer and retention tasks in `writer`, the rebuild in
//! `restore`, the multivariant playlists in `master`.

mod master;
mod restore;
mod writer;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, ObjectStoreScheme};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service::Metrics;
use tokio::sync::{Notify, mpsc};

use crate::dvr::{Clock, LogUpdate};
pub use master::{MASTER_SUFFIX, MAX_MASTERS, RebuiltMaster};
pub use restore::{MAX_LOGS_PER_STREAM, READ_CONCURRENCY, RebuildReport, Rebuilt, RebuiltLog};
use writer::{Job, Lost};

/// Most jobs (segments and log updates) waiting for the writer; more are dropped (and counted).
pub const QUEUE_SEGMENTS: usize = 1024;

/// Most bytes waiting for the writer (256 MiB); more are dropped (and counted).
pub const QUEUE_BYTES: u64 = 256 * 1024 * 1024;

/// Most lost segments remembered (the newest); older ones are listed again (and 404).
pub const MAX_LOST: usize = 65_536;

/// Why the archive cannot be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// `archive_url` is not a URL of a supported store.
    #[error("archive_url: {0}")]
    BadUrl(String),
    /// The object store failed.
    #[error("archive: {0}")]
    Store(#[from] object_store::Error),
    /// The writer needs a running tokio runtime.
    #[error("the archive needs a tokio runtime")]
    NoRuntime,
}

type Labels = [(&'static str, &'static str); 1];

/// The archive's Prometheus metrics.
#[derive(Debug, Clone, Default)]
struct ArchiveMetrics {
    /// Segments handed to the archive, by `result` (`ok`, `error`, `dropped`).
    writes: Family<Labels, Counter>,
    /// Log objects and multivariant playlists handed to the archive, by `result` (`ok`,
    /// `error`, `dropped`).
    log_writes: Family<Labels, Counter>,
    /// Reads of segments memory no longer holds, by `result` (`hit`, `miss`, `error`).
    reads: Family<Labels, Counter>,
    /// Log objects and multivariant playlists seen by the rebuild at start, by `result` (`ok`,
    /// `malformed`, `oversized`, `expired`, `skipped`).
    rebuilt: Family<Labels, Counter>,
    /// Objects deleted by retention.
    deleted: Counter,
    /// Bytes waiting for the writer.
    queued_bytes: Gauge,
}

/// What the writer and the retention task share with the handle.
#[derive(Debug)]
struct Shared {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    metrics: ArchiveMetrics,
    /// Bytes submitted and not yet written (or failed).
    queued_bytes: AtomicU64,
    /// Jobs submitted and not yet written (or failed).
    pending: AtomicU64,
    /// Woken whenever `pending` drops to zero.
    idle: Notify,
    /// Segments whose write failed or was dropped.
    lost: Mutex<Lost>,
}

/// Handle on the archive; cheap to clone. Dropping the last handle stops the background tasks
/// once the queue is written.
#[derive(Debug, Clone)]
pub struct Archive {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Job>,
    /// How long objects are kept.
    retention: Duration,
}

impl Archive {
    /// Opens the store at `url` (see the module docs), registers the `origin_archive_*` metrics in
    /// `metrics`, and starts the writer and a retention task that deletes objects older than
    /// `retention`.
    ///
    /// # Errors
    /// [`ArchiveError::BadUrl`] for an unparsable or unsupported URL, [`ArchiveError::NoRuntime`]
    /// outside a tokio runtime, [`ArchiveError::Store`] when the store cannot be built.
    pub fn open(url: &str, retention: Duration, metrics: &Metrics) -> Result<Self, ArchiveError> {
        let (store, prefix) = parse(url)?;
        Self::with_store(store, prefix, retention, metrics)
    }

    /// Like [`Archive::open`], over an already built `store` and key `prefix`.
    ///
    /// # Errors
    /// [`ArchiveError::NoRuntime`] outside a tokio runtime.
    pub fn with_store(
        store: Arc<dyn ObjectStore>,
        prefix: Path,
        retention: Duration,
        metrics: &Metrics,
    ) -> Result<Self, ArchiveError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ArchiveError::NoRuntime)?;
        let m = ArchiveMetrics::default();
        metrics.register("origin_archive_writes", "Segments handed to the archive, by result", m.writes.clone());
        metrics.register(
            "origin_archive_log_writes",
            "DVR log objects and multivariant playlists handed to the archive, by result",
            m.log_writes.clone(),
        );
        metrics.register("origin_archive_reads", "Archive reads of segments not in memory, by result", m.reads.clone());
        metrics.register(
            "origin_archive_rebuilt",
            "DVR log objects and multivariant playlists seen by the rebuild at start, by result",
            m.rebuilt.clone(),
        );
        metrics.register("origin_archive_deleted", "Archived objects deleted by retention", m.deleted.clone());
        metrics.register("origin_archive_queued_bytes", "Bytes waiting for the archive writer", m.queued_bytes.clone());
        let shared = Arc::new(Shared {
            store,
            prefix,
            metrics: m,
            queued_bytes: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            idle: Notify::new(),
            lost: Mutex::new(Lost::default()),
        });
        let (tx, rx) = mpsc::channel(QUEUE_SEGMENTS);
        runtime.spawn(writer::write_loop(Arc::clone(&shared), rx));
        runtime.spawn(writer::retention_loop(Arc::downgrade(&shared), retention));
        Ok(Self { shared, tx, retention })
    }

    /// Queues `bytes` for `{content}/{path}` without waiting. Returns false (logged, counted, and
    /// the segment remembered as lost) when the queue is full.
    pub fn submit(&self, content: &str, path: &str, bytes: Bytes) -> bool {
        let len = bytes.len() as u64;
        let job = Job::Segment { content: content.to_owned(), path: path.to_owned(), bytes };
        let sent = self.enqueue(job, len);
        if !sent {
            self.shared.metrics.writes.get_or_create(&[("result", "dropped")]).inc();
            self.shared.lost_mut().insert(content, path);
            tracing::warn!(content, path, bytes = len, "archive queue full: segment not archived");
        }
        sent
    }

    /// Queues the log object of `update` to the DVR log of the playlist `{content}/{playlist}`
    /// without waiting; `clock` maps its times to the wall clock. Returns false (logged and
    /// counted) when the queue is full.
    pub fn submit_log(&self, content: &str, playlist: &str, update: LogUpdate, clock: Clock) -> bool {
        // About what the writer will encode per entry, for the byte bound.
        let len = 160 * update.entries.len() as u64 + 128;
        let first_seq = update.first_seq;
        let job = Job::Log { content: content.to_owned(), playlist: playlist.to_owned(), update, clock };
        let sent = self.enqueue(job, len);
        if !sent {
            self.shared.metrics.log_writes.get_or_create(&[("result", "dropped")]).inc();
            tracing::warn!(content, playlist, first_seq, "archive queue full: DVR log update not archived");
        }
        sent
    }

    fn enqueue(&self, job: Job, len: u64) -> bool {
        let s = &self.shared;
        let queued = s.queued_bytes.fetch_add(len, Ordering::AcqRel).saturating_add(len);
        let sent = queued <= QUEUE_BYTES && {
            s.pending.fetch_add(1, Ordering::AcqRel);
            match self.tx.try_send(job) {
                Ok(()) => true,
                Err(_) => {
                    s.done_one();
                    false
                }
            }
        };
        if sent {
            s.metrics.queued_bytes.set(i64::try_from(queued).unwrap_or(i64::MAX));
        } else {
            s.queued_bytes.fetch_sub(len, Ordering::AcqRel);
        }
        sent
    }

    /// Changes whenever the set of lost segments does (what a cached rendering that marks them
    /// `EXT-X-GAP` depends on).
    pub fn lost_generation(&self) -> u64 {
        self.shared.lost_mut().generation
    }

    /// The paths (below `content`) of the segments of `content` the archive lost.
    pub fn lost_paths(&self, content: &str) -> HashSet<String> {
        self.shared.lost_mut().paths_of(content)
    }

    /// The archived bytes of `{content}/{path}`, `None` when there are none.
    ///
    /// # Errors
    /// [`ArchiveError::Store`] when the store fails (other than not found).
    pub async fn read(&self, content: &str, path: &str) -> Result<Option<Bytes>, ArchiveError> {
        let s = &self.shared;
        let location = key(&s.prefix, content, path);
        let res = match s.store.get(&location).await {
            Ok(got) => got.bytes().await.map(Some),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        let result = match &res {
            Ok(Some(_)) => "hit",
            Ok(None) => "miss",
            Err(e) => {
                tracing::warn!(content, path, error = %e, "archive read failed");
                "error"
            }
        };
        s.metrics.reads.get_or_create(&[("result", result)]).inc();
        Ok(res?)
    }

    /// Deletes every archived object last modified before `now - retention`; returns how many.
    ///
    /// # Errors
    /// [`ArchiveError::Store`] when listing fails; failed deletes are logged and skipped.
    pub async fn purge(&self, now: SystemTime) -> Result<usize, ArchiveError> {
        self.shared.purge(now, self.retention).await
    }

    /// Resolves once every job submitted so far is written (or failed).
    pub async fn flushed(&self) {
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// How long objects are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }
}

impl Shared {
    fn done_one(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn lost_mut(&self) -> std::sync::MutexGuard<'_, Lost> {
        // The set stays consistent whatever panicked while holding it (inserts are atomic enough
        // for a cache of lost paths).
        self.lost.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Seconds since the Unix epoch of `t` (0 before it).
fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The key of `{content}/{path}` below `prefix` (paths were validated by [`crate::path`]).
fn key(prefix: &Path, content: &str, path: &str) -> Path {
    path.split('/').fold(prefix.clone().join(content), |k, part| k.join(part))
}

/// The store and key prefix named by `url`.
fn parse(url: &str) -> Result<(Arc<dyn ObjectStore>, Path), ArchiveError> {
    let parsed = url::Url::parse(url).map_err(|e| ArchiveError::BadUrl(e.to_string()))?;
    let (scheme, prefix) = ObjectStoreScheme::parse(&parsed).map_err(|e| ArchiveError::BadUrl(e.to_string()))?;
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::Local => Arc::new(object_store::local::LocalFileSystem::new().with_automatic_cleanup(true)),
        ObjectStoreScheme::Memory => Arc::new(object_store::memory::InMemory::new()),
        #[cfg(feature = "s3")]
        ObjectStoreScheme::AmazonS3 => Arc::new(object_store::aws::AmazonS3Builder::from_env().with_url(url).build()?),
        other => return Err(ArchiveError::BadUrl(format!("unsupported store {other:?}"))),
    };
    Ok((store, prefix))
}

/// Checks that `url` names a supported store, without opening it.
///
/// # Errors
/// [`ArchiveError::BadUrl`].
pub fn check_url(url: &str) -> Result<(), ArchiveError> {
    let parsed = url::Url::parse(url).map_err(|e| ArchiveError::BadUrl(e.to_string()))?;
    let (scheme, _) = ObjectStoreScheme::parse(&parsed).map_err(|e| ArchiveError::BadUrl(e.to_string()))?;
    match scheme {
        ObjectStoreScheme::Local | ObjectStoreScheme::Memory => Ok(()),
        #[cfg(feature = "s3")]
        ObjectStoreScheme::AmazonS3 => Ok(()),
        other => Err(ArchiveError::BadUrl(format!("unsupported store {other:?} (s3:// needs the `s3` feature)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_reads_and_purges() {
        let metrics = Metrics::new();
        let archive = Archive::open("memory://", Duration::from_secs(60), &metrics).unwrap();
        assert!(archive.submit("live", "v/a.ts", Bytes::from_static(b"aaa")));
        archive.flushed().await;
        assert_eq!(archive.read("live", "v/a.ts").await.unwrap(), Some(Bytes::from_static(b"aaa")));
        assert_eq!(archive.read("live", "v/b.ts").await.unwrap(), None);
        assert_eq!(archive.purge(SystemTime::now()).await.unwrap(), 0);
        let later = SystemTime::now() + Duration::from_secs(62);
        assert_eq!(archive.purge(later).await.unwrap(), 1);
        assert_eq!(archive.read("live", "v/a.ts").await.unwrap(), None);
        assert!(metrics.render().contains("origin_archive_writes_total{result=\"ok\"} 1"));
    }

    #[test]
    fn urls() {
        assert!(check_url("file:///var/lib/swarmcast/archive").is_ok());
        assert!(check_url("memory://").is_ok());
        assert!(check_url("not a url").is_err());
        assert!(check_url("ftp://host/x").is_err());
        assert_eq!(key(&Path::from("a/b"), "live", "v/x.ts").as_ref(), "a/b/live/v/x.ts");
    }
}
