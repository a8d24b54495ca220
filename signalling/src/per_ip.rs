//! The per-address connection cap: a count per IPv4 address or IPv6 /64, held by a guard.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The key connections are counted under: the IPv4 address, or the /64 prefix of an IPv6 address
/// (one subscriber usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Key {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.to_bits()),
                // The upper 64 bits: shifting a u128 right by 64 always fits in a u64.
                None => Self::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// Counts open connections per address; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PerIp {
    max: usize,
    counts: Arc<Mutex<HashMap<Key, usize>>>,
}

/// One counted connection; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    key: Key,
    counts: Arc<Mutex<HashMap<Key, usize>>>,
}

impl PerIp {
    /// A limiter allowing `max` connections per address.
    pub(crate) fn new(max: usize) -> Self {
        Self { max, counts: Arc::default() }
    }

    /// Takes a slot for `ip`, or `None` when it already holds `max` connections.
    pub(crate) fn acquire(&self, ip: IpAddr) -> Option<Slot> {
        let key = Key::from(ip);
        let mut counts = lock(&self.counts);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { key, counts: Arc::clone(&self.counts) })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

fn lock(counts: &Mutex<HashMap<Key, usize>>) -> std::sync::MutexGuard<'_, HashMap<Key, usize>> {
    // Counter updates cannot leave the map inconsistent, so a poisoned lock is still usable.
    counts.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_address_and_freed_on_drop() {
        let limiter = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let (s1, s2) = (limiter.acquire(a).unwrap(), limiter.acquire(a).unwrap());
        assert!(limiter.acquire(a).is_none());
        assert!(limiter.acquire("10.0.0.2".parse().unwrap()).is_some());
        drop(s1);
        let s3 = limiter.acquire(a).unwrap();
        drop((s2, s3));
        assert!(lock(&limiter.counts).is_empty());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let limiter = PerIp::new(1);
        let _one = limiter.acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(limiter.acquire("2001:db8::2".parse().unwrap()).is_none());
        assert!(limiter.acquire("2001:db8:0:1::1".parse().unwrap()).is_some());
        let _v4 = limiter.acquire("10.0.0.1".parse().unwrap()).unwrap();
        assert!(limiter.acquire("::ffff:10.0.0.1".parse().unwrap()).is_none());
    }
}
