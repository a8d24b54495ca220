//! `swarmcast`: the one binary. Parses arguments and starts the chosen parts in-process.
//!
//! - `swarmcast demo`: the whole system on one machine (origin, transcoder with a live test
//!   stream, distributor, tracker, signalling, analytics and the viewer page) and prints the URL.
//! - `swarmcast serve <service>`: one server alone, configured from a TOML file and environment.
//! - `swarmcast origin [--mode edge --upstream URL]`: the live origin, or a caching edge/shield.
//! - `swarmcast monitor URL…`: the HLS conformance checker.
//! - `swarmcast bench tracker|signalling`: load generators (docs/BENCHMARKS.md).
//! - `swarmcast sim`: the swarm simulator's benchmark table (docs/BENCHMARKS.md, "P2P engine").
//!
//! Every command runs on a multi-threaded tokio runtime with one worker per core, or on a
//! single-threaded one when the environment sets `SWARMCAST_RUNTIME=current_thread`.

mod bench;
mod bench_echo;
mod bench_latency;
mod bench_signalling;
mod bench_worker;
mod bench_ws;
mod demo;
mod monitor;
mod origin_cmd;
mod serve;
mod sim;
mod web;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "swarmcast", version, about = "Hybrid P2P-CDN live video delivery")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the live demo: stream, servers and viewer page, all on one address.
    Demo(demo::Args),
    /// Run one server alone.
    Serve(serve::Args),
    /// Run the live origin, or a caching edge/shield in front of it.
    Origin(origin_cmd::Args),
    /// Check live HLS playlists for conformance.
    Monitor(monitor::Args),
    /// Load-test a server and report throughput, latency and memory.
    Bench(bench::Args),
    /// Simulate live swarms and print offload, stalls and latency per scheduler.
    Sim(sim::Args),
}

/// mimalloc rather than glibc's malloc: the servers allocate and free small buffers per message
/// on every worker thread (aquatic_ws, the reference WebTorrent tracker, makes the same choice).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let mut runtime = match std::env::var("SWARMCAST_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        Ok("multi_thread") | Err(_) => tokio::runtime::Builder::new_multi_thread(),
        Ok(other) => anyhow::bail!("SWARMCAST_RUNTIME is current_thread or multi_thread, not {other:?}"),
    };
    runtime.enable_all().build()?.block_on(run(Cli::parse().command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    service::init_tracing();
    match command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Origin(args) => origin_cmd::run(args).await,
        Command::Monitor(args) => monitor::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Sim(args) => sim::run(args).await,
    }
}
