//! The transcoder's configuration (defaults < TOML file < `SWARMCAST_TRANSCODER_*` env vars).

use serde::{Deserialize, Serialize};

/// Most rungs in a ladder.
pub const MAX_RUNGS: usize = 8;

/// Transcoder configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The ffmpeg executable, a path or a name looked up in `PATH` (default `ffmpeg`).
    pub ffmpeg_path: String,
    /// Base URL of the stream on the origin, without a trailing slash; the master playlist goes to
    /// `{origin_url}/master.m3u8` and rung `r` to `{origin_url}/{r}/index.m3u8`
    /// (default `http://127.0.0.1:8000/live/live`).
    pub origin_url: String,
    /// Bearer token sent on every upload; the origin's `ingest_token`. Must not be empty.
    pub ingest_token: String,
    /// The ABR ladder, one HLS variant per rung (default 360p/540p/720p).
    pub ladder: Vec<Rung>,
    /// Target segment duration, in seconds (default 6); also the keyframe interval.
    pub segment_duration_s: u32,
    /// Segments listed in each live media playlist (default 5; at least 3, RFC 8216 §6.2.2).
    pub window_segments: u32,
    /// x264 preset (default `ultrafast`, the only one that keeps a 3-rung ladder realtime on 2
    /// cores).
    pub preset: String,
    /// Frame rate of the test source, in frames per second (default 30).
    pub fps: u32,
    /// Whether each rung shows its name and the wall-clock time (ffmpeg `drawtext`, needs a
    /// fontconfig font) (default true).
    pub clock_overlay: bool,
    /// First wait before restarting ffmpeg after it exits, in milliseconds; doubled on every
    /// quick failure up to [`Config::max_restart_backoff_ms`] (default 1000).
    pub restart_backoff_ms: u64,
    /// Longest wait between restarts, in milliseconds (default 30000).
    pub max_restart_backoff_ms: u64,
    /// ffmpeg is killed and restarted when it reports no progress for this long, in seconds
    /// (default 20).
    pub stall_timeout_s: u32,
}

/// One rung of the ladder: a rendition of the live stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rung {
    /// Name, used as the rendition's folder on the origin, e.g. `360p` (`[A-Za-z0-9._-]`).
    pub name: String,
    /// Width, in pixels (even).
    pub width: u32,
    /// Height, in pixels (even).
    pub height: u32,
    /// Video bitrate, in kbit/s.
    pub video_kbps: u32,
    /// Audio bitrate, in kbit/s.
    pub audio_kbps: u32,
}

impl Rung {
    /// A rung named `name`.
    pub fn new(name: &str, width: u32, height: u32, video_kbps: u32, audio_kbps: u32) -> Self {
        Self { name: name.to_owned(), width, height, video_kbps, audio_kbps }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ffmpeg_path: "ffmpeg".into(),
            origin_url: "http://127.0.0.1:8000/live/live".into(),
            ingest_token: String::new(),
            ladder: vec![
                Rung::new("360p", 640, 360, 1000, 96),
                Rung::new("540p", 960, 540, 1800, 96),
                Rung::new("720p", 1280, 720, 2300, 96),
            ],
            segment_duration_s: 6,
            window_segments: 5,
            preset: "ultrafast".into(),
            fps: 30,
            clock_overlay: true,
            restart_backoff_ms: 1000,
            max_restart_backoff_ms: 30_000,
            stall_timeout_s: 20,
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `ingest_token` is empty or contains a control character.
    #[error("ingest_token must be set and printable")]
    IngestToken,
    /// `origin_url` is not an `http://` or `https://` URL of printable characters.
    #[error("origin_url must be an http:// or https:// URL: {0:?}")]
    OriginUrl(String),
    /// The ladder is empty or has more than [`MAX_RUNGS`] rungs.
    #[error("the ladder needs 1 to {MAX_RUNGS} rungs")]
    LadderSize,
    /// A rung has a bad name, odd or zero dimensions, or a zero bitrate; or two share a name.
    #[error("invalid rung {0:?}")]
    Rung(String),
    /// A numeric setting is out of range.
    #[error("{0} is out of range")]
    Range(&'static str),
    /// The preset is not a plain word.
    #[error("invalid x264 preset {0:?}")]
    Preset(String),
}

impl Config {
    /// Checks every field.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.ingest_token.is_empty() || self.ingest_token.chars().any(char::is_control) {
            return Err(ConfigError::IngestToken);
        }
        let url = &self.origin_url;
        let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
        if !scheme_ok || url.ends_with('/') || url.chars().any(|c| c.is_control() || c.is_whitespace() || c == '%') {
            return Err(ConfigError::OriginUrl(url.clone()));
        }
        if self.ladder.is_empty() || self.ladder.len() > MAX_RUNGS {
            return Err(ConfigError::LadderSize);
        }
        for (i, r) in self.ladder.iter().enumerate() {
            let name_ok = !r.name.is_empty()
                && r.name.len() <= 32
                && !r.name.starts_with('.')
                && r.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            let dims_ok = (2..=7680).contains(&r.width)
                && (2..=4320).contains(&r.height)
                && r.width % 2 == 0
                && r.height % 2 == 0;
            let rates_ok = (1..=100_000).contains(&r.video_kbps) && (1..=512).contains(&r.audio_kbps);
            let unique = self.ladder[..i].iter().all(|o| o.name != r.name);
            if !(name_ok && dims_ok && rates_ok && unique) {
                return Err(ConfigError::Rung(r.name.clone()));
            }
        }
        if !(1..=60).contains(&self.segment_duration_s) {
            return Err(ConfigError::Range("segment_duration_s"));
        }
        if !(3..=100).contains(&self.window_segments) {
            return Err(ConfigError::Range("window_segments"));
        }
        if !(1..=120).contains(&self.fps) {
            return Err(ConfigError::Range("fps"));
        }
        if self.restart_backoff_ms == 0 || self.max_restart_backoff_ms < self.restart_backoff_ms {
            return Err(ConfigError::Range("restart_backoff_ms"));
        }
        if self.stall_timeout_s == 0 {
            return Err(ConfigError::Range("stall_timeout_s"));
        }
        if self.preset.is_empty() || !self.preset.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(ConfigError::Preset(self.preset.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Config {
        Config { ingest_token: "t".into(), ..Config::default() }
    }

    #[test]
    fn default_ladder_is_valid_once_a_token_is_set() {
        assert_eq!(Config::default().validate(), Err(ConfigError::IngestToken));
        assert_eq!(ok().validate(), Ok(()));
    }

    #[test]
    fn refuses_unsafe_values() {
        let bad = [
            Config { ingest_token: "t\r\nX-Evil: 1".into(), ..ok() },
            Config { origin_url: "ftp://x/live".into(), ..ok() },
            Config { origin_url: "http://x/live/".into(), ..ok() },
            Config { ladder: vec![], ..ok() },
            Config { ladder: vec![Rung::new("../x", 640, 360, 1000, 96)], ..ok() },
            Config { ladder: vec![Rung::new("a", 641, 360, 1000, 96)], ..ok() },
            Config { ladder: vec![Rung::new("a", 640, 360, 1000, 96), Rung::new("a", 320, 180, 500, 64)], ..ok() },
            Config { segment_duration_s: 0, ..ok() },
            Config { window_segments: 2, ..ok() },
            Config { preset: "fast;rm".into(), ..ok() },
        ];
        for c in bad {
            assert!(c.validate().is_err(), "{c:?}");
        }
    }
}
