//! The peers we are connected to (or dialling), what each holds, and who to dial next.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use protocol::{PeerId, SegmentId};

use crate::Millis;
use crate::rank::Seeder;

/// Most tracker candidates remembered for later dialling.
const MAX_CANDIDATES: usize = 64;
/// Most peers remembered in the reconnect backoff list.
const MAX_BACKOFF: usize = 256;
/// How many times one peer may request the same segment (a resume after a hiccup is fine; a
/// loop is not).
const MAX_SERVES_PER_SEGMENT: u8 = 3;
/// Most segments whose serve count is remembered per peer.
const MAX_SERVED_REMEMBERED: usize = 256;

/// State of the connection to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// We emitted `Connect` at `since` (engine ms) and wait for `PeerConnected`.
    Connecting {
        /// When we dialled, in engine ms.
        since: Millis,
    },
    /// The data channel is open.
    Connected,
}

/// One peer and what it told us.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) link: Link,
    /// Complete segments it holds, from its last `Have`.
    have: BTreeSet<SegmentId>,
    /// Segments it fetches from the CDN right now, from its last `Have`.
    fetching: BTreeSet<SegmentId>,
    /// How often it asked us for each segment.
    served: BTreeMap<SegmentId, u8>,
    /// How fast it sent us segment bytes, in bytes per ms (moving average); `None` untried.
    pub(crate) rate: Option<f64>,
    /// Bytes it holds of segments it is receiving, from its `HaveChunk`s.
    progress: BTreeMap<SegmentId, u64>,
    /// What it announced as a seeder in its last `Uplink` (nothing until then).
    seeder: Seeder,
}

/// Most segments whose progress is remembered per peer.
const MAX_PROGRESS: usize = 64;

impl Peer {
    fn new(link: Link) -> Self {
        Self {
            link,
            have: BTreeSet::new(),
            fetching: BTreeSet::new(),
            served: BTreeMap::new(),
            rate: None,
            progress: BTreeMap::new(),
            seeder: Seeder::default(),
        }
    }

    fn connected(&self) -> bool {
        self.link == Link::Connected
    }
}

/// Every peer we know of.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    peers: BTreeMap<PeerId, Peer>,
    /// Candidates from the tracker not dialled yet, best first.
    candidates: VecDeque<PeerId>,
    /// Peers not to dial again before the given time (engine ms).
    backoff: BTreeMap<PeerId, Millis>,
    /// When to ask the tracker again; `None` means at once.
    next_tracker_request: Option<Millis>,
    /// Peers caught sending bad data: never dialled or accepted again.
    banned: BTreeSet<PeerId>,
    /// Whether the tracker has answered at least once.
    tracker_answered: bool,
}

/// Most peers remembered as banned.
const MAX_BANNED: usize = 1024;

impl Peers {
    /// Peers with an open data channel.
    pub(crate) fn connected(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.iter().filter(|(_, p)| p.connected()).map(|(id, _)| id)
    }

    /// Peers we know of: connected, or being dialled.
    pub(crate) fn known(&self) -> usize {
        self.peers.len()
    }

    /// Whether a dial is under way (a peer that may soon serve us).
    pub(crate) fn dialling(&self) -> bool {
        self.peers.values().any(|p| !p.connected())
    }

    /// Whether nobody can serve us soon: the tracker answered, and no peer is connected, being
    /// dialled or waiting to be dialled.
    pub(crate) fn alone(&self) -> bool {
        self.tracker_answered && self.peers.is_empty() && self.candidates.is_empty()
    }

    /// Whether `peer` has an open data channel.
    pub(crate) fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(Peer::connected)
    }

    /// Remembers the tracker's candidates (ours excluded) for dialling.
    pub(crate) fn discovered(&mut self, local: &PeerId, found: Vec<PeerId>) {
        self.tracker_answered = true;
        for peer in found.into_iter().rev() {
            let known = self.peers.contains_key(&peer) || self.candidates.contains(&peer);
            if &peer != local && !known && !self.banned.contains(&peer) {
                self.candidates.push_front(peer);
            }
        }
        self.candidates.truncate(MAX_CANDIDATES);
    }

    /// Picks candidates to dial until `max` slots are used, and marks them as connecting.
    pub(crate) fn dial(&mut self, now: Millis, max: usize) -> Vec<PeerId> {
        let mut dial = Vec::new();
        while self.peers.len() < max {
            let Some(peer) = self.candidates.pop_front() else { break };
            if self.peers.contains_key(&peer) || self.backoff.get(&peer).is_some_and(|&until| now < until) {
                continue;
            }
            self.peers.insert(peer.clone(), Peer::new(Link::Connecting { since: now }));
            dial.push(peer);
        }
        dial
    }

    /// A data channel to `peer` opened; returns whether we keep it (we dialled it, or there is room).
    pub(crate) fn opened(&mut self, peer: PeerId, max: usize) -> bool {
        if self.banned.contains(&peer) {
            return false;
        }
        if let Some(known) = self.peers.get_mut(&peer) {
            known.link = Link::Connected;
            return true;
        }
        if self.connected().count() >= max {
            return false;
        }
        self.candidates.retain(|c| c != &peer);
        self.peers.insert(peer, Peer::new(Link::Connected));
        true
    }

    /// Forgets `peer`, and does not dial it again before `until`; returns whether it was known.
    pub(crate) fn remove(&mut self, peer: &PeerId, until: Millis) -> bool {
        let known = self.peers.remove(peer).is_some();
        self.backoff.insert(peer.clone(), until);
        if self.backoff.len() > MAX_BACKOFF {
            // Drop the entry that expires first.
            if let Some(first) = self.backoff.iter().min_by_key(|(_, t)| **t).map(|(p, _)| p.clone()) {
                self.backoff.remove(&first);
            }
        }
        known
    }

    /// Bans `peer` for the rest of the session (the caller disconnects it).
    pub(crate) fn ban(&mut self, peer: &PeerId) {
        if self.banned.len() < MAX_BANNED {
            self.banned.insert(peer.clone());
        }
    }

    /// Whether `peer` was banned.
    #[cfg(test)]
    pub(crate) fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains(peer)
    }

    /// Records that `peer` sent us `bytes` segment bytes in `ms` ms.
    pub(crate) fn record_rate(&mut self, peer: &PeerId, bytes: u64, ms: u64) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.rate = Some(crate::estimate::ewma(p.rate, bytes as f64 / ms.max(1) as f64));
        }
    }

    /// How fast `peer` sent to us, in bytes per ms, if measured.
    pub(crate) fn rate(&self, peer: &PeerId) -> Option<f64> {
        self.peers.get(peer).and_then(|p| p.rate)
    }

    /// Dials that got no answer within `timeout_ms`.
    pub(crate) fn expired_dials(&self, now: Millis, timeout_ms: u64) -> Vec<PeerId> {
        let expired =
            |p: &Peer| matches!(p.link, Link::Connecting { since } if now >= since.saturating_add(timeout_ms));
        self.peers.iter().filter(|(_, p)| expired(p)).map(|(id, _)| id.clone()).collect()
    }

    /// Whether to ask the tracker for candidates now; if so, the next time is set.
    pub(crate) fn tracker_due(&mut self, now: Millis, max: usize, interval_ms: u64) -> bool {
        let due = self.peers.len() < max && self.next_tracker_request.is_none_or(|at| now >= at);
        if due {
            self.next_tracker_request = Some(now.saturating_add(interval_ms));
        }
        due
    }

    /// The earliest peer timer: a dial timing out, or the next tracker request.
    pub(crate) fn timer(&self, max: usize, connect_timeout_ms: u64) -> Option<Millis> {
        let dials = self.peers.values().filter_map(|p| match p.link {
            Link::Connecting { since } => Some(since.saturating_add(connect_timeout_ms)),
            Link::Connected => None,
        });
        let tracker = if self.peers.len() < max { self.next_tracker_request } else { None };
        dials.chain(tracker).min()
    }

    /// Replaces what `peer` holds with its latest `Have`.
    pub(crate) fn set_have(&mut self, peer: &PeerId, have: Vec<SegmentId>, fetching: Vec<SegmentId>) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.have = have.into_iter().collect();
            p.fetching = fetching.into_iter().collect();
            let fetching = &p.fetching;
            p.progress.retain(|id, _| fetching.contains(id));
        }
    }

    /// `peer` holds `len` bytes of `id`, which it is receiving.
    pub(crate) fn set_progress(&mut self, peer: &PeerId, id: SegmentId, len: u64) {
        if let Some(p) = self.peers.get_mut(peer)
            && (p.progress.len() < MAX_PROGRESS || p.progress.contains_key(&id))
        {
            p.fetching.insert(id);
            p.progress.insert(id, len);
        }
    }

    /// Bytes `peer` said it holds of `id` while receiving it (0 if it did not say).
    pub(crate) fn progress(&self, peer: &PeerId, id: SegmentId) -> u64 {
        self.peers.get(peer).and_then(|p| p.progress.get(&id).copied()).unwrap_or(0)
    }

    /// Whether `peer` announced `id`, complete or being received.
    pub(crate) fn announced(&self, peer: &PeerId, id: SegmentId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.have.contains(&id) || p.fetching.contains(&id))
    }

    /// `peer` said it does not hold `id` after all.
    pub(crate) fn lost(&mut self, peer: &PeerId, id: SegmentId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.have.remove(&id);
        }
    }

    /// Connected peers holding `id` complete, except `exclude`, in peerId order.
    pub(crate) fn holders(&self, id: SegmentId, exclude: &BTreeSet<PeerId>) -> Vec<&PeerId> {
        self.peers
            .iter()
            .filter(|(peer, p)| p.connected() && p.have.contains(&id) && !exclude.contains(*peer))
            .map(|(peer, _)| peer)
            .collect()
    }

    /// Connected peers receiving `id` right now (from the CDN or a peer), which relay what they
    /// hold, except `exclude`, in peerId order.
    pub(crate) fn receivers(&self, id: SegmentId, exclude: &BTreeSet<PeerId>) -> Vec<&PeerId> {
        self.peers
            .iter()
            .filter(|(peer, p)| p.connected() && p.fetching.contains(&id) && !exclude.contains(*peer))
            .map(|(peer, _)| peer)
            .collect()
    }

    /// Whether a connected peer announced `id`, complete or being received.
    pub(crate) fn someone_announced(&self, id: SegmentId) -> bool {
        self.peers.values().any(|p| p.connected() && (p.have.contains(&id) || p.fetching.contains(&id)))
    }

    /// Whether a connected peer announced that it is receiving `id`.
    pub(crate) fn someone_fetching(&self, id: SegmentId) -> bool {
        self.peers.values().any(|p| p.connected() && p.fetching.contains(&id))
    }

    /// Records what `peer` announced about itself as a seeder.
    pub(crate) fn set_seeder(&mut self, peer: &PeerId, seeder: Seeder) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.seeder = seeder;
        }
    }

    /// Connected peers that announced any segment of `rendition` (the swarm we seed with), with
    /// what each announced about itself as a seeder.
    pub(crate) fn seeders(&self, rendition: u32) -> impl Iterator<Item = (&PeerId, Seeder)> {
        let mentions = move |p: &Peer| p.have.iter().chain(&p.fetching).any(|id| id.rendition == rendition);
        self.peers.iter().filter(move |(_, p)| p.connected() && mentions(p)).map(|(id, p)| (id, p.seeder))
    }

    /// Connected peers that announced any segment of `rendition`: the swarm we seed with.
    pub(crate) fn in_rendition(&self, rendition: u32) -> impl Iterator<Item = &PeerId> {
        self.seeders(rendition).map(|(id, _)| id)
    }

    /// Counts a request of `peer` for `id`; returns whether it may still be served.
    pub(crate) fn may_serve(&mut self, peer: &PeerId, id: SegmentId) -> bool {
        let Some(p) = self.peers.get_mut(peer) else { return false };
        let count = p.served.entry(id).or_insert(0);
        *count = count.saturating_add(1);
        let allowed = *count <= MAX_SERVES_PER_SEGMENT;
        if p.served.len() > MAX_SERVED_REMEMBERED {
            p.served.pop_first();
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> PeerId {
        name.parse().unwrap()
    }

    const SEG: SegmentId = SegmentId { rendition: 0, msn: 7 };

    #[test]
    fn dials_candidates_up_to_max_and_skips_self() {
        let mut peers = Peers::default();
        peers.discovered(&p("me"), vec![p("me"), p("a"), p("b"), p("c")]);
        assert_eq!(peers.dial(0, 2), vec![p("a"), p("b")]);
        assert_eq!(peers.dial(0, 2), Vec::<PeerId>::new());
        peers.remove(&p("a"), 100);
        assert_eq!(peers.dial(0, 2), vec![p("c")]);
    }

    #[test]
    fn backoff_blocks_redialling_until_it_expires() {
        let mut peers = Peers::default();
        peers.remove(&p("a"), 1_000);
        peers.discovered(&p("me"), vec![p("a")]);
        assert!(peers.dial(500, 4).is_empty());
        peers.discovered(&p("me"), vec![p("a")]);
        assert_eq!(peers.dial(1_000, 4), vec![p("a")]);
    }

    #[test]
    fn incoming_connections_are_accepted_while_there_is_room() {
        let mut peers = Peers::default();
        assert!(peers.opened(p("a"), 1));
        assert!(!peers.opened(p("b"), 1));
        assert_eq!(peers.connected().count(), 1);
    }

    #[test]
    fn dials_expire() {
        let mut peers = Peers::default();
        peers.discovered(&p("me"), vec![p("a")]);
        peers.dial(100, 4);
        assert!(peers.expired_dials(1_099, 1_000).is_empty());
        assert_eq!(peers.expired_dials(1_100, 1_000), vec![p("a")]);
        assert_eq!(peers.timer(4, 1_000), Some(1_100));
    }

    #[test]
    fn tracker_is_asked_at_once_then_every_interval_while_below_max() {
        let mut peers = Peers::default();
        assert!(peers.tracker_due(0, 1, 5_000));
        assert!(!peers.tracker_due(4_999, 1, 5_000));
        assert!(peers.tracker_due(5_000, 1, 5_000));
        peers.opened(p("a"), 1);
        assert!(!peers.tracker_due(20_000, 1, 5_000));
    }

    #[test]
    fn holders_come_from_the_last_have_of_connected_peers() {
        let mut peers = Peers::default();
        peers.opened(p("a"), 4);
        peers.opened(p("b"), 4);
        peers.set_have(&p("a"), vec![SEG], vec![]);
        peers.set_have(&p("b"), vec![], vec![SEG]);
        assert_eq!(peers.holders(SEG, &BTreeSet::new()), vec![&p("a")]);
        assert!(peers.holders(SEG, &BTreeSet::from([p("a")])).is_empty());
        assert!(peers.someone_fetching(SEG));
        assert_eq!(peers.in_rendition(0).count(), 2);
        assert_eq!(peers.in_rendition(1).count(), 0);
        peers.lost(&p("a"), SEG);
        assert!(peers.holders(SEG, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn repeated_requests_for_one_segment_are_capped() {
        let mut peers = Peers::default();
        peers.opened(p("a"), 4);
        let served: Vec<bool> = (0..4).map(|_| peers.may_serve(&p("a"), SEG)).collect();
        assert_eq!(served, vec![true, true, true, false]);
        assert!(!peers.may_serve(&p("stranger"), SEG));
    }
}
