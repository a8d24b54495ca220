//! Measures the engine's startup wait (`Config::startup_peer_wait_ms`): one row per wait value,
//! swarm size and segment duration, means over seeds, as `swarmcast sim` prints them.
//!
//! ```text
//! cargo run --release -p swarmcast-sim --example startup_sweep -- \
//!     [waits=0,500,1000] [extras=4] [peers=4,16,100,1000] [segments=2000,6000] [seeds=3] [threads=2]
//! ```
//! `extras` are values of `Config::extra_incoming_peers`. The scheduler column reads
//! `w<wait in ms>x<extra>`.

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
    let peers = list(&args, "peers", "4,16,100,1000");
    let segments = list(&args, "segments", "2000,6000");
    let seeds = list(&args, "seeds", "3")[0];
    let threads = list(&args, "threads", "2")[0].max(1);
    let mut jobs = Vec::new();
    for &extra in &extras {
        for &wait in &waits {
            for &segment_duration_ms in &segments {
                for &n in &peers {
                    for seed in 1..=seeds {
                        jobs.push((extra, wait, segment_duration_ms, n, seed));
                    }
                }
            }
        }
    }
    // Largest swarms first, so the threads finish together.
    jobs.sort_by_key(|&(_, _, _, n, _)| std::cmp::Reverse(n));
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<(usize, Report)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(extra, wait, segment_duration_ms, n, seed)) = jobs.get(i) else { break };
                    let mut config = SimConfig { peers: n as u32, segment_duration_ms, seed, ..SimConfig::default() };
                    config.engine.startup_peer_wait_ms = wait;
                    config.engine.extra_incoming_peers = u32::try_from(extra).unwrap_or(u32::MAX);
                    let engine = engine_config(&config);
                    let report = run_with(&config, &format!("w{wait}x{extra}"), |id| Engine::new(engine.clone(), id))
                        .expect("valid config");
                    eprintln!("w{wait}x{extra} N={n} seg={segment_duration_ms} seed={seed} done");
                    done.lock().expect("no panics while holding the lock").push((i, report));
                }
            });
        }
    });
    let mut done = done.into_inner().expect("no panics while holding the lock");
    // Back in (wait, segment, N, seed) order.
    done.sort_by_key(|(i, _)| {
        let (x, w, seg, n, seed) = jobs[*i];
        (x, w, seg, n, seed)
    });
    let reports: Vec<Report> = done.into_iter().map(|(_, r)| r).collect();
    let means = summarize(&reports);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}\n{}", table(&means), reasons_table(&means)).expect("stdout is writable");
}
