//! The tracker: who is watching, and which of them to offer a viewer that asks for peers.

use rand::Rng;
use rand::seq::index;

use crate::config::TrackerMode;

/// Marks a viewer that is not present in a position table.
const ABSENT: usize = usize::MAX;

/// A set of viewer indices with O(1) insert, remove and uniform sampling.
#[derive(Debug, Default)]
struct Members {
    list: Vec<usize>,
    /// Position of each viewer in `list`, or `ABSENT`.
    pos: Vec<usize>,
}

impl Members {
    fn insert(&mut self, v: usize) {
        if self.pos.len() <= v {
            self.pos.resize(v + 1, ABSENT);
        }
        if self.pos[v] == ABSENT {
            self.pos[v] = self.list.len();
            self.list.push(v);
        }
    }

    fn remove(&mut self, v: usize) {
        let Some(&at) = self.pos.get(v).filter(|&&p| p != ABSENT) else { return };
        self.list.swap_remove(at);
        if let Some(&moved) = self.list.get(at) {
            self.pos[moved] = at;
        }
        self.pos[v] = ABSENT;
    }

    /// Up to `k` random members, none of them in `skip` or equal to `me`, appended to `out`.
    fn sample_into(&self, rng: &mut impl Rng, me: usize, k: usize, out: &mut Vec<usize>) {
        let want = k.saturating_sub(out.len());
        if want == 0 || self.list.is_empty() {
            return;
        }
        // Draw a few spares for `me` and those already chosen.
        let draw = (want + out.len() + 1).min(self.list.len());
        for i in index::sample(rng, self.list.len(), draw) {
            let v = self.list[i];
            if out.len() >= k {
                break;
            }
            if v != me && !out.contains(&v) {
                out.push(v);
            }
        }
    }
}

/// The tracker's view of the swarm.
#[derive(Debug)]
pub struct Tracker {
    mode: TrackerMode,
    max_peers: usize,
    all: Members,
    by_region: Vec<Members>,
    region_of: Vec<u16>,
}

impl Tracker {
    /// A tracker with nobody yet, answering with at most `max_peers` candidates.
    pub fn new(mode: TrackerMode, max_peers: usize, regions: u16) -> Self {
        let by_region = (0..regions.max(1)).map(|_| Members::default()).collect();
        Self { mode, max_peers, all: Members::default(), by_region, region_of: Vec::new() }
    }

    /// Viewer `v` of `region` arrived.
    pub fn join(&mut self, v: usize, region: u16) {
        let region = region.min(self.by_region.len() as u16 - 1);
        if self.region_of.len() <= v {
            self.region_of.resize(v + 1, 0);
        }
        self.region_of[v] = region;
        self.all.insert(v);
        self.by_region[usize::from(region)].insert(v);
    }

    /// Viewer `v` left.
    pub fn leave(&mut self, v: usize) {
        self.all.remove(v);
        if let Some(&region) = self.region_of.get(v) {
            self.by_region[usize::from(region)].remove(v);
        }
    }

    /// Viewers present now.
    pub fn present(&self) -> &[usize] {
        &self.all.list
    }

    /// Candidates for viewer `v`: random ones, or those of its region first.
    pub fn candidates(&self, rng: &mut impl Rng, v: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.max_peers);
        if self.mode == TrackerMode::Locality
            && let Some(&region) = self.region_of.get(v)
        {
            self.by_region[usize::from(region)].sample_into(rng, v, self.max_peers, &mut out);
        }
        // Whatever is left, from everyone; a few tries cover the draws that hit chosen ones.
        for _ in 0..4 {
            if out.len() >= self.max_peers.min(self.all.list.len().saturating_sub(1)) {
                break;
            }
            self.all.sample_into(rng, v, self.max_peers, &mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn answers_present_viewers_only_never_the_asker() {
        let mut t = Tracker::new(TrackerMode::Random, 3, 1);
        let mut rng = SmallRng::seed_from_u64(1);
        for v in 0..10 {
            t.join(v, 0);
        }
        t.leave(4);
        t.leave(4);
        for _ in 0..50 {
            let c = t.candidates(&mut rng, 0);
            assert_eq!(c.len(), 3);
            assert!(!c.contains(&0) && !c.contains(&4), "{c:?}");
            let mut dedup = c.clone();
            dedup.sort_unstable();
            dedup.dedup();
            assert_eq!(dedup.len(), 3);
        }
        assert_eq!(t.present().len(), 9);
    }

    #[test]
    fn a_small_swarm_gets_everyone_else() {
        let mut t = Tracker::new(TrackerMode::Random, 20, 1);
        let mut rng = SmallRng::seed_from_u64(2);
        for v in 0..3 {
            t.join(v, 0);
        }
        let mut c = t.candidates(&mut rng, 1);
        c.sort_unstable();
        assert_eq!(c, vec![0, 2]);
    }

    #[test]
    fn locality_prefers_the_same_region_then_fills_up() {
        let mut t = Tracker::new(TrackerMode::Locality, 4, 2);
        let mut rng = SmallRng::seed_from_u64(3);
        for v in 0..20 {
            t.join(v, if v < 3 { 0 } else { 1 });
        }
        let c = t.candidates(&mut rng, 0);
        assert_eq!(c.len(), 4);
        let mut local: Vec<usize> = c[..2].to_vec();
        local.sort_unstable();
        assert_eq!(local, vec![1, 2]);
        assert!(c[2..].iter().all(|&v| v >= 3));
    }
}
