//! The segments the engine holds or is getting, with where each one's bytes come from.

use std::collections::{BTreeMap, BTreeSet};

use protocol::{PeerId, SegmentId};

use crate::{Millis, SegmentInfo};

/// Where a segment's missing bytes are being fetched from right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fetch {
    /// Nowhere.
    Idle,
    /// The CDN, from byte `data.len()` at the time the fetch started.
    Http,
    /// A peer, answering our request `request_id`.
    Peer {
        /// The peer.
        peer: PeerId,
        /// Our request's id.
        request_id: u32,
        /// When its last chunk arrived (or the request left), in engine ms.
        last_chunk: Millis,
    },
}

/// One segment: the bytes received so far (always a prefix, since both the CDN and peers send
/// in order) and what it is wanted for.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Its playlist entry (kept, so a fetch can resume after it left the window).
    pub(crate) info: SegmentInfo,
    /// Bytes `0..data.len()` of the segment.
    pub(crate) data: Vec<u8>,
    /// Full size in bytes, as told by the source that sent the bytes in `data`.
    pub(crate) total_len: Option<u64>,
    /// Whether `data` is the whole segment.
    pub(crate) complete: bool,
    /// The fetch under way.
    pub(crate) fetch: Fetch,
    /// The player asked for it and has not been given it yet.
    pub(crate) wanted: bool,
    /// A new live segment of the played rendition, first seen at this time (engine ms): the
    /// swarm seeds it, so we get it even before the player asks.
    pub(crate) seed_since: Option<Millis>,
    /// Peers that failed to deliver it (absent, stalled, misbehaved); not asked again.
    pub(crate) failed_peers: BTreeSet<PeerId>,
    /// HTTP fetches that failed since the player last asked.
    pub(crate) http_failures: u8,
    /// Whether the bytes were already thrown away once and refetched from byte 0.
    pub(crate) restarted: bool,
}

impl Segment {
    pub(crate) fn new(info: SegmentInfo) -> Self {
        Self {
            info,
            data: Vec::new(),
            total_len: None,
            complete: false,
            fetch: Fetch::Idle,
            wanted: false,
            seed_since: None,
            failed_peers: BTreeSet::new(),
            http_failures: 0,
            restarted: false,
        }
    }

    /// The size it must have, if anyone said: the playlist first, then the source of `data`.
    pub(crate) fn expected_len(&self) -> Option<u64> {
        self.info.byte_len.or(self.total_len)
    }

    /// Throws the bytes away (they cannot be trusted); the fetch state is left alone.
    pub(crate) fn discard(&mut self) {
        self.data = Vec::new();
        self.total_len = None;
        self.complete = false;
        self.restarted = true;
    }

    /// Whether the engine should be getting it: the player wants it or the swarm seeds it.
    pub(crate) fn needed(&self) -> bool {
        !self.complete && (self.wanted || self.seed_since.is_some())
    }
}

/// All segments held, by id.
#[derive(Debug, Default)]
pub(crate) struct Store {
    map: BTreeMap<SegmentId, Segment>,
}

impl Store {
    pub(crate) fn get(&self, id: SegmentId) -> Option<&Segment> {
        self.map.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: SegmentId) -> Option<&mut Segment> {
        self.map.get_mut(&id)
    }

    /// The segment `id`, created from `info` if new.
    pub(crate) fn entry(&mut self, id: SegmentId, info: &SegmentInfo) -> &mut Segment {
        self.map.entry(id).or_insert_with(|| Segment::new(info.clone()))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (SegmentId, &Segment)> {
        self.map.iter().map(|(id, s)| (*id, s))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (SegmentId, &mut Segment)> {
        self.map.iter_mut().map(|(id, s)| (*id, s))
    }

    /// Ids of the segments matching `pred`, in id order.
    pub(crate) fn ids(&self, pred: impl Fn(&Segment) -> bool) -> Vec<SegmentId> {
        self.map.iter().filter(|(_, s)| pred(s)).map(|(id, _)| *id).collect()
    }

    /// The newest `max` ids matching `pred`, oldest first.
    pub(crate) fn newest_ids(&self, max: usize, pred: impl Fn(&Segment) -> bool) -> Vec<SegmentId> {
        let mut ids = self.ids(pred);
        ids.sort_by_key(|id| (id.msn, id.rendition));
        let skip = ids.len().saturating_sub(max);
        ids.split_off(skip)
    }

    /// Removes the segments of `rendition` older than `msn` that the player does not wait for.
    pub(crate) fn evict_before(&mut self, rendition: u32, msn: u64) -> Vec<(SegmentId, Segment)> {
        let old = self.ids(|s| !s.wanted);
        let old = old.into_iter().filter(|id| id.rendition == rendition && id.msn < msn);
        old.filter_map(|id| self.map.remove(&id).map(|s| (id, s))).collect()
    }

    /// Removes the oldest idle segments the player does not wait for until at most `max` remain.
    pub(crate) fn trim(&mut self, max: usize) -> Vec<(SegmentId, Segment)> {
        let excess = self.map.len().saturating_sub(max);
        if excess == 0 {
            return Vec::new();
        }
        let mut idle = self.ids(|s| !s.wanted && s.fetch == Fetch::Idle);
        idle.sort_by_key(|id| (id.msn, id.rendition));
        idle.truncate(excess);
        idle.into_iter().filter_map(|id| self.map.remove(&id).map(|s| (id, s))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(msn: u64) -> SegmentInfo {
        SegmentInfo { msn, start_ms: msn * 2_000, duration_ms: 2_000, url: format!("u{msn}"), byte_len: None }
    }

    fn store(msns: impl IntoIterator<Item = u64>) -> Store {
        let mut store = Store::default();
        for msn in msns {
            store.entry(SegmentId { rendition: 0, msn }, &info(msn)).complete = true;
        }
        store
    }

    #[test]
    fn eviction_spares_what_the_player_waits_for() {
        let mut s = store(0..5);
        s.get_mut(SegmentId { rendition: 0, msn: 1 }).unwrap().wanted = true;
        let gone: Vec<u64> = s.evict_before(0, 3).into_iter().map(|(id, _)| id.msn).collect();
        assert_eq!(gone, vec![0, 2]);
        assert!(s.get(SegmentId { rendition: 0, msn: 1 }).is_some());
    }

    #[test]
    fn trim_drops_the_oldest_idle_segments() {
        let mut s = store(0..5);
        s.get_mut(SegmentId { rendition: 0, msn: 0 }).unwrap().fetch = Fetch::Http;
        let gone: Vec<u64> = s.trim(3).into_iter().map(|(id, _)| id.msn).collect();
        assert_eq!(gone, vec![1, 2]);
    }

    #[test]
    fn newest_ids_keeps_the_latest() {
        let s = store(0..10);
        let ids: Vec<u64> = s.newest_ids(3, |s| s.complete).into_iter().map(|id| id.msn).collect();
        assert_eq!(ids, vec![7, 8, 9]);
    }

    #[test]
    fn the_playlist_length_wins_over_a_source_length() {
        let mut s = Segment::new(SegmentInfo { byte_len: Some(10), ..info(0) });
        s.total_len = Some(12);
        assert_eq!(s.expected_len(), Some(10));
    }
}
