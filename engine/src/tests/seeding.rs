//! Who fetches a new live segment from the CDN, and how the others wait for it.

use super::*;

const NAMES: [&str; 4] = ["ann", "bob", "cat", "dan"];

fn others(me: &str) -> Vec<&'static str> {
    NAMES.iter().copied().filter(|n| *n != me).collect()
}

#[test]
fn exactly_one_of_n_engines_fetches_each_new_segment_at_once() {
    let mut engines: Vec<Engine> = NAMES.iter().map(|n| engine(n, &others(n))).collect();
    for step in 1..=30u64 {
        let newest = step + 4;
        let mut fetchers = Vec::new();
        for (e, name) in engines.iter_mut().zip(NAMES) {
            if fetches(&feed(e, step * 2_000, playlist(step..newest + 1))).contains(&(id(newest), 0)) {
                fetchers.push(name);
            }
        }
        assert_eq!(fetchers, vec![seeding_order(&NAMES, newest)[0]], "segment {newest}");
    }
}

#[test]
fn the_seeder_prefetches_at_once_and_announces_it() {
    let order = seeding_order(&["ann", "bob"], 5);
    let mut e = engine(order[0], &[order[1]]);

    let out = feed(&mut e, 2_000, playlist(1..6));

    assert_eq!(fetches(&out), vec![(id(5), 0)]);
    let announced = sent_to(&out, &pid(order[1]));
    assert_eq!(announced, vec![Message::Have { segments: vec![], fetching: vec![id(5)] }]);
}

#[test]
fn a_non_seeder_waits_then_gets_the_segment_from_the_seeder() {
    let order = seeding_order(&["ann", "bob"], 5);
    let (seeder, waiter) = (pid(order[0]), order[1]);
    let mut e = engine(waiter, &[order[0]]);

    let out = feed(&mut e, 2_000, playlist(1..6));
    assert!(fetches(&out).is_empty());
    assert_eq!(e.poll_timeout(), Some(2_000 + 500), "one grace per rank");

    // The seeder announces it fetches the segment: we ask it at once, and it relays.
    let out = feed(&mut e, 2_100, message(&seeder, have(&[0], &[5])));
    assert!(fetches(&out).is_empty());
    let [(seg, request_id, 0)] = requests(&sent_to(&out, &seeder))[..] else { panic!("{out:?}") };
    assert_eq!(seg, id(5));

    let data = body(5, 100_000);
    feed(&mut e, 2_450, message(&seeder, chunk(5, request_id, 0, 100_000, &data[..60_000])));
    feed(&mut e, 2_500, message(&seeder, chunk(5, request_id, 60_000, 100_000, &data[60_000..])));
    let out = feed(&mut e, 2_600, Input::PlayerRequest { id: id(5) });

    assert_eq!(delivered(&out), vec![(id(5), data)]);
    assert_eq!((e.stats().p2p_down_bytes, e.stats().http_bytes), (100_000, 0));
}

#[test]
fn a_non_seeder_fetches_from_the_cdn_when_nobody_announces_in_time() {
    let order = seeding_order(&["ann", "bob"], 5);
    let mut e = engine(order[1], &[order[0]]);
    feed(&mut e, 2_000, playlist(1..6));

    e.handle_timeout(2_499);
    assert!(fetches(&drain(&mut e)).is_empty());
    e.handle_timeout(2_500);
    let out = drain(&mut e);

    assert_eq!(fetches(&out), vec![(id(5), 0)]);
    assert_eq!(sent_to(&out, &pid(order[0])), vec![Message::Have { segments: vec![], fetching: vec![id(5)] }]);
}

#[test]
fn a_lower_rank_waits_longer() {
    let names = ["ann", "bob", "cat"];
    let order = seeding_order(&names, 5);
    let mut e = engine(order[2], &[order[0], order[1]]);

    feed(&mut e, 2_000, playlist(1..6));

    assert_eq!(e.poll_timeout(), Some(2_000 + 2 * 500));
}

#[test]
fn peers_that_announced_nothing_of_the_rendition_do_not_count() {
    let order = seeding_order(&["ann", "bob"], 5);
    let mut e = Engine::new(base(), pid(order[1]));
    e.handle_input(0, playlist(0..5));
    e.handle_input(0, Input::PeerConnected { peer: pid(order[0]) });

    let out = feed(&mut e, 2_000, playlist(1..6));

    assert_eq!(fetches(&out), vec![(id(5), 0)]);
}

#[test]
fn a_peer_that_does_not_upload_never_seeds_a_shared_segment() {
    let order = seeding_order(&["ann", "bob"], 5);
    let config = Config { upload_allowed: false, ..base() };
    let mut e = engine_with(config, order[0], &[order[1]]);

    let out = feed(&mut e, 2_000, playlist(1..6));

    assert!(fetches(&out).is_empty());
    assert_eq!(e.poll_timeout(), Some(2_000 + 2_000 + 500), "a segment duration more, last of two");
}

/// For segments 5..15, whoever the hash puts first: with our uplink measured at `our_uplink`
/// bytes/s (if given) and the neighbour's `uplink` announcement, the neighbour seeds and we wait
/// our turn, second of two.
fn neighbour_seeds_first(our_uplink: Option<u64>, uplink: Message) {
    for msn in 5..15 {
        let order = seeding_order(&["ann", "bob"], msn);
        let mut e = engine(order[0], &[order[1]]);
        if let Some(bytes_per_s) = our_uplink {
            e.handle_uplink(1_000, bytes_per_s, 0);
        }
        feed(&mut e, 1_000, message(&pid(order[1]), uplink.encode()));

        let out = feed(&mut e, 2_000, playlist(msn - 4..msn + 1));

        assert!(fetches(&out).is_empty(), "msn {msn}: {out:?}");
        assert_eq!(e.poll_timeout(), Some(2_000 + 500), "msn {msn}: second of two");
    }
}

/// The `Uplink` messages among `out` sent to `peer`.
fn uplinks_to(out: &[Output], peer: &str) -> Vec<Message> {
    sent_to(out, &pid(peer)).into_iter().filter(|m| matches!(m, Message::Uplink { .. })).collect()
}

#[test]
fn a_neighbour_whose_uplink_carries_more_copies_seeds_first() {
    neighbour_seeds_first(None, Message::Uplink { streams: 3, live_edge: false });
}

#[test]
fn a_peer_whose_uplink_cannot_carry_two_copies_seeds_last_and_a_segment_duration_later() {
    let order = seeding_order(&["ann", "bob"], 5);
    let mut e = engine(order[0], &[order[1]]);
    // Segments guessed at 1 MB per 2 s (the stream prior): 700 kB/s carries one copy, not two.
    e.handle_uplink(1_000, 700_000, 0);
    drain(&mut e);

    let out = feed(&mut e, 2_000, playlist(1..6));

    assert!(fetches(&out).is_empty());
    assert_eq!(e.poll_timeout(), Some(2_000 + 2_000 + 500), "a segment duration more, last of two");
}

#[test]
fn a_peer_below_two_copies_seeds_at_once_when_its_neighbours_announce_nothing() {
    // Our neighbour is connected but silent (its uplink is slower than the stream, or it does
    // not upload): nobody better can seed, so one copy per segment duration is worth sending.
    let order = seeding_order(&["ann", "bob"], 5);
    let connected = |uplink| {
        let mut e = Engine::new(base(), pid(order[1]));
        e.handle_input(0, playlist(0..5));
        e.handle_input(0, Input::PeerConnected { peer: pid(order[0]) });
        e.handle_uplink(1_000, uplink, 0);
        drain(&mut e);
        e
    };
    let mut one_copy = connected(700_000);
    assert_eq!(fetches(&feed(&mut one_copy, 2_000, playlist(1..6))), vec![(id(5), 0)]);

    // Below one copy we cannot pass it on: still a segment duration later.
    let mut silent = connected(300_000);
    assert!(fetches(&feed(&mut silent, 2_000, playlist(1..6))).is_empty());
    assert_eq!(silent.poll_timeout(), Some(2_000 + 2_000));
}

#[test]
fn segments_published_before_we_arrived_are_not_seeded() {
    let mut e = Engine::new(base(), pid("ann"));

    let out = feed(&mut e, 0, playlist(0..5));

    assert!(fetches(&out).is_empty());
}

#[test]
fn only_the_played_rendition_is_seeded() {
    let mut e = engine("ann", &[]);
    e.handle_input(0, Input::Playlist { rendition: 1, segments: (0..5).map(info).collect() });
    feed(&mut e, 0, Input::PlayerRequest { id: SegmentId { rendition: 1, msn: 4 } });

    let out = feed(&mut e, 2_000, playlist(1..6));

    assert!(fetches(&out).is_empty(), "rendition 0 is no longer played: {out:?}");
}

#[test]
fn cdn_fetches_and_bytes_are_counted_by_reason() {
    use crate::CdnReason;
    // Alone before playback: the player's segment is a startup fetch with no peer to ask.
    let mut e = Engine::new(base(), pid("ann"));
    e.handle_input(0, playlist(0..5));
    let out = feed(&mut e, 0, Input::PlayerRequest { id: id(2) });
    assert_eq!(fetches(&out), vec![(id(2), 0)]);
    assert_eq!(e.fetch_reason(id(2)), Some(CdnReason::StartupAlone));
    feed(&mut e, 50, Input::HttpChunk { id: id(2), offset: 0, bytes: body(2, 1_000) });
    feed(&mut e, 60, Input::HttpDone { id: id(2), total_len: 1_000 });
    assert_eq!(e.fetch_reason(id(2)), None);

    // A new segment nobody announced: seeded.
    let out = feed(&mut e, 2_000, playlist(1..6));
    assert_eq!(fetches(&out), vec![(id(5), 0)]);
    assert_eq!(e.fetch_reason(id(5)), Some(CdnReason::Seed));
    feed(&mut e, 2_050, Input::HttpChunk { id: id(5), offset: 0, bytes: body(5, 400) });

    let s = e.stats();
    let mut fetched = [0; 8];
    fetched[CdnReason::StartupAlone.index()] = 1;
    fetched[CdnReason::Seed.index()] = 1;
    assert_eq!(s.cdn_fetches_by_reason, fetched);
    assert_eq!(s.cdn_bytes_by_reason[CdnReason::StartupAlone.index()], 1_000);
    assert_eq!(s.cdn_bytes_by_reason[CdnReason::Seed.index()], 400);
    assert_eq!(s.cdn_bytes_by_reason.iter().sum::<u64>(), s.http_bytes);
}

#[test]
fn a_neighbour_at_the_live_edge_seeds_first_even_with_less_uplink() {
    // It fetches every new segment from the CDN on sight anyway: seeding too would be a second copy.
    neighbour_seeds_first(Some(10_000_000), Message::Uplink { streams: 2, live_edge: true });
}

#[test]
fn a_peer_announces_when_it_plays_at_the_live_edge() {
    let mut e = engine("ann", &["bob"]);
    feed(&mut e, 0, playlist(0..5));
    let uplinks = |out: &[Output]| uplinks_to(out, "bob");

    // Segments 0..5 end at 10 s. At 4 s of latency (two segments behind) it is not at the edge.
    let out = feed(&mut e, 100, Input::Playback { position_ms: 6_000, rate: 1.0, buffered_end_ms: 8_000 });
    assert!(uplinks(&out).is_empty(), "{out:?}");

    // At 2.5 s (below 2 s + 500 ms margin + 1 s) it is, and says so once.
    let out = feed(&mut e, 200, Input::Playback { position_ms: 7_500, rate: 1.0, buffered_end_ms: 9_000 });
    assert_eq!(uplinks(&out), vec![Message::Uplink { streams: 0, live_edge: true }]);
    assert!(
        uplinks(&feed(&mut e, 300, Input::Playback { position_ms: 7_600, rate: 1.0, buffered_end_ms: 9_000 }))
            .is_empty()
    );

    // It leaves the edge only 500 ms above the threshold: 3.8 s stays, 4.1 s leaves.
    let out = feed(&mut e, 400, Input::Playback { position_ms: 6_200, rate: 1.0, buffered_end_ms: 9_000 });
    assert!(uplinks(&out).is_empty(), "{out:?}");
    let out = feed(&mut e, 500, Input::Playback { position_ms: 5_900, rate: 1.0, buffered_end_ms: 9_000 });
    assert_eq!(uplinks(&out), vec![Message::Uplink { streams: 0, live_edge: false }]);
}

#[test]
fn a_peer_too_weak_to_seed_does_not_claim_the_live_edge() {
    let mut e = engine("ann", &["bob"]);
    // Segments guessed at 1 MB per 2 s (the stream prior): 700 kB/s carries one copy, not two.
    e.handle_uplink(0, 700_000, 0);
    feed(&mut e, 0, playlist(0..5));

    let out = feed(&mut e, 200, Input::Playback { position_ms: 7_500, rate: 1.0, buffered_end_ms: 9_000 });

    let uplinks = uplinks_to(&out, "bob");
    assert!(uplinks.iter().all(|m| matches!(m, Message::Uplink { live_edge: false, .. })), "{uplinks:?}");
}

#[test]
fn the_live_edge_claim_can_be_turned_off() {
    let config = Config { live_edge_first: false, ..base() };
    let mut e = engine_with(config, "ann", &["bob"]);
    feed(&mut e, 0, playlist(0..5));

    let out = feed(&mut e, 200, Input::Playback { position_ms: 7_500, rate: 1.0, buffered_end_ms: 9_000 });

    assert!(!uplinks_to(&out, "bob").iter().any(|m| matches!(m, Message::Uplink { live_edge: true, .. })), "{out:?}");
}
