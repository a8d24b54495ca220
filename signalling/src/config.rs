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
    /// A timeout, rate or queue length is 0, which would refuse or close everything.
    #[error("idle_timeout_s, send_timeout_s, max_messages_per_s, burst_messages and queue_messages must be above 0")]
    Zero,
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
            || self.queue_messages == 0;
        if zero {
            return Err(ConfigError::Zero);
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
        assert_eq!(Config { queue_messages: 0, ..config }.validate(), Err(ConfigError::Zero));
    }
}
