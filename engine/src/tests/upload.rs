//! Serving other peers from our complete segments.

use protocol::peer::MAX_MESSAGE_BYTES;

use super::*;

/// An engine connected to peer "a" that holds segment 3 (`len` bytes, fetched over HTTP).
fn holding(config: Config, len: usize) -> Engine {
    let mut e = engine_with(config, "me", &["a"]);
    e.handle_input(100, Input::PlayerRequest { id: id(3) });
    e.handle_input(110, Input::HttpChunk { id: id(3), offset: 0, bytes: body(3, len) });
    e.handle_input(120, Input::HttpDone { id: id(3), total_len: len as u64 });
    drain(&mut e);
    e
}

fn request(request_id: u32, offset: u64) -> Input {
    message(&pid("a"), Message::Request { id: id(3), request_id, offset }.encode())
}

/// Reassembles the chunks among `messages`, checking each follows the previous one.
fn reassemble(messages: &[Message], from: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    for m in messages {
        let Message::Chunk { offset, data, .. } = m else { panic!("not a chunk: {m:?}") };
        assert_eq!(*offset, from + bytes.len() as u64);
        bytes.extend_from_slice(data);
    }
    bytes
}

#[test]
fn a_request_is_served_in_chunks_that_fit_one_message() {
    let mut e = holding(Config::default(), 200_000);

    let out = feed(&mut e, 200, request(7, 0));

    let sizes: Vec<usize> =
        out.iter().map(|o| if let Output::SendToPeer { bytes, .. } = o { bytes.len() } else { 0 }).collect();
    assert_eq!(sizes.len(), 4);
    assert!(sizes.iter().all(|&n| n <= MAX_MESSAGE_BYTES), "{sizes:?}");
    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 0), body(3, 200_000));
    assert_eq!(e.stats().p2p_up_bytes, 200_000);
}

#[test]
fn chunks_respect_a_smaller_configured_message_size() {
    let mut e = holding(Config { max_message_bytes: 16 * 1024, ..Config::default() }, 50_000);

    let out = feed(&mut e, 200, request(7, 0));

    assert!(out.iter().all(|o| matches!(o, Output::SendToPeer { bytes, .. } if bytes.len() <= 16 * 1024)));
    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 0), body(3, 50_000));
}

#[test]
fn a_resumed_request_gets_only_the_rest() {
    let mut e = holding(Config::default(), 10_000);

    let out = feed(&mut e, 200, request(7, 4_000));

    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 4_000), body(3, 10_000)[4_000..].to_vec());
    assert_eq!(e.stats().p2p_up_bytes, 6_000);
}

#[test]
fn a_request_at_the_end_gets_one_empty_chunk() {
    let mut e = holding(Config::default(), 10_000);

    let out = feed(&mut e, 200, request(7, 10_000));

    let chunk = Message::Chunk { id: id(3), request_id: 7, offset: 10_000, total_len: 10_000, data: vec![] };
    assert_eq!(sent_to(&out, &pid("a")), vec![chunk]);
}

#[test]
fn what_we_cannot_serve_is_answered_absent() {
    let mut e = holding(Config::default(), 10_000);
    let absent = |request_id| vec![Message::Absent { id: id(3), request_id }];

    assert_eq!(sent_to(&feed(&mut e, 200, request(1, 10_001)), &pid("a")), absent(1));
    let other = message(&pid("a"), Message::Request { id: id(4), request_id: 2, offset: 0 }.encode());
    assert_eq!(sent_to(&feed(&mut e, 200, other), &pid("a")), vec![Message::Absent { id: id(4), request_id: 2 }]);
}

#[test]
fn a_peer_that_does_not_upload_answers_absent() {
    let mut e = holding(Config { upload_allowed: false, ..Config::default() }, 10_000);

    let out = feed(&mut e, 200, request(1, 0));

    assert_eq!(sent_to(&out, &pid("a")), vec![Message::Absent { id: id(3), request_id: 1 }]);
    assert_eq!(e.stats().p2p_up_bytes, 0);
}

#[test]
fn the_same_segment_is_served_to_one_peer_a_bounded_number_of_times() {
    let mut e = holding(Config::default(), 1_000);

    for request_id in 0..3 {
        assert!(matches!(sent_to(&feed(&mut e, 200, request(request_id, 0)), &pid("a"))[..], [Message::Chunk { .. }]));
    }
    let out = feed(&mut e, 200, request(3, 0));

    assert_eq!(sent_to(&out, &pid("a")), vec![Message::Absent { id: id(3), request_id: 3 }]);
}
