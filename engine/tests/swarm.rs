//! The engine in small swarms on a virtual clock (harness in `common`): offload, no stalls,
//! churn, slow links, determinism.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, START_MS, Swarm, start};
use swarmcast_engine::Config;

/// Three viewers joining 4.4 s apart, watching for `seconds`.
fn three_viewers(seconds: u64) -> Swarm {
    let mut swarm = start(Net::default(), 3, 4_400);
    swarm.run_until(START_MS + seconds * 1_000);
    swarm
}

#[test]
fn later_viewers_get_most_bytes_from_peers_without_stalling() {
    let swarm = three_viewers(90);

    for v in 0..3 {
        let r = swarm.report(v);
        assert_eq!((r.stalled_ms, r.failed), (0, 0), "viewer {v}: {r:?}");
        assert!(r.delivered >= 40, "viewer {v}: {r:?}");
        assert_eq!(r.stats.peers_connected, 2, "viewer {v}: {r:?}");
    }
    for v in 1..3 {
        let r = swarm.report(v);
        assert!(r.offload() >= 0.5, "viewer {v} offload {:.2}: {r:?}", r.offload());
    }
    let uploaded: u64 = (0..3).map(|v| swarm.report(v).stats.p2p_up_bytes).sum();
    let downloaded: u64 = (0..3).map(|v| swarm.report(v).stats.p2p_down_bytes).sum();
    assert_eq!(uploaded, downloaded, "every byte sent was used");
}

#[test]
fn a_lone_viewer_plays_everything_from_the_cdn() {
    let mut swarm = start(Net::default(), 1, 0);
    swarm.run_until(START_MS + 30_000);

    let r = swarm.report(0);
    assert_eq!((r.stalled_ms, r.failed, r.stats.p2p_down_bytes), (0, 0, 0), "{r:?}");
    assert!(r.delivered >= 14, "{r:?}");
}

#[test]
fn the_swarm_plays_on_when_a_viewer_leaves() {
    let mut swarm = start(Net::default(), 3, 4_400);
    swarm.leave(0, START_MS + 40_000);
    swarm.run_until(START_MS + 80_000);

    for v in 1..3 {
        let r = swarm.report(v);
        assert_eq!((r.stalled_ms, r.failed), (0, 0), "viewer {v}: {r:?}");
        assert!(r.offload() > 0.3, "viewer {v}: {r:?}");
    }
}

#[test]
fn a_viewer_that_does_not_upload_still_gets_segments_from_peers() {
    let mut swarm = start(Net::default(), 1, 0);
    swarm.join(START_MS + 4_700, Config { upload_allowed: false, ..Config::default() });
    swarm.run_until(START_MS + 60_000);

    let (seeder, leecher) = (swarm.report(0), swarm.report(1));
    assert_eq!((leecher.stalled_ms, leecher.failed, leecher.stats.p2p_up_bytes), (0, 0, 0), "{leecher:?}");
    assert!(leecher.offload() > 0.7, "{leecher:?}");
    assert_eq!(seeder.stats.p2p_down_bytes, 0, "{seeder:?}");
}

#[test]
fn runs_are_deterministic() {
    let (a, b) = (three_viewers(40), three_viewers(40));

    for v in 0..3 {
        assert_eq!(a.report(v), b.report(v));
    }
}

#[test]
fn slow_links_and_slow_connections_still_never_stall() {
    let mut slow =
        Net { http_latency_ms: 150, http_bytes_per_ms: 600, connect_ms: 3_000, tracker_ms: 200, ..Net::default() };
    (slow.p2p_latency_ms, slow.p2p_bytes_per_ms) = (100, 150);
    let mut swarm = start(slow, 3, 1_990);
    swarm.run_until(START_MS + 60_000);

    for v in 0..3 {
        let r = swarm.report(v);
        assert_eq!((r.stalled_ms, r.failed), (0, 0), "viewer {v}: {r:?}");
        assert!(r.delivered >= 28, "viewer {v}: {r:?}");
    }
    assert!(swarm.report(2).offload() >= 0.4, "{:?}", swarm.report(2));
}

#[test]
fn eight_viewers_approach_the_offload_bound() {
    let mut swarm = start(Net::default(), 8, 1_300);
    swarm.run_until(START_MS + 90_000);

    let (mut http, mut p2p) = (0, 0);
    for v in 0..8 {
        let r = swarm.report(v);
        assert_eq!((r.stalled_ms, r.failed), (0, 0), "viewer {v}: {r:?}");
        (http, p2p) = (http + r.stats.http_bytes, p2p + r.stats.p2p_down_bytes);
    }
    let offload = p2p as f64 / (http + p2p) as f64;
    assert!(offload > 0.8, "swarm offload {offload:.2}; the bound is 1 - 1/8 = 0.875");
}

#[test]
fn a_segment_late_on_a_slow_link_is_split_with_another_holder_and_never_stalls() {
    let mut swarm = Swarm::new(Net::default());
    for v in 0..3 {
        swarm.join(START_MS + 300 + v * 4_400, Config::default());
    }
    // Viewer 1 sends to viewer 2 at 60 kB/s: a 200 kB segment would take over 3 s.
    swarm.slow_links.insert((0, 2), 60);
    swarm.run_until(START_MS + 90_000);

    for v in 0..3 {
        let r = swarm.report(v);
        assert_eq!((r.stalled_ms, r.failed), (0, 0), "viewer {v}: {r:?}");
    }
    let r = swarm.report(2);
    assert!(r.stats.split_segments > 0, "{r:?}");
    assert!(r.offload() >= 0.5, "offload {:.2}: {r:?}", r.offload());
}
