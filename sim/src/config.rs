//! What to simulate: the swarm, the stream, the network and the player. Units are in the names.

use engine::Config as EngineConfig;
use rand::Rng;

/// Largest swarm simulated, in viewers.
pub(crate) const MAX_PEERS: u32 = 100_000;
/// Longest simulated stream, in s (one day).
pub(crate) const MAX_DURATION_S: u64 = 86_400;

/// A distribution of a per-peer or per-request quantity, sampled with the run's seeded RNG.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// Always this value.
    Const(f64),
    /// Uniform on `lo..=hi`.
    Uniform {
        /// Smallest value.
        lo: f64,
        /// Largest value.
        hi: f64,
    },
    /// Log-normal: `median × e^(sigma × z)` with `z` standard normal; the usual shape of access
    /// link speeds, with a long tail of fast links.
    LogNormal {
        /// Median value.
        median: f64,
        /// Standard deviation of the logarithm.
        sigma: f64,
    },
}

impl Dist {
    /// Draws one value (never negative).
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        let x = match *self {
            Self::Const(x) => x,
            Self::Uniform { lo, hi } => lo + (hi - lo) * rng.random::<f64>(),
            Self::LogNormal { median, sigma } => median * (sigma * standard_normal(rng)).exp(),
        };
        x.max(0.0)
    }

    /// Checks that every parameter is finite and non-negative and that `lo <= hi`.
    fn check(&self, field: &'static str) -> Result<(), ConfigError> {
        let ok = match *self {
            Self::Const(x) => x.is_finite() && x >= 0.0,
            Self::Uniform { lo, hi } => lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi,
            Self::LogNormal { median, sigma } => {
                median.is_finite() && sigma.is_finite() && median >= 0.0 && (0.0..=5.0).contains(&sigma)
            }
        };
        if ok { Ok(()) } else { Err(ConfigError::Invalid { field, why: "needs finite parameters >= 0 (lo <= hi)" }) }
    }

    /// Smallest value it can yield (for log-normal: 0).
    fn min(&self) -> f64 {
        match *self {
            Self::Const(x) => x,
            Self::Uniform { lo, .. } => lo,
            Self::LogNormal { .. } => 0.0,
        }
    }
}

/// One standard normal draw (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // in (0, 1], so ln is finite
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// How the tracker picks the candidates it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerMode {
    /// Uniformly at random among the viewers present (what WebTorrent trackers do).
    Random,
    /// Viewers of the asker's region first, then random others to fill up.
    Locality,
}

/// Why a [`SimConfig`] cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A field is out of its range (which field, and the rule).
    #[error("invalid sim config: {field} {why}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// The rule it breaks.
        why: &'static str,
    },
}

/// Everything a run depends on; the same config (seed included) always gives the same report.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Viewers watching at any time (the swarm size N; churn replaces leavers one for one).
    pub peers: u32,
    /// Segment duration, which is also the playlist target duration and publish period, in ms.
    pub segment_duration_ms: u64,
    /// Stream bitrate, in bit/s; a segment holds about `bitrate × duration / 8` bytes.
    pub bitrate_bps: u64,
    /// Simulated time, from the first viewer's arrival window to the end, in s.
    pub duration_s: u64,
    /// Seed of every random choice of the run (peer links, join times, churn, tracker, engines).
    pub seed: u64,
    /// Share of viewers whose uplink is drawn from `poor_uplink_bytes_per_s`, 0..=1.
    pub poor_uplink_share: f64,
    /// How viewers are put in the poor-uplink class.
    pub poor_uplink_draw: PoorUplinkDraw,
    /// Share of the swarm that leaves per minute (each leaver is replaced by a new viewer), 0..=10.
    pub churn_per_min: f64,
    /// Share of viewers whose player starts one segment behind the live edge instead of
    /// `live_sync_segments` (a player that joined a young stream, or one set for low latency),
    /// 0..=1. Drawn only when above 0, so runs without it keep their numbers.
    pub edge_share: f64,
    /// Segments in the live playlist window.
    pub window_segments: u64,
    /// The N first viewers arrive uniformly spread over this span, in s.
    pub join_ramp_s: u64,
    /// Uplink of ordinary viewers, in bytes/s.
    pub uplink_bytes_per_s: Dist,
    /// Uplink of poor-uplink viewers, in bytes/s.
    pub poor_uplink_bytes_per_s: Dist,
    /// Downlink of every viewer, in bytes/s.
    pub downlink_bytes_per_s: Dist,
    /// One-way access latency of a viewer, in ms; a data channel's one-way delay is the sum of
    /// both ends' access latencies (plus `inter_region_latency_ms` across regions).
    pub access_latency_ms: Dist,
    /// Number of regions viewers are spread over uniformly (for latency and locality matching).
    pub regions: u16,
    /// Extra one-way delay between viewers of different regions, in ms.
    pub inter_region_latency_ms: u64,
    /// Time from `Connect` to an open data channel (signalling, ICE, DTLS), in ms.
    pub connect_ms: Dist,
    /// How the tracker matches viewers.
    pub tracker: TrackerMode,
    /// Tracker round trip, in ms.
    pub tracker_rtt_ms: u64,
    /// Most candidates one tracker answer holds.
    pub tracker_max_peers: u32,
    /// CDN time to first byte of a segment or playlist request, in ms.
    pub cdn_ttfb_ms: Dist,
    /// CDN throughput of one request (before the viewer's downlink limits it), in bytes/s.
    pub cdn_bytes_per_s: f64,
    /// Body bytes per simulated HTTP progress event, in (real) bytes.
    pub http_chunk_bytes: u64,
    /// Segment sizes vary uniformly by ± this share around `bitrate × duration`, 0..1.
    pub segment_size_jitter: f64,
    /// The player starts this many segments behind the live edge (hls.js `liveSyncDurationCount`).
    pub live_sync_segments: u64,
    /// The player stops requesting ahead when this much media is buffered, in ms (hls.js
    /// `maxBufferLength`).
    pub max_buffer_ms: u64,
    /// Playback reports to the engine, every this many ms (the agent also reports at once on
    /// start, stall and resume).
    pub playback_report_ms: u64,
    /// The player retries a failed segment after this long, in ms.
    pub player_retry_ms: u64,
    /// Whether the shell tells the scheduler its uplink with every playback report
    /// ([`crate::Scheduler::handle_uplink`]): the uplink rate once the viewer has sent
    /// something (a shell measures it while sending), and its send backlog.
    pub uplink_reports: bool,
    /// Whether a viewer's shell, on receiving a `Cancel`, drops the chunks of that request still
    /// waiting in its send queue (p2p-media-loader stops such an upload; the browser agent of
    /// this project does not, so the default is off).
    pub purge_cancelled_uploads: bool,
    /// Whether a viewer's shell sends control messages (announcements, requests, refusals)
    /// before the segment data it still queues for the same peer, as the browser agent does
    /// (p2p-media-loader's simple-peer channel sends in order).
    pub control_first: bool,
    /// A connection whose send queue holds more than this is dropped by the sender's shell
    /// (the browser agent's `MAX_QUEUED_BYTES`), in real bytes.
    pub max_queued_bytes: u64,
    /// Real bytes represented by one simulated byte. Segments, chunks and messages are that
    /// much smaller in memory, while every transfer time and every reported byte count is in
    /// real bytes. 64 keeps a 64 KiB data channel chunk at the engine's 1 KiB minimum message.
    pub byte_scale: u64,
    /// Settings of the engine under test; `max_message_bytes` is in real bytes (divided by
    /// `byte_scale` for the engine) and `seed` is replaced by the run's seed.
    pub engine: EngineConfig,
}

/// How viewers are put in the poor-uplink class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoorUplinkDraw {
    /// round(share × N) of the N first viewers are poor, and a churn replacement takes the
    /// class of the viewer it replaces: the share of poor uplinks among the viewers present is
    /// the configured one at every instant (to the nearest viewer). A 4-viewer swarm has one
    /// poor uplink, never two or three.
    Exact,
    /// Every viewer is poor with probability `share`, on its own. A small swarm then often
    /// holds far more (or fewer) poor uplinks than the share: at N = 4 and 30 %, one swarm in
    /// three has two or more.
    Independent,
}

impl PoorUplinkDraw {
    /// The uplink class a new viewer gets from the population: `poor` when the share is exact
    /// (a churn replacement's is the leaver's), `None` when each viewer draws its own.
    pub(crate) fn class(self, poor: bool) -> Option<bool> {
        (self == Self::Exact).then_some(poor)
    }

    /// Its name in the CSV (`exact` or `independent`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Independent => "independent",
        }
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            peers: 100,
            segment_duration_ms: 2_000,
            bitrate_bps: 2_500_000,
            duration_s: 600,
            seed: 1,
            poor_uplink_share: 0.3,
            poor_uplink_draw: PoorUplinkDraw::Exact,
            edge_share: 0.0,
            churn_per_min: 0.1,
            window_segments: 6,
            join_ramp_s: 30,
            // Median 10 Mbit/s, long tail (fixed broadband).
            uplink_bytes_per_s: Dist::LogNormal { median: 1_250_000.0, sigma: 0.6 },
            // 0.25–1 Mbit/s: below the stream's bitrate (congested or mobile uplinks).
            poor_uplink_bytes_per_s: Dist::Uniform { lo: 31_250.0, hi: 125_000.0 },
            // Median 50 Mbit/s.
            downlink_bytes_per_s: Dist::LogNormal { median: 6_250_000.0, sigma: 0.5 },
            access_latency_ms: Dist::Uniform { lo: 5.0, hi: 40.0 },
            regions: 4,
            inter_region_latency_ms: 30,
            connect_ms: Dist::Uniform { lo: 300.0, hi: 2_000.0 },
            tracker: TrackerMode::Random,
            tracker_rtt_ms: 100,
            tracker_max_peers: 20,
            cdn_ttfb_ms: Dist::Uniform { lo: 20.0, hi: 120.0 },
            cdn_bytes_per_s: 12_500_000.0,
            http_chunk_bytes: 128 * 1024,
            segment_size_jitter: 0.1,
            live_sync_segments: 3,
            max_buffer_ms: 30_000,
            playback_report_ms: 1_000,
            player_retry_ms: 1_000,
            uplink_reports: true,
            purge_cancelled_uploads: true,
            control_first: true,
            max_queued_bytes: 16 << 20,
            byte_scale: 64,
            engine: EngineConfig::default(),
        }
    }
}

impl SimConfig {
    /// Checks every field against its range; [`crate::run`] refuses a config that fails.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let rule = |ok: bool, field, why| if ok { Ok(()) } else { Err(ConfigError::Invalid { field, why }) };
        rule((1..=MAX_PEERS).contains(&self.peers), "peers", "must be 1..=100000")?;
        rule((100..=60_000).contains(&self.segment_duration_ms), "segment_duration_ms", "must be 100..=60000")?;
        rule((10_000..=100_000_000).contains(&self.bitrate_bps), "bitrate_bps", "must be 10k..=100M")?;
        rule((1..=MAX_DURATION_S).contains(&self.duration_s), "duration_s", "must be 1..=86400")?;
        rule((0.0..=1.0).contains(&self.poor_uplink_share), "poor_uplink_share", "must be 0..=1")?;
        rule((0.0..=1.0).contains(&self.edge_share), "edge_share", "must be 0..=1")?;
        rule((0.0..=10.0).contains(&self.churn_per_min), "churn_per_min", "must be 0..=10")?;
        rule((1..=20).contains(&self.live_sync_segments), "live_sync_segments", "must be 1..=20")?;
        let window_ok = (self.live_sync_segments + 1..=1_000).contains(&self.window_segments);
        rule(window_ok, "window_segments", "must be live_sync_segments+1..=1000")?;
        rule(self.join_ramp_s <= self.duration_s, "join_ramp_s", "must be <= duration_s")?;
        rule(self.regions >= 1, "regions", "must be >= 1")?;
        rule(self.inter_region_latency_ms <= 10_000, "inter_region_latency_ms", "must be <= 10000")?;
        rule(self.tracker_rtt_ms <= 60_000, "tracker_rtt_ms", "must be <= 60000")?;
        rule((1..=1_000).contains(&self.tracker_max_peers), "tracker_max_peers", "must be 1..=1000")?;
        let cdn_ok = self.cdn_bytes_per_s.is_finite() && self.cdn_bytes_per_s >= 1_000.0;
        rule(cdn_ok, "cdn_bytes_per_s", "must be finite and >= 1000")?;
        rule((1_024..=16 << 20).contains(&self.http_chunk_bytes), "http_chunk_bytes", "must be 1 KiB..=16 MiB")?;
        rule((0.0..1.0).contains(&self.segment_size_jitter), "segment_size_jitter", "must be 0..1")?;
        rule(self.max_buffer_ms >= self.segment_duration_ms, "max_buffer_ms", "must be >= segment_duration_ms")?;
        rule((10..=60_000).contains(&self.playback_report_ms), "playback_report_ms", "must be 10..=60000")?;
        rule((10..=60_000).contains(&self.player_retry_ms), "player_retry_ms", "must be 10..=60000")?;
        rule((1..=1_024).contains(&self.byte_scale), "byte_scale", "must be 1..=1024")?;
        rule(self.max_queued_bytes >= 1 << 16, "max_queued_bytes", "must be >= 64 KiB")?;
        let max_segment = self.bitrate_bps / 8 * self.segment_duration_ms / 1_000 * 2 / self.byte_scale;
        rule(max_segment <= protocol::peer::MAX_SEGMENT_BYTES, "bitrate_bps", "makes segments too large")?;
        for (dist, field) in [
            (self.uplink_bytes_per_s, "uplink_bytes_per_s"),
            (self.poor_uplink_bytes_per_s, "poor_uplink_bytes_per_s"),
            (self.downlink_bytes_per_s, "downlink_bytes_per_s"),
            (self.access_latency_ms, "access_latency_ms"),
            (self.connect_ms, "connect_ms"),
            (self.cdn_ttfb_ms, "cdn_ttfb_ms"),
        ] {
            dist.check(field)?;
        }
        for (dist, field) in [(self.access_latency_ms, "access_latency_ms"), (self.connect_ms, "connect_ms")] {
            rule(dist.min() <= 60_000.0, field, "must stay below 60 s")?;
        }
        Ok(())
    }

    /// Segment duration in s.
    pub fn segment_duration_s(&self) -> f64 {
        self.segment_duration_ms as f64 / 1_000.0
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SimConfig::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let bad = SimConfig { peers: 0, ..SimConfig::default() };
        assert!(matches!(bad.validate(), Err(ConfigError::Invalid { field: "peers", .. })));
        let bad = SimConfig { window_segments: 3, ..SimConfig::default() };
        assert!(matches!(bad.validate(), Err(ConfigError::Invalid { field: "window_segments", .. })));
        let bad = SimConfig { uplink_bytes_per_s: Dist::Uniform { lo: 2.0, hi: 1.0 }, ..SimConfig::default() };
        assert!(matches!(bad.validate(), Err(ConfigError::Invalid { field: "uplink_bytes_per_s", .. })));
        let bad = SimConfig { cdn_bytes_per_s: f64::NAN, ..SimConfig::default() };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn distributions_stay_in_range_and_centre_where_said() {
        let mut rng = SmallRng::seed_from_u64(7);
        let uniform = Dist::Uniform { lo: 10.0, hi: 20.0 };
        assert!((0..1_000).map(|_| uniform.sample(&mut rng)).all(|x| (10.0..=20.0).contains(&x)));
        let lognormal = Dist::LogNormal { median: 100.0, sigma: 0.5 };
        let mut xs: Vec<f64> = (0..2_001).map(|_| lognormal.sample(&mut rng)).collect();
        xs.sort_by(f64::total_cmp);
        assert!((85.0..115.0).contains(&xs[1_000]), "median {}", xs[1_000]);
        assert_eq!(Dist::Const(3.0).sample(&mut rng), 3.0);
    }
}
