//! The live window: every object of every stream, in memory, with time passed in (pure, no IO).
//!
//! A stream is one content id. Playlists are replaced in place once [`crate::playlist::validate`]
//! accepts them. Segments are immutable once listed. A segment that is deleted, or that leaves
//! the window of its playlist, stays served for a grace period of twice the stream's window (the
//! longest media playlist duration), which covers RFC 8216 §6.2.2's availability duration; a
//! segment that no playlist ever lists expires after [`ORPHAN_TTL_MS`] (or the grace period if
//! longer). With a timeshift window ([`Limits::dvr_window_ms`]) a segment is also served until it
//! leaves that window, and each media playlist keeps a [`DvrLog`](crate::dvr::DvrLog) for its DVR
//! and VOD views. With an archive ([`Limits::archived`], see [`crate::archive`]) memory keeps
//! only the live window and grace periods: the DVR and VOD playlists then list every logged
//! segment still inside the timeshift window, which the archive serves once memory dropped it,
//! and a stream is kept while its logs hold anything; every change of a log is then handed out
//! ([`Store::take_log_updates`]) to be persisted, and [`Store::restore_log`] installs the logs
//! rebuilt after a restart. Capacity limits evict the soonest-expiring objects first (so the oldest DVR
//! segments go first) and refuse ingest only when nothing can be evicted.
//!
//! Every segment's SHA-256 is computed when it is stored ([`Store::digests`]).
//!
//! Layout: the public types and read side here, per-stream bookkeeping in `stream`, `put` and
//! `delete` in `ingest`, expiry and capacity eviction in `evict`.

mod evict;
mod ingest;
mod recorded;
mod stream;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use bytes::Bytes;

use crate::dvr::{DvrLog, LogUpdate, View};
use crate::path::{Kind, ObjectPath};
use crate::playlist::{Accepted, PlaylistError};
use stream::Stream;

pub use recorded::{DvrRender, MAX_MASTERS_PER_STREAM, PendingMaster, RenderCell};

/// Least time an uploaded but never listed segment is kept, in milliseconds.
pub const ORPHAN_TTL_MS: u64 = 30_000;

/// Capacity bounds of a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most streams (content ids) held at once.
    pub max_streams: usize,
    /// Most objects (playlists and segments, expiring ones included) per stream.
    pub max_objects_per_stream: usize,
    /// Most bytes held over all streams.
    pub max_total_bytes: u64,
    /// Timeshift window, in milliseconds: how long a segment stays served after it was first
    /// listed, and what the DVR playlists cover (0: no DVR).
    pub dvr_window_ms: u64,
    /// Whether every segment is also written to an archive that serves the timeshift window;
    /// memory then keeps segments only for their grace periods.
    pub archived: bool,
}

impl Limits {
    /// How long memory keeps a segment for the timeshift window, in milliseconds (0 when an
    /// archive keeps it instead).
    pub(crate) fn memory_dvr_ms(&self) -> u64 {
        if self.archived { 0 } else { self.dvr_window_ms }
    }
}

/// The digest of one listed segment, as [`Store::digests`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDigest {
    /// Media sequence number.
    pub msn: u64,
    /// The URI as written in the playlist.
    pub uri: String,
    /// Size, in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// One stored object as served.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The bytes as uploaded.
    pub bytes: Bytes,
    /// Its kind (decides `Content-Type` and caching).
    pub kind: Kind,
    /// When it stops being served, in store milliseconds (`None` while listed or for playlists).
    pub expires_at_ms: Option<u64>,
}

/// What a successful `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object did not exist.
    Created,
    /// An existing playlist (or a not yet listed segment) was replaced.
    Replaced,
}

/// Why the store refused an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The playlist failed validation; the previous version is kept.
    #[error(transparent)]
    Playlist(#[from] PlaylistError),
    /// A new stream would exceed [`Limits::max_streams`].
    #[error("too many streams")]
    TooManyStreams,
    /// The stream holds [`Limits::max_objects_per_stream`] objects and none can be evicted.
    #[error("too many objects in this stream")]
    StreamFull,
    /// [`Limits::max_total_bytes`] would be exceeded and nothing can be evicted.
    #[error("origin storage is full")]
    StoreFull,
    /// The segment was already listed or deleted; segments are immutable once published.
    #[error("segment {0} is already published and cannot be replaced")]
    Immutable(String),
    /// No such object.
    #[error("not found")]
    NotFound,
}

/// A change of a DVR log to persist in the archive ([`Store::take_log_updates`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLog {
    /// The content id.
    pub content: String,
    /// The media playlist's path below the content.
    pub path: String,
    /// What changed.
    pub update: LogUpdate,
}

/// All streams of the origin. See the module docs for the rules.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    streams: HashMap<String, Stream>,
    total_bytes: u64,
    /// DVR log changes not yet taken (collected only with an archive).
    log_updates: Vec<PendingLog>,
    /// Recorded multivariant playlists not yet taken (collected only with an archive).
    master_updates: Vec<PendingMaster>,
}

impl Store {
    /// An empty store bounded by `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, streams: HashMap::new(), total_bytes: 0, log_updates: Vec::new(), master_updates: Vec::new() }
    }

    /// The DVR log changes made since the last call, in order (only with [`Limits::archived`]):
    /// the caller persists them.
    pub fn take_log_updates(&mut self) -> Vec<PendingLog> {
        std::mem::take(&mut self.log_updates)
    }

    /// Installs `log`, rebuilt after a restart, as the timeshift log of the media playlist at
    /// `path` (replacing any); an empty log is ignored.
    ///
    /// # Errors
    /// [`StoreError::TooManyStreams`] when its stream is new and [`Limits::max_streams`] are held.
    pub fn restore_log(&mut self, path: &ObjectPath, log: DvrLog) -> Result<(), StoreError> {
        if log.is_empty() {
            return Ok(());
        }
        if !self.streams.contains_key(&path.content) && self.streams.len() >= self.limits.max_streams {
            return Err(StoreError::TooManyStreams);
        }
        self.streams.entry(path.content.clone()).or_default().dvr.insert(path.path.clone(), log);
        Ok(())
    }

    fn push_log_update(&mut self, path: &ObjectPath, update: Option<LogUpdate>) {
        if let (Some(update), true) = (update, self.limits.archived) {
            self.log_updates.push(PendingLog { content: path.content.clone(), path: path.path.clone(), update });
        }
    }

    /// The object at `path` if it is still served at `now_ms`.
    pub fn get(&self, now_ms: u64, path: &ObjectPath) -> Option<Object> {
        let e = self.streams.get(&path.content)?.objects.get(&path.path)?;
        e.live(now_ms).then(|| Object { bytes: e.bytes.clone(), kind: e.kind, expires_at_ms: e.expires_at_ms })
    }

    /// The DVR or VOD rendering of the media playlist at `path`, if it has a timeshift log with
    /// something still served (and, for VOD, the stream ended). With an archive, everything
    /// inside the timeshift window counts as served, and the segments for which `is_lost(path)`
    /// holds (the archive could not store them) are marked `EXT-X-GAP`.
    pub fn dvr_playlist(
        &self,
        now_ms: u64,
        path: &ObjectPath,
        view: View,
        is_lost: impl Fn(&str) -> bool,
    ) -> Option<Bytes> {
        let stream = self.streams.get(&path.content)?;
        let log = stream.dvr.get(&path.path)?;
        let rendered = if self.limits.archived {
            log.render_within(now_ms, view, self.limits.dvr_window_ms, is_lost)
        } else {
            log.render(now_ms, view, |p| stream.served(now_ms, p))
        };
        rendered.map(Bytes::from)
    }

    /// Whether a DVR or VOD read of `path` that memory cannot answer may be asked of the archive.
    pub fn archived(&self, path: &ObjectPath) -> bool {
        self.limits.archived && !path.kind.is_playlist()
    }

    /// Whether the media playlist at `path` has a timeshift log.
    pub fn has_dvr_log(&self, path: &ObjectPath) -> bool {
        self.streams.get(&path.content).is_some_and(|s| s.dvr.contains_key(&path.path))
    }

    /// The digests of the segments the media playlist at `path` lists, oldest first.
    pub fn digests(&self, now_ms: u64, path: &ObjectPath) -> Option<Vec<ListedDigest>> {
        let stream = self.streams.get(&path.content)?;
        let entry = stream.objects.get(&path.path).filter(|e| e.live(now_ms))?;
        let Some(Accepted::Media(m)) = &entry.accepted else { return None };
        let digests = m
            .items
            .iter()
            .zip(&m.segments)
            .enumerate()
            .filter_map(|(i, (item, seg))| {
                let e = stream.objects.get(seg)?;
                Some(ListedDigest {
                    msn: m.media_sequence.saturating_add(i as u64),
                    uri: item.uri.clone(),
                    bytes: e.bytes.len() as u64,
                    sha256: e.sha256?,
                })
            })
            .collect();
        Some(digests)
    }

    /// The content ids held.
    pub fn contents(&self) -> Vec<String> {
        self.streams.keys().cloned().collect()
    }

    /// Number of streams, number of objects and bytes held.
    pub fn stats(&self) -> (usize, usize, u64) {
        let objects = self.streams.values().map(|s| s.objects.len()).sum();
        (self.streams.len(), objects, self.total_bytes)
    }
}
