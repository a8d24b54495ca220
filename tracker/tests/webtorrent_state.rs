//! The WebTorrent endpoint's state per (peer, swarm), as aquatic_ws_load_test builds it (each
//! announce carries 10 offers, all kept until answered or expired), measured as the process's
//! resident memory growth (the only test of this binary, so nothing else allocates).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use common::rss_bytes;

#[test]
fn webtorrent_state_per_peer_and_swarm() {
    const CONNECTIONS: usize = 500;
    const SWARMS_EACH: usize = 200;
    let before = rss_bytes();
    let probe = swarmcast_tracker::WebTorrentProbe::fill(CONNECTIONS, SWARMS_EACH, 10_000, 10);
    let per_entry = (rss_bytes() - before) / (CONNECTIONS * SWARMS_EACH);
    drop(probe);
    println!("webtorrent state: {per_entry} bytes per (peer, swarm) with 10 pending offers each");
    assert!(per_entry <= 512, "{per_entry} bytes per (peer, swarm)");
}
