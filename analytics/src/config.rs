//! The analytics server's configuration: windows and bounds.

use serde::{Deserialize, Serialize};

/// Analytics configuration (defaults < TOML file < `SWARMCAST_ANALYTICS_*` env vars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Most sessions kept at once, in sessions; a new one evicts the least recently active.
    pub max_sessions: usize,
    /// Most contents with totals kept at once, in contents.
    pub max_contents: usize,
    /// A session counts as a viewer if it reported within this window, in seconds.
    pub active_window_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { max_sessions: 100_000, max_contents: 10_000, active_window_s: 10 }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `max_sessions` or `max_contents` is 0, which would refuse every report.
    #[error("max_sessions and max_contents must be above 0")]
    ZeroBound,
}

impl Config {
    /// Checks the invariants the server relies on.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_sessions == 0 || self.max_contents == 0 {
            return Err(ConfigError::ZeroBound);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_validates() {
        let config = Config::default();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(Config { max_sessions: 0, ..config }.validate(), Err(ConfigError::ZeroBound));
        assert!(serde_json::from_str::<Config>(r#"{"nope":1}"#).is_err());
    }
}
