//! The swarm state per (peer, swarm) stays under 256 bytes, measured as the process's resident
//! memory growth while a registry fills (the only test of this binary, so nothing else allocates).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::rss_bytes;

#[test]
fn the_state_per_peer_stays_under_256_bytes() {
    const PEERS: usize = 200_000;
    let before = rss_bytes();
    let probe = swarmcast_tracker::StateProbe::fill(PEERS, 100);
    let per_peer = (rss_bytes() - before) / PEERS;
    drop(probe);
    println!("tracker state: {per_peer} bytes per (peer, swarm) over {PEERS} peers in 100 swarms");
    assert!(per_peer <= 256, "{per_peer} bytes per (peer, swarm)");
}
