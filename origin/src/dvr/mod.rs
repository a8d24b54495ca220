//! Timeshift (DVR) and live-to-VOD playlists of one media playlist (pure, time passed in).
//!
//! Every accepted version of a live media playlist appends its new segments to a [`DvrLog`]. The
//! log keeps the segments that appeared during the last `window_ms` and renders:
//! - the DVR playlist (`/dvr/{content}/{path}`): an `EXT-X-PLAYLIST-TYPE:EVENT` playlist while
//!   nothing has left the window yet, then a sliding live playlist over the whole window;
//! - the VOD playlist (`/vod/{content}/{path}`), once the stream ended (the encoder sent
//!   `EXT-X-ENDLIST`, deleted the playlist, or stopped updating it for [`IDLE_TARGET_DURATIONS`]
//!   target durations, as a killed encoder does): `EXT-X-PLAYLIST-TYPE:VOD` and `EXT-X-ENDLIST`.
//!
//! The log numbers its entries itself ([`Entry::seq`], the media sequence number of its
//! playlists): contiguous and never going back, whatever the encoder does. It starts at the
//! encoder's number and follows it while the encoder counts on; when the encoder's numbering
//! jumps ahead (segments the origin never saw) or restarts lower (a new encoder after the origin
//! restarted, or after the playlist was deleted), the log continues its own numbering and marks
//! the break with `EXT-X-DISCONTINUITY`.
//!
//! Segments are served as long as they are in a window ([`crate::store`] keeps them in memory,
//! or the archive of [`crate::archive`] does), so both playlists only list what is still served:
//! the caller's `is_served` trims the front ([`DvrLog::render_within`] when an archive serves the
//! whole window, marking with `EXT-X-GAP` the segments it lost).
//!
//! With an archive every change is also persisted as a [`LogUpdate`] ([`persist`]) from which
//! [`DvrLog::apply`] rebuilds the log after a restart.
//!
//! A 48 h log holds 86,400 entries (1 s segments) and takes tens of milliseconds to render, so a
//! rendering is split in two ([`render`]): [`DvrLog::prepare`] and [`DvrLog::snapshot`] are cheap
//! and run where the log is (under the store's lock), [`Snapshot::render`] runs anywhere.
//! Entries first listed within one log are kept in non-decreasing `added_ms` order, so the
//! window's start is a binary search.

pub mod entries;
pub mod persist;
pub mod render;
#[cfg(test)]
mod tests;

use m3u8_rs::{ExtTag, MediaSegment};

use crate::playlist::MediaState;
use entries::Entries;

pub use persist::{Clock, LogObject, LogObjectError};
pub use render::{RenderKey, Snapshot};

/// Target durations without a playlist update after which a stream counts as ended.
pub const IDLE_TARGET_DURATIONS: u64 = 3;

/// Most segments one log keeps, whatever the window (48 h of 1 s segments).
pub const MAX_DVR_SEGMENTS: usize = 48 * 3600;

/// The tag (after `#EXT-`) that marks a segment the archive lost (RFC 8216bis §4.4.4.7
/// `EXT-X-GAP`: players skip it instead of loading it).
const GAP_TAG: &str = "X-GAP";

/// The timeshift record of one media playlist.
#[derive(Debug, Clone, Default)]
pub struct DvrLog {
    target_duration: u64,
    entries: Entries,
    /// Changes with every change (see [`RenderKey::version`]); 0 before the first.
    version: u64,
    /// Whether anything was ever trimmed from the front (the playlist is then no longer an EVENT).
    trimmed: bool,
    ended: bool,
    /// When the playlist was last accepted, in store milliseconds.
    updated_ms: u64,
    /// The last entry ever recorded, kept when trimming empties the log: where the next one goes.
    tail: Option<Tail>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tail {
    seq: u64,
    source_msn: u64,
    path: String,
    dsn: u64,
}

/// One recorded segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The log's own sequence number: the media sequence number of the segment in the DVR and
    /// VOD playlists (contiguous, never going back).
    pub seq: u64,
    /// The encoder's media sequence number of the segment.
    pub source_msn: u64,
    /// Object path below the content.
    pub path: String,
    /// The segment as listed (URI relative to the playlist, `EXTINF`, discontinuity, date-time).
    pub segment: MediaSegment,
    /// Discontinuity sequence number of this segment.
    pub dsn: u64,
    /// When it was first listed, in store milliseconds.
    pub added_ms: u64,
}

/// What one change appended to a log, or that the stream ended: the unit that is persisted.
#[derive(Debug, Clone, PartialEq)]
pub struct LogUpdate {
    /// `EXT-X-TARGETDURATION` of the playlist, in seconds.
    pub target_duration: u64,
    /// [`Entry::seq`] of the first entry, or where the next entry goes when there is none.
    pub first_seq: u64,
    /// The appended entries, oldest first (contiguous `seq`); empty for an end marker.
    pub entries: Vec<Entry>,
    /// Whether the first entry is the first the log ever recorded.
    pub starts: bool,
    /// Whether the stream ended with this change.
    pub ended: bool,
}

/// Which playlist to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// The timeshift window of a live stream.
    Dvr,
    /// The whole recorded window of an ended stream.
    Vod,
}

impl DvrLog {
    /// Appends the segments of `state` not recorded yet and trims what is older than `window_ms`.
    /// `continues` tells that `state` was validated against a previous version of the same
    /// playlist (its numbering then simply goes on). Returns what changed, to persist.
    pub fn record(&mut self, now_ms: u64, state: &MediaState, window_ms: u64, continues: bool) -> Option<LogUpdate> {
        self.version = render::next_version();
        self.target_duration = state.target_duration;
        let was_ended = self.ended;
        self.ended = state.ended;
        self.updated_ms = now_ms;
        let starts = self.tail.is_none();
        // Encoder sequence numbers up to `skip` are recorded; `restart` marks a new numbering.
        let (skip, mut restart) = match &self.tail {
            None => (None, false),
            Some(t) => {
                let index = t.source_msn.checked_sub(state.media_sequence).and_then(|i| usize::try_from(i).ok());
                let overlaps = index.and_then(|i| state.segments.get(i)).is_some_and(|p| *p == t.path);
                if continues || overlaps || state.media_sequence > t.source_msn {
                    (Some(t.source_msn), false)
                } else {
                    (None, true)
                }
            }
        };
        let mut appended = Vec::new();
        let mut source_dsn = state.discontinuity_sequence;
        for (i, (segment, path)) in state.items.iter().zip(&state.segments).enumerate() {
            if segment.discontinuity {
                source_dsn = source_dsn.saturating_add(1);
            }
            let msn = state.media_sequence.saturating_add(i as u64);
            if skip.is_some_and(|s| msn <= s) {
                continue;
            }
            let mut segment = segment.clone();
            let (seq, dsn) = match &self.tail {
                None => (msn, source_dsn),
                Some(t) => {
                    // Segments the origin never saw, or a new encoder: a break in the timeline.
                    if restart || msn != t.source_msn.saturating_add(1) {
                        segment.discontinuity = true;
                    }
                    (t.seq.saturating_add(1), t.dsn.saturating_add(u64::from(segment.discontinuity)))
                }
            };
            restart = false;
            self.tail = Some(Tail { seq, source_msn: msn, path: path.clone(), dsn });
            let added_ms = self.entries.back().map_or(now_ms, |b| b.added_ms.max(now_ms));
            let entry = Entry { seq, source_msn: msn, path: path.clone(), segment, dsn, added_ms };
            self.entries.push_back(entry.clone());
            appended.push(entry);
        }
        self.trim(now_ms, window_ms);
        if appended.is_empty() && (was_ended || !self.ended || self.tail.is_none()) {
            return None;
        }
        let first_seq = appended.first().map_or_else(|| self.next_seq(), |e| e.seq);
        let starts = starts && !appended.is_empty();
        Some(LogUpdate {
            target_duration: self.target_duration,
            first_seq,
            entries: appended,
            starts,
            ended: self.ended,
        })
    }

    /// Marks the stream ended (its playlist was deleted); returns the end marker to persist when
    /// it was live and recorded something.
    pub fn end(&mut self) -> Option<LogUpdate> {
        let was_ended = std::mem::replace(&mut self.ended, true);
        if !was_ended {
            self.version = render::next_version();
        }
        (!was_ended && self.tail.is_some()).then(|| LogUpdate {
            target_duration: self.target_duration,
            first_seq: self.next_seq(),
            entries: Vec::new(),
            starts: false,
            ended: true,
        })
    }

    /// Where the next entry goes.
    fn next_seq(&self) -> u64 {
        self.tail.as_ref().map_or(0, |t| t.seq.saturating_add(1))
    }

    /// Adds a persisted object while rebuilding the log after a restart; objects must come in
    /// increasing [`LogObject::first_seq`] order. Entries already present or out of the window
    /// are skipped; a missing stretch (an object that was never written or could not be read) is
    /// marked with `EXT-X-DISCONTINUITY` on the entry after it. Returns whether there was one.
    pub fn apply(&mut self, object: LogObject, now_ms: u64, window_ms: u64) -> bool {
        self.version = render::next_version();
        if self.tail.is_none() && self.entries.is_empty() && !self.trimmed {
            self.trimmed = !object.starts;
        }
        self.target_duration = object.target_duration;
        let mut gap = false;
        for mut e in object.entries {
            if e.added_ms.saturating_add(window_ms) <= now_ms {
                // Already out of the window (a stale object retention has not deleted yet).
                self.trimmed = true;
                continue;
            }
            if let Some(t) = &self.tail {
                if e.seq <= t.seq {
                    continue;
                }
                if e.seq != t.seq.saturating_add(1) {
                    e.segment.discontinuity = true;
                    gap = true;
                }
                e.dsn = t.dsn.saturating_add(u64::from(e.segment.discontinuity));
            }
            // Kept in order of first listing (a clock step between processes could reorder).
            if let Some(b) = self.entries.back() {
                e.added_ms = e.added_ms.max(b.added_ms);
            }
            self.tail = Some(Tail { seq: e.seq, source_msn: e.source_msn, path: e.path.clone(), dsn: e.dsn });
            self.updated_ms = self.updated_ms.max(e.added_ms);
            self.entries.push_back(e);
        }
        self.ended = object.ended;
        self.trim(now_ms, window_ms);
        gap
    }

    /// Whether the stream ended at `now_ms`: marked so, or idle for
    /// [`IDLE_TARGET_DURATIONS`] target durations.
    pub fn ended(&self, now_ms: u64) -> bool {
        let idle_ms = self.target_duration.max(1).saturating_mul(IDLE_TARGET_DURATIONS * 1000);
        self.ended || now_ms.saturating_sub(self.updated_ms) > idle_ms
    }

    /// Drops the entries older than `window_ms`.
    pub fn trim(&mut self, now_ms: u64, window_ms: u64) {
        while let Some(front) = self.entries.front() {
            let expired = front.added_ms.saturating_add(window_ms) <= now_ms;
            if !expired && self.entries.len() <= MAX_DVR_SEGMENTS {
                break;
            }
            self.entries.pop_front();
            self.trimmed = true;
            self.version = render::next_version();
        }
    }

    /// When the segment at `path` leaves the window, in store milliseconds, if it is recorded.
    pub fn expiry_of(&self, path: &str, window_ms: u64) -> Option<u64> {
        self.entries.iter().rev().find(|e| e.path == path).map(|e| e.added_ms.saturating_add(window_ms))
    }

    /// Whether no segment is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of recorded segments.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The recorded segments, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// Renders `view`, listing only the newest run of segments for which `is_served(path)` holds;
    /// `None` when there is nothing to list, or for [`View::Vod`] while the stream is live.
    pub fn render(&self, now_ms: u64, view: View, is_served: impl Fn(&str) -> bool) -> Option<String> {
        let key = self.prepare(now_ms, view, self.start_served(is_served))?;
        self.snapshot(&key).render(|_| false)
    }

    /// Renders `view` over every segment first listed less than `window_ms` before `now_ms` (an
    /// archive serves them), marking those for which `is_lost(path)` holds with `EXT-X-GAP` (the
    /// archive could not store them); `None` as for [`DvrLog::render`].
    pub fn render_within(
        &self,
        now_ms: u64,
        view: View,
        window_ms: u64,
        is_lost: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let key = self.prepare(now_ms, view, self.start_within(now_ms, window_ms))?;
        self.snapshot(&key).render(is_lost)
    }

    /// Index of the first entry still inside `window_ms` at `now_ms` (binary search).
    pub fn start_within(&self, now_ms: u64, window_ms: u64) -> usize {
        self.entries.partition_point(|e| e.added_ms.saturating_add(window_ms) <= now_ms)
    }

    /// Index of the first entry of the newest run for which `is_served(path)` holds (a scan
    /// from the newest entry back to the first that is not served).
    pub fn start_served(&self, is_served: impl Fn(&str) -> bool) -> usize {
        let unserved_from_back = self.entries.iter().rev().position(|e| !is_served(&e.path));
        unserved_from_back.map_or(0, |i| self.entries.len() - i)
    }

    /// What rendering `view` from the entry at `start` lists at `now_ms` (cheap), or `None` when
    /// there is nothing to list, or for [`View::Vod`] while the stream is live.
    pub fn prepare(&self, now_ms: u64, view: View, start: usize) -> Option<RenderKey> {
        let ended = self.ended(now_ms);
        if (view == View::Vod && !ended) || start >= self.entries.len() {
            return None;
        }
        Some(RenderKey { version: self.version, view, start, ended })
    }

    /// The entries and header fields `key` lists, sharing the log's storage (`O(len / 1024)`).
    /// `key` must come from [`DvrLog::prepare`] on this log unchanged since.
    pub fn snapshot(&self, key: &RenderKey) -> Snapshot {
        Snapshot {
            entries: self.entries.from_index(key.start),
            last_seq: self.entries.back().map_or(0, |e| e.seq),
            target_duration: self.target_duration,
            playlist_type: render::playlist_type(key.view, self.trimmed, key.start, key.ended),
            end_list: key.view == View::Vod || key.ended,
        }
    }

    /// Changes with every change of the log.
    pub fn version(&self) -> u64 {
        self.version
    }
}

/// `segment` marked with `EXT-X-GAP` (once).
fn with_gap(segment: &MediaSegment) -> MediaSegment {
    let mut s = segment.clone();
    if !s.unknown_tags.iter().any(|t| t.tag == GAP_TAG) {
        s.unknown_tags.push(ExtTag { tag: GAP_TAG.into(), rest: None });
    }
    s
}
