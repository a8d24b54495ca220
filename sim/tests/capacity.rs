//! The uplink-capacity bound of whole runs: equal to 1 − 1/N on fast uplinks, capped by slow
//! ones, and never beaten by a scheduler.
#![allow(clippy::unwrap_used)]

use swarmcast_sim::{Dist, SimConfig, baseline, run};

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
