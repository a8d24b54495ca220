//! The uplink-capacity bound of whole runs: equal to 1 − 1/N on fast uplinks, capped by slow
//! ones, and never beaten by a scheduler.
#![allow(clippy::unwrap_used)]

use swarmcast_sim::{Dist, PoorUplinkDraw, SimConfig, baseline, run};

/// N viewers, all there from the start (no ramp, no churn), every uplink `up` bytes/s.
fn uplinks(peers: u32, up: f64) -> SimConfig {
    SimConfig {
        peers,
        duration_s: 30,
        join_ramp_s: 0,
        poor_uplink_share: 0.0,
        churn_per_min: 0.0,
        uplink_bytes_per_s: Dist::Const(up),
        ..SimConfig::default()
    }
}

#[test]
fn fast_uplinks_give_the_plain_bound() {
    let r = run(&uplinks(4, 10_000_000.0)).unwrap();
    assert!((r.cap_bound - r.offload_bound).abs() < 1e-9, "{r:#?}");
    // Arrivals spread over a ramp count with the viewers present at each moment.
    let ramp = run(&SimConfig { join_ramp_s: 10, ..uplinks(4, 10_000_000.0) }).unwrap();
    assert!(ramp.cap_bound < ramp.offload_bound, "{ramp:#?}");
    assert!(ramp.cap_bound > ramp.offload_bound - 0.1, "{ramp:#?}");
}

#[test]
fn uplinks_of_half_the_bitrate_cap_it_at_one_half() {
    let config = uplinks(4, 0.0);
    let half = config.bitrate_bps as f64 / 8.0 / 2.0;
    let r = run(&SimConfig { uplink_bytes_per_s: Dist::Const(half), ..config }).unwrap();
    // min(3·b, 4·b/2) / (4·b)
    assert!((r.cap_bound - 0.5).abs() < 1e-9, "{r:#?}");
    assert!(r.offload <= r.cap_bound + 1e-3, "{r:#?}");
}

#[test]
fn no_scheduler_beats_the_uplinks() {
    for seed in 1..=2 {
        // The default link mix (poor uplinks, churn) on a small swarm.
        let config = SimConfig { peers: 4, duration_s: 120, seed, ..SimConfig::default() };
        // With a 6-segment window the baseline fetches everything over HTTP; with 20 it shares.
        let long = SimConfig { window_segments: 20, ..config.clone() };
        let baseline = baseline::run(&long).unwrap();
        assert!(baseline.offload > 0.2, "{baseline:#?}");
        let reports = [run(&config).unwrap(), baseline::run(&config).unwrap(), baseline];
        assert_eq!(reports[0].cap_bound, reports[1].cap_bound, "the same viewers");
        for r in reports {
            assert!(r.cap_bound <= r.offload_bound + 1e-12, "{r:#?}");
            assert!(r.offload <= r.cap_bound + 1e-3, "{}: {:.4} > {:.4}", r.scheduler, r.offload, r.cap_bound);
        }
    }
}

/// N = 4 with 30 % poor uplinks (2,000 bytes/s) and ordinary uplinks of half the bitrate, all
/// there from the start, twice the swarm replaced per minute.
fn one_in_three_poor(seed: u64, draw: PoorUplinkDraw) -> SimConfig {
    let config = uplinks(4, 0.0);
    let half = config.bitrate_bps as f64 / 8.0 / 2.0;
    SimConfig {
        seed,
        poor_uplink_share: 0.3,
        poor_uplink_draw: draw,
        poor_uplink_bytes_per_s: Dist::Const(2_000.0),
        uplink_bytes_per_s: Dist::Const(half),
        churn_per_min: 2.0,
        duration_s: 60,
        ..config
    }
}

#[test]
fn an_exact_poor_share_holds_through_churn_and_independent_draws_vary() {
    let b = SimConfig::default().bitrate_bps as f64 / 8.0;
    // round(0.3 × 4) = 1 poor uplink at every instant: min(3·b, 3·b/2 + 2,000) / (4·b).
    let exact = (1.5 * b + 2_000.0) / (4.0 * b);
    let mut independent = Vec::new();
    for seed in 1..=8 {
        let r = run(&one_in_three_poor(seed, PoorUplinkDraw::Exact)).unwrap();
        assert!(r.sessions > 4, "churn replaced someone: {r:#?}");
        assert!((r.cap_bound - exact).abs() < 1e-9, "seed {seed}: {} != {exact}", r.cap_bound);
        independent.push(run(&one_in_three_poor(seed, PoorUplinkDraw::Independent)).unwrap().cap_bound);
    }
    // Drawn one by one, some swarms hold more or fewer poor uplinks than the share.
    assert!(independent.iter().any(|c| (c - exact).abs() > 0.01), "{independent:?}");
}
