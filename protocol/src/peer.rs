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
//! type 1 Have     = segment_set segment_set                                 (complete, then receiving)
//! type 2 Request  = segment_id request_id:varint offset:varint
//! type 3 Chunk    = segment_id request_id:varint offset:varint total_len:varint len:varint data:u8*len
//! type 4 Absent   = segment_id request_id:varint
//! type 5 Cancel   = segment_id request_id:varint
//! segment_id = rendition:varint msn:varint
//! segment_set = groups:varint group*groups
//! group      = rendition:varint base:varint span:varint bitmap:u8*ceil(span/8)
//! ```
//!
//! A `Have` announces segments as bitfields relative to the live window: each group covers
//! msns `base..base + span` of one rendition, bit `i` (least significant bit of byte `i / 8`
//! first) set when msn `base + i` is announced. A live window of ten segments costs about
//! eight bytes instead of forty. The form is canonical: groups are sorted by (rendition, base),
//! the first and last bits of a group are set, unused bits are zero, and a run of more than
//! [`MAX_HAVE_GAP`] absent msns starts a new group (and only such a run does). Lists therefore
//! decode sorted by (rendition, msn), without duplicates.
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
/// Version 2: `Have` as bitfields; a peer announcing a segment it is receiving relays its chunks.
pub const PEER_PROTOCOL_VERSION: u8 = 2;

/// Largest message either side sends or accepts, in bytes (a data channel message).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Most segment ids in each list of a [`Message::Have`].
pub const MAX_HAVE_SEGMENTS: usize = 1024;

/// Longest run of absent msns inside one group of a `Have` bitfield; a longer run starts a new group.
pub const MAX_HAVE_GAP: u64 = 16;

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
    /// previous `Have` from the same peer. Both lists travel as sets (sorted by (rendition, msn),
    /// duplicates dropped).
    Have {
        /// Complete segments the sender can serve, at most [`MAX_HAVE_SEGMENTS`].
        segments: Vec<SegmentId>,
        /// Segments the sender is receiving right now (from the CDN or a peer), at most
        /// [`MAX_HAVE_SEGMENTS`]. It serves requests for them with the bytes it holds and
        /// relays the rest as they arrive; others need not fetch them from the CDN too.
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
    /// A segment list of a `Have` holds more than [`MAX_HAVE_SEGMENTS`] ids or groups (the count).
    #[error("segment list of {0} exceeds {MAX_HAVE_SEGMENTS}")]
    TooManySegments(u64),
    /// A `Have` bitfield is not in canonical form (unsorted or overlapping groups, a group that
    /// does not start and end with a set bit, stray bits, or a gap that should split it).
    #[error("malformed segment bitfield")]
    BadBitfield,
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
                put_segment_set(&mut out, segments);
                put_segment_set(&mut out, fetching);
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
                let segments = r.segment_set()?;
                let fetching = r.segment_set()?;
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

/// Encodes `ids` as bitfield groups (see the module documentation).
fn put_segment_set(out: &mut Vec<u8>, ids: &[SegmentId]) {
    let mut ids = ids.to_vec();
    ids.sort_unstable_by_key(|id| (id.rendition, id.msn));
    ids.dedup();
    // Groups as (rendition, base, last) over the sorted ids.
    let mut groups: Vec<(u32, u64, u64)> = Vec::new();
    for id in &ids {
        match groups.last_mut() {
            Some((r, _, last)) if *r == id.rendition && id.msn - *last - 1 <= MAX_HAVE_GAP => *last = id.msn,
            _ => groups.push((id.rendition, id.msn, id.msn)),
        }
    }
    put_varint(out, groups.len() as u64);
    let mut rest = ids.as_slice();
    for (rendition, base, last) in groups {
        let span = last - base + 1;
        put_varint(out, u64::from(rendition));
        put_varint(out, base);
        put_varint(out, span);
        // `span` is at most MAX_HAVE_SEGMENTS × (MAX_HAVE_GAP + 1) for lists within bounds;
        // larger lists are the sender's bug and still encode.
        let mut bitmap = vec![0u8; usize::try_from(span.div_ceil(8)).unwrap_or(usize::MAX)];
        while let Some((first, tail)) = rest.split_first() {
            if first.rendition != rendition || first.msn > last {
                break;
            }
            let bit = first.msn - base;
            bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
            rest = tail;
        }
        out.extend_from_slice(&bitmap);
    }
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

    /// Decodes a bitfield segment set, checking that it is in canonical form and bounded.
    fn segment_set(&mut self) -> Result<Vec<SegmentId>, PeerMessageError> {
        let groups = self.varint()?;
        if groups > MAX_HAVE_SEGMENTS as u64 {
            return Err(PeerMessageError::TooManySegments(groups));
        }
        let mut ids: Vec<SegmentId> = Vec::new();
        for _ in 0..groups {
            let rendition = self.u32()?;
            let base = self.varint()?;
            let span = self.varint()?;
            let last = span.checked_sub(1).and_then(|s| base.checked_add(s)).ok_or(PeerMessageError::BadBitfield)?;
            if let Some(prev) = ids.last()
                && (prev.rendition, prev.msn) >= (rendition, base)
            {
                return Err(PeerMessageError::BadBitfield);
            }
            if let Some(prev) = ids.last().filter(|p| p.rendition == rendition)
                && base - prev.msn - 1 <= MAX_HAVE_GAP
            {
                return Err(PeerMessageError::BadBitfield);
            }
            // The bitmap must be in the message: bounds `span` before anything is allocated.
            let len = span.div_ceil(8);
            if len > self.rest.len() as u64 {
                return Err(PeerMessageError::Truncated);
            }
            // `len` is at most the remaining message length, so it fits in usize.
            let bitmap = self.take(len as usize)?;
            let mut gap = 0u64;
            for bit in 0..span {
                // `bit / 8 < len`, within the bitmap.
                if bitmap[(bit / 8) as usize] & (1 << (bit % 8)) == 0 {
                    gap += 1;
                    if gap > MAX_HAVE_GAP || bit == 0 || bit == span - 1 {
                        return Err(PeerMessageError::BadBitfield);
                    }
                    continue;
                }
                gap = 0;
                if ids.len() == MAX_HAVE_SEGMENTS {
                    return Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1));
                }
                ids.push(SegmentId { rendition, msn: base + bit });
            }
            let used = span % 8;
            if used != 0 && bitmap.last().is_some_and(|b| b >> used != 0) {
                return Err(PeerMessageError::BadBitfield);
            }
            debug_assert_eq!(ids.last().map(|id| id.msn), Some(last));
        }
        Ok(ids)
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

    /// A set of ids as `Have` carries it: sorted by (rendition, msn), no duplicates; drawn from a
    /// few renditions and windows so that bitfield groups form, merge and split.
    fn id_set() -> impl Strategy<Value = Vec<SegmentId>> {
        let near = (0u32..3, prop_oneof![0u64..40, u64::MAX - 40..=u64::MAX, any::<u64>()])
            .prop_map(|(rendition, msn)| SegmentId { rendition, msn });
        vec(prop_oneof![near, id()], 0..60).prop_map(|mut ids| {
            ids.sort_unstable_by_key(|id| (id.rendition, id.msn));
            ids.dedup();
            ids
        })
    }

    fn message() -> impl Strategy<Value = Message> {
        let ids = id_set;
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
        // Worst case: every id in its own group, with the largest varints.
        let ids: Vec<SegmentId> = (0..MAX_HAVE_SEGMENTS as u64)
            .map(|i| SegmentId { rendition: u32::MAX, msn: u64::MAX - i * (MAX_HAVE_GAP + 1) })
            .rev()
            .collect();
        let m = Message::Have { segments: ids.clone(), fetching: ids };
        let bytes = m.encode();
        assert!(bytes.len() <= MAX_MESSAGE_BYTES, "{} bytes", bytes.len());
        assert_eq!(Message::decode(&bytes), Ok(m));
        let bytes = Message::Request { id: SEG, request_id: 1, offset: 128 }.encode();
        assert_eq!(bytes, [2, 2, 2, 0xac, 0x02, 1, 0x80, 0x01]);
    }

    #[test]
    fn a_live_window_is_a_few_bytes_and_lists_come_back_as_sets() {
        let window: Vec<SegmentId> = [1_000_000, 1_000_001, 1_000_003, 1_000_009, 1_000_001]
            .into_iter()
            .map(|msn| SegmentId { rendition: 1, msn })
            .collect();
        let bytes = Message::Have { segments: window.clone(), fetching: vec![] }.encode();
        // version, type, 1 group: rendition, base (3 bytes), span, 2 bitmap bytes; 0 groups.
        assert_eq!(bytes, [2, 1, 1, 1, 0xc0, 0x84, 0x3d, 10, 0b0000_1011, 0b10, 0]);
        let Ok(Message::Have { segments, .. }) = Message::decode(&bytes) else { panic!() };
        assert_eq!(segments.iter().map(|s| s.msn - 1_000_000).collect::<Vec<_>>(), vec![0, 1, 3, 9]);
    }

    #[test]
    fn non_canonical_bitfields_are_rejected() {
        let group = |parts: &[u8]| {
            let mut b = vec![2, 1, 1];
            b.extend_from_slice(parts);
            b.push(0);
            Message::decode(&b)
        };
        assert!(group(&[0, 5, 3, 0b101]).is_ok());
        assert_eq!(group(&[0, 5, 3, 0b100]), Err(PeerMessageError::BadBitfield), "first bit clear");
        assert_eq!(group(&[0, 5, 3, 0b011]), Err(PeerMessageError::BadBitfield), "last bit clear");
        assert_eq!(group(&[0, 5, 3, 0b1101]), Err(PeerMessageError::BadBitfield), "stray bit");
        assert_eq!(group(&[0, 5, 0]), Err(PeerMessageError::BadBitfield), "empty span");
        // 17 clear bits in a row must have split the group.
        assert_eq!(group(&[0, 5, 19, 0b1, 0, 0b100]), Err(PeerMessageError::BadBitfield));
        // Two groups of one rendition closer than the gap must have been one.
        let two = |second_base: u8| Message::decode(&[2, 1, 2, 0, 5, 1, 1, 0, second_base, 1, 1, 0]);
        assert_eq!(two(10), Err(PeerMessageError::BadBitfield));
        assert_eq!(two(5), Err(PeerMessageError::BadBitfield), "overlapping");
        assert!(two(5 + 18).is_ok());
        // A span that overflows the msn range.
        let mut b = vec![2, 1, 1, 0];
        put_varint(&mut b, u64::MAX);
        b.extend([2, 0b11, 0]);
        assert_eq!(Message::decode(&b), Err(PeerMessageError::BadBitfield));
    }

    #[test]
    fn empty_oversized_wrong_version_and_unknown_type_are_rejected() {
        assert_eq!(Message::decode(&[]), Err(PeerMessageError::Empty));
        let big = vec![0; MAX_MESSAGE_BYTES + 1];
        assert_eq!(Message::decode(&big), Err(PeerMessageError::TooLarge(MAX_MESSAGE_BYTES + 1)));
        assert_eq!(Message::decode(&[9, 1, 0, 0]), Err(PeerMessageError::UnsupportedVersion(9)));
        assert_eq!(Message::decode(&[1, 1, 0, 0]), Err(PeerMessageError::UnsupportedVersion(1)));
        assert_eq!(Message::decode(&[2, 99]), Err(PeerMessageError::UnknownType(99)));
        assert_eq!(Message::decode(&[2]), Err(PeerMessageError::Truncated));
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
        assert_eq!(Message::decode(&[2, 4, 0x80, 0x00, 0, 0]), Err(PeerMessageError::NonCanonicalVarint));
        // rendition = 2^32 does not fit a u32
        assert_eq!(Message::decode(&[2, 4, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0]), Err(PeerMessageError::VarintOverflow));
        // eleven continuation bytes
        let mut bytes = vec![2, 5, 0];
        bytes.extend([0xff; 11]);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::VarintOverflow));
    }

    #[test]
    fn have_lists_are_bounded_before_allocating() {
        let mut bytes = vec![2, 1];
        put_varint(&mut bytes, MAX_HAVE_SEGMENTS as u64 + 1);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1)));
        // A span whose bitmap the remaining bytes cannot hold.
        let mut bytes = vec![2, 1, 1, 0, 0];
        put_varint(&mut bytes, u64::MAX / 2);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::Truncated));
        // More set bits than a list may hold.
        let mut bytes = vec![2, 1, 1, 0, 0];
        put_varint(&mut bytes, 2 * MAX_HAVE_SEGMENTS as u64);
        bytes.extend(vec![0xff; MAX_HAVE_SEGMENTS / 4]);
        assert_eq!(Message::decode(&bytes), Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1)));
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
        let mut too_long = vec![2, 3, 0, 0, 0, 0, 0];
        put_varint(&mut too_long, MAX_CHUNK_DATA_BYTES as u64 + 1);
        assert_eq!(Message::decode(&too_long), Err(PeerMessageError::ChunkTooLarge(MAX_CHUNK_DATA_BYTES as u64 + 1)));
    }
}
