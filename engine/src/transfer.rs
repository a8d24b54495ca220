//! Bytes arriving: from the CDN through the shell's HTTP fetches, and from peers as chunks.
//!
//! Both sources send a segment in order, so a segment's bytes are always a prefix and any
//! fetch can resume where another one stopped.

use protocol::peer::{MAX_SEGMENT_BYTES, Message};
use protocol::{PeerId, SegmentId};

use crate::segments::Fetch;
use crate::{Engine, Millis, Output};

/// HTTP attempts per player request before the player is told the segment failed.
const MAX_HTTP_ATTEMPTS: u8 = 2;

impl Engine {
    pub(crate) fn on_http_chunk(&mut self, id: SegmentId, offset: u64, bytes: &[u8]) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.fetch != Fetch::Http {
            return;
        }
        let held = seg.data.len() as u64;
        // A gap is left alone here; `HttpDone` then finds the length wrong.
        let Some(skip) = held.checked_sub(offset) else { return };
        let fresh = usize::try_from(skip).ok().and_then(|skip| bytes.get(skip..)).unwrap_or_default();
        if held.saturating_add(fresh.len() as u64) > MAX_SEGMENT_BYTES {
            seg.fetch = Fetch::Idle;
            self.outputs.push_back(Output::AbortHttp { id });
            self.give_up(id);
            return;
        }
        seg.data.extend_from_slice(fresh);
        self.stats.http_bytes += fresh.len() as u64;
    }

    pub(crate) fn on_http_done(&mut self, id: SegmentId, total_len: u64) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.fetch != Fetch::Http {
            return;
        }
        seg.fetch = Fetch::Idle;
        if seg.data.len() as u64 == total_len {
            seg.total_len = Some(total_len);
            seg.complete = true;
            return;
        }
        // The prefix we resumed from does not fit what the CDN says: start over once.
        if seg.restarted {
            self.give_up(id);
        } else {
            seg.discard();
            self.start_http(id);
        }
    }

    pub(crate) fn on_http_failed(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.fetch != Fetch::Http {
            return;
        }
        seg.fetch = Fetch::Idle;
        seg.http_failures = seg.http_failures.saturating_add(1);
        // Not worth seeding a segment the CDN refuses; the player's own retry asks again.
        seg.seed_since = None;
        let holder = !self.peers.holders(id, &seg.failed_peers).is_empty();
        if seg.wanted && (!holder || seg.http_failures >= MAX_HTTP_ATTEMPTS) {
            seg.wanted = false;
            self.outputs.push_back(Output::PlayerFailed { id });
        }
    }

    /// The segment cannot be had for now: its bytes go, and a waiting player is told.
    fn give_up(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        seg.discard();
        seg.seed_since = None;
        if seg.wanted {
            seg.wanted = false;
            self.outputs.push_back(Output::PlayerFailed { id });
        }
    }

    #[allow(clippy::too_many_arguments)] // the fields of one `Message::Chunk`
    pub(crate) fn on_chunk(
        &mut self,
        now: Millis,
        peer: &PeerId,
        id: SegmentId,
        request_id: u32,
        offset: u64,
        total_len: u64,
        data: Vec<u8>,
    ) {
        let Some(seg) = self.store.get_mut(id) else { return };
        let current = matches!(&seg.fetch, Fetch::Peer { peer: p, request_id: r, .. } if p == peer && *r == request_id);
        if !current {
            return; // a late answer to a request we gave up on
        }
        if seg.expected_len().is_some_and(|len| len != total_len) {
            // The peer's copy is not the CDN's: drop what we have, refetch from the CDN, and
            // stop talking to a peer that serves broken segments.
            seg.discard();
            seg.fetch = Fetch::Idle;
            seg.failed_peers.insert(peer.clone());
            self.disconnect(now, peer);
            self.start_http(id);
            return;
        }
        if offset != seg.data.len() as u64 {
            // We asked from `data.len()` on an ordered channel: this peer is confused.
            seg.fetch = Fetch::Idle;
            seg.failed_peers.insert(peer.clone());
            self.send(peer, &Message::Cancel { id, request_id });
            return;
        }
        seg.data.extend_from_slice(&data);
        seg.total_len = Some(total_len);
        self.stats.p2p_down_bytes += data.len() as u64;
        if seg.data.len() as u64 == total_len {
            seg.complete = true;
            seg.fetch = Fetch::Idle;
        } else if let Fetch::Peer { last_chunk, .. } = &mut seg.fetch {
            *last_chunk = now;
        }
    }

    pub(crate) fn on_absent(&mut self, peer: &PeerId, id: SegmentId, request_id: u32) {
        self.peers.lost(peer, id);
        let Some(seg) = self.store.get_mut(id) else { return };
        if matches!(&seg.fetch, Fetch::Peer { peer: p, request_id: r, .. } if p == peer && *r == request_id) {
            seg.fetch = Fetch::Idle;
            seg.failed_peers.insert(peer.clone());
        }
    }
}
