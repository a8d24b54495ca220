//! `swarmcast`: the one binary. Parses arguments and starts the chosen parts in-process.
//!
//! - `swarmcast demo`: the whole system on one machine (origin, transcoder with a live test
//!   stream, distributor, tracker, signalling, analytics and the viewer page) and prints the URL.
//! - `swarmcast serve <service>`: one server alone, configured from a TOML file and environment.

mod demo;
mod serve;
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service::init_tracing();
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
        Command::Serve(args) => serve::run(args).await,
    }
}
