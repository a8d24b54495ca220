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
    message(&pid("a"), Message::Request { id: id(3), request_id, offset, end: None, deadline_ms: None }.encode())
}

/// Reassembles the chunks among `messages` (announcements aside), checking each follows the
/// previous one.
fn reassemble(messages: &[Message], from: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    for m in messages.iter().filter(|m| !matches!(m, Message::Have { .. })) {
        let Message::Chunk { offset, data, .. } = m else { panic!("not a chunk: {m:?}") };
        assert_eq!(*offset, from + bytes.len() as u64);
        bytes.extend_from_slice(data);
    }
    bytes
}

#[test]
fn a_request_is_served_in_chunks_that_fit_one_message() {
    let mut e = holding(base(), 200_000);

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
    let mut e = holding(Config { max_message_bytes: 16 * 1024, ..base() }, 50_000);

    let out = feed(&mut e, 200, request(7, 0));

    assert!(out.iter().all(|o| matches!(o, Output::SendToPeer { bytes, .. } if bytes.len() <= 16 * 1024)));
    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 0), body(3, 50_000));
}

#[test]
fn a_resumed_request_gets_only_the_rest() {
    let mut e = holding(base(), 10_000);

    let out = feed(&mut e, 200, request(7, 4_000));

    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 4_000), body(3, 10_000)[4_000..].to_vec());
    assert_eq!(e.stats().p2p_up_bytes, 6_000);
}

#[test]
fn a_request_at_the_end_gets_one_empty_chunk() {
    let mut e = holding(base(), 10_000);

    let out = feed(&mut e, 200, request(7, 10_000));

    let chunk = Message::Chunk { id: id(3), request_id: 7, offset: 10_000, total_len: 10_000, data: vec![] };
    assert_eq!(sent_to(&out, &pid("a")), vec![chunk]);
}

#[test]
fn what_we_cannot_serve_is_answered_absent() {
    let mut e = holding(base(), 10_000);
    let absent = |request_id| vec![Message::Absent { id: id(3), request_id }];

    assert_eq!(sent_to(&feed(&mut e, 200, request(1, 10_001)), &pid("a")), absent(1));
    let other = message(
        &pid("a"),
        Message::Request { id: id(4), request_id: 2, offset: 0, end: None, deadline_ms: None }.encode(),
    );
    assert_eq!(sent_to(&feed(&mut e, 200, other), &pid("a")), vec![Message::Absent { id: id(4), request_id: 2 }]);
}

#[test]
fn a_peer_that_does_not_upload_answers_absent() {
    let mut e = holding(Config { upload_allowed: false, ..base() }, 10_000);

    let out = feed(&mut e, 200, request(1, 0));

    assert_eq!(sent_to(&out, &pid("a")), vec![Message::Absent { id: id(3), request_id: 1 }]);
    assert_eq!(e.stats().p2p_up_bytes, 0);
}

#[test]
fn the_same_segment_is_served_to_one_peer_a_bounded_number_of_times() {
    let mut e = holding(base(), 1_000);

    for request_id in 0..3 {
        assert!(matches!(sent_to(&feed(&mut e, 200, request(request_id, 0)), &pid("a"))[..], [Message::Chunk { .. }]));
    }
    let out = feed(&mut e, 200, request(3, 0));

    assert_eq!(sent_to(&out, &pid("a")), vec![Message::Absent { id: id(3), request_id: 3 }]);
}

/// An engine connected to "a" and "b" that is fetching segment 3 from the CDN (size unknown).
fn receiving_over_http() -> Engine {
    let mut e = engine("me", &["a", "b"]);
    feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    e
}

#[test]
fn a_segment_still_arriving_over_http_is_relayed_as_its_bytes_come() {
    let mut e = receiving_over_http();
    let data = body(3, 150_000);
    feed(&mut e, 110, Input::HttpChunk { id: id(3), offset: 0, bytes: data[..100_000].to_vec() });

    // Size unknown until the response ends: the request waits, nothing is sent yet.
    let out = feed(&mut e, 120, request(7, 0));
    assert!(sent_to(&out, &pid("a")).is_empty(), "{out:?}");
    let out = feed(&mut e, 130, Input::HttpChunk { id: id(3), offset: 100_000, bytes: data[100_000..].to_vec() });
    assert!(sent_to(&out, &pid("a")).is_empty());
    let out = feed(&mut e, 140, Input::HttpDone { id: id(3), total_len: 150_000 });

    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 0), data);
    assert_eq!(e.stats().p2p_up_bytes, 150_000);
}

#[test]
fn a_segment_still_arriving_from_a_peer_is_relayed_chunk_by_chunk() {
    let mut e = engine("me", &["a", "b"]);
    feed(&mut e, 100, message(&pid("b"), have(&[0, 3], &[])));
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    let [(_, from_b, 0)] = requests(&sent_to(&out, &pid("b")))[..] else { panic!("{out:?}") };
    // We announce it as being received: others need not fetch it from the CDN.
    assert!(sent_to(&out, &pid("a")).contains(&Message::Have { segments: vec![], fetching: vec![id(3)] }));
    let data = body(3, 30_000);
    feed(&mut e, 110, message(&pid("b"), chunk(3, from_b, 0, 30_000, &data[..10_000])));

    let out = feed(&mut e, 120, request(7, 0));
    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 0), data[..10_000].to_vec(), "what we hold, at once");
    let out = feed(&mut e, 130, message(&pid("b"), chunk(3, from_b, 10_000, 30_000, &data[10_000..25_000])));
    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 10_000), data[10_000..25_000].to_vec(), "then as it comes");
    let out = feed(&mut e, 140, message(&pid("b"), chunk(3, from_b, 25_000, 30_000, &data[25_000..])));

    assert_eq!(reassemble(&sent_to(&out, &pid("a")), 25_000), data[25_000..].to_vec());
    assert_eq!(e.stats().p2p_up_bytes, 30_000);
    assert_eq!(delivered(&out), vec![(id(3), data)]);
}

#[test]
fn a_relay_that_loses_its_source_says_absent_so_the_requester_moves_on() {
    let mut e = engine("me", &["a", "b"]);
    feed(&mut e, 100, message(&pid("b"), have(&[0, 3], &[])));
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    let [(_, from_b, 0)] = requests(&sent_to(&out, &pid("b")))[..] else { panic!("{out:?}") };
    feed(&mut e, 110, message(&pid("b"), chunk(3, from_b, 0, 30_000, &body(3, 10_000))));
    feed(&mut e, 120, request(7, 0));

    // Before playback the CDN takes over at once; the relay goes on from its bytes.
    let out = feed(&mut e, 130, Input::PeerClosed { peer: pid("b") });
    assert_eq!(fetches(&out), vec![(id(3), 10_000)]);
    assert!(sent_to(&out, &pid("a")).iter().all(|m| !matches!(m, Message::Absent { .. })));

    let out = feed(&mut e, 140, Input::HttpFailed { id: id(3), status: Some(503) });
    assert!(sent_to(&out, &pid("a")).contains(&Message::Absent { id: id(3), request_id: 7 }));
}

#[test]
fn a_cancelled_relay_gets_no_more_bytes() {
    let mut e = receiving_over_http();
    feed(&mut e, 120, request(7, 0));
    feed(&mut e, 125, message(&pid("a"), Message::Cancel { id: id(3), request_id: 7 }.encode()));
    feed(&mut e, 130, Input::HttpChunk { id: id(3), offset: 0, bytes: body(3, 5_000) });

    let out = feed(&mut e, 140, Input::HttpDone { id: id(3), total_len: 5_000 });

    assert!(sent_to(&out, &pid("a")).iter().all(|m| !matches!(m, Message::Chunk { .. })), "{out:?}");
}

#[test]
fn upload_gating_refuses_what_the_uplink_cannot_send_in_time() {
    // 200 kB segments of 2 s; an uplink of 250 kB/s sends one in 0.8 s.
    let mut e = holding(base(), 200_000);
    e.handle_input(150, Input::PeerConnected { peer: pid("b") });
    e.handle_input(150, message(&pid("b"), have(&[0], &[])));
    e.handle_uplink(160, 250_000, 0);
    drain(&mut e);

    let first = sent_to(&feed(&mut e, 200, request(1, 0)), &pid("a"));
    assert!(matches!(first[0], Message::Chunk { .. }), "an idle uplink serves: {first:?}");

    // 0.8 s queued already: another copy would end after 1.6 s, past the budget (1.3 s).
    let b = message(
        &pid("b"),
        Message::Request { id: id(3), request_id: 2, offset: 0, end: None, deadline_ms: None }.encode(),
    );
    assert_eq!(sent_to(&feed(&mut e, 210, b), &pid("b")), vec![Message::Absent { id: id(3), request_id: 2 }]);

    // Once the queue drained, it serves again.
    let b = message(
        &pid("b"),
        Message::Request { id: id(3), request_id: 3, offset: 0, end: None, deadline_ms: None }.encode(),
    );
    assert!(matches!(sent_to(&feed(&mut e, 1_100, b), &pid("b"))[0], Message::Chunk { .. }));
}

#[test]
fn an_uplink_slower_than_the_stream_announces_nothing_and_serves_nobody() {
    let mut e = holding(base(), 200_000);
    // 50 kB/s: one 200 kB segment takes 4 s, twice its duration.
    let out = {
        e.handle_uplink(150, 50_000, 0);
        drain(&mut e)
    };

    assert_eq!(sent_to(&out, &pid("a")), vec![Message::Have { segments: vec![], fetching: vec![] }]);
    assert_eq!(
        sent_to(&feed(&mut e, 200, request(1, 0)), &pid("a")),
        vec![Message::Absent { id: id(3), request_id: 1 }]
    );
}

#[test]
fn upload_gating_counts_only_the_range_asked_for() {
    // As above: 0.8 s of sending queued for "a", a budget of 1.3 s.
    let mut e = holding(base(), 200_000);
    e.handle_input(150, Input::PeerConnected { peer: pid("b") });
    e.handle_input(150, message(&pid("b"), have(&[0], &[])));
    e.handle_uplink(160, 250_000, 0);
    drain(&mut e);
    feed(&mut e, 200, request(1, 0));
    let ask = |request_id, offset, end| {
        message(&pid("b"), Message::Request { id: id(3), request_id, offset, end, deadline_ms: Some(1_500) }.encode())
    };

    // The whole segment would end 1.6 s out; its last 40 kB (a split's tail) 0.96 s out.
    let whole = sent_to(&feed(&mut e, 210, ask(2, 0, None)), &pid("b"));
    assert_eq!(whole, vec![Message::Absent { id: id(3), request_id: 2 }]);
    let tail = sent_to(&feed(&mut e, 210, ask(3, 160_000, Some(200_000))), &pid("b"));

    assert_eq!(reassemble(&tail, 160_000), body(3, 200_000)[160_000..]);
}
