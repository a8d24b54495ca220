//! Measures engine settings that `swarmcast sim` does not expose: one row per setting, swarm size
//! and segment duration, means over seeds, as `swarmcast sim` prints them.
//!
//! ```text
//! cargo run --release -p swarmcast-sim --example engine_sweep -- \
//!     [waits=0,500,1000] [extras=4] [early=0,1] [maxpeers=12] [peers=4,16,100,1000] [segments=2000,6000]
//!     [margin=500] [budget=50] [edgefirst=1] [edgepct=0] [seeds=3] [threads=2]
//! ```
//! `waits` are values of `Config::startup_peer_wait_ms`, `extras` of `Config::extra_incoming_peers`,
//! `early` of `Config::early_reload` (0 off, 1 on), `maxpeers` of `Config::max_peers`, `margin`
//! (one value) of `Config::deadline_margin_ms`, `edgefirst` (0 or 1) of `Config::live_edge_first`,
//! `edgepct` the percentage of viewers whose player starts one segment behind the live edge
//! (`SimConfig::edge_share`). The scheduler column reads `w<wait in ms>x<extra>e<early>` (and
//! `m<max peers>`, `d<margin>` and `f<edgefirst>` when not the shipped `Config::default`).

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::Engine;
use swarmcast_sim::{Report, SimConfig, engine_config, reasons_table, run_with, summarize, table};

fn list(args: &[String], key: &str, default: &str) -> Vec<u64> {
    let prefix = format!("{key}=");
    let value = args.iter().find_map(|a| a.strip_prefix(&prefix)).unwrap_or(default);
    value.split(',').map(|v| v.parse().unwrap_or_else(|_| panic!("{key}: not a number: {v}"))).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let waits = list(&args, "waits", "0,500,1000");
    let extras = list(&args, "extras", "4");
    let earlies = list(&args, "early", "1");
    // Unset keys keep what the agent ships with.
    let shipped = SimConfig::default().engine;
    let max_peers = list(&args, "maxpeers", &shipped.max_peers.to_string());
    let peers = list(&args, "peers", "4,16,100,1000");
    let segments = list(&args, "segments", "2000,6000");
    let seeds = list(&args, "seeds", "3")[0];
    let threads = list(&args, "threads", "2")[0].max(1);
    let margin = list(&args, "margin", &shipped.deadline_margin_ms.to_string())[0];
    let budget = u32::try_from(list(&args, "budget", &shipped.upload_budget_pct.to_string())[0]).unwrap_or(u32::MAX);
    let edge_first = list(&args, "edgefirst", &u64::from(shipped.live_edge_first).to_string())[0] != 0;
    let edge_pct = list(&args, "edgepct", "0")[0];
    let mut jobs = Vec::new();
    for &max in &max_peers {
        for &early in &earlies {
            for &extra in &extras {
                for &wait in &waits {
                    for &segment_duration_ms in &segments {
                        for &n in &peers {
                            for seed in 1..=seeds {
                                jobs.push((max, early, extra, wait, segment_duration_ms, n, seed));
                            }
                        }
                    }
                }
            }
        }
    }
    // Largest swarms first, so the threads finish together.
    jobs.sort_by_key(|&(_, _, _, _, _, n, _)| std::cmp::Reverse(n));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Report)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(max, early, extra, wait, segment_duration_ms, n, seed)) = jobs.get(i) else { break };
                    let mut config = SimConfig { peers: n as u32, segment_duration_ms, seed, ..SimConfig::default() };
                    config.engine.startup_peer_wait_ms = wait;
                    config.engine.extra_incoming_peers = u32::try_from(extra).unwrap_or(u32::MAX);
                    config.engine.early_reload = early != 0;
                    config.engine.max_peers = u32::try_from(max).unwrap_or(u32::MAX);
                    config.engine.deadline_margin_ms = margin;
                    config.engine.upload_budget_pct = budget;
                    config.engine.live_edge_first = edge_first;
                    config.edge_share = edge_pct as f64 / 100.0;
                    let engine = engine_config(&config);
                    let mut suffix =
                        if max == u64::from(shipped.max_peers) { String::new() } else { format!("m{max}") };
                    if margin != shipped.deadline_margin_ms {
                        suffix.push_str(&format!("d{margin}"));
                    }
                    if budget != shipped.upload_budget_pct {
                        suffix.push_str(&format!("b{budget}"));
                    }
                    if edge_first != shipped.live_edge_first {
                        suffix.push_str(&format!("f{}", u8::from(edge_first)));
                    }
                    let name = format!("w{wait}x{extra}e{early}{suffix}");
                    let report = run_with(&config, &name, |id| Engine::new(engine.clone(), id)).expect("valid config");
                    eprintln!("{name} N={n} seg={segment_duration_ms} seed={seed} done");
                    done.lock().expect("no panics while holding the lock").push((i, report));
                }
            });
        }
    });
    let mut done = done.into_inner().expect("no panics while holding the lock");
    // Back in (max peers, early, extra, wait, segment, N, seed) order.
    done.sort_by_key(|(i, _)| jobs[*i]);
    let reports: Vec<Report> = done.into_iter().map(|(_, r)| r).collect();
    let means = summarize(&reports);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}\n{}", table(&means), reasons_table(&means)).expect("stdout is writable");
}
