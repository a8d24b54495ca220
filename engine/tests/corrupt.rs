//! A peer that corrupts every chunk it sends, in a swarm that gets the origin's digests: every
//! corrupt segment is caught before it reaches a player (the harness compares every delivered
//! segment with the CDN's bytes), the sender is banned by everyone, and nobody stalls.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Net, START_MS, Swarm};
use swarmcast_engine::Config;

#[test]
fn a_corrupting_peer_is_caught_every_time_banned_and_causes_no_stall() {
    let mut swarm = Swarm::new(Net::default());
    swarm.digests = true;
    for v in 0..5 {
        swarm.join(START_MS + 300 + v * 1_300, Config::default());
    }
    swarm.corrupting.insert(0);
    swarm.run_until(START_MS + 60_000);

    let mut caught = 0;
    for v in 1..5 {
        let r = swarm.report(v);
        assert_eq!((r.stalled_ms, r.failed), (0, 0), "viewer {v}: {r:?}");
        assert!(r.delivered >= 25, "viewer {v}: {r:?}");
        caught += r.stats.corrupt_segments;
        assert!(r.offload() > 0.3, "the honest peers still share: viewer {v}: {r:?}");
    }
    let evil = swarm.report(0);
    assert!(caught >= 1, "somebody took a segment from the corrupting peer");
    assert_eq!(evil.stats.peers_connected, 0, "banned by everyone: {evil:?}");
}
