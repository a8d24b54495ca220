//! The entries of a DVR log in shared, immutable chunks, so that a consistent view of a 48 h log
//! is taken in microseconds (one `Arc` per [`CHUNK`] entries) while the log keeps changing.
//!
//! Only the newest chunk changes (appends); trimming the front moves an offset into the oldest
//! chunk and drops it once it is passed. A view ([`Entries::from_index`]) shares the chunks; an
//! append to a newest chunk that a view still holds copies that chunk (at most [`CHUNK`]
//! entries) instead of changing what the view sees.

use std::collections::VecDeque;
use std::sync::Arc;

use super::Entry;

/// Entries per chunk.
pub const CHUNK: usize = 1024;

/// The entries of a log, oldest first. Every chunk but the newest is full.
#[derive(Debug, Clone, Default)]
pub struct Entries {
    chunks: VecDeque<Arc<Vec<Entry>>>,
    /// Entries of the oldest chunk that are no longer part of the log.
    skip: usize,
    len: usize,
}

impl Entries {
    /// Appends `entry`.
    pub fn push_back(&mut self, entry: Entry) {
        match self.chunks.back_mut() {
            Some(newest) if newest.len() < CHUNK => Arc::make_mut(newest).push(entry),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(entry);
                self.chunks.push_back(Arc::new(chunk));
            }
        }
        self.len += 1;
    }

    /// Removes the oldest entry; false when there is none.
    pub fn pop_front(&mut self) -> bool {
        let Some(oldest) = self.chunks.front() else { return false };
        self.skip += 1;
        self.len -= 1;
        if self.skip >= oldest.len() {
            self.chunks.pop_front();
            self.skip = 0;
        }
        true
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry at `index` (0 is the oldest).
    pub fn get(&self, index: usize) -> Option<&Entry> {
        if index >= self.len {
            return None;
        }
        // Every chunk but the newest holds exactly CHUNK entries.
        let at = self.skip + index;
        self.chunks.get(at / CHUNK)?.get(at % CHUNK)
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&Entry> {
        self.get(0)
    }

    /// The newest entry.
    pub fn back(&self) -> Option<&Entry> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        let skip = self.skip;
        self.chunks.iter().enumerate().flat_map(move |(i, c)| c[if i == 0 { skip } else { 0 }..].iter())
    }

    /// Index of the first entry for which `pred` is false, when it holds for a prefix of the
    /// entries and not after (binary search).
    pub fn partition_point(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(&pred) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The entries from `index` on, sharing the chunks (`O(len / CHUNK)`).
    pub fn from_index(&self, index: usize) -> Self {
        let index = index.min(self.len);
        let at = self.skip + index;
        Self { chunks: self.chunks.iter().skip(at / CHUNK).cloned().collect(), skip: at % CHUNK, len: self.len - index }
            .normalized()
    }

    /// Drops an oldest chunk that the offset has passed entirely (a view from the end).
    fn normalized(mut self) -> Self {
        if self.chunks.front().is_some_and(|c| self.skip >= c.len()) {
            self.chunks.pop_front();
            self.skip = 0;
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            source_msn: seq,
            path: format!("v/{seq}.ts"),
            segment: m3u8_rs::MediaSegment::default(),
            dsn: 0,
            added_ms: seq * 10,
        }
    }

    fn seqs(e: &Entries) -> Vec<u64> {
        e.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn appends_trims_and_indexes_across_chunks() {
        let mut e = Entries::default();
        let n = 3 * CHUNK as u64 + 7;
        for i in 0..n {
            e.push_back(entry(i));
        }
        assert_eq!((e.len(), e.front().map(|x| x.seq), e.back().map(|x| x.seq)), (n as usize, Some(0), Some(n - 1)));
        for _ in 0..CHUNK + 5 {
            assert!(e.pop_front());
        }
        let first = CHUNK as u64 + 5;
        assert_eq!(e.len(), (n - first) as usize);
        assert_eq!(seqs(&e), (first..n).collect::<Vec<_>>());
        for i in [0, 1, CHUNK - 6, CHUNK - 5, 2 * CHUNK] {
            assert_eq!(e.get(i).map(|x| x.seq), Some(first + i as u64), "{i}");
        }
        assert!(e.get(e.len()).is_none());
        assert_eq!(e.iter().next_back().map(|x| x.seq), Some(n - 1));
        assert_eq!(e.partition_point(|x| x.added_ms < 2000 * 10), (2000 - first) as usize);
        assert_eq!(e.partition_point(|_| true), e.len());
        assert_eq!(e.partition_point(|_| false), 0);
        while e.pop_front() {}
        assert!(e.is_empty() && e.front().is_none() && e.back().is_none());
    }

    #[test]
    fn a_view_does_not_see_later_changes() {
        let mut e = Entries::default();
        for i in 0..CHUNK as u64 + 3 {
            e.push_back(entry(i));
        }
        e.pop_front();
        let view = e.from_index(CHUNK - 2);
        assert_eq!(seqs(&view), vec![CHUNK as u64 - 1, CHUNK as u64, CHUNK as u64 + 1, CHUNK as u64 + 2]);
        e.push_back(entry(9999));
        for _ in 0..CHUNK {
            e.pop_front();
        }
        assert_eq!(view.len(), 4);
        assert_eq!(view.back().map(|x| x.seq), Some(CHUNK as u64 + 2), "the shared newest chunk was copied");
        assert_eq!(seqs(&e), vec![CHUNK as u64 + 1, CHUNK as u64 + 2, 9999]);
        assert!(e.from_index(e.len()).is_empty() && e.from_index(99_999).iter().next().is_none());
        let whole = e.from_index(0);
        assert_eq!(seqs(&whole), seqs(&e));
    }
}
