//! The early playlist reload of the next segment's seeder (`reload.rs`).

use super::*;
use crate::reload::SWARM_COUNT_TTL_MS;

const NAMES: [&str; 4] = ["ann", "bob", "cat", "dan"];

fn others(me: &str) -> Vec<&'static str> {
    NAMES.iter().copied().filter(|n| *n != me).collect()
}

fn reloads(outputs: &[Output]) -> Vec<(u32, u64)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::ReloadPlaylist { rendition, msn } => Some((*rendition, *msn)),
            _ => None,
        })
        .collect()
}

/// An engine of the full mesh `NAMES` that was told the swarm's size at time 0.
fn meshed(me: &str, swarm: u32) -> Engine {
    let mut e = engine(me, &others(me));
    feed(&mut e, 0, Input::SwarmSize { peers: swarm });
    e
}

#[test]
fn in_a_full_mesh_only_the_next_segments_seeder_polls_for_it_and_fetches_it_once_listed() {
    let mut engines: Vec<Engine> = NAMES.iter().map(|n| meshed(n, 4)).collect();
    // Who asked to poll for which segment, over the players' reloads and the polls' answers.
    let mut asked: Vec<(u64, &str)> = Vec::new();
    for step in 1..=20u64 {
        let newest = step + 4;
        for (e, name) in engines.iter_mut().zip(NAMES) {
            // The tracker's answers keep the count fresh.
            feed(e, step * 2_000, Input::SwarmSize { peers: 4 });
            let out = feed(e, step * 2_000, playlist(step..newest + 1));
            asked.extend(reloads(&out).into_iter().map(|(_, msn)| (msn, name)));
            // An ask put off after a poll (see below) comes due by then.
            e.handle_timeout(step * 2_000 + 400);
            asked.extend(reloads(&drain(e)).into_iter().map(|(_, msn)| (msn, name)));
        }
        let seeder = seeding_order(&NAMES, newest + 1)[0];
        assert!(asked.contains(&(newest + 1, seeder)), "segment {}: {asked:?}", newest + 1);

        // The poll's answer lists it: the seeder fetches it at once, before the player's reload.
        let e = &mut engines[NAMES.iter().position(|n| *n == seeder).unwrap()];
        let out = feed(e, step * 2_000 + 700, playlist(step..newest + 2));
        assert!(fetches(&out).contains(&(id(newest + 1), 0)), "segment {}: {out:?}", newest + 1);
        asked.extend(reloads(&out).into_iter().map(|(_, msn)| (msn, seeder)));
    }
    // Each segment was asked for once, by its seeder.
    for msn in 6..=25 {
        let askers: Vec<&str> = asked.iter().filter(|(m, _)| *m == msn).map(|(_, n)| *n).collect();
        assert_eq!(askers, vec![seeding_order(&NAMES, msn)[0]], "segment {msn}");
    }
}

#[test]
fn after_a_poll_listed_the_segment_the_next_ask_waits_until_shortly_before_the_next_publication() {
    // A swarm of two whose seeder of both 6 and 7 is `me`.
    let (me, other) = (1..)
        .map(|i| (format!("p{i}"), format!("q{i}")))
        .find(|(a, b)| (6..8).all(|msn| seeding_order(&[a, b], msn)[0] == a.as_str()))
        .unwrap();
    let mut e = engine(&me, &[&other]);
    feed(&mut e, 0, Input::SwarmSize { peers: 2 });
    assert_eq!(reloads(&feed(&mut e, 2_000, playlist(1..6))), vec![(0, 6)], "the player's reload: ask at once");

    // The poll lists 6 at 2,700: 7 is due about 2 s later, so its poll starts at 2,700 + 1,500.
    assert!(reloads(&feed(&mut e, 2_700, playlist(1..7))).is_empty());
    assert!(e.poll_timeout().is_some_and(|t| t <= 4_200));
    e.handle_timeout(4_199);
    assert!(reloads(&drain(&mut e)).is_empty());
    e.handle_timeout(4_200);
    assert_eq!(reloads(&drain(&mut e)), vec![(0, 7)]);
}

#[test]
fn the_poll_is_asked_once_per_segment() {
    let seeder = seeding_order(&NAMES, 6)[0];
    let mut e = meshed(seeder, 4);

    assert_eq!(reloads(&feed(&mut e, 2_000, playlist(1..6))), vec![(0, 6)]);
    assert!(reloads(&feed(&mut e, 2_300, playlist(1..6))).is_empty());
}

#[test]
fn nobody_polls_in_a_partial_mesh() {
    // The tracker counts 10 viewers; we see 3 of them.
    for name in NAMES {
        let mut e = meshed(name, 10);
        assert!(reloads(&feed(&mut e, 2_000, playlist(1..6))).is_empty(), "{name}");
    }
}

#[test]
fn an_old_count_of_the_swarm_is_not_trusted() {
    let seeder = seeding_order(&NAMES, 6)[0];
    let mut e = meshed(seeder, 4);

    let late = SWARM_COUNT_TTL_MS + 1;
    assert!(reloads(&feed(&mut e, late, playlist(1..6))).is_empty());
    feed(&mut e, late, Input::SwarmSize { peers: 4 });
    let expected = if seeding_order(&NAMES, 7)[0] == seeder { vec![(0, 7)] } else { vec![] };
    assert_eq!(reloads(&feed(&mut e, late + 2_000, playlist(2..7))), expected);
}

#[test]
fn it_can_be_turned_off() {
    let seeder = seeding_order(&NAMES, 6)[0];
    let mut e = engine_with(Config { early_reload: false, ..base() }, seeder, &others(seeder));
    feed(&mut e, 0, Input::SwarmSize { peers: 4 });
    assert!(reloads(&feed(&mut e, 2_000, playlist(1..6))).is_empty());
}

#[test]
fn a_peer_that_cannot_seed_does_not_poll() {
    let seeder = seeding_order(&NAMES, 6)[0];
    let mut e = engine_with(Config { upload_allowed: false, ..base() }, seeder, &others(seeder));
    feed(&mut e, 0, Input::SwarmSize { peers: 4 });
    assert!(reloads(&feed(&mut e, 2_000, playlist(1..6))).is_empty());
}

#[test]
fn a_full_mesh_keeps_the_trackers_count_fresh() {
    // Nine neighbours: more than `max_peers` (8 here), so the engine no longer asks for candidates.
    let names = ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal", "ida", "jon"];
    let others: Vec<&str> = names[1..].to_vec();
    let eight = || Config { max_peers: 8, ..base() };
    let mut e = engine_with(eight(), "ann", &others);
    let half = SWARM_COUNT_TTL_MS / 2;
    assert!(!feed(&mut e, 0, Input::SwarmSize { peers: 10 }).contains(&Output::RequestPeers));
    assert!(e.poll_timeout().is_some_and(|t| t <= half));

    // Half the trust time on, it asks the tracker again, once.
    e.handle_timeout(half);
    assert_eq!(drain(&mut e).iter().filter(|o| **o == Output::RequestPeers).count(), 1);
    e.handle_timeout(half + 1_000);
    assert!(!drain(&mut e).contains(&Output::RequestPeers));

    // Not in a partial mesh.
    let mut e = engine_with(eight(), "ann", &others);
    feed(&mut e, 0, Input::SwarmSize { peers: 30 });
    e.handle_timeout(half);
    assert!(!drain(&mut e).contains(&Output::RequestPeers));
}

/// The media playlist of rendition 0 with 6 s segments `msns`.
fn playlist_6s(msns: Range<u64>) -> Input {
    let segments = msns.map(|msn| SegmentInfo { start_ms: msn * 6_000, duration_ms: 6_000, ..info(msn) }).collect();
    Input::Playlist { rendition: 0, segments }
}

/// When `e`, second in line for segment 6 of 6 s, fetches it from the CDN after seeing it at
/// 30 s with nobody announcing it.
fn second_in_lines_turn(mut e: Engine, swarm: u32) -> Millis {
    feed(&mut e, 30_000, Input::SwarmSize { peers: swarm });
    let out = feed(&mut e, 30_000, playlist_6s(1..7));
    assert!(fetches(&out).is_empty(), "{out:?}");
    for at in 30_001..=32_000 {
        e.handle_timeout(at);
        if fetches(&drain(&mut e)).contains(&(id(6), 0)) {
            return at;
        }
    }
    panic!("segment 6 never fetched");
}

#[test]
fn in_a_full_mesh_the_second_in_line_waits_out_the_seeders_poll_interval() {
    // The seeder polls every 6 s / 8 = 750 ms, so it may see segment 6 up to 750 ms and a
    // CDN round trip after a neighbour whose player reloaded just then: that neighbour waits
    // 750 + 300 ms, not the 500 ms grace, before fetching it itself.
    let second = seeding_order(&NAMES, 6)[1];
    assert_eq!(second_in_lines_turn(engine(second, &others(second)), 4), 31_050);
    // In a partial mesh nobody polls: one grace per rank.
    assert_eq!(second_in_lines_turn(engine(second, &others(second)), 10), 30_500);
    // Without early reload, neither.
    let off = Config { early_reload: false, ..base() };
    assert_eq!(second_in_lines_turn(engine_with(off, second, &others(second)), 4), 30_500);
}
