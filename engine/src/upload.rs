//! Serving other peers' requests from our complete segments.

use protocol::peer::{MAX_CHUNK_HEADER_BYTES, MAX_MESSAGE_BYTES, Message};
use protocol::{PeerId, SegmentId};

use crate::{Engine, Output};

/// Smallest message size honoured from [`crate::Config::max_message_bytes`], in bytes.
const MIN_MESSAGE_BYTES: usize = 1024;

/// Data bytes per chunk so that a chunk message is at most `max_message_bytes` long.
pub(crate) fn chunk_data_len(max_message_bytes: usize) -> usize {
    max_message_bytes.clamp(MIN_MESSAGE_BYTES, MAX_MESSAGE_BYTES) - MAX_CHUNK_HEADER_BYTES
}

impl Engine {
    /// Answers `peer`'s request for `id` from byte `offset` on: the whole rest as chunks at
    /// once (the shell paces them with the data channel's buffered amount), or `Absent`.
    pub(crate) fn serve(&mut self, peer: &PeerId, id: SegmentId, request_id: u32, offset: u64) {
        let held = self.store.get(id).filter(|s| s.complete).map(|s| s.data.len() as u64);
        let servable = self.config.upload_allowed && held.is_some_and(|len| offset <= len);
        if !servable || !self.peers.may_serve(peer, id) {
            self.send(peer, &Message::Absent { id, request_id });
            return;
        }
        let Some(seg) = self.store.get(id) else { return };
        let step = chunk_data_len(self.config.max_message_bytes);
        let total_len = seg.data.len() as u64;
        // `offset <= data.len()` was checked above, so it fits in usize.
        let rest = &seg.data[offset as usize..];
        let mut sent = 0u64;
        // An empty rest still gets one (empty) chunk, so the requester learns it is complete.
        let mut pieces: Vec<&[u8]> = rest.chunks(step).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        for piece in pieces {
            let chunk = Message::Chunk { id, request_id, offset: offset + sent, total_len, data: piece.to_vec() };
            self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: chunk.encode() });
            sent += piece.len() as u64;
        }
        self.stats.p2p_up_bytes += sent;
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
