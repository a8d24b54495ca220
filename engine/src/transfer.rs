//! Bytes arriving: from the CDN through the shell's HTTP fetches, and from peers as chunks.
//!
//! Both sources send a segment in order, so a segment's bytes are always a prefix and any
//! fetch can resume where another one stopped. New bytes are passed on at once to peers that
//! asked us for the segment (chunk relay, [`crate::upload`]).

use protocol::peer::{MAX_SEGMENT_BYTES, Message};
use protocol::{PeerId, SegmentId};

use crate::segments::Fetch;
use crate::{CdnReason, Engine, Millis, Output};

/// HTTP attempts per player request before the player is told the segment failed.
const MAX_HTTP_ATTEMPTS: u8 = 2;
/// A peer that turned a request down for lack of uplink is asked again after this long, in ms.
const BUSY_RETRY_MS: u64 = 250;
/// Most busy peers remembered per segment.
const MAX_BUSY_PEERS: usize = 64;

impl Engine {
    pub(crate) fn on_http_chunk(&mut self, now: Millis, id: SegmentId, offset: u64, bytes: &[u8]) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.fetch != Fetch::Http {
            return;
        }
        let first = seg.first_byte.is_none();
        seg.first_byte.get_or_insert(now);
        let held = seg.data.len() as u64;
        // A gap is left alone here; `HttpDone` then finds the length wrong.
        let Some(skip) = held.checked_sub(offset) else { return };
        let fresh = usize::try_from(skip).ok().and_then(|skip| bytes.get(skip..)).unwrap_or_default();
        let too_long = seg.expected_len().is_some_and(|len| held + fresh.len() as u64 > len);
        if held.saturating_add(fresh.len() as u64) > MAX_SEGMENT_BYTES || too_long {
            seg.fetch = Fetch::Idle;
            self.outputs.push_back(Output::AbortHttp { id });
            self.give_up(id);
            return;
        }
        seg.data.extend_from_slice(fresh);
        self.stats.http_bytes += fresh.len() as u64;
        self.stats.cdn_bytes_by_reason[seg.http_reason.index()] += fresh.len() as u64;
        if first {
            self.announce_progress(id, None);
        }
        self.relay(now, id);
    }

    pub(crate) fn on_http_done(&mut self, now: Millis, id: SegmentId, total_len: u64) {
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.fetch != Fetch::Http {
            return;
        }
        seg.fetch = Fetch::Idle;
        let (started, from) = seg.fetch_started;
        if let Some(first) = seg.first_byte {
            self.http.record(started, first, now, (seg.data.len() as u64).saturating_sub(from), seg.http_predicted_ms);
        }
        if seg.data.len() as u64 == total_len && seg.info.byte_len.is_none_or(|len| len == total_len) {
            seg.total_len = Some(total_len);
            seg.complete = true;
            self.check_complete(now, id);
            self.relay(now, id);
            return;
        }
        // The prefix we resumed from does not fit what the CDN says: start over once.
        if seg.restarted {
            self.give_up(id);
        } else {
            seg.discard();
            self.start_http(now, id, CdnReason::Other);
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
        if !self.store.get(id).is_some_and(|s| s.needed()) {
            self.drop_uploads(id);
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
        self.drop_uploads(id);
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
            // The tail of a split segment, or a late answer to a request we gave up on.
            self.on_tail_chunk(now, peer, id, request_id, offset, total_len, &data);
            return;
        }
        if seg.expected_len().is_some_and(|len| len != total_len) {
            self.wrong_length(now, peer, id);
            return;
        }
        let held = seg.data.len() as u64;
        let Some(skip) = held.checked_sub(offset) else {
            // We asked from `data.len()` on an ordered channel: this peer is confused.
            seg.fetch = Fetch::Idle;
            seg.peer_gave_up = true;
            seg.failed_peers.insert(peer.clone());
            self.send(peer, &Message::Cancel { id, request_id });
            return;
        };
        // Bytes we hold already are skipped, and nothing is taken past the tail of a split segment.
        let room = seg.head_end().map_or(u64::MAX, |end| end.saturating_sub(held));
        let fresh = usize::try_from(skip).ok().and_then(|s| data.get(s..)).unwrap_or_default();
        let fresh = &fresh[..usize::try_from(room).map_or(fresh.len(), |room| room.min(fresh.len()))];
        if skip > 0 && fresh.is_empty() {
            return;
        }
        let first = seg.first_byte.is_none() && !fresh.is_empty();
        seg.first_byte.get_or_insert(now);
        seg.data.extend_from_slice(fresh);
        seg.total_len = Some(total_len);
        if !fresh.is_empty() {
            seg.from_peers = true;
            seg.contributors.insert(peer.clone());
            seg.note_span(held, held + fresh.len() as u64, peer);
        }
        self.stats.p2p_down_bytes += fresh.len() as u64;
        if seg.head_end() == Some(seg.data.len() as u64) {
            self.merge_tail(now, id);
            self.relay(now, id);
            return;
        }
        let (started, from) = seg.fetch_started;
        let got = (seg.data.len() as u64).saturating_sub(from);
        if seg.data.len() as u64 == total_len {
            seg.complete = true;
            seg.fetch = Fetch::Idle;
            // A transfer's speed counts from the request, so a slow start shows.
            self.peers.record_rate(peer, got, now.saturating_sub(started));
            self.check_complete(now, id);
        } else if let Fetch::Peer { last_chunk, .. } = &mut seg.fetch {
            *last_chunk = now;
            if first {
                self.announce_progress(id, Some(peer));
            }
        }
        self.relay(now, id);
    }

    /// `peer` says `id` has another size than the playlist or an earlier source: its copy is not
    /// the CDN's. Drops what we have, refetches from the CDN, and stops talking to a peer that
    /// serves broken segments.
    pub(crate) fn wrong_length(&mut self, now: Millis, peer: &PeerId, id: SegmentId) {
        self.drop_tail(id);
        let Some(seg) = self.store.get_mut(id) else { return };
        seg.discard();
        seg.fetch = Fetch::Idle;
        seg.peer_gave_up = true;
        seg.failed_peers.insert(peer.clone());
        self.stats.corrupt_segments += 1;
        self.peers.ban(peer);
        self.disconnect(now, peer);
        if self.store.get(id).is_some_and(|s| s.listed) {
            self.start_http(now, id, CdnReason::Other);
        }
    }

    /// Tells every peer (but `source`) that bytes of `id` are arriving, so they may ask us for
    /// them (we relay) rather than a peer still waiting for its own source. Only when the bytes
    /// are relayable at once (no digest to wait for, or from the CDN) and we upload.
    fn announce_progress(&mut self, id: SegmentId, source: Option<&PeerId>) {
        let Some(seg) = self.store.get(id) else { return };
        let relayable = seg.digest.is_none() || !seg.from_peers;
        if !relayable || !self.config.upload_allowed || self.uplink_below(1) {
            return;
        }
        let message = Message::HaveChunk { id, len: seg.data.len() as u64 };
        let peers: Vec<PeerId> = self.peers.connected().filter(|p| Some(*p) != source).cloned().collect();
        for peer in peers {
            self.send(&peer, &message);
        }
    }

    /// `peer` turned our request down. If it still announces the segment, its uplink is busy:
    /// it is asked again a little later; otherwise it does not have it after all.
    pub(crate) fn on_absent(&mut self, now: Millis, peer: &PeerId, id: SegmentId, request_id: u32) {
        let busy = self.peers.announced(peer, id);
        if !busy {
            self.peers.lost(peer, id);
        }
        let Some(seg) = self.store.get_mut(id) else { return };
        if seg.tail.as_ref().is_some_and(|t| &t.peer == peer && t.request_id == request_id && t.active) {
            if busy && seg.busy.len() < MAX_BUSY_PEERS {
                seg.busy.insert(peer.clone(), now.saturating_add(BUSY_RETRY_MS));
            } else {
                seg.failed_peers.insert(peer.clone());
            }
            self.tail_failed(id);
            return;
        }
        if matches!(&seg.fetch, Fetch::Peer { peer: p, request_id: r, .. } if p == peer && *r == request_id) {
            seg.fetch = Fetch::Idle;
            if busy && seg.busy.len() < MAX_BUSY_PEERS {
                seg.busy.insert(peer.clone(), now.saturating_add(BUSY_RETRY_MS));
            } else {
                seg.failed_peers.insert(peer.clone());
                seg.peer_gave_up = true;
            }
        }
    }
}
