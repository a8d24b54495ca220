#![allow(clippy::print_stdout, clippy::unwrap_used)]
use swarmcast_sim::{SimConfig, run, table, Dist};
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u32 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(4);
    let poor: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let churn: f64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0.0);
    let dur: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(120);
    let fast = args.get(5).is_some();
    let mut c = SimConfig { peers: n, poor_uplink_share: poor, churn_per_min: churn, duration_s: dur, join_ramp_s: std::env::var("RAMP").ok().and_then(|x| x.parse().ok()).unwrap_or(10), ..SimConfig::default() };
    if fast { c.uplink_bytes_per_s = Dist::Const(2_000_000.0); c.downlink_bytes_per_s = Dist::Const(10_000_000.0); }
    let win: u64 = std::env::var("WIN").ok().and_then(|w| w.parse().ok()).unwrap_or(6);
    c.window_segments = win;
    if let Some(ls) = std::env::var("LS").ok().and_then(|w| w.parse().ok()) { c.live_sync_segments = ls; c.max_buffer_ms = 15_000; }
    if let Ok(b) = std::env::var("BUDGET") { c.engine.upload_budget_pct = b.parse().unwrap(); }
    if let Ok(b) = std::env::var("GRACE") { c.engine.seed_grace_ms = b.parse().unwrap(); }
    if let Ok(b) = std::env::var("SEED") { c.seed = b.parse().unwrap(); }
    if let Ok(b) = std::env::var("MAXP") { c.engine.max_peers = b.parse().unwrap(); }
    if let Ok(b) = std::env::var("MARGIN") { c.engine.deadline_margin_ms = b.parse().unwrap(); }
    let r = run(&c).unwrap();
    if std::env::var("NOBASE").is_ok() {
        println!("{}reasons seed/deadline/other per segment: {:?} of {} segments", table(&[r.clone()]), r.cdn_fetch_reasons.map(|x| x as f64 / r.segments_published as f64), r.segments_published);
        return;
    }
    let b = swarmcast_sim::baseline::run(&c).unwrap();
    println!("{}", table(&[r.clone(), b.clone()]));
    if std::env::var("V").is_ok() { println!("{b:#?}"); }
}
