//! One segment from two peers at once: a late transfer is split into a head and a tail.
//!
//! A peer transfer whose projected end (at the speed measured since its first byte) misses the
//! segment's deadline is split when another peer holds the segment whole, or relays it and
//! already holds bytes past the split point, unless that peer is known to send slower. The
//! other peer is asked for the tail `mid..`, and the running request becomes the head
//! `held..mid`. `mid` shares the missing bytes in proportion to the two peers' speeds (the
//! running transfer's, and the other peer's from earlier transfers, the same when unknown),
//! but the head gets no more than it sends in 80 % of the time left before the deadline.
//! A joiner's first segment during the startup wait (`startup.rs`) is split as soon as its size
//! is known (first chunk in), in halves, whether or not it is projected late.
//!
//! The head's request is not narrowed on the wire (`Cancel` and a new `Request` with an end):
//! the new request would pass the sender's upload gating again while its uplink still owes the
//! old one's queued chunks, and in the simulator about half of such range requests were
//! refused. Instead the head's bytes past `mid` are dropped, and its request is cancelled when
//! the prefix reaches `mid`.
//!
//! The tail is kept apart until the contiguous prefix reaches it, then appended; if its request
//! still runs, it becomes the segment's main transfer. Only the prefix is announced
//! (`HaveChunk`) and relayed, and the assembled segment is checked against its digest like any
//! other (`integrity.rs` tells which sender to ban).
//!
//! When a part fails, the usual fallbacks apply: a tail that stalls, is refused or whose peer
//! leaves is dropped, and the head's request, still running to the end of the segment, brings
//! its bytes; a head that stalls is asked of another peer for `held..mid` (of the tail's
//! sender once the tail is in, unless the CDN is due first); when the CDN has to step in, the
//! tail is dropped and the CDN fetches everything from the prefix on (an HTTP `Range` has a
//! single start).

use protocol::peer::Message;
use protocol::{PeerId, SegmentId};

use crate::scheduler::MIN_JUDGE_MS;
use crate::segments::{Fetch, Tail};
use crate::{Engine, Millis};

/// Smallest part of a split, in bytes: below that a second request is not worth its round trip.
const MIN_PART_BYTES: u64 = 2 * 1024;

/// Share of the time left that the head's range is sized to fill at the head's speed.
const HEAD_SAFETY: f64 = 0.8;

impl Engine {
    /// Splits the running peer transfer of `id` if it will miss the deadline and a second peer
    /// can take the tail; returns whether it did.
    pub(crate) fn try_split(&mut self, now: Millis, id: SegmentId) -> bool {
        let Some(seg) = self.store.get(id) else { return false };
        let Fetch::Peer { peer: head, .. } = &seg.fetch else { return false };
        let (Some(total), Some(deadline), Some(first), None) =
            (seg.expected_len(), self.deadline(seg), seg.first_byte, &seg.tail)
        else {
            return false;
        };
        let elapsed = now.saturating_sub(first);
        let held = seg.data.len() as u64;
        let remaining = total.saturating_sub(held);
        // A joiner's first segment is split as soon as its size is known: every ms of it is
        // startup time (`startup.rs`). Others only once projected late.
        let startup = self.startup_due(seg).is_some();
        if remaining < 2 * MIN_PART_BYTES || (elapsed < MIN_JUDGE_MS && !startup) {
            return false;
        }
        // Measured from the first byte, once there is enough to judge by.
        let measured =
            (elapsed >= MIN_JUDGE_MS).then(|| (held.saturating_sub(seg.fetch_started.1)) as f64 / elapsed as f64);
        let late = measured.is_some_and(|rate| now as f64 + remaining as f64 / rate.max(1e-6) > deadline as f64);
        if !late && !startup {
            return false;
        }
        let mut exclude = seg.failed_peers.clone();
        exclude.extend(seg.uploads.iter().map(|u| u.peer.clone()));
        exclude.extend(seg.busy.iter().filter(|(_, at)| **at > now).map(|(p, _)| p.clone()));
        exclude.insert(head.clone());
        // A peer known to send slower than the running transfer would not help.
        let fast = |p: &&PeerId| measured.is_none_or(|rate| self.peers.rate(p).is_none_or(|r| r > rate));
        let mut candidates: Vec<PeerId> = self.peers.holders(id, &exclude).into_iter().filter(fast).cloned().collect();
        if candidates.is_empty() {
            // A relay must already hold bytes past an even split.
            let half = held + remaining / 2;
            let receivers = self.peers.receivers(id, &exclude).into_iter();
            candidates = receivers.filter(|p| self.peers.progress(p, id) > half).filter(fast).cloned().collect();
        }
        let Some(second) = self.pick_peer(candidates) else { return false };
        // The head gets its share by speed, but no more than it sends by the deadline (with a
        // fifth to spare); halves while the head's speed is not measured yet. Truncation
        // intended: byte counts.
        let head_bytes = match measured {
            Some(rate) => {
                let other_rate = self.peers.rate(&second).unwrap_or(rate).max(1e-6);
                let share = rate.max(1e-6) / (rate.max(1e-6) + other_rate);
                let in_time = (rate * deadline.saturating_sub(now) as f64 * HEAD_SAFETY) as u64;
                ((remaining as f64 * share) as u64).min(in_time)
            }
            None => remaining / 2,
        };
        let mid = (held + head_bytes).clamp(held + MIN_PART_BYTES, total - MIN_PART_BYTES);
        let deadline_ms = self.deadline_ms(now, id);
        let tail_request = self.next_request_id();
        let Some(seg) = self.store.get_mut(id) else { return false };
        seg.tail = Some(Tail {
            peer: second.clone(),
            request_id: tail_request,
            start: mid,
            data: Vec::new(),
            requested: now,
            first_byte: None,
            last_chunk: now,
            active: true,
        });
        self.stats.split_segments += 1;
        self.send(&second, &Message::Request { id, request_id: tail_request, offset: mid, end: None, deadline_ms });
        true
    }

    /// Takes a chunk answering the tail request of `id`; returns whether it was one.
    #[allow(clippy::too_many_arguments)] // the fields of one `Message::Chunk`
    pub(crate) fn on_tail_chunk(
        &mut self,
        now: Millis,
        peer: &PeerId,
        id: SegmentId,
        request_id: u32,
        offset: u64,
        total_len: u64,
        data: &[u8],
    ) -> bool {
        let Some(seg) = self.store.get_mut(id) else { return false };
        let ours = |t: &Tail| &t.peer == peer && t.request_id == request_id && t.active;
        if !seg.tail.as_ref().is_some_and(ours) {
            return false;
        }
        if seg.expected_len().is_some_and(|len| len != total_len) {
            self.wrong_length(now, peer, id);
            return true;
        }
        let Some(tail) = seg.tail.as_mut() else { return true };
        let at = tail.start + tail.data.len() as u64;
        let Some(skip) = at.checked_sub(offset) else {
            // A gap on an ordered channel: this peer is confused.
            let peer = peer.clone();
            seg.failed_peers.insert(peer.clone());
            self.tail_failed(id);
            self.send(&peer, &Message::Cancel { id, request_id });
            return true;
        };
        let fresh = usize::try_from(skip).ok().and_then(|s| data.get(s..)).unwrap_or_default();
        tail.data.extend_from_slice(fresh);
        tail.last_chunk = now;
        tail.first_byte = tail.first_byte.or(Some(now).filter(|_| !fresh.is_empty()));
        let end = tail.start + tail.data.len() as u64;
        let done = end == total_len;
        if done {
            tail.active = false;
        }
        let took = (tail.data.len() as u64, now.saturating_sub(tail.requested));
        seg.total_len = Some(total_len);
        if !fresh.is_empty() {
            seg.from_peers = true;
            seg.contributors.insert(peer.clone());
            seg.note_span(at, end, peer);
        }
        self.stats.p2p_down_bytes += fresh.len() as u64;
        if done {
            self.peers.record_rate(peer, took.0, took.1);
        }
        true
    }

    /// The prefix of `id` reached its tail: appends it; the tail's request, if it still runs,
    /// becomes the segment's transfer.
    pub(crate) fn merge_tail(&mut self, now: Millis, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.head_end() != Some(seg.data.len() as u64) {
            return;
        }
        let Some(tail) = seg.tail.take() else { return };
        let head = match &seg.fetch {
            Fetch::Peer { peer, request_id, .. } => Some((peer.clone(), *request_id)),
            Fetch::Idle | Fetch::Http => None,
        };
        let (started, from) = seg.fetch_started;
        let got = (seg.data.len() as u64).saturating_sub(from);
        seg.data.extend_from_slice(&tail.data);
        let complete = seg.expected_len() == Some(seg.data.len() as u64);
        if complete {
            seg.complete = true;
            seg.fetch = Fetch::Idle;
        } else if tail.active {
            let Tail { peer, request_id, requested, first_byte, last_chunk, start, .. } = tail;
            seg.fetch = Fetch::Peer { peer, request_id, last_chunk };
            seg.fetch_started = (requested, start);
            seg.first_byte = first_byte;
        } else {
            seg.fetch = Fetch::Idle;
        }
        if let Some((peer, request_id)) = head {
            // Its part is done; what it would send past it, the tail has or brings.
            self.peers.record_rate(&peer, got, now.saturating_sub(started));
            self.send(&peer, &Message::Cancel { id, request_id });
        }
        if complete {
            self.check_complete(now, id);
        }
    }

    /// Drops the tail of `id` whose request stalled, was refused or whose peer left: the head's
    /// request, which runs to the end of the segment, brings those bytes instead.
    pub(crate) fn tail_failed(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.tail.take().is_none() {
            return;
        }
        let held = seg.data.len() as u64;
        seg.spans.retain(|(start, _, _)| *start < held);
    }

    /// Gives up the tail of `id` if it sent nothing for `p2p_idle_timeout_ms`.
    pub(crate) fn check_tail(&mut self, now: Millis, id: SegmentId) {
        let idle_ms = self.config.p2p_idle_timeout_ms;
        let Some(seg) = self.store.get_mut(id) else { return };
        let Some(tail) = seg.tail.as_ref().filter(|t| t.active) else { return };
        if now < tail.last_chunk.saturating_add(idle_ms) {
            return;
        }
        let (peer, request_id) = (tail.peer.clone(), tail.request_id);
        seg.busy.insert(peer.clone(), now.saturating_add(idle_ms));
        self.send(&peer, &Message::Cancel { id, request_id });
        self.tail_failed(id);
    }

    /// Cancels the tail request of `id`, if any, and forgets its bytes (the CDN takes over).
    pub(crate) fn drop_tail(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        let Some(tail) = seg.tail.take() else { return };
        let held = seg.data.len() as u64;
        seg.spans.retain(|(start, _, _)| *start < held);
        if tail.active {
            self.send(&tail.peer, &Message::Cancel { id, request_id: tail.request_id });
        }
    }

    /// When the tail of `seg` must have sent something, if its request runs.
    pub(crate) fn tail_timer(&self, seg: &crate::segments::Segment) -> Option<Millis> {
        let tail = seg.tail.as_ref().filter(|t| t.active)?;
        Some(tail.last_chunk.saturating_add(self.config.p2p_idle_timeout_ms))
    }
}
