//! An append-only list of body chunks that readers follow without taking a lock.
//!
//! One writer appends; any number of readers each walk it with their own [`Cursor`]. Chunks sit
//! in blocks of [`BLOCK_LEN`] write-once slots, linked forward. A reader's step is an acquire
//! load of a slot and a clone of the shared `Bytes`: when a fill fans its first chunk out to a
//! thousand readers on two cores, nothing they touch is written by another reader, so no lock's
//! cache line moves between the cores once per reader.

use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// Slots per block.
const BLOCK_LEN: usize = 32;

#[derive(Debug, Default)]
struct Block {
    slots: [OnceLock<Bytes>; BLOCK_LEN],
    /// Set before the first slot of the next block is.
    next: OnceLock<Arc<Block>>,
}

impl Drop for Block {
    /// Unlinks the chain iteratively: a long object in small chunks must not recurse once per
    /// block. A block still held by a reader's cursor ends the walk (that reader drops the rest).
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(block) = next {
            next = Arc::try_unwrap(block).ok().and_then(|mut b| b.next.take());
        }
    }
}

/// The list.
#[derive(Debug)]
pub(super) struct Chunks {
    first: Arc<Block>,
    /// The writer's position: the last block and how many chunks there are. Readers never take
    /// this lock.
    tail: Mutex<(Arc<Block>, usize)>,
}

impl Default for Chunks {
    fn default() -> Self {
        let first = Arc::new(Block::default());
        Self { tail: Mutex::new((first.clone(), 0)), first }
    }
}

impl Chunks {
    /// Appends `chunk`; visible to every cursor once this returns.
    pub(super) fn push(&self, chunk: Bytes) {
        // Only the writer takes this lock; a panic cannot leave it half-updated (the count moves
        // after the slot is set).
        let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let (block, len) = &mut *tail;
        let slot = *len % BLOCK_LEN;
        if slot == 0 && *len > 0 {
            let next = Arc::new(Block::default());
            // Only this writer links blocks, once per block.
            let _ = block.next.set(next.clone());
            *block = next;
        }
        // Each slot is set once: `len` only grows.
        let _ = block.slots[slot].set(chunk);
        *len += 1;
    }

    /// A cursor at the first chunk.
    pub(super) fn cursor(&self) -> Cursor {
        Cursor { block: self.first.clone(), start: 0, next: 0 }
    }
}

/// One reader's position in [`Chunks`].
#[derive(Debug)]
pub(super) struct Cursor {
    block: Arc<Block>,
    /// Index of the block's first slot.
    start: usize,
    /// Index of the next chunk to hand out.
    next: usize,
}

impl Cursor {
    /// The next chunk, if it was pushed; advances past it.
    pub(super) fn next_chunk(&mut self) -> Option<Bytes> {
        if self.next - self.start == BLOCK_LEN {
            let next = self.block.next.get()?.clone();
            self.block = next;
            self.start += BLOCK_LEN;
        }
        let chunk = self.block.slots[self.next - self.start].get()?.clone();
        self.next += 1;
        Some(chunk)
    }

    /// How many chunks were handed out.
    pub(super) fn position(&self) -> usize {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_follow_the_writer_across_blocks() {
        let chunks = Chunks::default();
        let mut early = chunks.cursor();
        assert_eq!(early.next_chunk(), None);
        let n = BLOCK_LEN * 3 + 5;
        for i in 0..n {
            chunks.push(Bytes::from(i.to_string()));
            assert_eq!(early.next_chunk(), Some(Bytes::from(i.to_string())));
            assert_eq!(early.next_chunk(), None);
        }
        let mut late = chunks.cursor();
        let all: Vec<Bytes> = std::iter::from_fn(|| late.next_chunk()).collect();
        assert_eq!(all.len(), n);
        assert_eq!(all[n - 1], Bytes::from((n - 1).to_string()));
        assert_eq!(late.position(), n);
    }

    #[test]
    fn a_long_chain_drops_without_recursing() {
        let chunks = Chunks::default();
        for _ in 0..BLOCK_LEN * 20_000 {
            chunks.push(Bytes::new());
        }
        let held = chunks.cursor();
        drop(chunks);
        drop(held);
    }
}
