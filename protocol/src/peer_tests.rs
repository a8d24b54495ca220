//! Tests of the peer protocol codec: round trips, canonical form, bounds.
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

/// The version byte every message starts with.
const V: u8 = PEER_PROTOCOL_VERSION;

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
        (id(), any::<u32>(), 0..MAX_SEGMENT_BYTES, any::<Option<u64>>(), any::<Option<u32>>()).prop_map(
            |(id, request_id, offset, end, deadline)| Message::Request {
                id,
                request_id,
                offset,
                end: end.map(|e| offset + 1 + e % (MAX_SEGMENT_BYTES - offset)),
                deadline_ms: deadline.map(|d| d.max(1)),
            }
        ),
        (id(), 0..=MAX_SEGMENT_BYTES).prop_map(|(id, len)| Message::HaveChunk { id, len }),
        (any::<u8>(), any::<bool>()).prop_map(|(streams, live_edge)| Message::Uplink { streams, live_edge }),
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
    let bytes = Message::Request { id: SEG, request_id: 1, offset: 128, end: None, deadline_ms: Some(3) }.encode();
    assert_eq!(bytes, [V, 2, 2, 0xac, 0x02, 1, 0x80, 0x01, 0, 3]);
}

#[test]
fn a_live_window_is_a_few_bytes_and_lists_come_back_as_sets() {
    let window: Vec<SegmentId> = [1_000_000, 1_000_001, 1_000_003, 1_000_009, 1_000_001]
        .into_iter()
        .map(|msn| SegmentId { rendition: 1, msn })
        .collect();
    let bytes = Message::Have { segments: window.clone(), fetching: vec![] }.encode();
    // version, type, 1 group: rendition, base (3 bytes), span, 2 bitmap bytes; 0 groups.
    assert_eq!(bytes, [V, 1, 1, 1, 0xc0, 0x84, 0x3d, 10, 0b0000_1011, 0b10, 0]);
    let Ok(Message::Have { segments, .. }) = Message::decode(&bytes) else { panic!() };
    assert_eq!(segments.iter().map(|s| s.msn - 1_000_000).collect::<Vec<_>>(), vec![0, 1, 3, 9]);
}

#[test]
fn non_canonical_bitfields_are_rejected() {
    let group = |parts: &[u8]| {
        let mut b = vec![V, 1, 1];
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
    let two = |second_base: u8| Message::decode(&[V, 1, 2, 0, 5, 1, 1, 0, second_base, 1, 1, 0]);
    assert_eq!(two(10), Err(PeerMessageError::BadBitfield));
    assert_eq!(two(5), Err(PeerMessageError::BadBitfield), "overlapping");
    assert!(two(5 + 18).is_ok());
    // A span that overflows the msn range.
    let mut b = vec![V, 1, 1, 0];
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
    assert_eq!(Message::decode(&[2, 1, 0, 0]), Err(PeerMessageError::UnsupportedVersion(2)));
    assert_eq!(Message::decode(&[V, 99]), Err(PeerMessageError::UnknownType(99)));
    assert_eq!(Message::decode(&[V]), Err(PeerMessageError::Truncated));
}

#[test]
fn chunk_headers_are_read_without_decoding() {
    let chunk = Message::Chunk { id: SEG, request_id: 9, offset: 0, total_len: 3, data: vec![1, 2, 3] }.encode();
    assert_eq!(chunk_request(&chunk), Some((SEG, 9)));
    assert!(is_chunk(&chunk));
    let cancel = Message::Cancel { id: SEG, request_id: 9 }.encode();
    assert_eq!(chunk_request(&cancel), None);
    assert!(!is_chunk(&cancel));
    assert_eq!(chunk_request(&[V, 3]), None);
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
    assert_eq!(Message::decode(&[V, 4, 0x80, 0x00, 0, 0]), Err(PeerMessageError::NonCanonicalVarint));
    // rendition = 2^32 does not fit a u32
    assert_eq!(Message::decode(&[V, 4, 0x80, 0x80, 0x80, 0x80, 0x10, 0, 0]), Err(PeerMessageError::VarintOverflow));
    // eleven continuation bytes
    let mut bytes = vec![V, 5, 0];
    bytes.extend([0xff; 11]);
    assert_eq!(Message::decode(&bytes), Err(PeerMessageError::VarintOverflow));
}

#[test]
fn have_lists_are_bounded_before_allocating() {
    let mut bytes = vec![V, 1];
    put_varint(&mut bytes, MAX_HAVE_SEGMENTS as u64 + 1);
    assert_eq!(Message::decode(&bytes), Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1)));
    // A span whose bitmap the remaining bytes cannot hold.
    let mut bytes = vec![V, 1, 1, 0, 0];
    put_varint(&mut bytes, u64::MAX / 2);
    assert_eq!(Message::decode(&bytes), Err(PeerMessageError::Truncated));
    // More set bits than a list may hold.
    let mut bytes = vec![V, 1, 1, 0, 0];
    put_varint(&mut bytes, 2 * MAX_HAVE_SEGMENTS as u64);
    bytes.extend(vec![0xff; MAX_HAVE_SEGMENTS / 4]);
    assert_eq!(Message::decode(&bytes), Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1)));
}

#[test]
fn chunk_bounds_are_checked() {
    let chunk = |offset, total_len, data: Vec<u8>| Message::Chunk { id: SEG, request_id: 0, offset, total_len, data };
    let past_end = chunk(10, 12, vec![0; 3]).encode();
    assert_eq!(Message::decode(&past_end), Err(PeerMessageError::ChunkOutOfBounds));
    let huge = chunk(0, MAX_SEGMENT_BYTES + 1, vec![]).encode();
    assert_eq!(Message::decode(&huge), Err(PeerMessageError::SegmentTooLarge(MAX_SEGMENT_BYTES + 1)));
    let overflow = chunk(u64::MAX, u64::MAX, vec![1]).encode();
    assert!(Message::decode(&overflow).is_err());
    let request = |offset, end| Message::Request { id: SEG, request_id: 0, offset, end, deadline_ms: None };
    let far = request(MAX_SEGMENT_BYTES + 1, None).encode();
    assert!(matches!(Message::decode(&far), Err(PeerMessageError::SegmentTooLarge { .. })));
    let past = request(0, Some(MAX_SEGMENT_BYTES + 1)).encode();
    assert!(matches!(Message::decode(&past), Err(PeerMessageError::SegmentTooLarge { .. })));
    assert_eq!(Message::decode(&request(10, Some(10)).encode()), Err(PeerMessageError::EmptyRange));
    assert!(Message::decode(&request(10, Some(11)).encode()).is_ok());
    let huge = Message::HaveChunk { id: SEG, len: MAX_SEGMENT_BYTES + 1 }.encode();
    assert!(matches!(Message::decode(&huge), Err(PeerMessageError::SegmentTooLarge { .. })));
    let mut too_long = vec![V, 3, 0, 0, 0, 0, 0];
    put_varint(&mut too_long, MAX_CHUNK_DATA_BYTES as u64 + 1);
    assert_eq!(Message::decode(&too_long), Err(PeerMessageError::ChunkTooLarge(MAX_CHUNK_DATA_BYTES as u64 + 1)));
}

#[test]
fn uplink_has_the_documented_layout() {
    assert_eq!(Message::Uplink { streams: 4, live_edge: true }.encode(), [V, 7, 4, 1]);
    assert_eq!(Message::decode(&[V, 7, 4, 0]), Ok(Message::Uplink { streams: 4, live_edge: false }));
    assert_eq!(Message::decode(&[V, 7, 4, 2]), Err(PeerMessageError::UnknownFlags(2)));
    assert_eq!(Message::decode(&[V, 7, 4]), Err(PeerMessageError::Truncated));
    assert_eq!(Message::decode(&[V, 7]), Err(PeerMessageError::Truncated));
    assert_eq!(Message::decode(&[V, 7, 4, 0, 0]), Err(PeerMessageError::TrailingBytes(1)));
}
