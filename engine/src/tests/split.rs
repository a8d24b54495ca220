//! A late segment split between two peers: the head from the peer already sending it, the tail
//! from a second holder, assembled byte-identical whatever the order, with the usual fallbacks
//! when one part stalls and the digest check when a part is wrong.

use sha2::{Digest, Sha256};

use super::*;

/// Size of segment 3 in these tests, in bytes.
const LEN: u64 = 400_000;

/// Largest data per test chunk (below the protocol's bound).
const STEP: usize = 60_000;

fn playing(others: &[&str]) -> Engine {
    let mut e = engine("me", others);
    e.handle_input(2_000, Input::Playback { position_ms: 0, rate: 1.0, buffered_end_ms: 6_000 });
    drain(&mut e);
    e
}

/// Chunks carrying `data[from..to]` of segment 3 for `request_id`.
fn chunks(request_id: u32, data: &[u8], from: usize, to: usize) -> Vec<Vec<u8>> {
    (from..to).step_by(STEP).map(|at| chunk(3, request_id, at as u64, LEN, &data[at..(at + STEP).min(to)])).collect()
}

/// Feeds every chunk of `data[from..to]` from `peer`; returns the outputs.
fn send(e: &mut Engine, now: Millis, peer: &str, request_id: u32, data: &[u8], from: usize, to: usize) -> Vec<Output> {
    chunks(request_id, data, from, to).into_iter().flat_map(|c| feed(e, now, message(&pid(peer), c))).collect()
}

/// The split: "a" sends segment 3 at 33 B/ms (it would end at 14 s, the deadline is 7.5 s), "b"
/// holds it. Returns the engine, the segment, the request to "a" (now the head's) and the tail
/// request to "b", and where the tail starts.
struct Split {
    e: Engine,
    data: Vec<u8>,
    head: u32,
    tail: u32,
    mid: usize,
}

/// Checks that `out` delivers segment 3 as `data`, without printing megabytes when it does not.
fn assert_delivered(out: &[Output], data: &[u8]) {
    let got: Vec<(SegmentId, usize, bool)> =
        delivered(out).into_iter().map(|(id, bytes)| (id, bytes.len(), bytes == data)).collect();
    assert_eq!(got, vec![(id(3), data.len(), true)]);
}

fn split(others: &[&str], digest: bool) -> Split {
    let mut e = playing(others);
    let data = body(3, LEN as usize);
    if digest {
        e.handle_digests(2_000, 0, vec![(3, Sha256::digest(&data).into())]);
    }
    feed(&mut e, 2_000, message(&pid("a"), have(&[0, 3], &[])));
    let out = feed(&mut e, 2_000, Input::PlayerRequest { id: id(3) });
    let [(_, first, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    feed(&mut e, 2_050, message(&pid("b"), have(&[0, 3], &[])));
    send(&mut e, 2_100, "a", first, &data, 0, 5_000);

    let mut out = send(&mut e, 2_400, "a", first, &data, 5_000, 10_000);
    e.handle_timeout(2_400);
    out.extend(drain(&mut e));

    assert!(fetches(&out).is_empty(), "{out:?}");
    assert!(sent_to(&out, &pid("a")).is_empty(), "the running request goes on: {out:?}");
    let [Message::Request { request_id: tail, offset: mid, end: None, .. }] = sent_to(&out, &pid("b"))[..] else {
        panic!("{out:?}")
    };
    // Unknown speed of "b": an even split of the 390 000 missing bytes would leave "a" late;
    // it gets what it sends in 80 % of the 5 100 ms left at 33 B/ms.
    assert_eq!(mid, 146_000);
    assert_eq!(e.stats().split_segments, 1);
    Split { e, data, head: first, tail, mid: mid as usize }
}

#[test]
fn a_late_segment_is_split_across_two_holders_and_assembled_byte_identical() {
    let Split { mut e, data, head, tail, mid } = split(&["a", "b"], false);

    // "a" sends on past the tail's start; those bytes are not taken.
    let mut out = send(&mut e, 2_450, "a", head, &data, 10_000, mid + 30_000);
    assert!(delivered(&out).is_empty(), "the tail is missing");
    assert!(sent_to(&out, &pid("a")).contains(&Message::Cancel { id: id(3), request_id: head }), "head done");
    out.extend(send(&mut e, 2_500, "b", tail, &data, mid, LEN as usize));

    assert_delivered(&out, &data);
    assert_eq!(e.stats().p2p_down_bytes, LEN);
    assert_eq!(e.stats().http_bytes, 0);
}

#[test]
fn a_tail_that_arrives_before_the_head_waits_and_only_the_prefix_is_relayed() {
    let Split { mut e, data, head, tail, mid } = split(&["a", "b", "c"], false);
    let ask = Message::Request { id: id(3), request_id: 7, offset: 0, end: None, deadline_ms: None };
    let out = feed(&mut e, 2_410, message(&pid("c"), ask.encode()));
    let relayed = |out: &[Output]| -> Vec<(u64, usize)> {
        let sent = sent_to(out, &pid("c"));
        sent.into_iter()
            .filter_map(|m| if let Message::Chunk { offset, data, .. } = m { Some((offset, data.len())) } else { None })
            .collect()
    };
    assert_eq!(relayed(&out).iter().map(|(_, n)| n).sum::<usize>(), 10_000, "the prefix held");

    let out = send(&mut e, 2_450, "b", tail, &data, mid, LEN as usize);
    assert!(delivered(&out).is_empty());
    assert!(relayed(&out).is_empty(), "the tail is not passed on before the prefix reaches it");
    for m in sent_to(&out, &pid("c")) {
        assert!(!matches!(m, Message::HaveChunk { len, .. } if len > 10_000), "{m:?}");
    }

    let out = send(&mut e, 2_500, "a", head, &data, 10_000, mid);

    assert_delivered(&out, &data);
    let rest: usize = relayed(&out).iter().map(|(_, n)| n).sum();
    assert_eq!(rest, LEN as usize - 10_000, "the rest, head then tail, relayed once merged");
}

#[test]
fn a_stalled_head_is_finished_by_the_tail_peer() {
    let Split { mut e, data, tail, mid, .. } = split(&["a", "b"], false);
    send(&mut e, 2_450, "b", tail, &data, mid, LEN as usize);

    // "a" sends nothing more: it is given up, and "b", done with the tail, takes the head.
    let mut to_b = Vec::new();
    let mut now = 2_450;
    while to_b.is_empty() && now < 4_000 {
        now = e.poll_timeout().unwrap();
        e.handle_timeout(now);
        let out = drain(&mut e);
        assert!(fetches(&out).is_empty(), "{out:?}");
        to_b = sent_to(&out, &pid("b"));
    }
    let [Message::Request { request_id, offset: 10_000, end: Some(end), .. }] = to_b[..] else { panic!("{to_b:?}") };
    assert_eq!(end as usize, mid);

    let out = send(&mut e, now + 50, "b", request_id, &data, 10_000, mid);

    assert_delivered(&out, &data);
    assert_eq!(e.stats().http_bytes, 0);
}

#[test]
fn a_stalled_tail_is_finished_by_the_head_peer() {
    let Split { mut e, data, head, mid, .. } = split(&["a", "b"], false);
    let out = send(&mut e, 2_500, "a", head, &data, 10_000, mid);
    assert!(requests(&sent_to(&out, &pid("a"))).is_empty(), "the tail's request goes on: {out:?}");

    // "b" never sends the tail: after the idle timeout "a" is asked for it.
    e.handle_timeout(2_400 + 1_500);
    let out = drain(&mut e);
    assert!(fetches(&out).is_empty(), "{out:?}");
    assert!(sent_to(&out, &pid("b")).iter().any(|m| matches!(m, Message::Cancel { .. })), "{out:?}");
    let to_a = sent_to(&out, &pid("a"));
    let [(_, rest, offset)] = requests(&to_a)[..] else { panic!("{to_a:?}") };
    assert_eq!(offset as usize, mid);

    let out = send(&mut e, 3_950, "a", rest, &data, mid, LEN as usize);

    assert_delivered(&out, &data);
    assert_eq!(e.stats().http_bytes, 0);
}

#[test]
fn a_refused_tail_is_brought_by_the_head_request() {
    let Split { mut e, data, head, tail, .. } = split(&["a", "b"], false);
    send(&mut e, 2_440, "a", head, &data, 10_000, 100_000);

    let out = feed(&mut e, 2_450, message(&pid("b"), Message::Absent { id: id(3), request_id: tail }.encode()));
    assert!(sent_to(&out, &pid("a")).is_empty() && fetches(&out).is_empty(), "{out:?}");

    let out = send(&mut e, 2_500, "a", head, &data, 100_000, LEN as usize);

    assert_delivered(&out, &data);
    assert_eq!(e.stats().p2p_down_bytes, LEN);
}

#[test]
fn a_digest_mismatch_on_a_split_segment_bans_only_the_sender_of_the_wrong_range() {
    let Split { mut e, data, head, tail, mid } = split(&["a", "b"], true);
    let mut bad = data.clone();
    bad[300_000] ^= 1;
    send(&mut e, 2_450, "a", head, &data, 10_000, mid);

    let out = send(&mut e, 2_500, "b", tail, &bad, mid, LEN as usize);

    assert!(delivered(&out).is_empty(), "never handed to the player");
    assert_eq!(fetches(&out), vec![(id(3), 0)], "the whole segment again, from the CDN");
    assert_eq!(e.stats().corrupt_segments, 1);
    assert!(!e.peers.is_banned(&pid("a")) && !e.peers.is_banned(&pid("b")), "not known yet who lied");

    feed(&mut e, 2_600, Input::HttpChunk { id: id(3), offset: 0, bytes: data.clone() });
    let out = feed(&mut e, 2_700, Input::HttpDone { id: id(3), total_len: LEN });

    assert_delivered(&out, &data);
    assert!(e.peers.is_banned(&pid("b")));
    assert!(out.contains(&Output::Disconnect { peer: pid("b") }));
    assert!(!e.peers.is_banned(&pid("a")), "its bytes matched the CDN's");
    assert!(!out.contains(&Output::Disconnect { peer: pid("a") }));
}
