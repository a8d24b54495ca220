//! `swarmcast sim`: runs the deterministic swarm simulator and prints a table (and a CSV).
//!
//! Every combination of swarm size, segment duration, scheduler and seed is one run; the table
//! lists each run, then the means over seeds. The same arguments always print the same numbers.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use ::sim::{PoorUplinkDraw, SCHEDULERS, SimConfig, csv, reasons_table, run_named, summarize, table};
use anyhow::{Context, bail};

/// Arguments of `swarmcast sim`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Swarm sizes N (viewers present at any time), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16,100,1000")]
    peers: Vec<u32>,
    /// Segment durations, in ms, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2000,6000")]
    segments: Vec<u64>,
    /// Simulated time per run, in s.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Seeds per setup (1..=seeds).
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Schedulers, comma-separated: engine, p2pml (its own default latency), p2pml-low (at the
    /// engine's latency), p2pml-tuned, cdn-only.
    #[arg(long, value_delimiter = ',', default_value = "engine")]
    schedulers: Vec<String>,
    /// Segments in the live playlist window.
    #[arg(long, default_value_t = SimConfig::default().window_segments)]
    window: u64,
    /// Share of viewers on poor uplinks, 0..=1.
    #[arg(long, default_value_t = SimConfig::default().poor_uplink_share)]
    poor: f64,
    /// Draw each viewer's uplink class on its own (probability `--poor`) instead of placing
    /// exactly round(poor × N) viewers on poor uplinks, replacements taking the leaver's class.
    #[arg(long)]
    independent_poor: bool,
    /// Share of the swarm replaced per minute, 0..=10.
    #[arg(long, default_value_t = SimConfig::default().churn_per_min)]
    churn: f64,
    /// Share of viewers whose player starts one segment behind the live edge, 0..=1.
    #[arg(long, default_value_t = SimConfig::default().edge_share)]
    edge: f64,
    /// Also write one CSV row per run to this file.
    #[arg(long)]
    csv: Option<PathBuf>,
}

/// Runs every simulation asked for and prints the tables.
pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    for s in &args.schedulers {
        if !SCHEDULERS.contains(&s.as_str()) {
            bail!("unknown scheduler {s}; known: {}", SCHEDULERS.join(", "));
        }
    }
    // The simulator is CPU-bound and synchronous: give it a blocking thread.
    tokio::task::spawn_blocking(move || simulate(&args)).await.context("simulator thread")?
}

fn simulate(args: &Args) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut reports = Vec::new();
    for scheduler in &args.schedulers {
        for &segment_duration_ms in &args.segments {
            for &peers in &args.peers {
                for seed in 1..=args.seeds {
                    let config = SimConfig {
                        peers,
                        segment_duration_ms,
                        duration_s: args.duration,
                        window_segments: args.window,
                        poor_uplink_share: args.poor,
                        poor_uplink_draw: if args.independent_poor {
                            PoorUplinkDraw::Independent
                        } else {
                            PoorUplinkDraw::Exact
                        },
                        churn_per_min: args.churn,
                        edge_share: args.edge,
                        seed,
                        ..SimConfig::default()
                    };
                    let started = Instant::now();
                    let Some(result) = run_named(scheduler, &config) else { continue };
                    let report = result.with_context(|| format!("{scheduler} N={peers}"))?;
                    let wall = started.elapsed().as_secs_f64();
                    writeln!(out, "{scheduler} N={peers} seg={segment_duration_ms}ms seed={seed}: {wall:.1} s wall")?;
                    reports.push(report);
                }
            }
        }
    }
    writeln!(out, "\n{}", table(&reports))?;
    writeln!(out, "Means over seeds:\n{}", table(&summarize(&reports)))?;
    writeln!(
        out,
        "CDN bytes by reason, % of all segment bytes (means over seeds):\n{}",
        reasons_table(&summarize(&reports))
    )?;
    if let Some(path) = &args.csv {
        std::fs::write(path, csv(&reports)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
