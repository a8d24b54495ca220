//! The edge's object cache (pure: time is an argument): complete objects with their freshness,
//! remembered 404s, least-recently-used eviction by bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;

/// A complete cached response.
#[derive(Debug)]
pub struct Stored {
    /// Upstream status: 200, or 404 for a remembered miss.
    pub status: StatusCode,
    /// Headers passed on (type, cache control, length).
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Until when it is served without asking upstream, in edge milliseconds (`u64::MAX`: always,
    /// for immutable segments).
    pub fresh_until_ms: u64,
    /// Until when it may still be served while one request revalidates it, in edge milliseconds.
    pub stale_until_ms: u64,
}

/// What a lookup found.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// Fresh: serve it (HIT).
    Fresh(Arc<Stored>),
    /// Stale but within its stale-while-revalidate window: serve it and refresh (UPDATING).
    Stale(Arc<Stored>),
    /// Too old to serve unless the upstream fails (STALE on error); fetch (MISS).
    Expired(Arc<Stored>),
    /// Nothing cached (MISS).
    Missing,
}

#[derive(Debug)]
struct Slot {
    stored: Arc<Stored>,
    /// Position in the recency order.
    tick: u64,
}

/// A byte-bounded LRU map of cached responses.
#[derive(Debug)]
pub struct Cache {
    max_bytes: u64,
    bytes: u64,
    tick: u64,
    slots: HashMap<String, Slot>,
    by_tick: BTreeMap<u64, String>,
}

impl Cache {
    /// An empty cache of at most `max_bytes` of bodies.
    pub fn new(max_bytes: u64) -> Self {
        Self { max_bytes, bytes: 0, tick: 0, slots: HashMap::new(), by_tick: BTreeMap::new() }
    }

    /// Looks `key` up at `now_ms` and marks it recently used.
    pub fn lookup(&mut self, now_ms: u64, key: &str) -> Lookup {
        self.tick += 1;
        let tick = self.tick;
        let Some(slot) = self.slots.get_mut(key) else { return Lookup::Missing };
        self.by_tick.remove(&slot.tick);
        slot.tick = tick;
        self.by_tick.insert(tick, key.to_owned());
        let s = slot.stored.clone();
        if now_ms < s.fresh_until_ms {
            Lookup::Fresh(s)
        } else if now_ms < s.stale_until_ms {
            Lookup::Stale(s)
        } else {
            Lookup::Expired(s)
        }
    }

    /// Stores `stored` under `key`, evicting least recently used entries to fit. An object larger
    /// than the whole cache is not stored.
    pub fn insert(&mut self, key: &str, stored: Stored) {
        self.remove(key);
        let len = stored.body.len() as u64;
        if len > self.max_bytes {
            return;
        }
        while self.bytes + len > self.max_bytes {
            let Some((_, victim)) = self.by_tick.pop_first() else { break };
            if let Some(slot) = self.slots.remove(&victim) {
                self.bytes -= slot.stored.body.len() as u64;
            }
        }
        self.tick += 1;
        self.by_tick.insert(self.tick, key.to_owned());
        self.slots.insert(key.to_owned(), Slot { stored: Arc::new(stored), tick: self.tick });
        self.bytes += len;
    }

    /// Drops `key`.
    pub fn remove(&mut self, key: &str) {
        if let Some(slot) = self.slots.remove(key) {
            self.by_tick.remove(&slot.tick);
            self.bytes -= slot.stored.body.len() as u64;
        }
    }

    /// Bytes of bodies held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(len: usize, fresh: u64, stale: u64) -> Stored {
        Stored {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            body: Bytes::from(vec![0; len]),
            fresh_until_ms: fresh,
            stale_until_ms: stale,
        }
    }

    #[test]
    fn freshness_then_stale_then_expired() {
        let mut c = Cache::new(100);
        c.insert("p", stored(1, 10, 20));
        assert!(matches!(c.lookup(9, "p"), Lookup::Fresh(_)));
        assert!(matches!(c.lookup(10, "p"), Lookup::Stale(_)));
        assert!(matches!(c.lookup(20, "p"), Lookup::Expired(_)));
        assert!(matches!(c.lookup(0, "q"), Lookup::Missing));
    }

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let mut c = Cache::new(10);
        c.insert("a", stored(4, u64::MAX, u64::MAX));
        c.insert("b", stored(4, u64::MAX, u64::MAX));
        c.lookup(0, "a");
        c.insert("c", stored(4, u64::MAX, u64::MAX));
        assert!(matches!(c.lookup(0, "b"), Lookup::Missing));
        assert!(matches!(c.lookup(0, "a"), Lookup::Fresh(_)));
        assert_eq!(c.bytes(), 8);
        c.insert("huge", stored(11, u64::MAX, u64::MAX));
        assert!(matches!(c.lookup(0, "huge"), Lookup::Missing));
        c.insert("a", stored(2, u64::MAX, u64::MAX));
        assert_eq!(c.bytes(), 6);
    }
}
