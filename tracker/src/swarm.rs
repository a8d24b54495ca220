//! Pure logic: which peer is in which swarm, and who is a good candidate for whom.
//!
//! No IO and no clock: every call takes `now`. The route handlers drive it under one lock and a
//! timer task calls [`SwarmRegistry::expire`].
//!
//! Memory per (peer, swarm) is kept small (measured by `the_state_per_peer_stays_under_256_bytes`
//! and published in docs/BENCHMARKS.md): a peer is one fixed-size [`Slot`] in a vector, found
//! through a map from its inline peerId, and one entry in its swarm's recency index and in the
//! global age index. Swarm ids are stored once per swarm.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use protocol::api::PeeringRules;
use protocol::{PeerId, SwarmId};

use crate::locality::Locality;
use crate::peer_key::PeerKey;

/// What a peer told about itself that matters for matching (see [`protocol::api::PeerReport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Profile {
    /// Where it is.
    pub(crate) locality: Locality,
    /// Measured uplink, in kbit/s (0: unknown).
    pub(crate) uplink_kbps: u32,
    /// It is on a cellular connection.
    pub(crate) cellular: bool,
    /// Its viewer allows uploading.
    pub(crate) upload_allowed: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Self { locality: Locality::default(), uplink_kbps: 0, cellular: false, upload_allowed: true }
    }
}

/// The asking peer's own history, from its report: peers it connected to, and peers it failed with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct History<'a> {
    pub(crate) connected: &'a [PeerId],
    pub(crate) failed: &'a [PeerId],
}

/// One tracked peer, fixed size (72 bytes).
#[derive(Debug, Clone)]
struct Slot {
    key: PeerKey,
    cellular: bool,
    upload_allowed: bool,
    swarm: u32,
    /// Seconds since the registry's epoch.
    last_seen_s: u32,
    uplink_kbps: u32,
    tick: u64,
    locality: Locality,
}

#[derive(Debug)]
struct Swarm {
    id: SwarmId,
    /// Members by their last activity tick.
    members: BTreeMap<u64, u32>,
}

/// All live peers, grouped by swarm, ordered by their last activity.
///
/// Every activity gets a fresh, increasing tick; a swarm maps ticks to peers, so iterating it
/// backwards yields the most recently active peers first, and the global `by_age` map yields the
/// least recently active first for expiry.
#[derive(Debug)]
pub(crate) struct SwarmRegistry {
    timeout_s: u32,
    capacity: usize,
    scan_limit: usize,
    epoch: Instant,
    index: HashMap<PeerKey, u32>,
    slots: Vec<Slot>,
    free_slots: Vec<u32>,
    swarm_index: HashMap<SwarmId, u32>,
    swarms: Vec<Option<Swarm>>,
    free_swarms: Vec<u32>,
    by_age: BTreeMap<u64, u32>,
    next_tick: u64,
}

/// A swarm's size is counted up to this many members (an agent only needs to know whether the
/// swarm is small enough for every viewer to be its neighbour).
pub(crate) const MAX_COUNTED_MEMBERS: usize = 256;

/// A candidate's rank, compared as a tuple, higher first: not failed with the asker, closeness,
/// connected before, uplink, recency.
type Rank = (bool, u8, bool, u32, u64);

/// The registry holds `capacity` peers and none of them has expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RegistryFull;

impl SwarmRegistry {
    /// An empty registry that drops peers silent for `timeout`, holds at most `capacity` peers,
    /// and ranks at most `scan_limit` of the most recently active members per request.
    pub(crate) fn new(timeout: Duration, capacity: usize, scan_limit: usize) -> Self {
        Self {
            timeout_s: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX).max(1),
            capacity,
            scan_limit: scan_limit.max(1),
            epoch: Instant::now(),
            index: HashMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            swarm_index: HashMap::new(),
            swarms: Vec::new(),
            free_swarms: Vec::new(),
            by_age: BTreeMap::new(),
            next_tick: 0,
        }
    }

    /// Records activity of `peer` at `now` in `swarm`, moving it out of its previous swarm. A
    /// `profile` replaces the stored one; `None` keeps it except for the locality given.
    ///
    /// # Errors
    /// [`RegistryFull`] when `peer` is new and the registry is full even after expiring.
    pub(crate) fn track(
        &mut self,
        now: Instant,
        peer: &PeerId,
        swarm: SwarmId,
        locality: Locality,
        profile: Option<Profile>,
    ) -> Result<(), RegistryFull> {
        let key = PeerKey::from(peer);
        let slot = match self.index.get(&key) {
            Some(&slot) => {
                self.detach(slot);
                slot
            }
            None => {
                if self.index.len() >= self.capacity {
                    self.expire(now);
                    if self.index.len() >= self.capacity {
                        return Err(RegistryFull);
                    }
                }
                let fresh = Slot {
                    key,
                    cellular: false,
                    upload_allowed: true,
                    swarm: 0,
                    last_seen_s: 0,
                    uplink_kbps: 0,
                    tick: 0,
                    locality,
                };
                let slot = match self.free_slots.pop() {
                    Some(slot) => {
                        self.slots[slot as usize] = fresh;
                        slot
                    }
                    None => {
                        self.slots.push(fresh);
                        // The registry is capped far below u32::MAX peers by its capacity.
                        u32::try_from(self.slots.len() - 1).map_err(|_| RegistryFull)?
                    }
                };
                self.index.insert(key, slot);
                slot
            }
        };
        let swarm = self.swarm_slot(swarm);
        let tick = self.next_tick;
        self.next_tick += 1;
        let last_seen_s = self.seconds(now);
        let entry = &mut self.slots[slot as usize];
        entry.swarm = swarm;
        entry.tick = tick;
        entry.last_seen_s = last_seen_s;
        entry.locality = locality;
        if let Some(p) = profile {
            (entry.uplink_kbps, entry.cellular, entry.upload_allowed) = (p.uplink_kbps, p.cellular, p.upload_allowed);
        }
        if let Some(s) = self.swarms[swarm as usize].as_mut() {
            s.members.insert(tick, slot);
        }
        self.by_age.insert(tick, slot);
        Ok(())
    }

    /// Up to `max` other live peers of `peer`'s swarm that `rules` let it download from, best
    /// first; never `peer` itself. Empty when `peer` is not tracked or its AS is excluded.
    ///
    /// Of the [`SwarmRegistry::new`] `scan_limit` most recently active members, candidates rank
    /// by: the asker's failures with them last; then closeness (same /24 or /48, same AS, same
    /// region); then the asker's past successes with them first; then measured uplink; then
    /// recency.
    pub(crate) fn peers_for(
        &self,
        now: Instant,
        peer: &PeerId,
        max: usize,
        rules: &PeeringRules,
        history: History<'_>,
    ) -> Vec<PeerId> {
        let Some(asker) = self.index.get(&PeerKey::from(peer)).map(|&s| &self.slots[s as usize]) else {
            return Vec::new();
        };
        let Some(Some(swarm)) = self.swarms.get(asker.swarm as usize) else {
            return Vec::new();
        };
        if max == 0 || !rules.upload_allowed || !rules.asn_permitted(asker.locality.asn()) {
            return Vec::new();
        }
        let now_s = self.seconds(now);
        let mut ranked: Vec<(Rank, &Slot)> = swarm
            .members
            .values()
            .rev()
            .map(|&s| &self.slots[s as usize])
            .take_while(|c| self.is_fresh(c, now_s))
            .filter(|c| c.key != asker.key)
            .take(self.scan_limit)
            .filter(|c| c.upload_allowed && (rules.upload_on_cellular || !c.cellular))
            .filter(|c| rules.asn_permitted(c.locality.asn()))
            .map(|c| {
                let id = c.key.as_str();
                let failed = history.failed.iter().any(|p| p.as_str() == id);
                let connected = history.connected.iter().any(|p| p.as_str() == id);
                ((!failed, asker.locality.closeness(&c.locality), connected, c.uplink_kbps, c.tick), c)
            })
            .collect();
        ranked.sort_unstable_by_key(|r| std::cmp::Reverse(r.0));
        ranked.into_iter().take(max).map(|(_, c)| c.key.to_peer_id()).collect()
    }

    /// Live members of `peer`'s swarm, `peer` included, counted up to [`MAX_COUNTED_MEMBERS`];
    /// 0 when `peer` is not tracked.
    pub(crate) fn swarm_size(&self, now: Instant, peer: &PeerId) -> usize {
        let Some(asker) = self.index.get(&PeerKey::from(peer)).map(|&s| &self.slots[s as usize]) else { return 0 };
        let Some(Some(swarm)) = self.swarms.get(asker.swarm as usize) else { return 0 };
        let now_s = self.seconds(now);
        let members = swarm.members.values().rev().map(|&s| &self.slots[s as usize]);
        members.take_while(|c| self.is_fresh(c, now_s)).take(MAX_COUNTED_MEMBERS).count()
    }

    /// Drops every peer not seen for the timeout; returns how many were dropped.
    pub(crate) fn expire(&mut self, now: Instant) -> usize {
        let now_s = self.seconds(now);
        let mut dropped = 0;
        while let Some((_, &slot)) = self.by_age.first_key_value() {
            if self.is_fresh(&self.slots[slot as usize], now_s) {
                break;
            }
            self.detach(slot);
            self.index.remove(&self.slots[slot as usize].key);
            self.free_slots.push(slot);
            dropped += 1;
        }
        dropped
    }

    /// Number of tracked peers.
    pub(crate) fn peer_count(&self) -> usize {
        self.index.len()
    }

    /// Number of swarms with at least one peer.
    pub(crate) fn swarm_count(&self) -> usize {
        self.swarm_index.len()
    }

    /// Whether a new peer would be refused now (before expiring anyone).
    pub(crate) fn is_full(&self) -> bool {
        self.index.len() >= self.capacity
    }

    fn seconds(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    fn is_fresh(&self, slot: &Slot, now_s: u32) -> bool {
        // A `now` before `last_seen` (callers racing for the lock) counts as fresh.
        now_s.saturating_sub(slot.last_seen_s) < self.timeout_s
    }

    /// Removes `slot` from its swarm and the age index (it stays in `index`).
    fn detach(&mut self, slot: u32) {
        let Slot { swarm, tick, .. } = self.slots[slot as usize];
        self.by_age.remove(&tick);
        let Some(Some(s)) = self.swarms.get_mut(swarm as usize) else { return };
        s.members.remove(&tick);
        if s.members.is_empty() {
            if let Some(s) = self.swarms[swarm as usize].take() {
                self.swarm_index.remove(&s.id);
            }
            self.free_swarms.push(swarm);
        }
    }

    fn swarm_slot(&mut self, id: SwarmId) -> u32 {
        if let Some(&slot) = self.swarm_index.get(&id) {
            return slot;
        }
        let swarm = Some(Swarm { id: id.clone(), members: BTreeMap::new() });
        let slot = match self.free_swarms.pop() {
            Some(slot) => {
                self.swarms[slot as usize] = swarm;
                slot
            }
            None => {
                self.swarms.push(swarm);
                // At most one swarm per peer, and peers are capped far below u32::MAX.
                u32::try_from(self.swarms.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.swarm_index.insert(id, slot);
        slot
    }
}

#[cfg(test)]
#[path = "swarm_tests.rs"]
mod tests;
