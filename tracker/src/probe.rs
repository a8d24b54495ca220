//! Filling a swarm registry with synthetic peers, to measure the state kept per (peer, swarm).

use std::time::{Duration, Instant};

use crate::IpTable;
use crate::swarm::{self, SwarmRegistry};

/// A swarm registry filled with synthetic peers, for measuring the state kept per (peer, swarm)
/// (see `tests/state_size.rs` and `swarmcast bench tracker`); dropping it frees the state.
pub struct StateProbe {
    _registry: SwarmRegistry,
}

impl StateProbe {
    /// Tracks `peers` peers (16-character peerIds, like the ones `init` issues) spread over
    /// `swarms` swarms of one content, each with a distinct /24 and a report, as a live tracker
    /// would hold them.
    pub fn fill(peers: usize, swarms: u32) -> Self {
        let now = Instant::now();
        let mut registry = SwarmRegistry::new(Duration::from_secs(60), peers, 512);
        for i in 0..peers {
            // 16 hex digits always form a valid peerId.
            let id: protocol::PeerId = format!("{i:016x}").parse().expect("hex digits form a peerId");
            let swarm = protocol::SwarmId {
                customer: "customer".into(),
                content: "content".into(),
                rendition: u32::try_from(i).unwrap_or(0) % swarms.max(1),
            };
            let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from_bits(u32::try_from(i).unwrap_or(0) << 8));
            let locality = IpTable::default().locate(ip);
            let profile = swarm::Profile { locality, uplink_kbps: 5_000, cellular: false, upload_allowed: true };
            // The registry was sized for exactly `peers` peers, so none is refused.
            let _ = registry.track(now, &id, swarm, locality, Some(profile));
        }
        Self { _registry: registry }
    }
}
