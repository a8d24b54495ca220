//! Binary messages between peers over a WebRTC data channel.
//!
//! One [`Message`] per data channel message, at most [`MAX_MESSAGE_BYTES`]. The channel is
//! ordered and reliable (SCTP), so a message either arrives whole or not at all; every
//! [`Message::Chunk`] still says which segment, which request and which byte range it carries,
//! so reassembly needs no state beyond the bytes received so far.
//!
//! # Encoding
//!
//! ```text
//! message   = version:u8 (= PEER_PROTOCOL_VERSION) type:u8 fields
//! type 1 Have     = count:varint segment_id*count   count:varint segment_id*count   (complete, then fetching)
//! type 2 Request  = segment_id request_id:varint offset:varint
//! type 3 Chunk    = segment_id request_id:varint offset:varint total_len:varint len:varint data:u8*len
//! type 4 Absent   = segment_id request_id:varint
//! type 5 Cancel   = segment_id request_id:varint
//! segment_id = rendition:varint msn:varint
//! ```
//!
//! `varint` is unsigned LEB128 (7 bits per byte, least significant group first, high bit set on
//! every byte but the last), at most 10 bytes for a `u64` and 5 for a `u32`. Only the shortest
//! form is accepted, so decoding then encoding gives back the same bytes. Nothing may follow
//! the last field.
//!
//! Every length is bounded before anything is allocated: the whole message
//! ([`MAX_MESSAGE_BYTES`]), each segment list ([`MAX_HAVE_SEGMENTS`]), a chunk's data
//! ([`MAX_CHUNK_DATA_BYTES`]) and a segment's size ([`MAX_SEGMENT_BYTES`]).

use crate::SegmentId;

/// Version byte that starts every message. A peer drops a connection whose messages carry another.
pub const PEER_PROTOCOL_VERSION: u8 = 1;

/// Largest message either side sends or accepts, in bytes (a data channel message).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Most segment ids in each list of a [`Message::Have`].
pub const MAX_HAVE_SEGMENTS: usize = 1024;

/// Largest encoded [`Message::Chunk`] header (everything but its data), in bytes: version, type,
/// segment id (5 + 10), request id (5), offset (10), total length (10), data length (3).
pub const MAX_CHUNK_HEADER_BYTES: usize = 2 + 15 + 5 + 10 + 10 + 3;

/// Most data bytes in one [`Message::Chunk`], so that the whole message fits in [`MAX_MESSAGE_BYTES`].
pub const MAX_CHUNK_DATA_BYTES: usize = MAX_MESSAGE_BYTES - MAX_CHUNK_HEADER_BYTES;

/// Largest segment size a peer may announce in [`Message::Chunk::total_len`], in bytes
/// (64 MiB: a 6 s segment at 80 Mbit/s).
pub const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Type byte of each message kind.
mod kind {
    pub(super) const HAVE: u8 = 1;
    pub(super) const REQUEST: u8 = 2;
    pub(super) const CHUNK: u8 = 3;
    pub(super) const ABSENT: u8 = 4;
    pub(super) const CANCEL: u8 = 5;
}

/// A message on the data channel between two peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// What the sender holds: sent when the channel opens and whenever it changes. Replaces the
    /// previous `Have` from the same peer.
    Have {
        /// Complete segments the sender can serve, at most [`MAX_HAVE_SEGMENTS`].
        segments: Vec<SegmentId>,
        /// Segments the sender is downloading from the CDN right now, at most
        /// [`MAX_HAVE_SEGMENTS`]; others may wait for them instead of fetching them too.
        fetching: Vec<SegmentId>,
    },
    /// Ask for segment `id` from byte `offset` on; answered by [`Message::Chunk`]s or [`Message::Absent`].
    Request {
        /// The segment.
        id: SegmentId,
        /// Chosen by the requester; echoed in the answer so late answers to older requests can be told apart.
        request_id: u32,
        /// First byte wanted (non-zero to resume a partial download), in bytes.
        offset: u64,
    },
    /// Bytes `offset..offset + data.len()` of segment `id`, whose full size is `total_len` bytes.
    Chunk {
        /// The segment.
        id: SegmentId,
        /// The request this answers.
        request_id: u32,
        /// Position of `data` within the segment, in bytes.
        offset: u64,
        /// Full size of the segment, in bytes, at most [`MAX_SEGMENT_BYTES`].
        total_len: u64,
        /// The bytes, at most [`MAX_CHUNK_DATA_BYTES`].
        data: Vec<u8>,
    },
    /// The sender cannot serve the request (it does not hold the segment, or does not upload).
    Absent {
        /// The segment.
        id: SegmentId,
        /// The request this answers.
        request_id: u32,
    },
    /// The requester no longer wants the answer to `request_id`.
    Cancel {
        /// The segment.
        id: SegmentId,
        /// The request to drop.
        request_id: u32,
    },
}

/// Why a peer message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerMessageError {
    /// The message had no bytes.
    #[error("empty peer message")]
    Empty,
    /// The message ended in the middle of a field.
    #[error("truncated peer message")]
    Truncated,
    /// The message is longer than [`MAX_MESSAGE_BYTES`] (its length, in bytes).
    #[error("peer message of {0} bytes exceeds {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// The version byte is not [`PEER_PROTOCOL_VERSION`].
    #[error("unsupported peer protocol version {0}")]
    UnsupportedVersion(u8),
    /// The type byte names no known message.
    #[error("unknown peer message type {0}")]
    UnknownType(u8),
    /// A varint is longer than its type allows or its value does not fit.
    #[error("varint overflows its field")]
    VarintOverflow,
    /// A varint was not in its shortest form.
    #[error("varint not in shortest form")]
    NonCanonicalVarint,
    /// A segment list of a `Have` holds more than [`MAX_HAVE_SEGMENTS`] ids (the announced count).
    #[error("segment list of {0} exceeds {MAX_HAVE_SEGMENTS}")]
    TooManySegments(u64),
    /// A chunk carries more than [`MAX_CHUNK_DATA_BYTES`] (the announced data length, in bytes).
    #[error("chunk of {0} bytes exceeds {MAX_CHUNK_DATA_BYTES}")]
    ChunkTooLarge(u64),
    /// A segment size or offset is above [`MAX_SEGMENT_BYTES`] (the offending size or offset, in bytes).
    #[error("segment size or offset {0} exceeds {MAX_SEGMENT_BYTES}")]
    SegmentTooLarge(u64),
    /// A chunk's bytes reach past the segment's announced `total_len`.
    #[error("chunk reaches past the end of its segment")]
    ChunkOutOfBounds,
    /// Bytes follow the last field (how many, in bytes).
    #[error("{0} trailing bytes after the peer message")]
    TrailingBytes(usize),
}

impl Message {
    /// Encodes the message as one data channel message.
    ///
    /// A message that breaks a bound (see [`Message::check`]) still encodes, but the receiver
    /// rejects it; senders keep within the bounds.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(match self {
            Self::Chunk { data, .. } => MAX_CHUNK_HEADER_BYTES + data.len(),
            _ => 64,
        });
        out.push(PEER_PROTOCOL_VERSION);
        match self {
            Self::Have { segments, fetching } => {
                out.push(kind::HAVE);
                for list in [segments, fetching] {
                    put_varint(&mut out, list.len() as u64);
                    for id in list {
                        put_segment_id(&mut out, *id);
                    }
                }
            }
            Self::Request { id, request_id, offset } => {
                out.push(kind::REQUEST);
                put_segment_id(&mut out, *id);
                put_varint(&mut out, u64::from(*request_id));
                put_varint(&mut out, *offset);
            }
            Self::Chunk { id, request_id, offset, total_len, data } => {
                out.push(kind::CHUNK);
                put_segment_id(&mut out, *id);
                put_varint(&mut out, u64::from(*request_id));
                put_varint(&mut out, *offset);
                put_varint(&mut out, *total_len);
                put_varint(&mut out, data.len() as u64);
                out.extend_from_slice(data);
            }
            Self::Absent { id, request_id } | Self::Cancel { id, request_id } => {
                out.push(if matches!(self, Self::Absent { .. }) { kind::ABSENT } else { kind::CANCEL });
                put_segment_id(&mut out, *id);
                put_varint(&mut out, u64::from(*request_id));
            }
        }
        out
    }

    /// Decodes one data channel message, checking every bound before allocating.
    pub fn decode(bytes: &[u8]) -> Result<Self, PeerMessageError> {
        if bytes.len() > MAX_MESSAGE_BYTES {
            return Err(PeerMessageError::TooLarge(bytes.len()));
        }
        let (&version, rest) = bytes.split_first().ok_or(PeerMessageError::Empty)?;
        if version != PEER_PROTOCOL_VERSION {
            return Err(PeerMessageError::UnsupportedVersion(version));
        }
        let mut r = Reader { rest };
        let message = match r.u8()? {
            kind::HAVE => {
                let segments = r.segment_list()?;
                let fetching = r.segment_list()?;
                Self::Have { segments, fetching }
            }
            kind::REQUEST => {
                let id = r.segment_id()?;
                let request_id = r.u32()?;
                let offset = r.varint()?;
                Self::Request { id, request_id, offset }
            }
            kind::CHUNK => {
                let id = r.segment_id()?;
                let request_id = r.u32()?;
                let offset = r.varint()?;
                let total_len = r.varint()?;
                let len = r.varint()?;
                if len > MAX_CHUNK_DATA_BYTES as u64 {
                    return Err(PeerMessageError::ChunkTooLarge(len));
                }
                // Bounded just above by MAX_CHUNK_DATA_BYTES, which fits in usize.
                let data = r.take(len as usize)?.to_vec();
                Self::Chunk { id, request_id, offset, total_len, data }
            }
            kind::ABSENT => Self::Absent { id: r.segment_id()?, request_id: r.u32()? },
            kind::CANCEL => Self::Cancel { id: r.segment_id()?, request_id: r.u32()? },
            other => return Err(PeerMessageError::UnknownType(other)),
        };
        if !r.rest.is_empty() {
            return Err(PeerMessageError::TrailingBytes(r.rest.len()));
        }
        message.check()?;
        Ok(message)
    }

    /// Checks the bounds a receiver enforces: list lengths, chunk size, segment size and offsets.
    pub fn check(&self) -> Result<(), PeerMessageError> {
        match self {
            Self::Have { segments, fetching } => {
                for list in [segments, fetching] {
                    if list.len() > MAX_HAVE_SEGMENTS {
                        return Err(PeerMessageError::TooManySegments(list.len() as u64));
                    }
                }
            }
            Self::Request { offset, .. } => {
                if *offset > MAX_SEGMENT_BYTES {
                    return Err(PeerMessageError::SegmentTooLarge(*offset));
                }
            }
            Self::Chunk { offset, total_len, data, .. } => {
                if data.len() > MAX_CHUNK_DATA_BYTES {
                    return Err(PeerMessageError::ChunkTooLarge(data.len() as u64));
                }
                if *total_len > MAX_SEGMENT_BYTES {
                    return Err(PeerMessageError::SegmentTooLarge(*total_len));
                }
                let end = offset.checked_add(data.len() as u64);
                if end.is_none_or(|end| end > *total_len) {
                    return Err(PeerMessageError::ChunkOutOfBounds);
                }
            }
            Self::Absent { .. } | Self::Cancel { .. } => {}
        }
        Ok(())
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation intended: the low 7 bits of the value, with the continuation bit set.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_segment_id(out: &mut Vec<u8>, id: SegmentId) {
    put_varint(out, u64::from(id.rendition));
    put_varint(out, id.msn);
}

/// A cursor over the bytes still to decode.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, PeerMessageError> {
        let (&b, rest) = self.rest.split_first().ok_or(PeerMessageError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], PeerMessageError> {
        if self.rest.len() < len {
            return Err(PeerMessageError::Truncated);
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, PeerMessageError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let group = u64::from(b & 0x7f);
            // The 10th byte holds only bit 63.
            if i == 9 && group > 1 {
                return Err(PeerMessageError::VarintOverflow);
            }
            value |= group << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(PeerMessageError::NonCanonicalVarint);
                }
                return Ok(value);
            }
        }
        Err(PeerMessageError::VarintOverflow)
    }

    fn u32(&mut self) -> Result<u32, PeerMessageError> {
        u32::try_from(self.varint()?).map_err(|_| PeerMessageError::VarintOverflow)
    }
    fn segment_id(&mut self) -> Result<SegmentId, PeerMessageError> {
        Ok(SegmentId { rendition: self.u32()?, msn: self.varint()? })
    }

    fn segment_list(&mut self) -> Result<Vec<SegmentId>, PeerMessageError> {
        let count = self.varint()?;
        if count > MAX_HAVE_SEGMENTS as u64 {
            return Err(PeerMessageError::TooManySegments(count));
        }
        // `count` ≤ MAX_HAVE_SEGMENTS fits in usize. Each id takes at least 2 bytes: refuse a
        // count the rest cannot hold before allocating for it.
        let count = count as usize;
        if self.rest.len() < 2 * count {
            return Err(PeerMessageError::Truncated);
        }
        (0..count).map(|_| self.segment_id()).collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn id() -> impl Strategy<Value = SegmentId> {
        (any::<u32>(), any::<u64>()).prop_map(|(rendition, msn)| SegmentId { rendition, msn })
    }

    fn message() -> impl Strategy<Value = Message> {
        let ids = || vec(id(), 0..40);
        // offset + data.len() <= total_len <= MAX_SEGMENT_BYTES
        let chunk = (id(), any::<u32>(), 0..MAX_SEGMENT_BYTES / 2, 0..MAX_SEGMENT_BYTES / 2, vec(any::<u8>(), 0..300))
            .prop_map(|(id, request_id, offset, slack, data)| {
                let total_len = offset + data.len() as u64 + slack;
                Message::Chunk { id, request_id, offset, total_len, data }
            });
        prop_oneof![
            (ids(), ids()).prop_map(|(segments, fetching)| Message::Have { segments, fetching }),
            (id(), any::<u32>(), 0..=MAX_SEGMENT_BYTES).prop_map(|(id, request_id, offset)| Message::Request {
                id,
                request_id,
                offset
            }),
            chunk,
            (id(), any::<u32>()).prop_map(|(id, request_id)| Message::Absent { id, request_id }),
            (id(), any::<u32>()).prop_map(|(id, request_id)| Message::Cancel { id, request_id }),
        ]
    }

    proptest! {
        #[test]
        fn every_valid_message_round_trips(m in message()) {
            let bytes = m.encode();
            prop_assert!(bytes.len() <= MAX_MESSAGE_BYTES);
            prop_assert_eq!(Message::decode(&bytes), Ok(m));
        }

        #[test]
        fn every_strict_prefix_is_rejected(m in message(), cut in any::<prop::sample::Index>()) {
            let bytes = m.encode();
            let cut = cut.index(bytes.len());
            prop_assert!(Message::decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics_and_what_decodes_re_encodes_identically(
            bytes in vec(any::<u8>(), 0..200)
        ) {
            if let Ok(m) = Message::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }

        #[test]
        fn garbage_after_a_valid_header_never_panics(
            kind in 0u8..8, tail in vec(any::<u8>(), 0..200)
        ) {
            let mut bytes = vec![PEER_PROTOCOL_VERSION, kind];
            bytes.extend(tail);
            let _ = Message::decode(&bytes);
        }
    }

    const SEG: SegmentId = SegmentId { rendition: 2, msn: 300 };

    #[test]
    fn a_full_size_chunk_fits_in_one_message() {
        let m = Message::Chunk {
            id: SegmentId { rendition: u32::MAX, msn: u64::MAX },
            request_id: u32::MAX,
            offset: MAX_SEGMENT_BYTES - MAX_CHUNK_DATA_BYTES as u64,
            total_len: MAX_SEGMENT_BYTES,
            data: vec![7; MAX_CHUNK_DATA_BYTES],
        };
        let bytes = m.encode();
        assert!(bytes.len() <= MAX_MESSAGE_BYTES, "{} bytes", bytes.len());
        assert_eq!(Message::decode(&bytes), Ok(m));
    }

    #[test]
    fn a_full_have_fits_in_one_message_and_request_has_the_documented_layout() {
        let ids = vec![SegmentId { rendition: u32::MAX, msn: u64::MAX }; MAX_HAVE_SEGMENTS];
        let m = Message::Have { segments: ids.clone(), fetching: ids };
        assert!(m.encode().len() <= MAX_MESSAGE_BYTES);
        let bytes = Message::Request { id: SEG, request_id: 1, offset: 128 }.encode();
        assert_eq!(bytes, [1, 2, 2, 0xac, 0x02, 1, 0x80, 0x01]);
    }

    #[test]
    fn empty_oversized_wrong_version_and_unknown_type_are_rejected() {
        assert_eq!(Message::decode(&[]), Err(PeerMessageError::Empty));
        let big = vec![0; MAX_MESSAGE_BYTES + 1];
        assert_eq!(Message::decode(&big), Err(PeerMessageError::TooLarge(MAX_MESSAGE_BYTES + 1)));
        assert_eq!(Message::decode(&[9, 1, 0, 0]), Err(PeerMessageError::UnsupportedVersion(9)));
        assert_eq!(Message::decode(&[1, 99]), Err(PeerMessageError::UnknownType(99)));
        assert_eq!(Message::decode(&[1]), Err(PeerMessageError::Truncated));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Message::Absent { id: SEG, request_id: 3 }.encode();
        bytes.push(0);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::TrailingBytes(1)));
    }

    #[test]
    fn overlong_and_overflowing_varints_are_rejected() {
        // rendition encoded as 0x80 0x00 (zero in two bytes)
        assert_eq!(Message::decode(&[1, 4, 0x80, 0x00, 0, 0]), Err(PeerMessageError::NonCanonicalVarint));
        // rendition = 2^32 does not fit a u32
        assert_eq!(Message::decode(&[1, 4, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0]), Err(PeerMessageError::VarintOverflow));
        // eleven continuation bytes
        let mut bytes = vec![1, 5, 0];
        bytes.extend([0xff; 11]);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::VarintOverflow));
    }

    #[test]
    fn have_lists_are_bounded_before_allocating() {
        let mut bytes = vec![1, 1];
        put_varint(&mut bytes, MAX_HAVE_SEGMENTS as u64 + 1);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1)));
        // A count the remaining bytes cannot hold.
        assert_eq!(Message::decode(&[1, 1, 100, 0, 0]), Err(PeerMessageError::Truncated));
    }

    #[test]
    fn chunk_bounds_are_checked() {
        let chunk =
            |offset, total_len, data: Vec<u8>| Message::Chunk { id: SEG, request_id: 0, offset, total_len, data };
        let past_end = chunk(10, 12, vec![0; 3]).encode();
        assert_eq!(Message::decode(&past_end), Err(PeerMessageError::ChunkOutOfBounds));
        let huge = chunk(0, MAX_SEGMENT_BYTES + 1, vec![]).encode();
        assert_eq!(Message::decode(&huge), Err(PeerMessageError::SegmentTooLarge(MAX_SEGMENT_BYTES + 1)));
        let overflow = chunk(u64::MAX, u64::MAX, vec![1]).encode();
        assert!(Message::decode(&overflow).is_err());
        let far = Message::Request { id: SEG, request_id: 0, offset: MAX_SEGMENT_BYTES + 1 }.encode();
        assert!(matches!(Message::decode(&far), Err(PeerMessageError::SegmentTooLarge { .. })));
        let mut too_long = vec![1, 3, 0, 0, 0, 0, 0];
        put_varint(&mut too_long, MAX_CHUNK_DATA_BYTES as u64 + 1);
        assert_eq!(Message::decode(&too_long), Err(PeerMessageError::ChunkTooLarge(MAX_CHUNK_DATA_BYTES as u64 + 1)));
    }
}
