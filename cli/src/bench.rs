//! `swarmcast bench tracker|signalling`: load generators that report throughput, latency and the
//! server's memory.
//!
//! - `signalling` (module `bench_signalling`) starts `--nodes` `swarmcast serve signalling`
//!   children (joined through Redis when there are several), holds `--connections` idle
//!   websockets against them (in this process, or spread over `--workers` copies of this binary,
//!   each with its own open-file budget), measures the nodes' resident memory per idle connection,
//!   then relays offers between `--pairs` pairs at `--rate` messages per second and reports
//!   p50/p99 relay latency (sender write to recipient read).
//! - `tracker` measures the swarm state per (peer, swarm).
//!
//! The open-file limit applies per process: a node, a worker and this process each hold their
//! share of the sockets.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use crate::{bench_echo, bench_signalling, bench_worker};

/// Arguments of `swarmcast bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    target: Target,
}

#[derive(clap::Subcommand)]
enum Target {
    /// Idle-connection memory and relay latency of the signalling server.
    Signalling(bench_signalling::SignallingArgs),
    /// Swarm state per (peer, swarm) of the tracker.
    Tracker(TrackerArgs),
    /// One load-generator process of `signalling --workers N` (started by it, not by hand).
    #[command(hide = true)]
    SignallingWorker(bench_worker::WorkerArgs),
    /// The trivial relay of `signalling --echo-baseline` (started by it, not by hand).
    #[command(hide = true)]
    SignallingEcho(bench_echo::EchoArgs),
}

#[derive(clap::Args)]
struct TrackerArgs {
    /// Peers to track.
    #[arg(long, default_value_t = 1_000_000)]
    peers: usize,
    /// Swarms they spread over.
    #[arg(long, default_value_t = 100)]
    swarms: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.target {
        Target::Signalling(args) => bench_signalling::run(args).await,
        Target::SignallingWorker(args) => bench_worker::run(args).await,
        Target::SignallingEcho(args) => bench_echo::run(args).await,
        Target::Tracker(args) => {
            tracker(&args);
            Ok(())
        }
    }
}

fn tracker(args: &TrackerArgs) {
    let before = rss_bytes(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    let probe = tracker::StateProbe::fill(args.peers, args.swarms);
    let elapsed = started.elapsed();
    let grown = rss_bytes(std::process::id()).unwrap_or(0).saturating_sub(before);
    drop(probe);
    println!(
        "tracker state: {} peers in {} swarms: {:.0} bytes per (peer, swarm) ({:.1} MiB), filled in {:.2} s",
        args.peers,
        args.swarms,
        grown as f64 / args.peers.max(1) as f64,
        grown as f64 / 1_048_576.0,
        elapsed.as_secs_f64()
    );
}

/// Resident memory of process `pid`, in bytes (Linux `/proc/<pid>/status`).
pub(crate) fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `bytes` in MiB with one decimal, or "unknown".
pub(crate) fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unknown".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
}
