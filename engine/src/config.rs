//! Engine settings. Units are in the names.

/// Tunables of the engine; [`Config::default`] is what the agent ships with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Most peers to keep connected.
    pub max_peers: u32,
    /// Whether this peer uploads to others.
    pub upload_allowed: bool,
    /// Largest data channel message sent, in bytes (segment data travels in chunks this size or smaller).
    pub max_message_bytes: usize,
    /// Safety margin subtracted from a segment's play time to get its deadline, in ms.
    pub deadline_margin_ms: u64,
    /// Seed of the engine's random choices (the engine is deterministic given its inputs and seed).
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_peers: 8,
            upload_allowed: true,
            max_message_bytes: 64 * 1024,
            deadline_margin_ms: 1_500,
            seed: 0,
        }
    }
}
