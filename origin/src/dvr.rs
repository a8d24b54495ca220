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
//! Segments are served as long as they are in a window ([`crate::store`] keeps them in memory,
//! or the archive of [`crate::archive`] does), so both playlists only list what is still served:
//! the caller's `is_served` trims the front ([`DvrLog::render_within`] when an archive serves the
//! whole window).

use std::collections::VecDeque;

use m3u8_rs::{MediaPlaylist, MediaPlaylistType, MediaSegment};

use crate::playlist::MediaState;
use crate::window::ms;

/// Target durations without a playlist update after which a stream counts as ended.
pub const IDLE_TARGET_DURATIONS: u64 = 3;

/// Most segments one log keeps, whatever the window (48 h of 1 s segments).
pub const MAX_DVR_SEGMENTS: usize = 48 * 3600;

/// The timeshift record of one media playlist.
#[derive(Debug, Clone, Default)]
pub struct DvrLog {
    target_duration: u64,
    entries: VecDeque<Entry>,
    /// Whether anything was ever trimmed from the front (the playlist is then no longer an EVENT).
    trimmed: bool,
    ended: bool,
    /// When the playlist was last accepted, in store milliseconds.
    updated_ms: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    msn: u64,
    /// Object path below the content.
    path: String,
    segment: MediaSegment,
    /// Discontinuity sequence number of this segment.
    dsn: u64,
    /// When it was first listed, in store milliseconds.
    added_ms: u64,
}

/// Which playlist to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The timeshift window of a live stream.
    Dvr,
    /// The whole recorded window of an ended stream.
    Vod,
}

impl DvrLog {
    /// Appends the segments of `state` newer than the last recorded one and trims what is older
    /// than `window_ms`.
    pub fn record(&mut self, now_ms: u64, state: &MediaState, window_ms: u64) {
        self.target_duration = state.target_duration;
        self.ended = state.ended;
        self.updated_ms = now_ms;
        let last = self.entries.back().map(|e| e.msn);
        let mut dsn = state.discontinuity_sequence;
        for (i, (segment, path)) in state.items.iter().zip(&state.segments).enumerate() {
            if segment.discontinuity {
                dsn = dsn.saturating_add(1);
            }
            let msn = state.media_sequence.saturating_add(i as u64);
            if last.is_some_and(|l| msn <= l) {
                continue;
            }
            let entry = Entry { msn, path: path.clone(), segment: segment.clone(), dsn, added_ms: now_ms };
            self.entries.push_back(entry);
        }
        self.trim(now_ms, window_ms);
    }

    /// Marks the stream ended (its playlist was deleted).
    pub fn end(&mut self) {
        self.ended = true;
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

    /// Renders `view`, listing only the newest run of segments for which `is_served(path)` holds;
    /// `None` when there is nothing to list, or for [`View::Vod`] while the stream is live.
    pub fn render(&self, now_ms: u64, view: View, is_served: impl Fn(&str) -> bool) -> Option<String> {
        self.render_by(now_ms, view, |e| is_served(&e.path))
    }

    /// Renders `view` over every segment first listed less than `window_ms` before `now_ms` (an
    /// archive serves them all); `None` as for [`DvrLog::render`].
    pub fn render_within(&self, now_ms: u64, view: View, window_ms: u64) -> Option<String> {
        self.render_by(now_ms, view, |e| e.added_ms.saturating_add(window_ms) > now_ms)
    }

    fn render_by(&self, now_ms: u64, view: View, is_served: impl Fn(&Entry) -> bool) -> Option<String> {
        let ended = self.ended(now_ms);
        if view == View::Vod && !ended {
            return None;
        }
        let start = self.entries.iter().rposition(|e| !is_served(e)).map_or(0, |i| i + 1);
        let first = self.entries.get(start)?;
        let segments: Vec<MediaSegment> = self.entries.iter().skip(start).map(|e| e.segment.clone()).collect();
        let playlist_type = match view {
            View::Vod => Some(MediaPlaylistType::Vod),
            View::Dvr if !self.trimmed && start == 0 && !ended => Some(MediaPlaylistType::Event),
            View::Dvr => None,
        };
        // Segments are no longer than the target duration (checked at ingest); `max` covers a
        // log recorded from playlists that never set one.
        let longest = segments.iter().map(|s| ms(s.duration).div_ceil(1000)).max().unwrap_or(0);
        let playlist = MediaPlaylist {
            version: Some(3),
            target_duration: self.target_duration.max(longest),
            media_sequence: first.msn,
            discontinuity_sequence: first.dsn.saturating_sub(u64::from(first.segment.discontinuity)),
            end_list: view == View::Vod || ended,
            playlist_type,
            segments,
            ..MediaPlaylist::default()
        };
        let mut out = Vec::new();
        playlist.write_to(&mut out).ok()?;
        String::from_utf8(out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ObjectPath;
    use crate::playlist::{Accepted, validate};

    const NOW: u64 = 6000;

    fn state(seq: u64, segs: &[&str], ended: bool) -> MediaState {
        let mut s = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
        for uri in segs {
            s.push_str(&format!("#EXTINF:2.000000,\n{uri}\n"));
        }
        if ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        let path = ObjectPath::new("live", "v/index.m3u8").unwrap();
        match validate(&path, s.as_bytes(), None, |_| true).unwrap() {
            Accepted::Media(m) => m,
            Accepted::Master => panic!("media expected"),
        }
    }

    #[test]
    fn event_then_sliding_then_vod() {
        let mut log = DvrLog::default();
        log.record(0, &state(0, &["a.ts", "b.ts"], false), 5000);
        log.record(2000, &state(1, &["b.ts", "c.ts"], false), 5000);
        let dvr = log.render(NOW, View::Dvr, |_| true).unwrap();
        assert!(dvr.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{dvr}");
        assert!(dvr.contains("a.ts") && dvr.contains("c.ts") && !dvr.contains("ENDLIST"), "{dvr}");
        assert_eq!(log.render(NOW, View::Vod, |_| true), None, "no VOD while live");

        log.record(5000, &state(2, &["c.ts", "d.ts"], false), 5000);
        let dvr = log.render(NOW, View::Dvr, |_| true).unwrap();
        // a.ts and b.ts were first listed at 0 and left the 5 s window.
        assert!(!dvr.contains("PLAYLIST-TYPE") && !dvr.contains("b.ts"), "{dvr}");
        assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:2"), "{dvr}");

        log.record(6000, &state(3, &["d.ts", "e.ts"], true), 5000);
        let vod = log.render(NOW, View::Vod, |_| true).unwrap();
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("#EXT-X-ENDLIST"), "{vod}");
        assert!(vod.contains("c.ts") && vod.contains("e.ts"), "{vod}");
        assert_eq!(log.expiry_of("v/e.ts", 5000), Some(11_000));
    }

    #[test]
    fn an_idle_stream_counts_as_ended() {
        let mut log = DvrLog::default();
        log.record(0, &state(0, &["a.ts"], false), 60_000);
        assert_eq!(log.render(6000, View::Vod, |_| true), None);
        let vod = log.render(6001, View::Vod, |_| true).unwrap();
        assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
    }

    #[test]
    fn lists_only_the_newest_served_run() {
        let mut log = DvrLog::default();
        log.record(0, &state(0, &["a.ts", "b.ts", "c.ts"], false), 60_000);
        let dvr = log.render(NOW, View::Dvr, |p| p != "v/b.ts").unwrap();
        assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:2") && !dvr.contains("a.ts"), "{dvr}");
        assert_eq!(log.render(NOW, View::Dvr, |_| false), None);
    }

    #[test]
    fn within_lists_the_window_whatever_memory_holds() {
        let mut log = DvrLog::default();
        log.record(0, &state(0, &["a.ts"], false), 10_000);
        log.record(2000, &state(1, &["b.ts"], false), 10_000);
        let dvr = log.render_within(NOW, View::Dvr, 10_000).unwrap();
        assert!(dvr.contains("a.ts") && dvr.contains("b.ts"), "{dvr}");
        let dvr = log.render_within(11_000, View::Dvr, 10_000).unwrap();
        assert!(!dvr.contains("a.ts") && dvr.contains("b.ts"), "{dvr}");
        assert_eq!(log.render_within(12_000, View::Dvr, 10_000), None);
    }

    #[test]
    fn discontinuities_keep_their_numbers() {
        let mut log = DvrLog::default();
        let mut m = state(0, &["a.ts", "b.ts"], false);
        m.items[1].discontinuity = true;
        log.record(0, &m, 60_000);
        let dvr = log.render(NOW, View::Dvr, |p| p != "v/a.ts").unwrap();
        assert!(!dvr.contains("DISCONTINUITY-SEQUENCE") && dvr.contains("#EXT-X-DISCONTINUITY\n"), "{dvr}");
    }
}
