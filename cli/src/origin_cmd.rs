//! `swarmcast origin`: the live origin, or (`--mode edge --upstream URL`) a caching edge or
//! shield in front of it.
#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use tokio::net::TcpListener;

/// Arguments of `swarmcast origin`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Origin (ingest and serve) or edge (caching reverse proxy).
    #[arg(long, value_enum, default_value = "origin")]
    mode: ModeArg,
    /// Edge mode: base URL of the upstream (the shield or the origin), e.g. http://127.0.0.1:7000.
    #[arg(long)]
    upstream: Option<String>,
    /// Edge mode: this edge's name in metrics and headers, e.g. cdn-a.
    #[arg(long)]
    name: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// TOML config file; environment variables `SWARMCAST_ORIGIN_<FIELD>` override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the effective configuration as TOML-compatible JSON and exit.
    #[arg(long)]
    print_config: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Origin,
    Edge,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let mut config: origin::Config = service::load_config(args.config.as_deref(), "SWARMCAST_ORIGIN_")?;
    config.mode = match args.mode {
        ModeArg::Origin => origin::Mode::Origin,
        ModeArg::Edge => origin::Mode::Edge,
    };
    if let Some(up) = args.upstream {
        config.edge.upstream_url = up;
    }
    if let Some(name) = args.name {
        config.edge.name = name;
    }
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    config.validate().context("invalid origin configuration")?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    origin::run(config, listener, service::shutdown_signal()).await?;
    Ok(())
}
