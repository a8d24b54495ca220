//! `swarmcast`: the one binary. Parses arguments and starts the chosen parts in-process.
//!
//! - `swarmcast demo`: the whole system on one machine (origin, transcoder with a live test
//!   stream, distributor, tracker, signalling, analytics and the viewer page) and prints the URL.
//! - `swarmcast serve <service>`: one server alone, configured from a TOML file and environment.
//! - `swarmcast origin [--mode edge --upstream URL]`: the live origin, or a caching edge/shield.
//! - `swarmcast monitor URL…`: the HLS conformance checker.
//! - `swarmcast bench tracker|signalling`: load generators (docs/BENCHMARKS.md).
//! - `swarmcast sim`: the swarm simulator's benchmark table (docs/BENCHMARKS.md, "P2P engine").

mod bench;
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Origin(args) => origin_cmd::run(args).await,
        Command::Monitor(args) => monitor::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Sim(args) => sim::run(args).await,
    }
}
