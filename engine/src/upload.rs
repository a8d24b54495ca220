//! Serving other peers: from complete segments, and from segments still arriving (chunk relay).
//!
//! A request for a segment we hold complete is answered at once with the rest of it. A request
//! for a segment we are still receiving (from the CDN or another peer) is answered with what we
//! hold, and every byte that arrives later is passed on as soon as we have it, so a segment
//! crosses the swarm as a pipeline of chunks, not hop by hop. Before answering, the engine
//! checks that its uplink can carry the answer in time (upload gating): a peer that cannot
//! help says `Absent` at once, so the requester asks someone else instead of waiting.

use protocol::peer::{MAX_CHUNK_HEADER_BYTES, MAX_MESSAGE_BYTES, Message};
use protocol::{PeerId, SegmentId};

use crate::segments::{Segment, Upload};
use crate::{Engine, Millis, Output};

/// Smallest message size honoured from [`crate::Config::max_message_bytes`], in bytes.
const MIN_MESSAGE_BYTES: usize = 1024;

/// An uplink with at most this much queued, in ms of sending, counts as idle.
const IDLE_MS: u64 = 50;

/// Most requests answered as bytes arrive, per segment.
const MAX_RELAYS_PER_SEGMENT: usize = 16;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Want {
    /// First byte.
    pub(crate) offset: u64,
    /// End of the range (exclusive); `None` for the rest of the segment.
    pub(crate) end: Option<u64>,
    /// Time the requester has left, in ms, if it said.
    pub(crate) deadline_ms: Option<u32>,
}

/// Data bytes per chunk so that a chunk message is at most `max_message_bytes` long.
pub(crate) fn chunk_data_len(max_message_bytes: usize) -> usize {
    max_message_bytes.clamp(MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES) - MAX_CHUNK_HEADER_BYTES
}

/// Whether the bytes of `seg` may be passed on before it is complete: bytes from the CDN always;
/// bytes from peers only when no digest will check them (with a digest, peer bytes are relayed
/// only once the whole segment matched it), and only once a size is known.
fn relayable(seg: &Segment) -> bool {
    seg.total_len.or(seg.info.byte_len).is_some() && (seg.digest.is_none() || !seg.from_peers)
}

impl Engine {
    /// Answers `peer`'s request for `id` from byte `offset` on.
    pub(crate) fn serve(&mut self, now: Millis, peer: &PeerId, id: SegmentId, request_id: u32, want: Want) {
        let Want { offset, end, deadline_ms } = want;
        let decision = self.store.get(id).map(|seg| {
            let len = seg.data.len() as u64;
            let size = self.size_of(seg);
            let servable = if seg.ready() {
                offset <= len
            } else {
                seg.relaying() && seg.uploads.len() < MAX_RELAYS_PER_SEGMENT && offset <= size
            };
            let bytes = end.unwrap_or(size).min(size).saturating_sub(offset);
            (servable, bytes, seg.info.duration_ms)
        });
        let Some((true, bytes, duration_ms)) = decision else {
            self.send(peer, &Message::Absent { id, request_id });
            return;
        };
        // Upload gating: refuse what the uplink cannot deliver in time. With nothing owed, a
        // request is served if the uplink sends it within a segment duration (an uplink slower
        // than the stream helps nobody); on top of what it already owes (queued, and promised to
        // requests still being relayed), only within the upload budget. The requester then asks
        // a peer that relays the segment, so a segment spreads as a tree instead of starving a
        // single seeder.
        let owed = self.owed_upload_bytes();
        let budget = duration_ms.saturating_mul(u64::from(self.config.upload_budget_pct)) / 100;
        // A requester that announces nothing (it does not upload, or its uplink is slower than
        // the stream) or proved a slow uploader is a leaf of the tree: served while our uplink
        // is idle, else only once its deadline is near, so that peers that can pass the
        // segment on get it first.
        let play_rate = bytes as f64 / duration_ms.max(1) as f64;
        let silent = !self.peers.in_rendition(id.rendition).any(|p| p == peer);
        let leaf = silent || self.peers.rate(peer).is_some_and(|r| r < 1.5 * play_rate);
        let urgent = deadline_ms.is_some_and(|d| u64::from(d) < duration_ms);
        let budget = if leaf && !urgent { 0 } else { budget };
        // With the requester's deadline, never promise what would arrive after it.
        let limit = deadline_ms.map_or(duration_ms, |d| u64::from(d) * 4 / 5);
        let late = match (self.uplink.delay_ms(now, owed), self.uplink.delay_ms(now, owed.saturating_add(bytes))) {
            (Some(before), Some(after)) => after > limit || (before > IDLE_MS && after > budget),
            _ => false,
        };
        if !self.config.upload_allowed || late || !self.peers.may_serve(peer, id) {
            self.send(peer, &Message::Absent { id, request_id });
            return;
        }
        if let Some(seg) = self.store.get_mut(id) {
            seg.uploads.retain(|u| &u.peer != peer);
            seg.uploads.push(Upload { peer: peer.clone(), request_id, next: offset, end });
        }
        self.relay(now, id);
    }

    /// Bytes promised to requests that are relayed as they arrive and not sent yet.
    fn owed_upload_bytes(&self) -> u64 {
        let owed = |seg: &Segment| {
            let size = self.size_of(seg);
            seg.uploads.iter().map(|u| u.end.unwrap_or(size).min(size).saturating_sub(u.next)).sum::<u64>()
        };
        self.store.iter().map(|(_, seg)| owed(seg)).sum()
    }

    /// Sends every waiting requester of `id` the bytes it does not have yet; requests that got
    /// the whole segment are done.
    pub(crate) fn relay(&mut self, now: Millis, id: SegmentId) {
        let step = chunk_data_len(self.config.max_message_bytes);
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.uploads.is_empty() || !(seg.ready() || relayable(seg)) {
            return;
        }
        let Some(total_len) = seg.total_len.or(seg.info.byte_len) else { return };
        let held = seg.data.len() as u64;
        let mut out = Vec::new();
        let mut sent = 0u64;
        let complete = seg.ready();
        for up in &mut seg.uploads {
            let stop = up.end.unwrap_or(u64::MAX).min(held);
            if up.next > held {
                if complete {
                    // Asked for bytes past the end: nothing to send.
                    let absent = Message::Absent { id, request_id: up.request_id };
                    out.push(Output::SendToPeer { peer: up.peer.clone(), bytes: absent.encode() });
                    up.next = u64::MAX;
                }
                continue;
            }
            // An empty rest of a complete segment still gets one (empty) chunk, so the requester
            // learns it is complete.
            if up.next >= stop && !(complete && up.next == held) {
                continue;
            }
            // `up.next <= stop <= held`, within `data`, so the casts are exact.
            let rest = &seg.data[up.next as usize..stop.max(up.next) as usize];
            let mut pieces: Vec<&[u8]> = rest.chunks(step).collect();
            if pieces.is_empty() {
                pieces.push(&[]);
            }
            for piece in pieces {
                let chunk =
                    Message::Chunk { id, request_id: up.request_id, offset: up.next, total_len, data: piece.to_vec() };
                out.push(Output::SendToPeer { peer: up.peer.clone(), bytes: chunk.encode() });
                up.next += piece.len() as u64;
                sent += piece.len() as u64;
            }
            if complete || up.end.is_some_and(|e| up.next >= e) {
                // Marks it done below.
                up.next = u64::MAX;
            }
        }
        seg.uploads.retain(|u| u.next != u64::MAX && u.next < total_len);
        self.stats.p2p_up_bytes += sent;
        self.uplink.sent(now, sent);
        self.outputs.extend(out);
    }

    /// Tells every peer waiting on `id` that we cannot finish it (it answers elsewhere).
    pub(crate) fn drop_uploads(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        for up in std::mem::take(&mut seg.uploads) {
            self.send(&up.peer, &Message::Absent { id, request_id: up.request_id });
        }
    }

    /// `peer` no longer wants the answer to `request_id`.
    pub(crate) fn on_cancel(&mut self, peer: &PeerId, id: SegmentId, request_id: u32) {
        if let Some(seg) = self.store.get_mut(id) {
            seg.uploads.retain(|u| !(&u.peer == peer && u.request_id == request_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_keeps_messages_within_the_configured_size() {
        assert_eq!(chunk_data_len(64 * 1024), 64 * 1024 - MAX_CHUNK_HEADER_BYTES);
        assert_eq!(chunk_data_len(16 * 1024), 16 * 1024 - MAX_CHUNK_HEADER_BYTES);
        assert_eq!(chunk_data_len(usize::MAX), MAX_MESSAGE_BYTES - MAX_CHUNK_HEADER_BYTES);
        assert_eq!(chunk_data_len(0), MIN_MESSAGE_BYTES - MAX_CHUNK_HEADER_BYTES);
    }
}
