//! `swarmcast monitor URL…`: the HLS conformance checker (media sequence, playlist size and
//! content, segment continuity, discontinuity sequence, stale manifests) over every pathway.
#![allow(clippy::print_stdout)]

use std::time::Duration;

/// Arguments of `swarmcast monitor`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Multivariant or media playlist URLs (a steered multivariant playlist covers every pathway).
    #[arg(required = true)]
    urls: Vec<String>,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Time between two polls of each media playlist, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// A playlist unchanged for longer than this is stale, in milliseconds (0: 1.5 × target duration).
    #[arg(long, default_value_t = 0)]
    stale_ms: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let config = origin::monitor::MonitorConfig {
        urls: args.urls,
        duration: Duration::from_secs(args.duration_s),
        poll_ms: args.poll_ms,
        stale_ms: args.stale_ms,
    };
    let report = origin::monitor::run(config).await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.error_count() > 0 {
        anyhow::bail!("{} conformance errors", report.error_count());
    }
    Ok(())
}
