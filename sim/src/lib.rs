//! Deterministic swarm simulator: N viewers, each running a P2P scheduler (the
//! [`engine::Engine`] by default), on a virtual clock, with a virtual CDN serving a
//! live HLS window, per-viewer links, a tracker, churn, and a player shaped like hls.js.
//!
//! # Use
//!
//! ```
//! use swarmcast_sim::{SimConfig, run, table};
//!
//! let config = SimConfig { peers: 4, duration_s: 60, join_ramp_s: 5, ..SimConfig::default() };
//! let report = run(&config).expect("valid config");
//! assert!(report.offload <= report.offload_bound + 1e-9);
//! println!("{}", table(&[report]));
//! ```
//!
//! From the command line, `swarmcast sim` runs a grid of swarm sizes, segment durations,
//! schedulers ([`SCHEDULERS`], through [`run_named`]) and seeds and prints the table
//! (`docs/BENCHMARKS.md`, "P2P engine").
//!
//! The same config (seed included) always yields the same [`Report`]: there is no real clock,
//! no OS randomness, and events at the same time run in the order they were queued. The
//! population (arrival times, links, regions, churn) comes from its own seeded stream that no
//! scheduler decision can perturb, so [`run_with`] runs any other [`Scheduler`] (the
//! [`baseline`] re-implementation of p2p-media-loader, the [`reference::CdnOnly`] reference)
//! on the very same viewers, for comparisons.
//!
//! # Model
//!
//! - **Time** ([`clock`]): a queue of timed events in µs; schedulers see whole ms.
//! - **CDN** ([`cdn`]): a new segment every target duration, `bitrate × duration / 8` bytes
//!   (± jitter); each request waits a time to first byte, then flows at the CDN's per-request
//!   throughput, limited by the viewer's downlink.
//! - **Network** ([`net`]): per-viewer uplink and downlink (bytes/s) and access latency, drawn
//!   from [`Dist`]s; a share of viewers gets a poor uplink (exactly that share of the viewers
//!   present, or each viewer on its own: [`PoorUplinkDraw`]). Data channel messages queue in
//!   order per channel, channels take turns on the sender's uplink, and a message arrives after
//!   the path latency; a 64 KiB chunk is one event.
//! - **Tracker** ([`tracker`]): random candidates, or the asker's region first.
//! - **Churn**: departures form a Poisson process of `churn_per_min × N` per minute; each
//!   leaver is replaced at once by a new viewer, so N viewers are always present.
//! - **Player** ([`player`]): live sync 3 segments behind the edge, one request at a time,
//!   stalls when the playhead reaches unbuffered media; reports playback to the scheduler
//!   every `playback_report_ms` and on start, stall and resume (rate 0 while stalled).
//! - **Shell**: what the browser agent does around the engine: HTTP fetches with `Range`
//!   resumes, one send queue per peer (a peer whose queue passes `max_queued_bytes` is
//!   dropped), uplink reports (`uplink_reports`), and optionally dropping queued chunks of a
//!   cancelled request (`purge_cancelled_uploads`).
//!
//! # Measures
//!
//! Offload = peer bytes kept / all bytes kept; the bound 1 − 1/N; stalls after the first frame
//! (count and seconds) and the rebuffering ratio; startup = arrival → first frame (playlist
//! load included); live latency = clock − playhead, i.e. the age of the picture; CDN requests
//! per distinct segment played; wasted bytes = bytes that crossed a link and were thrown away.
//! The uplink-capacity bound ([`Report::cap_bound`]) is ∫ min((n − 1)·b, Σu) dt / ∫ n·b dt over
//! the run, with n the viewers present, Σu their uplinks and b the bitrate: an upper bound on
//! the offload given the uplinks actually present (it ignores startup, latency and each
//! segment's CDN copy), not an achievable target.
//!
//! **Byte scale.** Moving real segment bytes through a thousand engines would take gigabytes
//! of memory and most of the run time, so one simulated byte stands for
//! [`SimConfig::byte_scale`] real bytes (64 by default): segments, chunks and the engine's
//! message size shrink by that factor, while transfer times and reported byte counts are
//! computed in real bytes. A 64 KiB chunk thus stays one data channel message, and the number of
//! messages and events per segment is the real one.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod baseline;
pub mod cdn;
pub mod clock;
mod config;
pub mod net;
pub mod player;
pub mod reference;
mod report;
mod scheduler;
mod shell;
mod swarm;
pub mod tracker;

pub use config::{ConfigError, Dist, PoorUplinkDraw, SimConfig, TrackerMode};
use engine::{Config as EngineConfig, Engine};
use protocol::PeerId;
pub use report::{CSV_HEADER, Report, csv, reasons_table, summarize, table};
pub use scheduler::Scheduler;
use swarm::Swarm;

/// Runs the swarm described by `config` with the [`Engine`] (configured by `config.engine`) in
/// every viewer; the report's scheduler name is `"engine"`.
pub fn run(config: &SimConfig) -> Result<Report, ConfigError> {
    let engine = engine_config(config);
    run_with(config, "engine", |id| Engine::new(engine.clone(), id))
}

/// Runs the swarm described by `config` with the scheduler `make` builds for each viewer (given
/// its peerId); `name` labels the report.
pub fn run_with<S: Scheduler>(
    config: &SimConfig,
    name: &str,
    make: impl FnMut(PeerId) -> S,
) -> Result<Report, ConfigError> {
    config.validate()?;
    let mut swarm = Swarm::new(config, make);
    swarm.run();
    Ok(swarm.finish(name))
}

/// The schedulers [`run_named`] knows, by report name.
pub const SCHEDULERS: [&str; 5] = ["engine", "p2pml", "p2pml-low", "p2pml-tuned", "cdn-only"];

/// Runs the swarm of `config` with the scheduler called `name` (see [`SCHEDULERS`]): the
/// engine, the p2p-media-loader baseline at its own default latency, at `config`'s latency,
/// or tuned for it, or plain CDN; `None` for an unknown name.
pub fn run_named(name: &str, config: &SimConfig) -> Option<Result<Report, ConfigError>> {
    Some(match name {
        "engine" => run(config),
        "p2pml" => baseline::run(config),
        "p2pml-low" => baseline::run_low_latency(config),
        "p2pml-tuned" => baseline::run_tuned(config),
        "cdn-only" => run_with(config, "cdn-only", |_| reference::CdnOnly::default()),
        _ => return None,
    })
}

/// The engine settings used by [`run`]: `config.engine` with the run's seed, and the message
/// size and every byte rate given in real bytes scaled down by the byte scale.
pub fn engine_config(config: &SimConfig) -> EngineConfig {
    let scale = config.byte_scale.max(1);
    let real = config.engine.max_message_bytes as u64;
    let scaled = usize::try_from(real / scale).unwrap_or(usize::MAX);
    let e = &config.engine;
    EngineConfig {
        seed: config.seed,
        max_message_bytes: scaled,
        uplink_bytes_per_s: e.uplink_bytes_per_s / scale,
        http_prior_bytes_per_s: (e.http_prior_bytes_per_s / scale).max(1),
        stream_prior_bytes_per_s: (e.stream_prior_bytes_per_s / scale).max(1),
        ..e.clone()
    }
}
