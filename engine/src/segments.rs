//! The segments the engine holds or is getting, with where each one's bytes come from.

use std::collections::{BTreeMap, BTreeSet};

use protocol::{PeerId, SegmentId};

use crate::{CdnReason, Millis, SegmentInfo};

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

/// The second part of a split segment: bytes `start..` asked of another peer while the main
/// fetch gets `data.len()..start` (see [`crate::split`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tail {
    /// The peer sending it.
    pub(crate) peer: PeerId,
    /// Our request's id.
    pub(crate) request_id: u32,
    /// First byte of the range, in bytes.
    pub(crate) start: u64,
    /// Bytes `start..start + data.len()` received so far.
    pub(crate) data: Vec<u8>,
    /// When the request left, in engine ms.
    pub(crate) requested: Millis,
    /// When its first byte arrived, in engine ms.
    pub(crate) first_byte: Option<Millis>,
    /// When its last chunk arrived (or the request left), in engine ms.
    pub(crate) last_chunk: Millis,
    /// Whether the request still runs (not finished, stalled, refused or cut).
    pub(crate) active: bool,
}

/// A peer's request we answer as the bytes arrive (chunk relay): everything from `next` on is
/// sent as soon as we hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    /// The requester.
    pub(crate) peer: PeerId,
    /// Its request's id.
    pub(crate) request_id: u32,
    /// First byte not sent yet.
    pub(crate) next: u64,
    /// End of the range asked for (exclusive); `None` for the whole rest.
    pub(crate) end: Option<u64>,
}

/// One segment: the bytes received so far (always a prefix, since both the CDN and peers send
/// in order) and what it is wanted for.
#[derive(Debug)]
pub(crate) struct Segment {
    /// Its playlist entry (kept, so a fetch can resume after it left the window). For a segment
    /// only heard of from peers, an estimate with an empty URL until our playlist lists it.
    pub(crate) info: SegmentInfo,
    /// Whether `info` comes from our own playlist (so the CDN URL is known).
    pub(crate) listed: bool,
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
    /// Peers that hold it but turned us down (their uplink was busy), and when to ask again.
    pub(crate) busy: BTreeMap<PeerId, Millis>,
    /// HTTP fetches that failed since the player last asked.
    pub(crate) http_failures: u8,
    /// Whether the bytes were already thrown away once and refetched from byte 0.
    pub(crate) restarted: bool,
    /// When the fetch under way started (engine ms) and from which byte.
    pub(crate) fetch_started: (Millis, u64),
    /// How long the CDN fetch under way was estimated to take, in ms.
    pub(crate) http_predicted_ms: u64,
    /// When the fetch under way delivered its first byte (engine ms).
    pub(crate) first_byte: Option<Millis>,
    /// Peers whose bytes are in `data` (to ban them if the digest does not match).
    pub(crate) contributors: BTreeSet<PeerId>,
    /// Whether any byte of `data` came from a peer.
    pub(crate) from_peers: bool,
    /// Requests of peers we answer as our bytes arrive.
    pub(crate) uploads: Vec<Upload>,
    /// SHA-256 of the segment as published by the origin, when known.
    pub(crate) digest: Option<[u8; 32]>,
    /// Whether complete bytes may be trusted: they came from the CDN only, matched the digest,
    /// or (no digests published for the rendition) have the expected length.
    pub(crate) verified: bool,
    /// Why the CDN fetch under way (or the last one) was started.
    pub(crate) http_reason: CdnReason,
    /// A peer transfer of it was given up (too slow, stalled, refused half-way, wrong bytes).
    pub(crate) peer_gave_up: bool,
    /// A peer transfer of it was cut because the peer left.
    pub(crate) peer_cut: bool,
    /// The out-of-order tail of a split segment, merged into `data` when the prefix reaches it.
    pub(crate) tail: Option<Tail>,
    /// Byte ranges `(start, end, peer)` of `data` and `tail` that came from peers (at most
    /// [`MAX_SPANS`]), to tell which sender was wrong when a digest does not match.
    pub(crate) spans: Vec<Span>,
    /// A copy that failed its digest, with its peer ranges, kept until the CDN's copy shows
    /// which sender's bytes differ.
    pub(crate) suspect: Option<(Vec<u8>, Vec<Span>)>,
}

/// Bytes `start..end` of a segment, and the peer that sent them.
pub(crate) type Span = (u64, u64, PeerId);

/// Most peer ranges remembered per segment (beyond that, every contributor is suspect).
pub(crate) const MAX_SPANS: usize = 16;

impl Segment {
    pub(crate) fn new(info: SegmentInfo) -> Self {
        Self {
            info,
            listed: true,
            data: Vec::new(),
            total_len: None,
            complete: false,
            fetch: Fetch::Idle,
            wanted: false,
            seed_since: None,
            failed_peers: BTreeSet::new(),
            busy: BTreeMap::new(),
            http_failures: 0,
            restarted: false,
            fetch_started: (0, 0),
            http_predicted_ms: 0,
            first_byte: None,
            contributors: BTreeSet::new(),
            from_peers: false,
            uploads: Vec::new(),
            digest: None,
            verified: false,
            http_reason: CdnReason::Other,
            peer_gave_up: false,
            peer_cut: false,
            tail: None,
            spans: Vec::new(),
            suspect: None,
        }
    }

    /// Whether the whole segment is here and may be handed on (to the player or peers).
    pub(crate) fn ready(&self) -> bool {
        self.complete && self.verified
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
        self.verified = false;
        self.restarted = true;
        self.contributors.clear();
        self.from_peers = false;
        self.tail = None;
        self.spans.clear();
    }

    /// Records that bytes `start..end` came from `peer` (extends its last range when contiguous).
    pub(crate) fn note_span(&mut self, start: u64, end: u64, peer: &PeerId) {
        if start >= end {
            return;
        }
        if let Some(last) = self.spans.iter_mut().rev().find(|(_, e, p)| *e == start && p == peer) {
            last.1 = end;
        } else if self.spans.len() < MAX_SPANS {
            self.spans.push((start, end, peer.clone()));
        }
    }

    /// Where the contiguous prefix must stop: the start of the tail, if the segment is split.
    pub(crate) fn head_end(&self) -> Option<u64> {
        self.tail.as_ref().map(|t| t.start)
    }

    /// Bytes still missing, when the size is known.
    /// With a tail, only the bytes up to its start (the head's part).
    pub(crate) fn remaining(&self) -> Option<u64> {
        let end = self.head_end().or(self.expected_len())?;
        Some(end.saturating_sub(self.data.len() as u64))
    }

    /// Whether a fetch is under way.
    pub(crate) fn receiving(&self) -> bool {
        self.fetch != Fetch::Idle
    }

    /// Whether we can pass the segment on as it arrives: a CDN fetch is under way, or a peer
    /// transfer that already delivered bytes (a relay whose own source is stuck helps nobody).
    pub(crate) fn relaying(&self) -> bool {
        match self.fetch {
            Fetch::Idle => false,
            Fetch::Http => true,
            Fetch::Peer { .. } => self.first_byte.is_some(),
        }
    }

    /// Whether the engine should be getting it: the player wants it or the swarm seeds it.
    pub(crate) fn needed(&self) -> bool {
        !self.ready() && (self.wanted || self.seed_since.is_some())
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
