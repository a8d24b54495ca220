//! The live windows of the media playlists the player loads, one per rendition.

use std::collections::BTreeMap;

use protocol::SegmentId;

use crate::SegmentInfo;

/// Most segments remembered per rendition (a DVR window of 2 h of 2 s segments).
pub(crate) const MAX_WINDOW_SEGMENTS: usize = 4096;

/// One rendition's window.
#[derive(Debug, Default)]
struct Window {
    /// The segments of the last playlist, by msn.
    segments: BTreeMap<u64, SegmentInfo>,
    /// Highest msn ever seen in this rendition.
    newest_msn: Option<u64>,
}

/// The live windows of every rendition seen, and which one the player plays.
#[derive(Debug, Default)]
pub(crate) struct Playlists {
    windows: BTreeMap<u32, Window>,
    active: Option<u32>,
}

impl Playlists {
    /// Replaces the window of `rendition`; returns the segments that are new since its previous
    /// playlist. The first playlist of a rendition yields nothing: the segments already published
    /// when we arrived were fetched by others long ago, so they are not ours to seed.
    pub(crate) fn update(&mut self, rendition: u32, segments: Vec<SegmentInfo>) -> Vec<SegmentInfo> {
        if self.active.is_none() {
            self.active = Some(rendition);
        }
        let window = self.windows.entry(rendition).or_default();
        window.segments.clear();
        let skip = segments.len().saturating_sub(MAX_WINDOW_SEGMENTS);
        let mut fresh = Vec::new();
        for info in segments.into_iter().skip(skip) {
            if window.newest_msn.is_some_and(|newest| info.msn > newest) {
                fresh.push(info.clone());
            }
            window.segments.insert(info.msn, info);
        }
        let newest = window.segments.last_key_value().map(|(&msn, _)| msn);
        window.newest_msn = window.newest_msn.max(newest);
        fresh
    }

    /// The rendition being played: the one the player asked for last.
    pub(crate) fn active(&self) -> Option<u32> {
        self.active
    }

    /// Records that the player plays `rendition`; returns whether that is a change.
    pub(crate) fn set_active(&mut self, rendition: u32) -> bool {
        self.active.replace(rendition) != Some(rendition)
    }

    /// The playlist's description of `id`, while it is in its window.
    pub(crate) fn info(&self, id: SegmentId) -> Option<&SegmentInfo> {
        self.windows.get(&id.rendition)?.segments.get(&id.msn)
    }

    /// Newest segment of the window of `rendition`.
    pub(crate) fn newest(&self, rendition: u32) -> Option<&SegmentInfo> {
        self.windows.get(&rendition)?.segments.last_key_value().map(|(_, info)| info)
    }

    /// Oldest msn of the window of `rendition`.
    pub(crate) fn oldest_msn(&self, rendition: u32) -> Option<u64> {
        self.windows.get(&rendition)?.segments.first_key_value().map(|(&msn, _)| msn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(msn: u64) -> SegmentInfo {
        SegmentInfo {
            msn,
            start_ms: msn * 2_000,
            duration_ms: 2_000,
            url: format!("https://cdn.test/{msn}.ts"),
            byte_len: None,
        }
    }

    #[test]
    fn first_playlist_yields_no_fresh_segments() {
        let mut p = Playlists::default();
        assert!(p.update(0, (10..15).map(seg).collect()).is_empty());
        assert_eq!(p.active(), Some(0));
        assert_eq!(p.oldest_msn(0), Some(10));
    }

    #[test]
    fn later_playlists_yield_only_newer_segments() {
        let mut p = Playlists::default();
        p.update(0, (10..15).map(seg).collect());
        let fresh = p.update(0, (12..17).map(seg).collect());
        assert_eq!(fresh.iter().map(|s| s.msn).collect::<Vec<_>>(), vec![15, 16]);
        assert!(p.info(SegmentId { rendition: 0, msn: 11 }).is_none());
        assert!(p.info(SegmentId { rendition: 0, msn: 16 }).is_some());
    }

    #[test]
    fn a_stale_playlist_yields_nothing() {
        let mut p = Playlists::default();
        p.update(0, (10..15).map(seg).collect());
        assert!(p.update(0, (9..14).map(seg).collect()).is_empty());
    }

    #[test]
    fn windows_are_bounded() {
        let mut p = Playlists::default();
        p.update(3, (0..MAX_WINDOW_SEGMENTS as u64 + 10).map(seg).collect());
        assert_eq!(p.oldest_msn(3), Some(10));
    }

    #[test]
    fn switching_rendition_is_reported_once() {
        let mut p = Playlists::default();
        assert!(p.set_active(1));
        assert!(!p.set_active(1));
        assert!(p.set_active(2));
    }
}
