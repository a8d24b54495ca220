//! Segments from peers checked against the origin's digests: a corrupt copy never reaches the
//! player or other peers, its senders are banned, and the CDN's copy replaces it.

use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// An engine connected to "a" (which holds segment 3) and "b", knowing the digest of segment 3,
/// whose player asked for it; returns it and the id of its request to "a".
fn asking_with_digest(data: &[u8]) -> (Engine, u32) {
    let mut e = engine("me", &["a", "b"]);
    e.handle_digests(50, 0, vec![(3, sha(data))]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };
    (e, request_id)
}

#[test]
fn a_corrupt_segment_from_a_peer_is_dropped_refetched_and_its_sender_banned() {
    let data = body(3, 20_000);
    let (mut e, request_id) = asking_with_digest(&data);
    let mut bad = data.clone();
    bad[12_345] ^= 1;

    feed(&mut e, 110, message(&pid("a"), chunk(3, request_id, 0, 20_000, &bad[..10_000])));
    let out = feed(&mut e, 120, message(&pid("a"), chunk(3, request_id, 10_000, 20_000, &bad[10_000..])));

    assert!(delivered(&out).is_empty(), "never handed to the player");
    assert!(out.contains(&Output::Disconnect { peer: pid("a") }));
    assert_eq!(fetches(&out), vec![(id(3), 0)], "the whole segment again, from the CDN");
    assert_eq!(e.stats().corrupt_segments, 1);

    feed(&mut e, 130, Input::HttpChunk { id: id(3), offset: 0, bytes: data.clone() });
    let out = feed(&mut e, 140, Input::HttpDone { id: id(3), total_len: 20_000 });
    assert_eq!(delivered(&out), vec![(id(3), data)]);

    // Banned: not dialled again, and turned away if it connects.
    feed(&mut e, 200, Input::PeersDiscovered { peers: vec![pid("a")] });
    let out = feed(&mut e, 100_000, Input::PeersDiscovered { peers: vec![pid("a")] });
    assert!(!out.contains(&Output::Connect { peer: pid("a") }), "{out:?}");
    assert!(
        feed(&mut e, 100_000, Input::PeerConnected { peer: pid("a") }).contains(&Output::Disconnect { peer: pid("a") })
    );
    assert!(e.peers.is_banned(&pid("a")));
}

#[test]
fn a_segment_that_matches_its_digest_is_delivered() {
    let data = body(3, 20_000);
    let (mut e, request_id) = asking_with_digest(&data);

    let out = feed(&mut e, 110, message(&pid("a"), chunk(3, request_id, 0, 20_000, &data)));

    assert_eq!(delivered(&out), vec![(id(3), data)]);
    assert_eq!(e.stats().corrupt_segments, 0);
}

#[test]
fn with_a_digest_peer_bytes_are_passed_on_only_once_checked() {
    let data = body(3, 20_000);
    let (mut e, request_id) = asking_with_digest(&data);
    feed(&mut e, 110, message(&pid("a"), chunk(3, request_id, 0, 20_000, &data[..10_000])));

    let ask = message(
        &pid("b"),
        Message::Request { id: id(3), request_id: 9, offset: 0, end: None, deadline_ms: None }.encode(),
    );
    let out = feed(&mut e, 120, ask);
    assert!(sent_to(&out, &pid("b")).iter().all(|m| !matches!(m, Message::Chunk { .. })), "unchecked bytes wait");

    let out = feed(&mut e, 130, message(&pid("a"), chunk(3, request_id, 10_000, 20_000, &data[10_000..])));
    let relayed: Vec<u8> = sent_to(&out, &pid("b"))
        .into_iter()
        .filter_map(|m| if let Message::Chunk { data, .. } = m { Some(data) } else { None })
        .flatten()
        .collect();
    assert_eq!(relayed, data, "the whole checked segment");
}

#[test]
fn once_a_rendition_has_digests_a_peer_segment_waits_for_its_own() {
    let data = body(3, 20_000);
    let mut e = engine("me", &["a"]);
    e.handle_digests(50, 0, vec![(2, [0; 32])]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };

    let out = feed(&mut e, 110, message(&pid("a"), chunk(3, request_id, 0, 20_000, &data)));
    assert!(delivered(&out).is_empty(), "waits for the digest");

    e.handle_digests(120, 0, vec![(3, sha(&data))]);
    assert_eq!(delivered(&drain(&mut e)), vec![(id(3), data)]);
}

#[test]
fn without_digests_cdn_bytes_and_well_sized_peer_bytes_are_trusted() {
    let mut e = engine("me", &["a"]);
    feed(&mut e, 100, message(&pid("a"), have(&[0, 3], &[])));
    let out = feed(&mut e, 100, Input::PlayerRequest { id: id(3) });
    let [(_, request_id, 0)] = requests(&sent_to(&out, &pid("a")))[..] else { panic!("{out:?}") };

    let out = feed(&mut e, 110, message(&pid("a"), chunk(3, request_id, 0, 100, &body(3, 100))));

    assert_eq!(delivered(&out), vec![(id(3), body(3, 100))]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Every corruption of a peer's copy (any bytes, anywhere) is caught: 100% detection.
    #[test]
    fn every_corruption_is_detected(
        len in 1usize..40_000,
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let data = body(3, len);
        let (mut e, request_id) = asking_with_digest(&data);
        let mut bad = data.clone();
        for (at, xor) in flips {
            bad[at.index(len)] ^= xor;
        }
        let chunks: Vec<Vec<u8>> = bad.chunks(16_000).map(<[u8]>::to_vec).collect();
        let mut out = Vec::new();
        let mut offset = 0;
        for c in chunks {
            out.extend(feed(&mut e, 110, message(&pid("a"), chunk(3, request_id, offset, len as u64, &c))));
            offset += c.len() as u64;
        }
        prop_assert!(delivered(&out).is_empty());
        prop_assert_eq!(e.stats().corrupt_segments, 1);
        let banned = Output::Disconnect { peer: pid("a") };
        prop_assert!(out.contains(&banned));
        prop_assert_eq!(fetches(&out), vec![(id(3), 0)]);
    }
}
