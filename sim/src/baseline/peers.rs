//! The peers of a PML viewer: what each announced, whether we download from it, its speed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use engine::Millis;
use protocol::{PeerId, SegmentId};
use rand::Rng;

use super::P2pmlConfig;

/// Window of the download speed estimate, in ms (PML: 15 s, loading time only).
const SPEED_WINDOW_MS: u64 = 15_000;
/// Unproven peers weigh this share of the fastest peer's speed.
const UNPROVEN_WEIGHT: f64 = 0.1;

#[derive(Debug, Default)]
struct Peer {
    loaded: BTreeSet<u64>,
    http_loading: BTreeSet<u64>,
    /// Whether our one download from it is under way.
    downloading: bool,
    /// Stall errors so far.
    errors: u8,
    /// (arrival, bytes, loading time since the previous arrival in ms), newest last.
    samples: VecDeque<(Millis, u64, u64)>,
    /// When the current download last made progress (or started).
    last_progress: Millis,
}

/// Connected and dialled peers.
#[derive(Debug, Default)]
pub(super) struct Peers {
    connected: BTreeMap<PeerId, Peer>,
    dialling: BTreeMap<PeerId, Millis>,
    /// Per segment: how many connected peers have it loaded, and how many have it loaded or
    /// fetch it over HTTP (kept up to date, so the queue does not scan every peer).
    availability: BTreeMap<u64, (u32, u32)>,
}

impl Peers {
    /// Dials up to `dials_per_announce` new candidates, within `max_peers` in all.
    pub(super) fn discovered(
        &mut self,
        local: &PeerId,
        found: Vec<PeerId>,
        now: Millis,
        c: &P2pmlConfig,
    ) -> Vec<PeerId> {
        let mut dial = Vec::new();
        for peer in found {
            let busy = self.connected.len() + self.dialling.len() >= c.max_peers;
            if dial.len() >= c.dials_per_announce || busy {
                break;
            }
            if &peer != local && !self.connected.contains_key(&peer) && !self.dialling.contains_key(&peer) {
                self.dialling.insert(peer.clone(), now);
                dial.push(peer);
            }
        }
        dial
    }

    /// A channel opened; returns whether it is kept (dialled by us, or room left).
    pub(super) fn connected(&mut self, peer: PeerId, max_peers: usize) -> bool {
        let dialled = self.dialling.remove(&peer).is_some();
        if self.connected.contains_key(&peer) {
            return true;
        }
        if !dialled && self.connected.len() + self.dialling.len() >= max_peers {
            return false;
        }
        self.connected.insert(peer, Peer::default());
        true
    }

    pub(super) fn is_connected(&self, peer: &PeerId) -> bool {
        self.connected.contains_key(peer)
    }

    pub(super) fn count(&self) -> usize {
        self.connected.len()
    }

    pub(super) fn connected_ids(&self) -> Vec<PeerId> {
        self.connected.keys().cloned().collect()
    }

    pub(super) fn remove(&mut self, peer: &PeerId) {
        if let Some(p) = self.connected.remove(peer) {
            self.count_out(&p);
        }
        self.dialling.remove(peer);
    }

    /// Dials older than `timeout_ms` are given up.
    pub(super) fn expire_dials(&mut self, now: Millis, timeout_ms: u64) {
        self.dialling.retain(|_, since| now < *since + timeout_ms);
    }

    pub(super) fn dial_deadline(&self, timeout_ms: u64) -> Option<Millis> {
        self.dialling.values().map(|since| since + timeout_ms).min()
    }

    /// Replaces what `peer` holds with its announcement (full lists, never deltas).
    pub(super) fn announced(&mut self, peer: &PeerId, loaded: &[SegmentId], http: &[SegmentId]) {
        let Some(mut p) = self.connected.remove(peer) else { return };
        self.count_out(&p);
        p.loaded = loaded.iter().map(|id| id.msn).collect();
        p.http_loading = http.iter().map(|id| id.msn).collect();
        self.tally(&p, 1);
        self.connected.insert(peer.clone(), p);
    }

    pub(super) fn absent(&mut self, peer: &PeerId, msn: u64) {
        let Some(p) = self.connected.get_mut(peer) else { return };
        if p.loaded.remove(&msn) {
            let in_http = p.http_loading.contains(&msn);
            self.bump(msn, -1, if in_http { 0 } else { -1 });
        }
    }

    /// Whether a connected peer has `msn` loaded.
    pub(super) fn loaded_by_someone(&self, msn: u64) -> bool {
        self.availability.get(&msn).is_some_and(|c| c.0 > 0)
    }

    /// Whether a connected peer has `msn` loaded or is fetching it over HTTP.
    pub(super) fn loading_or_loaded_by_someone(&self, msn: u64) -> bool {
        self.availability.get(&msn).is_some_and(|c| c.1 > 0)
    }

    fn count_out(&mut self, p: &Peer) {
        self.tally(p, -1);
    }

    /// Adds (`sign` 1) or removes (-1) what `p` announced to the availability counts.
    fn tally(&mut self, p: &Peer, sign: i64) {
        for &msn in &p.loaded {
            self.bump(msn, sign, sign);
        }
        for &msn in p.http_loading.iter().filter(|m| !p.loaded.contains(m)) {
            self.bump(msn, 0, sign);
        }
    }

    fn bump(&mut self, msn: u64, loaded: i64, any: i64) {
        let entry = self.availability.entry(msn).or_default();
        // Counts never go below zero: every decrement undoes an earlier increment.
        entry.0 = u32::try_from(i64::from(entry.0) + loaded).unwrap_or(0);
        entry.1 = u32::try_from(i64::from(entry.1) + any).unwrap_or(0);
        if *entry == (0, 0) {
            self.availability.remove(&msn);
        }
    }

    /// Picks an idle peer that has `msn` loaded, at random weighted by measured speed (unproven
    /// peers at 10 % of the best), and marks it downloading.
    pub(super) fn choose(&mut self, rng: &mut impl Rng, msn: u64, now: Millis) -> Option<PeerId> {
        let candidates: Vec<(&PeerId, f64)> = self
            .connected
            .iter()
            .filter(|(_, p)| !p.downloading && p.loaded.contains(&msn))
            .map(|(id, p)| (id, speed(p, now)))
            .collect();
        let best = candidates.iter().map(|(_, s)| *s).fold(0.0, f64::max);
        let floor = if best > 0.0 { best * UNPROVEN_WEIGHT } else { 1.0 };
        let weights: Vec<f64> = candidates.iter().map(|(_, s)| s.max(floor)).collect();
        let mut pick = rng.random::<f64>() * weights.iter().sum::<f64>();
        let mut chosen = candidates.last()?.0;
        for ((id, _), w) in candidates.iter().zip(&weights) {
            if pick < *w {
                chosen = id;
                break;
            }
            pick -= w;
        }
        let chosen = chosen.clone();
        if let Some(p) = self.connected.get_mut(&chosen) {
            p.downloading = true;
            p.last_progress = now;
        }
        Some(chosen)
    }

    pub(super) fn received(&mut self, peer: &PeerId, bytes: u64, now: Millis) {
        let Some(p) = self.connected.get_mut(peer) else { return };
        p.samples.push_back((now, bytes, now.saturating_sub(p.last_progress)));
        p.last_progress = now;
        while p.samples.front().is_some_and(|(at, ..)| at + SPEED_WINDOW_MS < now) {
            p.samples.pop_front();
        }
    }

    pub(super) fn download_done(&mut self, peer: &PeerId) {
        if let Some(p) = self.connected.get_mut(peer) {
            p.downloading = false;
        }
    }

    /// Counts a stall of `peer`; returns whether it reached `retries` (drop the peer).
    pub(super) fn stalled(&mut self, peer: &PeerId, retries: u8) -> bool {
        let Some(p) = self.connected.get_mut(peer) else { return false };
        p.errors = p.errors.saturating_add(1);
        p.errors >= retries
    }
}

/// Loading-only download speed over the last 15 s, in bytes/ms (0 when unproven).
fn speed(p: &Peer, now: Millis) -> f64 {
    let recent = p.samples.iter().filter(|(at, ..)| at + SPEED_WINDOW_MS >= now);
    let (bytes, ms) = recent.fold((0u64, 0u64), |(b, t), (_, bytes, dt)| (b + bytes, t + dt));
    if bytes == 0 { 0.0 } else { bytes as f64 / ms.max(1) as f64 }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    fn p(name: &str) -> PeerId {
        name.parse().unwrap()
    }

    fn id(msn: u64) -> SegmentId {
        SegmentId { rendition: 0, msn }
    }

    #[test]
    fn dials_five_per_answer_within_the_cap() {
        let mut peers = Peers::default();
        let config = P2pmlConfig { max_peers: 7, ..P2pmlConfig::default() };
        let found: Vec<PeerId> = (0..10).map(|i| p(&format!("x{i}"))).collect();
        assert_eq!(peers.discovered(&p("me"), found.clone(), 0, &config).len(), 5);
        assert_eq!(peers.discovered(&p("me"), found, 0, &config).len(), 2);
        assert!(!peers.connected(p("stranger"), 7), "full");
        assert!(peers.connected(p("x0"), 7), "dialled");
    }

    #[test]
    fn picks_only_idle_peers_that_have_the_segment_and_prefers_fast_ones() {
        let mut peers = Peers::default();
        for name in ["fast", "slow", "none"] {
            peers.connected(p(name), 10);
        }
        peers.announced(&p("fast"), &[id(1), id(2)], &[]);
        peers.announced(&p("slow"), &[id(1), id(2)], &[]);
        peers.announced(&p("none"), &[], &[id(1)]);
        assert!(peers.loading_or_loaded_by_someone(1) && peers.loaded_by_someone(1));
        // fast: 100 kB in 10 ms; slow: 100 kB in 1 s.
        peers.connected.get_mut(&p("fast")).unwrap().samples.push_back((1_000, 100_000, 10));
        peers.connected.get_mut(&p("slow")).unwrap().samples.push_back((1_000, 100_000, 1_000));
        let mut rng = SmallRng::seed_from_u64(1);
        let mut fast = 0;
        for _ in 0..200 {
            let chosen = peers.choose(&mut rng, 1, 2_000).unwrap();
            fast += usize::from(chosen == p("fast"));
            peers.download_done(&chosen);
        }
        assert!(fast > 150, "{fast}");
        let first = peers.choose(&mut rng, 2, 2_000).unwrap();
        let second = peers.choose(&mut rng, 2, 2_000).unwrap();
        assert_ne!(first, second, "one download per peer");
        assert_eq!(peers.choose(&mut rng, 2, 2_000), None);
    }
}
