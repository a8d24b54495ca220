//! Getting what the player asks for: from peers while the deadline allows, else from the CDN,
//! resuming from the bytes already held.

use super::*;

/// An engine playing at 1x from position 0 (reported at 2 s), connected to `others`.
fn playing(others: &[&str]) -> Engine {
    let mut e = engine("me", others);
    e.handle_input(2_000, Input::Playback { position_ms: 0, rate: 1.0, buffered_end_ms: 6_000 });
    drain(&mut e);
    e
}

/// The player asks for segment 3: it starts at 6 s, so its deadline is 2 000 + 6 000 − 500 =
/// 7 500, and it is due at the CDN 300 ms (time to first byte) plus its missing bytes at
/// 400 kB/s (500 kB/s less a quarter; 1 MB when its size is unknown: 2 500 ms) earlier.
fn ask(e: &mut Engine, now: Millis) -> Vec<Output> {
    feed(e, now, Input::PlayerRequest { id: id(3) })
}

#[test]
fn an_old_segment_nobody_holds_comes_from_the_cdn_at_once() {
    let mut e = playing(&["a"]);

    let out = ask(&mut e, 2_000);

    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn a_segment_a_peer_is_receiving_is_relayed_until_due_then_resumed_on_the_cdn() {
    let mut e = playing(&["a"]);
    feed(&mut e, 2_000, message(&pid("a"), have(&[0], &[3])));
    let out = ask(&mut e, 2_000);
    assert!(fetches(&out).is_empty());
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    feed(&mut e, 2_500, message(&pid("a"), chunk(3, request_id, 0, 5_000, &body(3, 1_000))));

    // Nothing more for the idle timeout: given up, and nobody else has it; wait until due.
    e.handle_timeout(4_000);
    let out = drain(&mut e);
    assert_eq!(sent_to(&out, &pid("a"))[0], Message::Cancel { id: id(3), request_id });
    assert!(fetches(&out).is_empty());
    let due = 7_500 - (300 + 4_000 / 400);
    e.handle_timeout(due - 1);
    assert!(fetches(&drain(&mut e)).is_empty());

    e.handle_timeout(due);

    assert_eq!(fetches(&drain(&mut e)), vec![(id(3), 1_000)]);
}

#[test]
fn before_playback_a_segment_that_is_only_being_fetched_comes_from_the_cdn() {
    let mut e = engine("me", &["a"]);
    feed(&mut e, 100, message(&pid("a"), have(&[0], &[3])));

    let out = ask(&mut e, 100);

    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn before_playback_a_segment_a_peer_holds_comes_from_that_peer() {
    let mut e = engine("me", &["a"]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));

    let out = ask(&mut e, 100);

    assert!(fetches(&out).is_empty());
    assert_eq!(requests(&sent_to(&out, &pid("a"))).len(), 1);
}

#[test]
fn a_peer_too_slow_for_the_deadline_is_left_for_the_cdn_from_the_received_offset() {
    let mut e = playing(&["a"]);
    feed(&mut e, 2_000, message(&pid("a"), have(&[0, 3], &[])));
    let out = ask(&mut e, 2_000);
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    feed(&mut e, 2_100, message(&pid("a"), chunk(3, request_id, 0, 500_000, &body(3, 5_000))));
    feed(&mut e, 2_300, message(&pid("a"), chunk(3, request_id, 5_000, 500_000, &body(3, 5_000))));

    // 10 kB in 300 ms: the other 490 kB would take 14.7 s, the CDN 1.5 s.
    e.handle_timeout(2_400);
    let out = drain(&mut e);

    assert_eq!(sent_to(&out, &pid("a"))[0], Message::Cancel { id: id(3), request_id });
    assert_eq!(fetches(&out), vec![(id(3), 10_000)]);
}

#[test]
fn a_peer_that_sends_nothing_before_the_due_time_is_left_for_the_cdn() {
    let mut e = playing(&["a"]);
    e.handle_input(2_000, Input::Playback { position_ms: 2_500, rate: 1.0, buffered_end_ms: 6_000 });
    feed(&mut e, 2_000, message(&pid("a"), have(&[0, 3], &[])));
    let out = ask(&mut e, 2_000);
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    // Deadline 2 000 + 3 500 − 500 = 5 000; an unknown size takes 2 800 ms from the CDN.
    assert_eq!(e.poll_timeout(), Some(2_200));

    e.handle_timeout(2_200);
    let out = drain(&mut e);

    assert_eq!(sent_to(&out, &pid("a"))[0], Message::Cancel { id: id(3), request_id });
    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn a_peer_closing_mid_transfer_resumes_on_the_cdn_from_the_received_offset() {
    let mut e = engine("me", &["a"]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    let out = ask(&mut e, 100);
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    let data = body(3, 3_000);
    feed(&mut e, 150, message(&pid("a"), chunk(3, request_id, 0, 3_000, &data[..1_000])));

    let out = feed(&mut e, 200, Input::PeerClosed { peer: pid("a") });
    assert_eq!(fetches(&out), vec![(id(3), 1_000)]);
    feed(&mut e, 250, Input::HttpChunk { id: id(3), offset: 1_000, bytes: data[1_000..].to_vec() });
    let out = feed(&mut e, 260, Input::HttpDone { id: id(3), total_len: 3_000 });

    assert_eq!(delivered(&out), vec![(id(3), data)]);
    assert_eq!((e.stats().p2p_down_bytes, e.stats().http_bytes), (1_000, 2_000));
    assert_eq!(e.stats().segments_delivered, 1);
}

#[test]
fn a_stalled_peer_is_dropped_for_another_holder() {
    let mut e = playing(&["a", "b"]);
    feed(&mut e, 2_000, message(&pid("a"), have(&[0, 3], &[])));
    feed(&mut e, 2_000, message(&pid("b"), have(&[0, 3], &[])));
    let out = ask(&mut e, 2_000);
    let first = if requests(&sent_to(&out, &pid("a"))).is_empty() { pid("b") } else { pid("a") };
    let other = if first == pid("a") { pid("b") } else { pid("a") };

    e.handle_timeout(3_500);
    let out = drain(&mut e);

    assert!(matches!(sent_to(&out, &first)[..], [Message::Cancel { .. }]));
    assert_eq!(requests(&sent_to(&out, &other)).len(), 1);
}

#[test]
fn absent_moves_on_to_the_next_holder_then_to_the_cdn() {
    let mut e = engine("me", &["a", "b"]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    feed(&mut e, 100, message(&pid("b"), have(&[0, 3], &[])));
    let mut out = ask(&mut e, 100);

    for _ in 0..2 {
        let asked = if requests(&sent_to(&out, &pid("a"))).is_empty() { pid("b") } else { pid("a") };
        let [(_, request_id, 0)] = requests(&sent_to(&out, &asked))[..] else { panic!("{out:?}") };
        out = feed(&mut e, 200, message(&asked, Message::Absent { id: id(3), request_id }.encode()));
    }

    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn a_length_that_disagrees_with_the_playlist_is_refetched_and_the_peer_dropped() {
    let mut e = engine("me", &["a"]);
    let sized = SegmentInfo { byte_len: Some(3_000), ..info(3) };
    e.handle_input(0, Input::Playlist { rendition: 0, segments: vec![info(2), sized] });
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    let out = ask(&mut e, 100);
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };

    let out = feed(&mut e, 150, message(&pid("a"), chunk(3, request_id, 0, 2_999, &body(3, 1_000))));

    assert!(out.contains(&Output::Disconnect { peer: pid("a") }));
    assert_eq!(fetches(&out), vec![(id(3), 0)]);
    assert_eq!(e.stats().peers_connected, 0);
}

#[test]
fn a_length_that_disagrees_with_an_earlier_source_is_refetched() {
    let mut e = engine("me", &["a", "b"]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    let out = ask(&mut e, 100);
    let [(_, first, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    feed(&mut e, 150, message(&pid("a"), chunk(3, first, 0, 3_000, &body(3, 1_000))));
    feed(&mut e, 160, message(&pid("b"), have(&[0, 3], &[])));
    let out = feed(&mut e, 170, Input::PeerClosed { peer: pid("a") });
    let [(_, second, 1_000)] = requests(&sent_to(&out, &pid("b")))[..] else { panic!("{out:?}") };

    let out = feed(&mut e, 180, message(&pid("b"), chunk(3, second, 1_000, 4_000, &body(3, 1_000))));

    assert!(out.contains(&Output::Disconnect { peer: pid("b") }));
    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn overlapping_http_bytes_are_not_counted_twice() {
    let mut e = playing(&[]);
    ask(&mut e, 2_000);
    let data = body(3, 2_000);
    feed(&mut e, 2_010, Input::HttpChunk { id: id(3), offset: 0, bytes: data[..1_500].to_vec() });
    feed(&mut e, 2_020, Input::HttpChunk { id: id(3), offset: 1_000, bytes: data[1_000..].to_vec() });

    let out = feed(&mut e, 2_030, Input::HttpDone { id: id(3), total_len: 2_000 });

    assert_eq!(delivered(&out), vec![(id(3), data)]);
    assert_eq!(e.stats().http_bytes, 2_000);
}

#[test]
fn a_segment_is_delivered_once_per_request() {
    let mut e = playing(&[]);
    ask(&mut e, 2_000);
    feed(&mut e, 2_010, Input::HttpChunk { id: id(3), offset: 0, bytes: body(3, 10) });
    assert_eq!(delivered(&feed(&mut e, 2_020, Input::HttpDone { id: id(3), total_len: 10 })).len(), 1);
    assert!(delivered(&feed(&mut e, 2_030, Input::PlayerAbort { id: id(3) })).is_empty());

    let out = ask(&mut e, 2_040);

    assert_eq!(delivered(&out), vec![(id(3), body(3, 10))]);
    assert_eq!(e.stats().segments_delivered, 2);
}

#[test]
fn unknown_segments_and_cdn_failures_fail_the_player_request() {
    let mut e = playing(&[]);
    assert_eq!(feed(&mut e, 2_000, Input::PlayerRequest { id: id(99) }), vec![Output::PlayerFailed { id: id(99) }]);
    ask(&mut e, 2_000);

    let out = feed(&mut e, 2_100, Input::HttpFailed { id: id(3), status: Some(404) });

    assert_eq!(out, vec![Output::PlayerFailed { id: id(3) }]);
}

#[test]
fn aborting_a_player_fetch_aborts_its_http_request() {
    let mut e = playing(&[]);
    ask(&mut e, 2_000);

    let out = feed(&mut e, 2_100, Input::PlayerAbort { id: id(3) });

    assert_eq!(out, vec![Output::AbortHttp { id: id(3) }]);
}

/// Whether `me`, in a swarm of `swarm` viewers of which it is connected to `a` and `b`, tells
/// `b` it is fetching segment 3 after asking `a` for it, before and after the first byte.
fn announces_its_transfer(swarm: u32) -> (bool, bool) {
    let mut e = playing(&["a", "b"]);
    feed(&mut e, 2_000, Input::SwarmSize { peers: swarm });
    feed(&mut e, 2_000, message(&pid("a"), have(&[0], &[3])));
    let fetching = |out: &[Output]| {
        sent_to(out, &pid("b")).iter().any(|m| matches!(m, Message::Have { fetching, .. } if fetching.contains(&id(3))))
    };
    let out = ask(&mut e, 2_000);
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    let waiting = fetching(&out);
    let out = feed(&mut e, 2_100, message(&pid("a"), chunk(3, request_id, 0, 5_000, &body(3, 1_000))));
    (waiting, fetching(&out))
}

#[test]
fn a_transfer_waiting_for_its_first_byte_is_announced_in_a_partial_mesh_only() {
    // Ten viewers, two of them neighbours: neighbours that do not hear the seeder learn that
    // someone is on it (and the first byte changes nothing they see).
    assert_eq!(announces_its_transfer(10), (true, false));
    // A full mesh of three: announced once bytes flow, which we can relay.
    assert_eq!(announces_its_transfer(3), (false, true));
}
