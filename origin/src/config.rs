//! The origin's configuration (defaults < TOML file < `SWARMCAST_ORIGIN_*` environment variables).
//!
//! One binary plays three roles: the live origin (ingest, live window, DVR, VOD, digests and
//! optionally content steering), and the caching edge or shield in front of it
//! (`mode = "edge"`, see [`EdgeConfig`]).

use serde::{Deserialize, Serialize};

use crate::store::Limits;

/// Longest timeshift (DVR) window accepted, in seconds (48 h).
pub const MAX_DVR_WINDOW_S: u64 = 48 * 3600;

/// What this process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The live origin: accepts ingest and serves the stream.
    Origin,
    /// A caching reverse proxy (a CDN edge or the shield) in front of `edge.upstream_url`.
    Edge,
}

/// Origin configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Origin or edge (default origin).
    pub mode: Mode,
    /// Bearer token the encoder must send on `PUT`/`DELETE` (`Authorization: Bearer <token>`).
    /// Default empty, which is refused at startup in origin mode: every deployment sets its own.
    pub ingest_token: String,
    /// Largest object accepted by `PUT`, in bytes (default 32 MiB); larger bodies get 413.
    pub max_object_bytes: u64,
    /// Most streams (content ids) held at once (default 64).
    pub max_streams: usize,
    /// Most objects (playlists, live, DVR and expiring segments) per stream (default 16384).
    pub max_objects_per_stream: usize,
    /// Most bytes held over all streams (default 1 GiB); the oldest DVR segments are dropped
    /// first when it is reached.
    pub max_total_bytes: u64,
    /// `Cache-Control: max-age` of playlists, in seconds (default 1).
    pub playlist_max_age_s: u32,
    /// `Cache-Control: max-age` of segments, which are also marked `immutable`, in seconds
    /// (default 3600).
    pub segment_max_age_s: u32,
    /// Timeshift window of the DVR playlists (`/dvr/…`) and of the VOD playlist once the stream
    /// ends (`/vod/…`), in seconds (default 7200 = 2 h, at most 172800 = 48 h; 0 turns DVR off).
    pub dvr_window_s: u64,
    /// Object store that keeps every segment for the timeshift window ([`crate::archive`]):
    /// `file:///var/lib/swarmcast/archive`, `memory://`, or `s3://bucket/prefix` with the `s3`
    /// feature. Empty (the default) keeps the DVR in memory only, bounded by `max_total_bytes`.
    /// With an archive, memory holds the live window and grace periods, DVR and VOD reads of older
    /// segments come from the archive, the DVR logs and multivariant playlists are stored there
    /// too and rebuilt from it at start (so the timeshift window and VODs survive a restart), and
    /// archived objects older than `dvr_window_s` are deleted (a multivariant playlist with the
    /// last log object of its stream).
    pub archive_url: String,
    /// Ed25519 seed (64 hex characters) that signs the segment digests; empty publishes the
    /// digests unsigned.
    pub digest_signing_key: String,
    /// Edge settings (used in edge mode).
    pub edge: EdgeConfig,
    /// Content steering settings (steering is on when `steering.pathways` is not empty).
    pub steering: crate::steering::SteeringConfig,
}

/// Settings of a caching edge or shield.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Name of this edge in metrics and the `X-Cache` header, e.g. `cdn-a` (default `edge`).
    pub name: String,
    /// Base URL of the upstream (the shield or the origin), e.g. `http://127.0.0.1:7000`.
    pub upstream_url: String,
    /// Most bytes the cache holds (default 512 MiB); least recently used objects go first.
    pub cache_max_bytes: u64,
    /// How long a 404 for a segment is remembered, in milliseconds (default 500).
    pub negative_ttl_ms: u64,
    /// A fill that delivers no byte for this long is replaced by exactly one new upstream request,
    /// resuming with `Range` where it stopped, in milliseconds (nginx `proxy_cache_lock_age`;
    /// default 1000).
    pub lock_age_ms: u64,
    /// Upstream connect and header timeout, in milliseconds (default 3000).
    pub upstream_timeout_ms: u64,
    /// How long a playlist is fresh, in milliseconds (default 500); after that it is served stale
    /// while one request revalidates it, for at most half its target duration.
    pub playlist_fresh_ms: u64,
    /// HMAC key of the access tokens ([`protocol::access`]); empty serves without tokens.
    pub access_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Origin,
            ingest_token: String::new(),
            max_object_bytes: 32 * 1024 * 1024,
            max_streams: 64,
            max_objects_per_stream: 16_384,
            max_total_bytes: 1024 * 1024 * 1024,
            playlist_max_age_s: 1,
            segment_max_age_s: 3600,
            dvr_window_s: 7200,
            archive_url: String::new(),
            digest_signing_key: String::new(),
            edge: EdgeConfig::default(),
            steering: crate::steering::SteeringConfig::default(),
        }
    }
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            name: "edge".into(),
            upstream_url: String::new(),
            cache_max_bytes: 512 * 1024 * 1024,
            negative_ttl_ms: 500,
            lock_age_ms: 1000,
            upstream_timeout_ms: 3000,
            playlist_fresh_ms: 500,
            access_secret: String::new(),
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `ingest_token` is empty in origin mode.
    #[error("ingest_token must be set")]
    MissingIngestToken,
    /// A capacity bound is zero.
    #[error("{0} must be greater than zero")]
    ZeroLimit(&'static str),
    /// `dvr_window_s` is above [`MAX_DVR_WINDOW_S`].
    #[error("dvr_window_s must be at most {MAX_DVR_WINDOW_S}")]
    DvrTooLong,
    /// `digest_signing_key` is not 64 hex characters.
    #[error("digest_signing_key must be 64 hex characters")]
    BadSigningKey,
    /// Edge mode without a usable `edge.upstream_url`.
    #[error("edge.upstream_url must be an http:// URL")]
    BadUpstream,
    /// `archive_url` is unusable, or set while DVR is off (`dvr_window_s = 0`).
    #[error("archive_url: {0}")]
    Archive(String),
    /// A steering setting is unusable.
    #[error("steering: {0}")]
    Steering(String),
}

impl Config {
    /// Checks that the token is set and every bound is positive.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.mode == Mode::Origin && self.ingest_token.is_empty() {
            return Err(ConfigError::MissingIngestToken);
        }
        let zero = [
            ("max_object_bytes", self.max_object_bytes == 0),
            ("max_streams", self.max_streams == 0),
            ("max_objects_per_stream", self.max_objects_per_stream == 0),
            ("max_total_bytes", self.max_total_bytes == 0),
            ("edge.cache_max_bytes", self.edge.cache_max_bytes == 0),
            ("edge.lock_age_ms", self.edge.lock_age_ms == 0),
        ];
        if let Some((name, _)) = zero.into_iter().find(|(_, z)| *z) {
            return Err(ConfigError::ZeroLimit(name));
        }
        if self.dvr_window_s > MAX_DVR_WINDOW_S {
            return Err(ConfigError::DvrTooLong);
        }
        if !self.digest_signing_key.is_empty() && crate::digest::parse_key(&self.digest_signing_key).is_none() {
            return Err(ConfigError::BadSigningKey);
        }
        if !self.archive_url.is_empty() {
            crate::archive::check_url(&self.archive_url).map_err(|e| ConfigError::Archive(e.to_string()))?;
            if self.dvr_window_s == 0 {
                return Err(ConfigError::Archive("needs dvr_window_s > 0".into()));
            }
        }
        if self.mode == Mode::Edge && !self.edge.upstream_url.starts_with("http://") {
            return Err(ConfigError::BadUpstream);
        }
        self.steering.validate().map_err(ConfigError::Steering)
    }

    pub(crate) fn limits(&self) -> Limits {
        Limits {
            max_streams: self.max_streams,
            max_objects_per_stream: self.max_objects_per_stream,
            max_total_bytes: self.max_total_bytes,
            dvr_window_ms: self.dvr_window_s.saturating_mul(1000),
            archived: !self.archive_url.is_empty() && self.mode == Mode::Origin,
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
        let zero = Config { max_streams: 0, ..ok.clone() };
        assert_eq!(zero.validate(), Err(ConfigError::ZeroLimit("max_streams")));
        let dvr = Config { dvr_window_s: MAX_DVR_WINDOW_S + 1, ..ok.clone() };
        assert_eq!(dvr.validate(), Err(ConfigError::DvrTooLong));
        let key = Config { digest_signing_key: "zz".into(), ..ok.clone() };
        assert_eq!(key.validate(), Err(ConfigError::BadSigningKey));
        let archive = Config { archive_url: "file:///tmp/archive".into(), ..ok.clone() };
        assert_eq!(archive.validate(), Ok(()));
        let no_dvr = Config { dvr_window_s: 0, ..archive };
        assert!(matches!(no_dvr.validate(), Err(ConfigError::Archive(_))));
        let bad = Config { archive_url: "gopher://x".into(), ..ok };
        assert!(matches!(bad.validate(), Err(ConfigError::Archive(_))));
    }

    #[test]
    fn edge_needs_an_upstream_but_no_ingest_token() {
        let edge = Config { mode: Mode::Edge, ..Config::default() };
        assert_eq!(edge.validate(), Err(ConfigError::BadUpstream));
        let edge =
            Config { edge: EdgeConfig { upstream_url: "http://127.0.0.1:1".into(), ..EdgeConfig::default() }, ..edge };
        assert_eq!(edge.validate(), Ok(()));
        let json = serde_json::to_string(&edge).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), edge);
    }
}
