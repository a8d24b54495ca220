//! The signalling server's configuration: token secret, timers and bounds.

use serde::{Deserialize, Serialize};

/// Signalling configuration (defaults < TOML file < `SWARMCAST_SIGNALLING_*` env vars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HMAC key for session tokens, shared with the tracker and distributor. Must not be empty.
    pub secret: String,
    /// A connection that sends nothing for this long is closed, in seconds.
    pub idle_timeout_s: u64,
    /// Sustained rate of frames one connection may send, in messages per second.
    pub max_messages_per_s: u32,
    /// Frames one connection may send at once above the sustained rate, in messages.
    pub burst_messages: u32,
    /// Messages queued for one connection before it counts as a slow consumer and is closed.
    pub queue_messages: usize,
    /// Most connections at once, in connections; more get 503 before the upgrade.
    pub max_connections: usize,
    /// Longest time one write to a client may take before the connection is dropped, in seconds.
    pub send_timeout_s: u64,
    /// Most connections at once from one IPv4 address or one IPv6 /64, in connections; more get
    /// 429 before the upgrade. Viewers behind one NAT share an address, so keep it well above 1.
    pub max_connections_per_ip: usize,
    /// Whether an offer needs the tracker's introduction of its recipient to its sender (a
    /// `introduce` frame carrying [`protocol::api::PeersResponse::intro`]), and candidates and
    /// `bye` an offer or answer between the two (default on: the browser agent sends the
    /// introductions it gets from the tracker). Off, only the answer rule holds (an answer needs
    /// an outstanding offer from its recipient), for clients that do not talk to the tracker.
    pub require_introduction: bool,
    /// How long an offer waits for its answer, and how long an answered pair may keep trickling
    /// candidates after its last message, in seconds (aquatic_ws `max_offer_age`: 120).
    pub offer_ttl_s: u64,
    /// Most peers one connection may deal with at once (introduced, offered or answered), in
    /// peers; entries past their lifetime make room.
    pub max_links: usize,
    /// Websocket read buffer per connection, allocated up front, in bytes (tungstenite's default
    /// is 128 KiB, which dominates the memory of an idle connection).
    pub ws_read_buffer_bytes: usize,
    /// Outgoing bytes buffered before a write is flushed to the socket, in bytes.
    pub ws_write_buffer_bytes: usize,
    /// Most outgoing bytes buffered per connection, in bytes; must hold one largest message
    /// ([`protocol::signal::MAX_MESSAGE_BYTES`]) plus `ws_write_buffer_bytes`.
    pub ws_max_write_buffer_bytes: usize,
    /// Redis URL of the broker that joins signalling nodes into one cluster, e.g.
    /// `redis://127.0.0.1:6379`; empty runs a single node (relays only between its own peers).
    pub broker_url: String,
    /// This node's id in the cluster, unique per running node; empty picks a random one at start.
    pub node_id: String,
    /// Lifetime of a peer's entry in the broker's directory, in seconds; refreshed every third of
    /// it while the peer is connected, so a node that dies without cleaning up is forgotten after it.
    pub peer_ttl_s: u64,
    /// Longest wait for one broker operation, in milliseconds; a cross-node relay that takes
    /// longer is reported `undeliverable` (`broker_unavailable`) to its sender.
    pub broker_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret: String::new(),
            idle_timeout_s: 120,
            max_messages_per_s: 50,
            burst_messages: 100,
            queue_messages: 64,
            max_connections: 100_000,
            send_timeout_s: 10,
            max_connections_per_ip: 100,
            require_introduction: true,
            offer_ttl_s: 120,
            max_links: 256,
            ws_read_buffer_bytes: 4096,
            ws_write_buffer_bytes: 4096,
            ws_max_write_buffer_bytes: 128 * 1024,
            broker_url: String::new(),
            node_id: String::new(),
            peer_ttl_s: 30,
            broker_timeout_ms: 5000,
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `secret` is empty: tokens would be forgeable. Set the tracker's secret.
    #[error("secret must not be empty")]
    EmptySecret,
    /// A timeout, rate, queue length or cap is 0, which would refuse or close everything.
    #[error(
        "idle_timeout_s, send_timeout_s, max_messages_per_s, burst_messages, queue_messages, max_connections_per_ip, offer_ttl_s, max_links, peer_ttl_s and broker_timeout_ms must be above 0"
    )]
    Zero,
    /// The websocket buffers cannot hold one largest message.
    #[error(
        "ws_max_write_buffer_bytes must exceed ws_write_buffer_bytes + MAX_MESSAGE_BYTES, and ws_read_buffer_bytes be above 0"
    )]
    Buffers,
}

impl Config {
    /// Checks the invariants the server relies on.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        let zero = self.idle_timeout_s == 0
            || self.send_timeout_s == 0
            || self.max_messages_per_s == 0
            || self.burst_messages == 0
            || self.queue_messages == 0
            || self.max_connections_per_ip == 0
            || self.offer_ttl_s == 0
            || self.max_links == 0
            || self.peer_ttl_s == 0
            || self.broker_timeout_ms == 0;
        if zero {
            return Err(ConfigError::Zero);
        }
        let largest = self.ws_write_buffer_bytes.saturating_add(protocol::signal::MAX_MESSAGE_BYTES);
        if self.ws_max_write_buffer_bytes <= largest || self.ws_read_buffer_bytes == 0 {
            return Err(ConfigError::Buffers);
        }
        Ok(())
    }

    /// [`Config::node_id`], or a random id when it is empty (process id and clock, hex).
    pub fn node_id_or_random(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let seq = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:x}-{:x}-{seq}", std::process::id(), nanos & u128::from(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_validates() {
        let config = Config { secret: "s".into(), ..Config::default() };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(Config::default().validate(), Err(ConfigError::EmptySecret));
        assert_eq!(Config { queue_messages: 0, ..config.clone() }.validate(), Err(ConfigError::Zero));
        assert_eq!(Config { ws_max_write_buffer_bytes: 64 * 1024, ..config }.validate(), Err(ConfigError::Buffers));
    }
}
