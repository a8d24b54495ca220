//! The benchmark table: live swarms of N viewers, several segment durations and seeds, one
//! row per run, then the means over seeds.
//!
//! ```text
//! cargo run --release -p swarmcast-sim --example bench -- \
//!     [--peers 2,4,8,16,100,1000] [--segments 2000,6000] [--duration 600] [--seeds 3] \
//!     [--schedulers engine,p2pml,p2pml-low,p2pml-tuned,cdn-only] [--window 6] [--csv out.csv]
//! ```
//! Defaults: the table above with the engine, 30 % poor uplinks and 10 %/min churn.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use swarmcast_sim::{ConfigError, Report, SimConfig, csv, run, summarize, table};

fn main() {
    let mut opts = Opts::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let (flag, value) = (pair[0].as_str(), pair.get(1).cloned().unwrap_or_default());
        match flag {
            "--peers" => opts.peers = numbers(&value),
            "--segments" => opts.segments = numbers(&value),
            "--duration" => opts.duration_s = value.parse().unwrap_or(opts.duration_s),
            "--seeds" => opts.seeds = value.parse().unwrap_or(opts.seeds),
            "--window" => opts.window = value.parse().unwrap_or(opts.window),
            "--schedulers" => opts.schedulers = value.split(',').map(str::to_owned).collect(),
            "--csv" => opts.csv = Some(value),
            other => println!("ignored argument {other}"),
        }
    }

    let mut reports = Vec::new();
    for scheduler in &opts.schedulers {
        for &segment_duration_ms in &opts.segments {
            for &n in &opts.peers {
                for seed in 1..=opts.seeds {
                    let config = SimConfig {
                        peers: u32::try_from(n).unwrap_or(u32::MAX),
                        segment_duration_ms,
                        duration_s: opts.duration_s,
                        window_segments: opts.window,
                        seed,
                        ..SimConfig::default()
                    };
                    let started = Instant::now();
                    match run_one(scheduler, &config) {
                        Ok(report) => {
                            let wall = started.elapsed().as_secs_f64();
                            println!(
                                "{scheduler} N={n} seg={segment_duration_ms}ms seed={seed}: {wall:.1} s wall, {} events",
                                report.events
                            );
                            reports.push(report);
                        }
                        Err(e) => println!("{scheduler} N={n}: {e}"),
                    }
                }
            }
        }
    }
    println!("\n{}", table(&reports));
    println!("Means over seeds:\n{}", table(&summarize(&reports)));
    if let Some(path) = opts.csv
        && let Err(e) = std::fs::write(&path, csv(&reports))
    {
        println!("cannot write {path}: {e}");
    }
}

fn run_one(scheduler: &str, config: &SimConfig) -> Result<Report, ConfigError> {
    swarmcast_sim::run_named(scheduler, config).unwrap_or_else(|| run(config))
}

struct Opts {
    peers: Vec<u64>,
    segments: Vec<u64>,
    duration_s: u64,
    seeds: u64,
    window: u64,
    schedulers: Vec<String>,
    csv: Option<String>,
}

impl Default for Opts {
    fn default() -> Self {
        Self {
            peers: vec![2, 4, 8, 16, 100, 1_000],
            segments: vec![2_000, 6_000],
            duration_s: 600,
            seeds: 3,
            window: SimConfig::default().window_segments,
            schedulers: vec!["engine".to_owned()],
            csv: None,
        }
    }
}

fn numbers(list: &str) -> Vec<u64> {
    list.split(',').filter_map(|x| x.trim().parse().ok()).collect()
}
