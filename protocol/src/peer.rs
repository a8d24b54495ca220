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
//! type 2 Request  = segment_id request_id:varint offset:varint end:varint deadline_ms:varint   (0 = none)
//! type 3 Chunk    = segment_id request_id:varint offset:varint total_len:varint len:varint data:u8*len
//! type 4 Absent   = segment_id request_id:varint
//! type 5 Cancel   = segment_id request_id:varint
//! type 6 HaveChunk = segment_id len:varint
//! type 7 Uplink   = streams:u8 flags:u8         (streams 0 = not measured, or below one; flags bit 0 = live edge)
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
/// Version 2: `Have` as bitfields; a peer announcing a segment it is receiving relays its chunks;
/// requests carry a byte range and the requester's deadline; `HaveChunk` announces progress.
/// Version 3: `Uplink` announces how many copies of the stream the sender's uplink carries, so
/// that neighbours agree on who seeds (a version 2 peer would drop the connection on it; the
/// version byte says so first).
/// Version 4: `Uplink` also says whether the sender plays at the live edge, where it fetches
/// every new segment from the CDN as soon as it is listed; such a peer seeds first.
pub const PEER_PROTOCOL_VERSION: u8 = 4;

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
    pub(super) const HAVE_CHUNK: u8 = 6;
    pub(super) const UPLINK: u8 = 7;
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
    /// Ask for bytes `offset..end` of segment `id`; answered by [`Message::Chunk`]s or
    /// [`Message::Absent`].
    Request {
        /// The segment.
        id: SegmentId,
        /// Chosen by the requester; echoed in the answer so late answers to older requests can be told apart.
        request_id: u32,
        /// First byte wanted (non-zero to resume a partial download), in bytes.
        offset: u64,
        /// End of the range wanted (exclusive), in bytes; `None` for the rest of the segment.
        /// When present it is above `offset`.
        end: Option<u64>,
        /// Time left until the requester needs the range, in ms from when it sent the request;
        /// `None` when it has no deadline. A peer that cannot deliver by then answers `Absent`.
        deadline_ms: Option<u32>,
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
    /// The sender holds bytes `0..len` of segment `id`, which it is still receiving (and relays).
    HaveChunk {
        /// The segment.
        id: SegmentId,
        /// Bytes held, at most [`MAX_SEGMENT_BYTES`].
        len: u64,
    },
    /// What neighbours need to rank the sender as a seeder: how many copies of the stream its
    /// measured uplink carries at once, rounded down, and whether it plays at the live edge.
    /// Sent when the channel opens and whenever either changes. Replaces the previous one.
    /// Peers seed in order of it, so every neighbour must see the same value.
    Uplink {
        /// Copies of the stream; 0 while not measured, or below one.
        streams: u8,
        /// The sender plays so close to the live edge (live latency below one segment duration
        /// plus its safety margins) that it fetches each new segment from the CDN on sight, and
        /// it may seed (it uploads, and its uplink carries two copies or was not measured).
        live_edge: bool,
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
    /// An `Uplink` flags byte had bits set that this version does not define.
    #[error("unknown flags {0:#04x} in an uplink message")]
    UnknownFlags(u8),
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
    /// A request's range is empty (`end` not above `offset`), or its deadline is zero.
    #[error("empty request range or zero deadline")]
    EmptyRange,
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
                set::put_segment_set(&mut out, segments);
                set::put_segment_set(&mut out, fetching);
            }
            Self::Request { id, request_id, offset, end, deadline_ms } => {
                out.push(kind::REQUEST);
                put_segment_id(&mut out, *id);
                put_varint(&mut out, u64::from(*request_id));
                put_varint(&mut out, *offset);
                put_varint(&mut out, end.unwrap_or(0));
                put_varint(&mut out, u64::from(deadline_ms.unwrap_or(0)));
            }
            Self::HaveChunk { id, len } => {
                out.push(kind::HAVE_CHUNK);
                put_segment_id(&mut out, *id);
                put_varint(&mut out, *len);
            }
            Self::Uplink { streams, live_edge } => {
                out.push(kind::UPLINK);
                out.push(*streams);
                out.push(u8::from(*live_edge));
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
                let end = Some(r.varint()?).filter(|&e| e != 0);
                let deadline_ms = Some(r.u32()?).filter(|&d| d != 0);
                Self::Request { id, request_id, offset, end, deadline_ms }
            }
            kind::HAVE_CHUNK => Self::HaveChunk { id: r.segment_id()?, len: r.varint()? },
            kind::UPLINK => {
                let streams = r.u8()?;
                let live_edge = match r.u8()? {
                    0 => false,
                    1 => true,
                    flags => return Err(PeerMessageError::UnknownFlags(flags)),
                };
                Self::Uplink { streams, live_edge }
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
            Self::Request { offset, end, deadline_ms, .. } => {
                if *offset > MAX_SEGMENT_BYTES {
                    return Err(PeerMessageError::SegmentTooLarge(*offset));
                }
                if let Some(end) = end {
                    if *end > MAX_SEGMENT_BYTES {
                        return Err(PeerMessageError::SegmentTooLarge(*end));
                    }
                    if end <= offset {
                        return Err(PeerMessageError::EmptyRange);
                    }
                }
                // `Some(0)` would encode as `None`.
                if *deadline_ms == Some(0) {
                    return Err(PeerMessageError::EmptyRange);
                }
            }
            Self::HaveChunk { len, .. } => {
                if *len > MAX_SEGMENT_BYTES {
                    return Err(PeerMessageError::SegmentTooLarge(*len));
                }
            }
            Self::Uplink { .. } => {}
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

/// The segment and request a [`Message::Chunk`] answers, read from its header without decoding
/// (or copying) its data; `None` for any other message or malformed bytes. For shells that
/// manage queues of encoded messages.
#[must_use]
pub fn chunk_request(bytes: &[u8]) -> Option<(SegmentId, u32)> {
    let [PEER_PROTOCOL_VERSION, kind::CHUNK, rest @ ..] = bytes else { return None };
    let mut r = Reader { rest };
    Some((r.segment_id().ok()?, r.u32().ok()?))
}

/// Whether `bytes` (an encoded message) carries segment data, by its type byte alone: shells
/// send every other (control) message ahead of queued data.
#[must_use]
pub fn is_chunk(bytes: &[u8]) -> bool {
    bytes.get(1) == Some(&kind::CHUNK)
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
}

#[path = "peer_set.rs"]
mod set;
#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
