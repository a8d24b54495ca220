//! The origin's configuration (defaults < TOML file < `SWARMCAST_ORIGIN_*` environment variables).

use serde::{Deserialize, Serialize};

use crate::store::Limits;

/// Origin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Bearer token the encoder must send on `PUT`/`DELETE` (`Authorization: Bearer <token>`).
    /// Default empty, which is refused at startup: every deployment sets its own.
    pub ingest_token: String,
    /// Largest object accepted by `PUT`, in bytes (default 32 MiB); larger bodies get 413.
    pub max_object_bytes: u64,
    /// Most streams (content ids) held at once (default 64).
    pub max_streams: usize,
    /// Most objects (playlists, live and expiring segments) per stream (default 1024).
    pub max_objects_per_stream: usize,
    /// Most bytes held over all streams (default 1 GiB).
    pub max_total_bytes: u64,
    /// `Cache-Control: max-age` of playlists, in seconds (default 1).
    pub playlist_max_age_s: u32,
    /// `Cache-Control: max-age` of segments, which are also marked `immutable`, in seconds
    /// (default 3600).
    pub segment_max_age_s: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ingest_token: String::new(),
            max_object_bytes: 32 * 1024 * 1024,
            max_streams: 64,
            max_objects_per_stream: 1024,
            max_total_bytes: 1024 * 1024 * 1024,
            playlist_max_age_s: 1,
            segment_max_age_s: 3600,
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `ingest_token` is empty.
    #[error("ingest_token must be set")]
    MissingIngestToken,
    /// A capacity bound is zero.
    #[error("{0} must be greater than zero")]
    ZeroLimit(&'static str),
}

impl Config {
    /// Checks that the token is set and every bound is positive.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ingest_token.is_empty() {
            return Err(ConfigError::MissingIngestToken);
        }
        let zero = [
            ("max_object_bytes", self.max_object_bytes == 0),
            ("max_streams", self.max_streams == 0),
            ("max_objects_per_stream", self.max_objects_per_stream == 0),
            ("max_total_bytes", self.max_total_bytes == 0),
        ];
        match zero.into_iter().find(|(_, z)| *z) {
            Some((name, _)) => Err(ConfigError::ZeroLimit(name)),
            None => Ok(()),
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_streams: self.max_streams,
            max_objects_per_stream: self.max_objects_per_stream,
            max_total_bytes: self.max_total_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_needs_a_token() {
        assert_eq!(Config::default().validate(), Err(ConfigError::MissingIngestToken));
        let ok = Config { ingest_token: "t".into(), ..Config::default() };
        assert_eq!(ok.validate(), Ok(()));
        let zero = Config { max_streams: 0, ..ok };
        assert_eq!(zero.validate(), Err(ConfigError::ZeroLimit("max_streams")));
    }
}
