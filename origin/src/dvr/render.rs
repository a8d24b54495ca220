//! Rendering a DVR or VOD playlist from a [`Snapshot`] of its log, so that the work (tens of
//! milliseconds for a 48 h window) can happen without holding the store.
//!
//! [`DvrLog::prepare`](super::DvrLog::prepare) decides what a request gets (cheap: a binary search
//! or a scan of the served tail) and returns a [`RenderKey`]; equal keys render equal bytes (for
//! one set of lost segments), which is what a cache of rendered playlists is keyed on.
//! [`DvrLog::snapshot`](super::DvrLog::snapshot) then shares the listed entries
//! ([`super::entries`]) and [`Snapshot::render`] writes the playlist from them.

use std::sync::atomic::{AtomicU64, Ordering};

use m3u8_rs::{MediaPlaylist, MediaPlaylistType, MediaSegment};

use super::entries::Entries;
use super::{View, with_gap};
use crate::window::ms;

/// Source of [`DvrLog`](super::DvrLog) versions: unique over the process, so that a key never
/// matches a rendering of another log, or of the same log before a change.
static VERSIONS: AtomicU64 = AtomicU64::new(1);

/// A fresh log version.
pub(super) fn next_version() -> u64 {
    VERSIONS.fetch_add(1, Ordering::Relaxed)
}

/// What a rendering depends on, besides the lost segments: equal keys render equal bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RenderKey {
    /// The log's version (it changes with every change of the log).
    pub version: u64,
    /// Which playlist.
    pub view: View,
    /// Index of the first listed entry.
    pub start: usize,
    /// Whether the stream counted as ended.
    pub ended: bool,
}

/// What one rendering lists, detached from the log.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub(super) entries: Entries,
    /// [`Entry::seq`](super::Entry::seq) of the newest entry of the log.
    pub(super) last_seq: u64,
    /// `EXT-X-TARGETDURATION` of the log, in seconds.
    pub(super) target_duration: u64,
    pub(super) playlist_type: Option<MediaPlaylistType>,
    pub(super) end_list: bool,
}

impl Snapshot {
    /// Number of segments listed.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The playlist, marking with `EXT-X-GAP` the segments for which `is_lost(path)` holds;
    /// `None` when nothing is listed.
    pub fn render(&self, is_lost: impl Fn(&str) -> bool) -> Option<String> {
        let first = self.entries.front()?;
        let segments: Vec<MediaSegment> = self
            .entries
            .iter()
            .map(|e| if is_lost(&e.path) { with_gap(&e.segment) } else { e.segment.clone() })
            .collect();
        // Numbered back from the newest entry, so that numbers stay put as the front is trimmed
        // even across a gap left by a rebuild (the same as `seq` everywhere else).
        let media_sequence = self.last_seq.saturating_add(1).saturating_sub(segments.len() as u64);
        // Segments are no longer than the target duration (checked at ingest); `max` covers a
        // log recorded from playlists that never set one.
        let longest = segments.iter().map(|s| ms(s.duration).div_ceil(1000)).max().unwrap_or(0);
        let playlist = MediaPlaylist {
            version: Some(3),
            target_duration: self.target_duration.max(longest),
            media_sequence,
            discontinuity_sequence: first.dsn.saturating_sub(u64::from(first.segment.discontinuity)),
            end_list: self.end_list,
            playlist_type: self.playlist_type.clone(),
            segments,
            ..MediaPlaylist::default()
        };
        let mut out = Vec::with_capacity(64 + 40 * self.entries.len());
        playlist.write_to(&mut out).ok()?;
        String::from_utf8(out).ok()
    }
}

/// The playlist type of `view` for a log that was `trimmed`, listing from `start`.
pub(super) fn playlist_type(view: View, trimmed: bool, start: usize, ended: bool) -> Option<MediaPlaylistType> {
    match view {
        View::Vod => Some(MediaPlaylistType::Vod),
        View::Dvr if !trimmed && start == 0 && !ended => Some(MediaPlaylistType::Event),
        View::Dvr => None,
    }
}
