//! One stream's objects and timeshift logs, and the rules that derive listing, grace periods and
//! expiry from them.

use std::collections::HashMap;

use bytes::Bytes;

use super::recorded::RenderSlot;
use crate::dvr::{DvrLog, View};
use crate::path::Kind;
use crate::playlist::{self, Accepted};

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) bytes: Bytes,
    pub(super) kind: Kind,
    /// The accepted version's state, for playlists.
    pub(super) accepted: Option<Accepted>,
    /// Set by DELETE: no new playlist may list it.
    pub(super) deleted: bool,
    /// When it stops being served and is dropped, in store milliseconds; `None` while listed.
    pub(super) expires_at_ms: Option<u64>,
    /// SHA-256 of `bytes`, for segments.
    pub(super) sha256: Option<[u8; 32]>,
    /// When a playlist first listed it, in store milliseconds.
    pub(super) first_listed_ms: Option<u64>,
}

impl Entry {
    pub(super) fn live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}

#[derive(Debug, Default)]
pub(super) struct Stream {
    pub(super) objects: HashMap<String, Entry>,
    /// The timeshift log of each media playlist, by path.
    pub(super) dvr: HashMap<String, DvrLog>,
    /// The multivariant playlists recorded for the DVR and VOD views, by path (see `recorded`).
    pub(super) masters: HashMap<String, Bytes>,
    /// The current rendering of each (media playlist, view) (see `recorded`).
    pub(super) renders: HashMap<(String, View), RenderSlot>,
}

impl Stream {
    /// The longest media playlist duration of this stream, in milliseconds.
    pub(super) fn window_ms(&self) -> u64 {
        self.media_states().map(|m| m.duration_ms).max().unwrap_or(0)
    }

    pub(super) fn grace_ms(&self) -> u64 {
        self.window_ms().saturating_mul(2)
    }

    pub(super) fn media_states(&self) -> impl Iterator<Item = &playlist::MediaState> {
        self.objects.values().filter_map(|e| match &e.accepted {
            Some(Accepted::Media(m)) => Some(m),
            _ => None,
        })
    }

    pub(super) fn is_listed(&self, path: &str) -> bool {
        self.media_states().any(|m| m.segments.iter().chain(&m.maps).any(|s| s == path))
    }

    /// Makes the segments `old` listed, and that no playlist lists any more, expire at `expires`
    /// or when they leave the timeshift window, whichever is later.
    pub(super) fn release(&mut self, old: Option<Accepted>, expires: u64, dvr_window_ms: u64) {
        let Some(Accepted::Media(old)) = old else { return };
        for seg in old.segments.iter().chain(&old.maps) {
            if self.is_listed(seg) {
                continue;
            }
            let until = self.dvr_expiry(seg, dvr_window_ms).map_or(expires, |d| d.max(expires));
            if let Some(e) = self.objects.get_mut(seg) {
                e.expires_at_ms = Some(e.expires_at_ms.map_or(until, |t| t.min(until)));
            }
        }
    }

    /// When `path` leaves the timeshift window of every DVR log, if any records it.
    pub(super) fn dvr_expiry(&self, path: &str, dvr_window_ms: u64) -> Option<u64> {
        let first_listed = self.objects.get(path).and_then(|e| e.first_listed_ms);
        let logged = self.dvr.values().filter_map(|log| log.expiry_of(path, dvr_window_ms)).max();
        // Init sections are not in the logs: keep them as long as the segments that used them.
        let init = first_listed.filter(|_| dvr_window_ms > 0).map(|t| t.saturating_add(dvr_window_ms));
        logged.max(init)
    }

    /// Whether the stream holds nothing: no object, and with an archive no logged segment.
    pub(super) fn is_idle(&self, archived: bool) -> bool {
        self.objects.is_empty() && (!archived || self.dvr.values().all(DvrLog::is_empty))
    }

    pub(super) fn served(&self, now_ms: u64, path: &str) -> bool {
        self.objects.get(path).is_some_and(|e| e.live(now_ms))
    }
}
