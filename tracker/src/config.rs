//! The tracker's configuration: token secret, timers and bounds.

use serde::{Deserialize, Serialize};

/// Tracker configuration (defaults < TOML file < `SWARMCAST_TRACKER_*` env vars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HMAC key for session tokens, shared with the distributor and signalling. Must not be empty.
    pub secret: String,
    /// Lifetime of the peer tokens minted at `init`, in seconds.
    pub token_ttl_s: u64,
    /// A peer silent (no `track` or `peers` call) for this long leaves its swarm, in seconds.
    pub peer_timeout_s: u64,
    /// Most candidates in one `peers` answer, in peers.
    pub max_peers_per_response: u32,
    /// Most peers tracked at once over all swarms, in peers; new peers get 503 above it.
    pub max_peers_total: usize,
    /// How often agents should ask for peers while they want more (sent at `init`), in ms.
    pub peers_interval_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret: String::new(),
            token_ttl_s: 3600,
            peer_timeout_s: 60,
            max_peers_per_response: 20,
            max_peers_total: 1_000_000,
            peers_interval_ms: 5_000,
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `secret` is empty: tokens would be forgeable. Set the distributor's secret.
    #[error("secret must not be empty")]
    EmptySecret,
    /// `token_ttl_s` or `peer_timeout_s` is 0.
    #[error("token_ttl_s and peer_timeout_s must be above 0")]
    ZeroDuration,
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
        if self.token_ttl_s == 0 || self.peer_timeout_s == 0 {
            return Err(ConfigError::ZeroDuration);
        }
        Ok(())
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
        assert!(serde_json::from_str::<Config>(r#"{"nope":1}"#).is_err());
    }
}
