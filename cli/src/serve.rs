//! `swarmcast serve <service>`: one server alone.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use tokio::net::TcpListener;

/// Arguments of `swarmcast serve`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Which server.
    service: Service,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// TOML config file; environment variables `SWARMCAST_<SERVICE>_<FIELD>` override it.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Service {
    Origin,
    Distributor,
    Tracker,
    Signalling,
    Analytics,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let file = args.config.as_deref();
    let listener = TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let shutdown = service::shutdown_signal();
    match args.service {
        Service::Origin => origin::run(service::load_config(file, "SWARMCAST_ORIGIN_")?, listener, shutdown).await?,
        Service::Distributor => {
            distributor::run(service::load_config(file, "SWARMCAST_DISTRIBUTOR_")?, listener, shutdown).await?;
        }
        Service::Tracker => tracker::run(service::load_config(file, "SWARMCAST_TRACKER_")?, listener, shutdown).await?,
        Service::Signalling => {
            signalling::run(service::load_config(file, "SWARMCAST_SIGNALLING_")?, listener, shutdown).await?;
        }
        Service::Analytics => {
            analytics::run(service::load_config(file, "SWARMCAST_ANALYTICS_")?, listener, shutdown).await?;
        }
    }
    Ok(())
}
