//! Tests of the WebTorrent swarm rules.

use std::borrow::Cow;

use protocol::webtorrent::{AnswerIn, OfferIn, Sdp};

use super::*;

const LIMITS: Limits =
    Limits { max_offers: 10, offer_ttl_s: 120, peer_ttl_s: 180, interval_s: 120, max_pending_offers: 4 };

fn id(n: u8) -> Id20 {
    Id20([n; 20])
}

fn sdp(kind: &'static str) -> Sdp<'static> {
    Sdp { kind: Cow::Borrowed(kind), sdp: Cow::Borrowed("v=0") }
}

fn announce(peer: u8, offers: usize) -> Announce<'static> {
    Announce {
        info_hash: id(200),
        peer_id: id(peer),
        event: Event::Started,
        seeder: false,
        numwant: None,
        offers: (0..offers).map(|i| OfferIn { offer: sdp("offer"), offer_id: id(100 + i as u8) }).collect(),
        answer: None,
    }
}

fn answer(peer: u8, to: u8, offer: u8) -> Announce<'static> {
    let answer = AnswerIn { to_peer_id: id(to), offer_id: id(offer), answer: sdp("answer") };
    Announce { event: Event::Update, answer: Some(answer), ..announce(peer, 0) }
}

/// Each peer `n` on connection `n`.
fn swarm_of(peers: u8) -> Swarms {
    let mut swarms = Swarms::new(LIMITS, 7);
    for p in 1..=peers {
        swarms.announce(0, u64::from(p), &announce(p, 0), &mut Vec::new());
    }
    swarms
}

#[test]
fn offers_go_to_other_peers_and_the_sender_gets_the_counts() {
    let mut swarms = swarm_of(3);
    let mut out = Vec::new();
    let outcome = swarms.announce(0, 1, &announce(1, 5), &mut out);
    assert_eq!(outcome.offers, 2);
    let mut targets: Vec<ConnId> = out.iter().map(|m| m.0).filter(|c| *c != 1).collect();
    targets.sort_unstable();
    assert_eq!(targets, vec![2, 3]);
    let (to, response) = out.last().unwrap();
    assert_eq!(*to, 1);
    assert!(response.contains(r#""complete":0,"incomplete":3,"interval":120"#), "{response}");
    assert_eq!((swarms.peer_count(), swarms.swarm_count()), (3, 1));
}

#[test]
fn an_answer_is_relayed_only_for_an_outstanding_offer() {
    let mut swarms = swarm_of(2);
    // No offer yet: refused with an error to the answerer.
    let mut out = Vec::new();
    assert!(swarms.announce(0, 2, &answer(2, 1, 100), &mut out).answer_refused);
    assert!(out[0].1.contains("Could not find the offer"), "{:?}", out);
    swarms.announce(0, 1, &announce(1, 1), &mut Vec::new());
    // The wrong offer id, or the right one too late, are refused.
    assert!(swarms.announce(0, 2, &answer(2, 1, 101), &mut Vec::new()).answer_refused);
    assert!(swarms.announce(121, 2, &answer(2, 1, 100), &mut Vec::new()).answer_refused);
    swarms.announce(200, 1, &announce(1, 1), &mut Vec::new());
    let mut out = Vec::new();
    assert!(swarms.announce(200, 2, &answer(2, 1, 100), &mut out).answered);
    assert_eq!(out[0].0, 1);
    assert!(out[0].1.contains(r#""answer":{"type":"answer","sdp":"v=0"}"#), "{}", out[0].1);
    // As bittorrent-tracker's server: no announce response to an answer.
    assert_eq!(out.len(), 1, "{out:?}");
    // Consumed.
    assert!(swarms.announce(200, 2, &answer(2, 1, 100), &mut Vec::new()).answer_refused);
}

#[test]
fn a_peer_id_of_another_connection_is_ignored() {
    let mut swarms = swarm_of(2);
    let mut out = Vec::new();
    assert!(swarms.announce(0, 9, &announce(1, 3), &mut out).ignored);
    assert!(out.is_empty());
}

#[test]
fn stopped_closed_and_silent_peers_leave() {
    let mut swarms = swarm_of(3);
    let mut out = Vec::new();
    let stopped = Announce { event: Event::Stopped, ..announce(1, 0) };
    assert!(!swarms.announce(0, 1, &stopped, &mut out).member);
    assert!(out.is_empty());
    swarms.remove_connection(2, &[(id(200), id(2)), (id(200), id(3))]);
    assert_eq!(swarms.peer_count(), 1);
    swarms.clean(181);
    assert_eq!((swarms.peer_count(), swarms.swarm_count()), (0, 0));
}

#[test]
fn pending_offers_are_bounded_per_peer() {
    let mut swarms = swarm_of(9);
    swarms.announce(0, 1, &announce(1, 8), &mut Vec::new());
    let pending = swarms.torrents[&id(200)].peers[&id(1)].pending.len();
    assert_eq!(pending, LIMITS.max_pending_offers);
}

#[test]
fn scrapes_count_and_full_scrapes_are_refused() {
    let mut swarms = swarm_of(2);
    let seed = Announce { seeder: true, ..announce(3, 0) };
    swarms.announce(0, 3, &seed, &mut Vec::new());
    let text = swarms.scrape(&[id(200), id(201)]);
    assert!(text.contains(r#"{"complete":1,"incomplete":2,"downloaded":0}"#), "{text}");
    assert!(text.contains(r#"{"complete":0,"incomplete":0,"downloaded":0}"#), "{text}");
    assert!(swarms.scrape(&[]).contains("Full scrapes are not allowed"));
}

#[test]
fn pending_offers_pack_key_and_expiry_and_survive_the_16_bit_wrap() {
    // Expiry compared modulo 2^16 s: alive until the second it names, also across the wrap.
    for now_s in [0_u32, 100, 65_500, 65_535, 65_536, 1 << 31] {
        let until = now_s + 120;
        let p = pending_entry(0xABCD_EF01_2345_6789, until);
        assert!(same_key(p, 0xABCD_EF01_2345_0000), "key kept at {now_s}");
        assert!(!same_key(p, 0xABCD_EF01_2346_6789), "another key matched at {now_s}");
        assert!(pending_alive(p, now_s), "alive at {now_s}");
        assert!(pending_alive(p, until - 1), "alive before expiry at {now_s}");
        assert!(!pending_alive(p, until), "expired at {now_s}");
        assert!(!pending_alive(p, until + MAX_OFFER_TTL_S), "expired long after at {now_s}");
    }
}
