//! A joiner's first segment: from peers within the startup wait, then from the CDN.

use super::*;

const WAIT_MS: u64 = 1_000;

fn joiner(others: &[&str]) -> Engine {
    engine_with(Config { startup_peer_wait_ms: WAIT_MS, ..Config::default() }, "me", others)
}

/// Runs every timer of `e` before `until`, and returns what it output meanwhile.
fn run_until(e: &mut Engine, until: Millis) -> Vec<Output> {
    let mut out = Vec::new();
    while let Some(at) = e.poll_timeout().filter(|at| *at < until) {
        e.handle_timeout(at);
        out.extend(drain(e));
    }
    out
}

#[test]
fn the_first_segment_waits_for_peers_then_the_cdn_resumes_from_the_bytes_held() {
    let mut e = joiner(&["a"]);
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    assert!(fetches(&out).is_empty(), "waits for peers: {out:?}");

    // A peer announces it: asked at once.
    let out = feed(&mut e, 300, message(&pid("a"), have(&[0, 3], &[])));
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    feed(&mut e, 400, message(&pid("a"), chunk(3, request_id, 0, 5_000, &body(3, 1_000))));

    // Nothing more: the wait ends 1 000 ms after the request, and the CDN takes the rest.
    let out = run_until(&mut e, 100 + WAIT_MS);
    assert!(fetches(&out).is_empty(), "{out:?}");
    e.handle_timeout(100 + WAIT_MS);
    let out = drain(&mut e);
    assert_eq!(fetches(&out), vec![(id(3), 1_000)]);
    assert_eq!(e.fetch_reason(id(3)), Some(crate::CdnReason::Startup));
}

#[test]
fn without_a_wait_the_first_segment_comes_from_the_cdn_at_once() {
    let mut e = engine_with(Config { startup_peer_wait_ms: 0, ..Config::default() }, "me", &["a"]);

    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });

    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn no_wait_when_the_tracker_found_nobody() {
    let mut e = Engine::new(Config { startup_peer_wait_ms: WAIT_MS, ..Config::default() }, pid("me"));
    e.handle_input(0, playlist(0..5));
    feed(&mut e, 50, Input::PeersDiscovered { peers: vec![] });

    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });

    assert_eq!(fetches(&out), vec![(id(3), 0)]);
    assert_eq!(e.fetch_reason(id(3)), Some(crate::CdnReason::StartupAlone));
}

#[test]
fn the_wait_is_for_the_first_segment_only() {
    let mut e = joiner(&["a"]);
    feed(&mut e, 0, Input::PlayerRequest { id: id(2) });
    run_until(&mut e, WAIT_MS);
    e.handle_timeout(WAIT_MS);
    assert_eq!(fetches(&drain(&mut e)), vec![(id(2), 0)]);
    feed(&mut e, 1_100, Input::HttpChunk { id: id(2), offset: 0, bytes: body(2, 10) });
    assert_eq!(delivered(&feed(&mut e, 1_100, Input::HttpDone { id: id(2), total_len: 10 })).len(), 1);

    // Still not playing (a stall before the first frame, say): the next one is urgent.
    let out = feed(&mut e, 1_200, Input::PlayerRequest { id: id(3) });

    assert_eq!(fetches(&out), vec![(id(3), 0)]);
}

#[test]
fn the_first_segment_is_split_across_two_holders_as_soon_as_its_size_is_known() {
    let mut e = joiner(&["a", "b"]);
    feed(&mut e, 50, message(&pid("a"), have(&[0, 3], &[])));
    feed(&mut e, 50, message(&pid("b"), have(&[0, 3], &[])));
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    let (head, tail) = if requests(&sent_to(&out, &pid("a"))).is_empty() { ("b", "a") } else { ("a", "b") };
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid(head)))[..] else { panic!("{out:?}") };

    let first = message(&pid(head), chunk(3, request_id, 0, 10_000, &body(3, 1_000)));
    let out = feed(&mut e, 150, first);

    // The other holder is asked for the second half of what is missing, without waiting to
    // judge the first one's speed.
    let [(_, _, 5_500)] = requests(&sent_to(&out, &pid(tail)))[..] else { panic!("{out:?}") };
    assert_eq!(e.stats().split_segments, 1);
}
