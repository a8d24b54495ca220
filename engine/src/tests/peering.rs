//! Finding, keeping and talking to peers.

use super::*;

#[test]
fn the_tracker_is_asked_at_once_and_then_every_interval_while_below_max_peers() {
    let mut e = Engine::new(Config::default(), pid("me"));

    assert!(feed(&mut e, 0, playlist(0..5)).contains(&Output::RequestPeers));
    assert_eq!(e.poll_timeout(), Some(5_000));
    e.handle_timeout(5_000);
    assert_eq!(drain(&mut e), vec![Output::RequestPeers]);
}

#[test]
fn discovered_peers_are_dialled_up_to_max_peers() {
    let mut e = Engine::new(Config { max_peers: 2, ..base() }, pid("me"));
    let found = vec![pid("me"), pid("a"), pid("b"), pid("c")];

    let out = feed(&mut e, 0, Input::PeersDiscovered { peers: found });

    let dialled: Vec<&Output> = out.iter().filter(|o| matches!(o, Output::Connect { .. })).collect();
    assert_eq!(dialled, vec![&Output::Connect { peer: pid("a") }, &Output::Connect { peer: pid("b") }]);
    assert_eq!(e.poll_timeout(), Some(10_000), "dial timeout; no tracker request at max peers");
}

#[test]
fn a_dial_that_never_opens_is_abandoned_and_the_slot_reused() {
    let mut e = Engine::new(Config { max_peers: 1, ..base() }, pid("me"));
    feed(&mut e, 0, Input::PeersDiscovered { peers: vec![pid("a"), pid("b")] });

    e.handle_timeout(10_000);
    let out = drain(&mut e);

    assert_eq!(out[..2], [Output::Disconnect { peer: pid("a") }, Output::Connect { peer: pid("b") }]);
}

#[test]
fn a_new_peer_gets_our_have_and_uplink_and_changes_go_to_every_peer_once() {
    let mut e = engine("me", &["a"]);
    let out = feed(&mut e, 10, Input::PeerConnected { peer: pid("b") });
    let hello =
        vec![Message::Have { segments: vec![], fetching: vec![] }, Message::Uplink { streams: 0, live_edge: false }];
    assert_eq!(sent_to(&out, &pid("b")), hello);
    feed(&mut e, 20, Input::PlayerRequest { id: id(2) });
    feed(&mut e, 30, Input::HttpChunk { id: id(2), offset: 0, bytes: body(2, 10) });

    let out = feed(&mut e, 40, Input::HttpDone { id: id(2), total_len: 10 });

    let expected = vec![Message::Have { segments: vec![id(2)], fetching: vec![] }];
    assert_eq!((sent_to(&out, &pid("a")), sent_to(&out, &pid("b"))), (expected.clone(), expected));
    let out = feed(&mut e, 50, Input::Playback { position_ms: 0, rate: 1.0, buffered_end_ms: 0 });
    assert!(sent_to(&out, &pid("a")).is_empty(), "nothing changed, nothing sent");
}

#[test]
fn incoming_connections_beyond_max_peers_are_refused() {
    let config = Config { max_peers: 1, extra_incoming_peers: 0, ..base() };
    let mut e = engine_with(config, "me", &["a"]);

    let out = feed(&mut e, 10, Input::PeerConnected { peer: pid("b") });

    assert_eq!(out, vec![Output::Disconnect { peer: pid("b") }]);
}

#[test]
fn peers_that_dial_us_find_extra_room_beyond_max_peers() {
    let config = Config { max_peers: 1, extra_incoming_peers: 1, ..base() };
    let mut e = engine_with(config, "me", &["a"]);

    let out = feed(&mut e, 10, Input::PeerConnected { peer: pid("b") });
    assert_eq!(sent_to(&out, &pid("b")).len(), 2, "accepted, and told our Have and Uplink: {out:?}");
    let out = feed(&mut e, 20, Input::PeerConnected { peer: pid("c") });

    assert_eq!(out, vec![Output::Disconnect { peer: pid("c") }]);
    assert_eq!(e.stats().peers_connected, 2);
    // Extra room is for peers that dial us: we never dial beyond `max_peers`.
    let out = feed(&mut e, 5_000, Input::PeersDiscovered { peers: vec![pid("d")] });
    assert!(!out.contains(&Output::Connect { peer: pid("d") }), "{out:?}");
}

#[test]
fn a_peer_that_sends_garbage_is_disconnected() {
    let mut e = engine("me", &["a"]);

    let out = feed(&mut e, 10, message(&pid("a"), vec![0xff, 0, 1]));

    assert_eq!(out, vec![Output::Disconnect { peer: pid("a") }]);
    assert_eq!(e.stats().peers_connected, 0);
}

#[test]
fn segments_that_left_the_window_are_forgotten_after_a_few() {
    let mut e = engine("me", &[]);
    e.handle_input(10, Input::PeerConnected { peer: pid("a") });
    for msn in 0..5 {
        e.handle_input(10, Input::PlayerRequest { id: id(msn) });
        e.handle_input(10, Input::HttpChunk { id: id(msn), offset: 0, bytes: body(msn, 10) });
        e.handle_input(10, Input::HttpDone { id: id(msn), total_len: 10 });
    }
    drain(&mut e);

    let out = feed(&mut e, 2_000, playlist(5..10));

    let (kept, fetching) = (vec![id(2), id(3), id(4)], (5..10).map(id).collect());
    assert_eq!(sent_to(&out, &pid("a")), vec![Message::Have { segments: kept, fetching }]);
}

#[test]
fn a_change_of_uplink_goes_to_every_peer_once() {
    let mut e = engine("me", &["a", "b"]);
    // Segments guessed at 1 MB per 2 s (the stream prior): 2.6 MB/s carries 5 copies.
    e.handle_uplink(100, 2_600_000, 0);
    let out = drain(&mut e);
    for peer in ["a", "b"] {
        assert_eq!(sent_to(&out, &pid(peer)), vec![Message::Uplink { streams: 5, live_edge: false }], "{peer}");
    }
    e.handle_uplink(600, 2_700_000, 0);
    assert!(sent_to(&drain(&mut e), &pid("a")).is_empty(), "same copies, nothing sent");
}
