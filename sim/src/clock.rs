//! The virtual clock: a queue of timed events, earliest first, ties in the order they were queued.
//!
//! Nothing here reads a real clock. The simulation's time only moves when the next event is
//! taken out of the queue, so a run takes as much wall time as its events cost, no more.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Microseconds since the start of a run: the simulator's own time unit, fine enough that a
/// 50-byte message on a fast link does not round up to a whole millisecond.
pub type Micros = u64;

/// Microseconds per millisecond.
pub const US_PER_MS: u64 = 1_000;

/// The heap holds small keys; events wait in a slab, so sifting never moves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    at: Micros,
    seq: u64,
    slot: u32,
}

/// A min-heap of events keyed by (time, insertion order): deterministic for equal times.
#[derive(Debug)]
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<Key>>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    now: Micros,
    popped: u64,
}

impl<E> Queue<E> {
    /// An empty queue whose clock reads `start`.
    pub fn new(start: Micros) -> Self {
        Self { heap: BinaryHeap::new(), slab: Vec::new(), free: Vec::new(), seq: 0, now: start, popped: 0 }
    }

    /// The time of the event being handled (or `start` before the first).
    pub fn now(&self) -> Micros {
        self.now
    }

    /// Queues `event` at `at`; a time in the past is taken as now (time never runs backwards).
    pub fn push(&mut self, at: Micros, event: E) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slab.push(Some(event));
                // More than 4 billion events waiting at once would not fit in memory anyway.
                u32::try_from(self.slab.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.heap.push(Reverse(Key { at: at.max(self.now), seq: self.seq, slot }));
    }

    /// Takes the earliest event if it is due at or before `end`, and moves the clock to it.
    pub fn pop_until(&mut self, end: Micros) -> Option<E> {
        if self.heap.peek()?.0.at > end {
            return None;
        }
        let Reverse(key) = self.heap.pop()?;
        self.now = key.at;
        self.popped += 1;
        self.free.push(key.slot);
        self.slab.get_mut(key.slot as usize)?.take()
    }

    /// Events handled so far.
    pub fn popped(&self) -> u64 {
        self.popped
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event waits.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Whole milliseconds in `us`, rounded down (the engine's clock unit).
pub fn to_ms(us: Micros) -> u64 {
    us / US_PER_MS
}

/// `ms` in microseconds, saturating.
pub fn from_ms(ms: u64) -> Micros {
    ms.saturating_mul(US_PER_MS)
}

/// Time to move `bytes` at `bytes_per_s`, in µs, rounded up (at least 1 µs for a non-empty transfer).
pub fn transfer_us(bytes: u64, bytes_per_s: f64) -> Micros {
    if bytes == 0 {
        return 0;
    }
    let us = (bytes as f64 * 1e6 / bytes_per_s).ceil();
    // Saturating float-to-int cast; rates are validated to be positive and finite.
    (us as Micros).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_time_order_then_in_insertion_order() {
        let mut q = Queue::new(0);
        q.push(30, "c");
        q.push(10, "a");
        q.push(30, "d");
        q.push(10, "b");
        let order: Vec<_> = std::iter::from_fn(|| q.pop_until(u64::MAX)).collect();
        assert_eq!(order, vec!["a", "b", "c", "d"]);
        assert_eq!(q.now(), 30);
        assert_eq!(q.popped(), 4);
    }

    #[test]
    fn stops_at_the_end_and_never_goes_back() {
        let mut q = Queue::new(100);
        q.push(50, 1); // in the past: runs at 100
        q.push(300, 2);
        assert_eq!(q.pop_until(200), Some(1));
        assert_eq!(q.now(), 100);
        assert_eq!(q.pop_until(200), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn transfer_time_rounds_up() {
        assert_eq!(transfer_us(0, 1e3), 0);
        assert_eq!(transfer_us(1_000, 1e6), 1_000);
        assert_eq!(transfer_us(1, 1e9), 1);
        assert_eq!(to_ms(1_999), 1);
        assert_eq!(from_ms(2), 2_000);
    }
}
