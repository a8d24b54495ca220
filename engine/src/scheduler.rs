//! The decision: for each segment the engine needs, get it from a peer, from the CDN, or wait.
//!
//! See the crate documentation for why the rules are what they are.

use protocol::SegmentId;
use protocol::peer::Message;
use rand::Rng;

use crate::segments::{Fetch, Segment};
use crate::{Engine, Millis, Output, rank};

/// Longest playlist reload period assumed when waiting for a seeder, in ms.
const MAX_RELOAD_MS: u64 = 10_000;

/// What to do about a segment that is needed and not being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Fetch it from the CDN now.
    Http,
    /// Ask a peer that holds it complete.
    Peer,
    /// Wait (for a peer to announce it) until the given time, or for news.
    Wait(Option<Millis>),
}

impl Engine {
    /// Acts on every needed segment: starts fetches, and gives up on peers that stall or that
    /// would make us miss a deadline.
    pub(crate) fn schedule(&mut self, now: Millis) {
        for id in self.store.ids(|s| s.needed() || matches!(s.fetch, Fetch::Peer { .. })) {
            self.check_peer_fetch(now, id);
            let Some(seg) = self.store.get(id) else { continue };
            if seg.fetch != Fetch::Idle || !seg.needed() {
                continue;
            }
            match self.plan(now, id, seg) {
                Plan::Http => self.start_http(id),
                Plan::Peer => self.start_peer(now, id),
                Plan::Wait(_) => {}
            }
        }
    }

    /// The rules, for a needed segment with no fetch under way (crate doc, "Decision rules").
    pub(crate) fn plan(&self, now: Millis, id: SegmentId, seg: &Segment) -> Plan {
        let holder = !self.peers.holders(id, &seg.failed_peers).is_empty();
        if seg.wanted && !self.playback.playing() {
            return if holder { Plan::Peer } else { Plan::Http };
        }
        let deadline = self.deadline(seg);
        if deadline.is_some_and(|d| now >= d) {
            return Plan::Http;
        }
        if holder {
            return Plan::Peer;
        }
        if self.peers.someone_fetching(id) {
            return Plan::Wait(deadline);
        }
        if let Some(since) = seg.seed_since {
            let turn = self.seed_turn(id, seg, since);
            if now >= turn {
                return Plan::Http;
            }
            return Plan::Wait(Some(deadline.map_or(turn, |d| d.min(turn))));
        }
        if seg.wanted { Plan::Http } else { Plan::Wait(None) }
    }

    /// When the engine next needs to look at `seg` again, if a timer (not news) can change things.
    pub(crate) fn segment_timer(&self, now: Millis, id: SegmentId, seg: &Segment) -> Option<Millis> {
        match &seg.fetch {
            Fetch::Http => None,
            Fetch::Peer { last_chunk, .. } => {
                let idle = last_chunk.saturating_add(self.config.p2p_idle_timeout_ms);
                Some(self.deadline(seg).map_or(idle, |d| d.min(idle)))
            }
            Fetch::Idle if seg.needed() => match self.plan(now, id, seg) {
                Plan::Wait(at) => at,
                // Acted on by the last `schedule`; only reachable if state changed after it.
                Plan::Http | Plan::Peer => Some(now),
            },
            Fetch::Idle => None,
        }
    }

    /// The time by which a segment the player waits for must be complete.
    fn deadline(&self, seg: &Segment) -> Option<Millis> {
        if !seg.wanted {
            return None;
        }
        self.playback.deadline(seg.info.start_ms, self.config.deadline_margin_ms)
    }

    /// When this peer's turn comes to fetch a new live segment from the CDN, if nobody has
    /// announced it by then: at once for the top-ranked peer; otherwise after one playlist
    /// reload period (the seeder may see the segment up to that much later than we do) plus
    /// `seed_grace_ms` per rank, so the next in line takes over from a seeder that is gone.
    fn seed_turn(&self, id: SegmentId, seg: &Segment, since: Millis) -> Millis {
        let rank = self.seed_rank(id);
        if rank == 0 {
            return since;
        }
        let reload = seg.info.duration_ms.min(MAX_RELOAD_MS);
        since.saturating_add(reload).saturating_add(self.config.seed_grace_ms.saturating_mul(u64::from(rank)))
    }

    /// Our seeding rank for `id` among the connected peers of its rendition. A peer that does not
    /// upload goes last: its copy would help nobody.
    pub(crate) fn seed_rank(&self, id: SegmentId) -> u32 {
        let others = self.peers.in_rendition(id.rendition);
        if !self.config.upload_allowed {
            return u32::try_from(others.count()).unwrap_or(u32::MAX);
        }
        rank::rank(&self.local, others, id)
    }

    /// Gives up on a peer download that stalls or would miss the deadline; the bytes received
    /// so far are kept and the next fetch resumes from them.
    fn check_peer_fetch(&mut self, now: Millis, id: SegmentId) {
        let Some(seg) = self.store.get(id) else { return };
        let Fetch::Peer { peer, request_id, last_chunk } = &seg.fetch else { return };
        let late = self.deadline(seg).is_some_and(|d| now >= d);
        let idle = now >= last_chunk.saturating_add(self.config.p2p_idle_timeout_ms);
        if !late && !idle {
            return;
        }
        let (peer, request_id) = (peer.clone(), *request_id);
        self.send(&peer, &Message::Cancel { id, request_id });
        if let Some(seg) = self.store.get_mut(id) {
            seg.fetch = Fetch::Idle;
            if idle {
                seg.failed_peers.insert(peer);
            }
        }
    }

    /// Starts (or resumes, from the bytes held) the CDN fetch of `id`.
    pub(crate) fn start_http(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        seg.fetch = Fetch::Http;
        let range_start = seg.data.len() as u64;
        self.outputs.push_back(Output::FetchHttp { id, url: seg.info.url.clone(), range_start });
    }

    /// Asks a random holder of `id` for it, from the bytes held on.
    fn start_peer(&mut self, now: Millis, id: SegmentId) {
        let Some(seg) = self.store.get(id) else { return };
        let holders = self.peers.holders(id, &seg.failed_peers);
        if holders.is_empty() {
            return;
        }
        let peer = holders[self.rng.random_range(0..holders.len())].clone();
        let offset = seg.data.len() as u64;
        let request_id = self.next_request_id();
        if let Some(seg) = self.store.get_mut(id) {
            seg.fetch = Fetch::Peer { peer: peer.clone(), request_id, last_chunk: now };
        }
        self.send(&peer, &Message::Request { id, request_id, offset });
    }
}
