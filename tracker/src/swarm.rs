//! Pure logic: which peer is in which swarm, and who is a good candidate for whom.
//!
//! No IO and no clock: every call takes `now`. The route handlers drive it under one lock and a
//! timer task calls [`SwarmRegistry::expire`].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use protocol::{PeerId, SwarmId};

/// All live peers, grouped by swarm, ordered by their last activity.
///
/// Every activity gets a fresh, increasing tick; a swarm maps ticks to peers, so iterating it
/// backwards yields the most recently active peers first, and the global `by_age` map yields the
/// least recently active first for expiry. All operations are `O(log n)` plus what they return.
#[derive(Debug)]
pub(crate) struct SwarmRegistry {
    timeout: Duration,
    capacity: usize,
    peers: HashMap<PeerId, Entry>,
    swarms: HashMap<SwarmId, BTreeMap<u64, PeerId>>,
    by_age: BTreeMap<u64, PeerId>,
    next_tick: u64,
}

#[derive(Debug)]
struct Entry {
    swarm: SwarmId,
    last_seen: Instant,
    tick: u64,
}

/// The registry holds `capacity` peers and none of them has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegistryFull;

impl SwarmRegistry {
    /// An empty registry that drops peers silent for `timeout` and holds at most `capacity` peers.
    pub(crate) fn new(timeout: Duration, capacity: usize) -> Self {
        Self { timeout, capacity, peers: HashMap::new(), swarms: HashMap::new(), by_age: BTreeMap::new(), next_tick: 0 }
    }

    /// Records activity of `peer` at `now` in `swarm`, moving it out of its previous swarm.
    ///
    /// # Errors
    /// [`RegistryFull`] when `peer` is new and the registry is full even after expiring.
    pub(crate) fn track(&mut self, now: Instant, peer: &PeerId, swarm: SwarmId) -> Result<(), RegistryFull> {
        match self.peers.remove(peer) {
            Some(old) => {
                self.by_age.remove(&old.tick);
                self.remove_from_swarm(&old.swarm, old.tick);
            }
            None if self.peers.len() >= self.capacity => {
                self.expire(now);
                if self.peers.len() >= self.capacity {
                    return Err(RegistryFull);
                }
            }
            None => {}
        }
        let tick = self.next_tick;
        self.next_tick += 1;
        self.swarms.entry(swarm.clone()).or_default().insert(tick, peer.clone());
        self.by_age.insert(tick, peer.clone());
        self.peers.insert(peer.clone(), Entry { swarm, last_seen: now, tick });
        Ok(())
    }

    /// Up to `max` other live peers of `peer`'s swarm, most recently active first; never `peer`
    /// itself. Empty when `peer` is not tracked.
    pub(crate) fn peers_for(&self, now: Instant, peer: &PeerId, max: usize) -> Vec<PeerId> {
        let Some(entry) = self.peers.get(peer) else {
            return Vec::new();
        };
        let Some(members) = self.swarms.get(&entry.swarm) else {
            return Vec::new();
        };
        members
            .values()
            .rev()
            .take_while(|p| self.peers.get(*p).is_some_and(|e| self.is_fresh(e, now)))
            .filter(|p| *p != peer)
            .take(max)
            .cloned()
            .collect()
    }

    /// Drops every peer not seen for the timeout; returns how many were dropped.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let mut dropped = 0;
        while let Some((&tick, peer)) = self.by_age.first_key_value() {
            let fresh = self.peers.get(peer).is_some_and(|e| self.is_fresh(e, now));
            if fresh {
                break;
            }
            let peer = peer.clone();
            self.by_age.remove(&tick);
            if let Some(entry) = self.peers.remove(&peer) {
                self.remove_from_swarm(&entry.swarm, entry.tick);
            }
            dropped += 1;
        }
        dropped
    }

    /// Number of tracked peers.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Number of swarms with at least one peer.
    pub(crate) fn swarm_count(&self) -> usize {
        self.swarms.len()
    }

    /// Whether a new peer would be refused now (before expiring anyone).
    pub(crate) fn is_full(&self) -> bool {
        self.peers.len() >= self.capacity
    }

    fn is_fresh(&self, entry: &Entry, now: Instant) -> bool {
        // A `now` before `last_seen` (callers racing for the lock) counts as fresh.
        now.checked_duration_since(entry.last_seen).is_none_or(|age| age < self.timeout)
    }

    fn remove_from_swarm(&mut self, swarm: &SwarmId, tick: u64) {
        if let Some(members) = self.swarms.get_mut(swarm) {
            members.remove(&tick);
            if members.is_empty() {
                self.swarms.remove(swarm);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(60);

    fn id(s: &str) -> PeerId {
        s.parse().unwrap()
    }

    fn swarm(rendition: u32) -> SwarmId {
        SwarmId { customer: "acme".into(), content: "live".into(), rendition }
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn peers_are_most_recent_first_and_never_self() {
        let t0 = Instant::now();
        let mut reg = SwarmRegistry::new(TIMEOUT, 100);
        for (i, p) in ["a", "b", "c", "d"].iter().enumerate() {
            reg.track(secs(t0, i as u64), &id(p), swarm(0)).unwrap();
        }
        assert_eq!(reg.peers_for(secs(t0, 5), &id("b"), 10), vec![id("d"), id("c"), id("a")]);
        assert_eq!(reg.peers_for(secs(t0, 5), &id("b"), 2), vec![id("d"), id("c")]);
        // Activity moves a peer to the front.
        reg.track(secs(t0, 6), &id("a"), swarm(0)).unwrap();
        assert_eq!(reg.peers_for(secs(t0, 6), &id("b"), 10), vec![id("a"), id("d"), id("c")]);
    }

    #[test]
    fn swarms_are_separate_and_tracking_moves_peers() {
        let t0 = Instant::now();
        let mut reg = SwarmRegistry::new(TIMEOUT, 100);
        reg.track(t0, &id("a"), swarm(0)).unwrap();
        reg.track(t0, &id("b"), swarm(1)).unwrap();
        assert!(reg.peers_for(t0, &id("a"), 10).is_empty());
        assert_eq!(reg.swarm_count(), 2);
        reg.track(t0, &id("a"), swarm(1)).unwrap();
        assert_eq!(reg.peers_for(t0, &id("b"), 10), vec![id("a")]);
        assert_eq!((reg.peer_count(), reg.swarm_count()), (2, 1));
        let other_content = SwarmId { content: "other".into(), ..swarm(1) };
        reg.track(t0, &id("c"), other_content).unwrap();
        assert_eq!(reg.peers_for(t0, &id("c"), 10), Vec::<PeerId>::new());
    }

    #[test]
    fn unknown_peer_gets_nothing() {
        let reg = SwarmRegistry::new(TIMEOUT, 100);
        assert!(reg.peers_for(Instant::now(), &id("x"), 10).is_empty());
    }

    #[test]
    fn silent_peers_expire_and_are_not_offered_before() {
        let t0 = Instant::now();
        let mut reg = SwarmRegistry::new(TIMEOUT, 100);
        reg.track(t0, &id("old"), swarm(0)).unwrap();
        reg.track(secs(t0, 30), &id("new"), swarm(0)).unwrap();
        reg.track(secs(t0, 61), &id("asker"), swarm(0)).unwrap();
        // Not expired yet, but already stale: not offered.
        assert_eq!(reg.peers_for(secs(t0, 61), &id("asker"), 10), vec![id("new")]);
        assert_eq!(reg.expire(secs(t0, 61)), 1);
        assert_eq!(reg.peer_count(), 2);
        assert_eq!(reg.expire(secs(t0, 200)), 2);
        assert_eq!((reg.peer_count(), reg.swarm_count()), (0, 0));
    }

    #[test]
    fn capacity_refuses_new_peers_unless_some_expire() {
        let t0 = Instant::now();
        let mut reg = SwarmRegistry::new(TIMEOUT, 2);
        reg.track(t0, &id("a"), swarm(0)).unwrap();
        reg.track(secs(t0, 10), &id("b"), swarm(0)).unwrap();
        assert!(reg.is_full());
        assert_eq!(reg.track(secs(t0, 20), &id("c"), swarm(0)), Err(RegistryFull));
        // Known peers still update when full.
        assert_eq!(reg.track(secs(t0, 20), &id("a"), swarm(1)), Ok(()));
        // Once "b" is silent for the timeout, "c" takes its place.
        assert_eq!(reg.track(secs(t0, 75), &id("c"), swarm(0)), Ok(()));
        assert_eq!(reg.peers_for(secs(t0, 75), &id("c"), 10), Vec::<PeerId>::new());
        assert_eq!(reg.peer_count(), 2);
    }
}
