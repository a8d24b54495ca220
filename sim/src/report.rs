//! What a run measured: one [`Report`] per run, a text table and CSV for plots.

use std::fmt::Write as _;

use crate::clock::Micros;
use crate::config::{PoorUplinkDraw, SimConfig};

mod capacity;
pub(crate) use capacity::Capacity;

/// The outcome of one run (or, with `runs > 1`, the mean of several, see [`summarize`]).
/// Byte counts are real bytes (simulated bytes × `byte_scale`).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Name of the scheduler under test.
    pub scheduler: String,
    /// Swarm size N (viewers present at any time).
    pub peers: u32,
    /// Segment duration, in ms.
    pub segment_duration_ms: u64,
    /// Simulated time, in s.
    pub duration_s: u64,
    /// Seed of the run (0 for a mean of several runs).
    pub seed: u64,
    /// Runs averaged in this report (1 for a single run).
    pub runs: u32,
    /// Share of viewers on poor uplinks.
    pub poor_uplink_share: f64,
    /// How viewers were put on poor uplinks.
    pub poor_uplink_draw: PoorUplinkDraw,
    /// Share of the swarm replaced per minute.
    pub churn_per_min: f64,
    /// Share of viewers whose player starts one segment behind the live edge.
    pub edge_share: f64,
    /// Viewers that took part (the N first, plus churn replacements).
    pub sessions: u64,
    /// Segments published during the run.
    pub segments_published: u64,
    /// Segment bytes received from the CDN and kept, in bytes.
    pub http_bytes: u64,
    /// Segment bytes received from peers and kept, in bytes.
    pub p2p_bytes: u64,
    /// Share of kept segment bytes that came from peers, 0..=1.
    pub offload: f64,
    /// The bound 1 − 1/N: every segment fetched once from the CDN, by one of N viewers.
    pub offload_bound: f64,
    /// The uplink-capacity bound, 0..=`offload_bound`: ∫ min((n − 1)·b, Σu) dt / ∫ n·b dt from
    /// the first arrival to the end, with n the viewers present, Σu the sum of their uplinks
    /// and b the stream bitrate (all bytes/s). An upper bound on the offload given the uplinks
    /// present (it ignores startup, latency and the CDN copy of each segment), not a target.
    pub cap_bound: f64,
    /// Stalls after the first frame, all viewers.
    pub stalls: u64,
    /// Time spent stalled after the first frame, all viewers, in s.
    pub stall_s: f64,
    /// Stalled time over watched time (first frame to departure), 0..=1.
    pub rebuffer_ratio: f64,
    /// Mean time from arrival to first frame, in ms.
    pub startup_ms_mean: f64,
    /// 95th percentile of the time from arrival to first frame, in ms.
    pub startup_ms_p95: f64,
    /// Viewers that left (or were still there at the end) without a first frame.
    pub never_started: u64,
    /// Mean over viewers of their mean live latency (age of the picture on screen), in s.
    pub live_latency_s_mean: f64,
    /// HTTP requests for segments (Range resumes included).
    pub cdn_requests: u64,
    /// Of the scheduler's CDN fetches (when it counts them, see [`engine::Stats`]): started to
    /// seed the swarm, started because peers could not make the deadline, and the rest
    /// (startup, old segments nobody held, refetches).
    pub cdn_fetch_reasons: [u64; 3],
    /// CDN fetches by [`engine::CdnReason`] (when the scheduler says why, else all zero).
    pub cdn_fetches_by_reason: [u64; 8],
    /// Bytes from the CDN by [`engine::CdnReason`] of the fetch that brought them, in bytes.
    pub cdn_bytes_by_reason: [u64; 8],
    /// Seeding fetches beyond the first of each segment (two peers that both seeded it).
    pub duplicate_seeds: u64,
    /// Playlist requests the shells made for `engine::Output::ReloadPlaylist` (the early reload
    /// of the next segment's seeder), beyond the players' own reloads.
    pub playlist_polls: u64,
    /// CDN requests per distinct segment played by someone (1.0 is ideal; N without P2P).
    pub cdn_requests_per_segment: f64,
    /// Bytes that crossed a link but were thrown away (duplicates, answers to cancelled
    /// requests, aborted fetches), in bytes.
    pub wasted_bytes: u64,
    /// Of `wasted_bytes`, those that came from peers, in bytes.
    pub wasted_p2p_bytes: u64,
    /// Wasted over all segment bytes received, 0..=1.
    pub wasted_ratio: f64,
    /// Segments the scheduler told the player it could not get.
    pub player_failures: u64,
    /// Jumps back to live after falling out of the playlist.
    pub live_skips: u64,
    /// Segments delivered to a player with bytes that differ from the CDN's (must be 0).
    pub corrupt_segments: u64,
    /// Timers asked for at or before the current time (a shell would spin; must be 0).
    pub timer_spins: u64,
    /// Data channel messages dropped because their channel closed before they were sent.
    pub dropped_messages: u64,
    /// Queued chunks dropped on a `Cancel` (with `purge_cancelled_uploads`).
    pub purged_messages: u64,
    /// Connections dropped because their send queue overflowed `max_queued_bytes`.
    pub overflow_drops: u64,
    /// Events the simulator handled (a measure of its work).
    pub events: u64,
}

/// Raw sums gathered during a run, turned into a [`Report`] at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) sessions: u64,
    /// Playlist requests made for `Output::ReloadPlaylist` (beyond the players' own reloads).
    pub(crate) playlist_polls: u64,
    pub(crate) segments_published: u64,
    /// Simulated bytes kept by schedulers.
    pub(crate) http_bytes: u64,
    pub(crate) p2p_bytes: u64,
    /// Real bytes received over HTTP but not kept.
    pub(crate) wasted_http_bytes: u64,
    /// Real bytes received from peers but not kept.
    pub(crate) wasted_p2p_bytes: u64,
    pub(crate) stalls: u64,
    pub(crate) stalled_us: Micros,
    pub(crate) watched_us: Micros,
    pub(crate) startups_us: Vec<Micros>,
    pub(crate) never_started: u64,
    pub(crate) latency_ms_sum: f64,
    pub(crate) latency_viewers: u64,
    pub(crate) cdn_requests: u64,
    pub(crate) cdn_fetch_reasons: [u64; 3],
    pub(crate) cdn_fetches_by_reason: [u64; 8],
    /// Simulated bytes, by reason.
    pub(crate) cdn_bytes_by_reason: [u64; 8],
    pub(crate) duplicate_seeds: u64,
    pub(crate) segments_played: u64,
    pub(crate) player_failures: u64,
    pub(crate) live_skips: u64,
    pub(crate) corrupt_segments: u64,
    pub(crate) timer_spins: u64,
    pub(crate) purged_messages: u64,
    pub(crate) overflow_drops: u64,
    /// Integrals of the uplink-capacity bound.
    pub(crate) capacity: Capacity,
}

impl Tally {
    pub(crate) fn finish(mut self, config: &SimConfig, scheduler: &str, dropped: u64, events: u64) -> Report {
        let scale = config.byte_scale;
        let (http, p2p) = (self.http_bytes * scale, self.p2p_bytes * scale);
        self.startups_us.sort_unstable();
        let startups = &self.startups_us;
        let wasted = self.wasted_http_bytes + self.wasted_p2p_bytes;
        let p95 = startups.get((startups.len() * 95).div_ceil(100).saturating_sub(1)).copied();
        Report {
            scheduler: scheduler.to_owned(),
            peers: config.peers,
            segment_duration_ms: config.segment_duration_ms,
            duration_s: config.duration_s,
            seed: config.seed,
            runs: 1,
            poor_uplink_share: config.poor_uplink_share,
            poor_uplink_draw: config.poor_uplink_draw,
            churn_per_min: config.churn_per_min,
            edge_share: config.edge_share,
            sessions: self.sessions,
            segments_published: self.segments_published,
            http_bytes: http,
            p2p_bytes: p2p,
            offload: ratio(p2p as f64, (http + p2p) as f64),
            offload_bound: 1.0 - 1.0 / f64::from(config.peers),
            cap_bound: self.capacity.bound(),
            stalls: self.stalls,
            stall_s: self.stalled_us as f64 / 1e6,
            rebuffer_ratio: ratio(self.stalled_us as f64, self.watched_us as f64),
            startup_ms_mean: ratio(startups.iter().sum::<u64>() as f64, startups.len() as f64) / 1e3,
            startup_ms_p95: p95.unwrap_or(0) as f64 / 1e3,
            never_started: self.never_started,
            live_latency_s_mean: ratio(self.latency_ms_sum, self.latency_viewers as f64) / 1e3,
            cdn_requests: self.cdn_requests,
            cdn_fetch_reasons: self.cdn_fetch_reasons,
            cdn_fetches_by_reason: self.cdn_fetches_by_reason,
            cdn_bytes_by_reason: self.cdn_bytes_by_reason.map(|b| b * scale),
            duplicate_seeds: self.duplicate_seeds,
            playlist_polls: self.playlist_polls,
            cdn_requests_per_segment: ratio(self.cdn_requests as f64, self.segments_played as f64),
            wasted_bytes: wasted,
            wasted_p2p_bytes: self.wasted_p2p_bytes,
            wasted_ratio: ratio(wasted as f64, (http + p2p + wasted) as f64),
            player_failures: self.player_failures,
            live_skips: self.live_skips,
            corrupt_segments: self.corrupt_segments,
            timer_spins: self.timer_spins,
            dropped_messages: dropped,
            purged_messages: self.purged_messages,
            overflow_drops: self.overflow_drops,
            events,
        }
    }
}

fn ratio(num: f64, den: f64) -> f64 {
    if den > 0.0 { num / den } else { 0.0 }
}

/// Means of the reports that share a setup (scheduler, N, segment duration, duration, poor
/// share, churn), in order of first appearance; `runs` says how many each averages.
pub fn summarize(reports: &[Report]) -> Vec<Report> {
    let mut groups: Vec<Vec<&Report>> = Vec::new();
    for r in reports {
        match groups.iter_mut().find(|g| same_setup(g[0], r)) {
            Some(group) => group.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups.iter().map(|g| mean(g)).collect()
}

fn same_setup(a: &Report, b: &Report) -> bool {
    (a.scheduler.as_str(), a.peers, a.segment_duration_ms, a.duration_s)
        == (b.scheduler.as_str(), b.peers, b.segment_duration_ms, b.duration_s)
        && a.poor_uplink_share == b.poor_uplink_share
        && a.poor_uplink_draw == b.poor_uplink_draw
        && a.churn_per_min == b.churn_per_min
        && a.edge_share == b.edge_share
}

fn mean(group: &[&Report]) -> Report {
    let n = group.len() as f64;
    let f = |get: fn(&Report) -> f64| group.iter().map(|r| get(r)).sum::<f64>() / n;
    // Rounded means of counters; a group is never empty.
    let u = |get: fn(&Report) -> u64| (group.iter().map(|r| get(r) as f64).sum::<f64>() / n).round() as u64;
    let first = group[0];
    Report {
        seed: if group.len() == 1 { first.seed } else { 0 },
        runs: group.iter().map(|r| r.runs).sum(),
        sessions: u(|r| r.sessions),
        segments_published: u(|r| r.segments_published),
        http_bytes: u(|r| r.http_bytes),
        p2p_bytes: u(|r| r.p2p_bytes),
        offload: f(|r| r.offload),
        cap_bound: f(|r| r.cap_bound),
        stalls: u(|r| r.stalls),
        stall_s: f(|r| r.stall_s),
        rebuffer_ratio: f(|r| r.rebuffer_ratio),
        startup_ms_mean: f(|r| r.startup_ms_mean),
        startup_ms_p95: f(|r| r.startup_ms_p95),
        never_started: u(|r| r.never_started),
        live_latency_s_mean: f(|r| r.live_latency_s_mean),
        cdn_requests: u(|r| r.cdn_requests),
        cdn_fetch_reasons: [
            u(|r| r.cdn_fetch_reasons[0]),
            u(|r| r.cdn_fetch_reasons[1]),
            u(|r| r.cdn_fetch_reasons[2]),
        ],
        cdn_fetches_by_reason: std::array::from_fn(|i| {
            (group.iter().map(|r| r.cdn_fetches_by_reason[i] as f64).sum::<f64>() / n).round() as u64
        }),
        cdn_bytes_by_reason: std::array::from_fn(|i| {
            (group.iter().map(|r| r.cdn_bytes_by_reason[i] as f64).sum::<f64>() / n).round() as u64
        }),
        duplicate_seeds: u(|r| r.duplicate_seeds),
        playlist_polls: u(|r| r.playlist_polls),
        cdn_requests_per_segment: f(|r| r.cdn_requests_per_segment),
        wasted_bytes: u(|r| r.wasted_bytes),
        wasted_p2p_bytes: u(|r| r.wasted_p2p_bytes),
        wasted_ratio: f(|r| r.wasted_ratio),
        player_failures: u(|r| r.player_failures),
        live_skips: u(|r| r.live_skips),
        corrupt_segments: u(|r| r.corrupt_segments),
        timer_spins: u(|r| r.timer_spins),
        dropped_messages: u(|r| r.dropped_messages),
        purged_messages: u(|r| r.purged_messages),
        overflow_drops: u(|r| r.overflow_drops),
        events: u(|r| r.events),
        ..first.clone()
    }
}

/// A fixed-width text table, one row per report.
pub fn table(reports: &[Report]) -> String {
    let mut out = format!(
        "{:<9} {:>6} {:>5} {:>6} {:>8} {:>7} {:>6} {:>7} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8}\n",
        "scheduler",
        "N",
        "seg_s",
        "seed",
        "offload",
        "bound",
        "cap",
        "stalls",
        "stall_s",
        "rebuf%",
        "start_ms",
        "st_p95",
        "latency",
        "cdn/seg",
        "waste%"
    );
    for r in reports {
        let seed = if r.runs > 1 { format!("{}x", r.runs) } else { r.seed.to_string() };
        let _ = writeln!(
            out,
            "{:<9} {:>6} {:>5} {:>6} {:>8.3} {:>7.3} {:>6.3} {:>7} {:>8.1} {:>7.2} {:>8.0} {:>8.0} {:>8.1} {:>8.2} {:>8.2}",
            r.scheduler,
            r.peers,
            r.segment_duration_ms as f64 / 1e3,
            seed,
            r.offload,
            r.offload_bound,
            r.cap_bound,
            r.stalls,
            r.stall_s,
            r.rebuffer_ratio * 100.0,
            r.startup_ms_mean,
            r.startup_ms_p95,
            r.live_latency_s_mean,
            r.cdn_requests_per_segment,
            r.wasted_ratio * 100.0,
        );
    }
    out
}

/// Column names of [`csv`], in order.
pub const CSV_HEADER: &str = "scheduler,peers,segment_duration_ms,duration_s,seed,runs,poor_uplink_share,\
churn_per_min,sessions,segments_published,http_bytes,p2p_bytes,offload,offload_bound,stalls,stall_s,\
rebuffer_ratio,startup_ms_mean,startup_ms_p95,never_started,live_latency_s_mean,cdn_requests,\
cdn_requests_per_segment,cdn_seed_fetches,cdn_deadline_fetches,cdn_other_fetches,wasted_bytes,wasted_p2p_bytes,wasted_ratio,player_failures,live_skips,corrupt_segments,timer_spins,\
dropped_messages,purged_messages,overflow_drops,events,duplicate_seeds,\
fetches_startup_alone,fetches_startup,fetches_seed,fetches_deadline_busy,fetches_deadline_alone,fetches_retry,\
fetches_churn,fetches_other,cdn_bytes_startup_alone,cdn_bytes_startup,cdn_bytes_seed,cdn_bytes_deadline_busy,\
cdn_bytes_deadline_alone,cdn_bytes_retry,cdn_bytes_churn,cdn_bytes_other,cap_bound,playlist_polls,edge_share,\
poor_uplink_draw";

/// CSV with a header line, one row per report (scheduler names are written as given and must
/// not hold commas).
pub fn csv(reports: &[Report]) -> String {
    let mut out = format!("{CSV_HEADER}\n");
    for r in reports {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{},{:.3},{:.6},{:.1},{:.1},{},{:.3},{},{:.4},{},{},{},{},{},{:.6},{},{},{},{},{},{},{},{}",
            r.scheduler,
            r.peers,
            r.segment_duration_ms,
            r.duration_s,
            r.seed,
            r.runs,
            r.poor_uplink_share,
            r.churn_per_min,
            r.sessions,
            r.segments_published,
            r.http_bytes,
            r.p2p_bytes,
            r.offload,
            r.offload_bound,
            r.stalls,
            r.stall_s,
            r.rebuffer_ratio,
            r.startup_ms_mean,
            r.startup_ms_p95,
            r.never_started,
            r.live_latency_s_mean,
            r.cdn_requests,
            r.cdn_requests_per_segment,
            r.cdn_fetch_reasons[0],
            r.cdn_fetch_reasons[1],
            r.cdn_fetch_reasons[2],
            r.wasted_bytes,
            r.wasted_p2p_bytes,
            r.wasted_ratio,
            r.player_failures,
            r.live_skips,
            r.corrupt_segments,
            r.timer_spins,
            r.dropped_messages,
            r.purged_messages,
            r.overflow_drops,
            r.events,
        );
        out.pop(); // the newline, for the reason columns
        let _ = write!(out, ",{}", r.duplicate_seeds);
        for n in r.cdn_fetches_by_reason.iter().chain(&r.cdn_bytes_by_reason) {
            let _ = write!(out, ",{n}");
        }
        let draw = r.poor_uplink_draw.name();
        let _ = writeln!(out, ",{:.6},{},{},{draw}", r.cap_bound, r.playlist_polls, r.edge_share);
    }
    out
}

/// Where the CDN bytes came from: per report, the share of all segment bytes (CDN and peer)
/// fetched from the CDN for each [`engine::CdnReason`], in percent, then the seeding fetches
/// beyond the first per segment and the early reloads' playlist polls, per segment played.
pub fn reasons_table(reports: &[Report]) -> String {
    let mut out = format!("{:<9} {:>6} {:>5} {:>6} {:>7}", "scheduler", "N", "seg_s", "seed", "cdn%");
    for reason in engine::CdnReason::ALL {
        let _ = write!(out, " {:>9}", short(reason.name()));
    }
    out.push_str("  dup_seed/seg  polls/seg\n");
    for r in reports {
        let seed = if r.runs > 1 { format!("{}x", r.runs) } else { r.seed.to_string() };
        let all = (r.http_bytes + r.p2p_bytes) as f64;
        let _ = write!(
            out,
            "{:<9} {:>6} {:>5} {:>6} {:>7.2}",
            r.scheduler,
            r.peers,
            r.segment_duration_ms as f64 / 1e3,
            seed,
            ratio(r.http_bytes as f64, all) * 100.0
        );
        for bytes in r.cdn_bytes_by_reason {
            let _ = write!(out, " {:>9.2}", ratio(bytes as f64, all) * 100.0);
        }
        let played = ratio(r.cdn_requests as f64, r.cdn_requests_per_segment);
        let (dup, polls) = (r.duplicate_seeds as f64, r.playlist_polls as f64);
        let _ = writeln!(out, "  {:>12.2} {:>10.2}", ratio(dup, played), ratio(polls, played));
    }
    out
}

/// A reason's name cut to fit a column.
fn short(name: &str) -> &str {
    match name {
        "startup_alone" => "st_alone",
        "deadline_busy" => "dl_busy",
        "deadline_alone" => "dl_alone",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(seed: u64, offload: f64) -> Report {
        let tally = Tally {
            sessions: 4,
            http_bytes: 10,
            p2p_bytes: 30,
            startups_us: vec![400_000, 100_000, 300_000, 200_000],
            stalled_us: 1_000_000,
            watched_us: 100_000_000,
            cdn_requests: 12,
            segments_played: 10,
            ..Tally::default()
        };
        let config = SimConfig { peers: 4, seed, byte_scale: 2, ..SimConfig::default() };
        Report { offload, ..tally.finish(&config, "engine", 0, 99) }
    }

    #[test]
    fn finish_scales_bytes_and_derives_ratios() {
        let r = report(1, 0.75);
        assert_eq!((r.http_bytes, r.p2p_bytes), (20, 60));
        assert_eq!(r.offload_bound, 0.75);
        assert_eq!((r.startup_ms_mean, r.startup_ms_p95), (250.0, 400.0));
        assert_eq!(r.rebuffer_ratio, 0.01);
        assert_eq!(r.cdn_requests_per_segment, 1.2);
    }

    #[test]
    fn summarize_averages_runs_of_one_setup() {
        let mut other = report(3, 0.0);
        other.peers = 8;
        let means = summarize(&[report(1, 0.5), other, report(2, 0.7)]);
        assert_eq!(means.len(), 2);
        assert_eq!((means[0].runs, means[0].seed), (2, 0));
        assert!((means[0].offload - 0.6).abs() < 1e-9);
        assert_eq!((means[1].runs, means[1].seed, means[1].peers), (1, 3, 8));
    }

    #[test]
    fn table_and_csv_have_one_line_per_report() {
        let reports = [report(1, 0.5), report(2, 0.6)];
        assert_eq!(table(&reports).lines().count(), 3);
        let csv = csv(&reports);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        let columns = lines[0].split(',').count();
        assert!(lines.iter().all(|l| l.split(',').count() == columns), "{csv}");
        assert!(lines[1].starts_with("engine,4,2000,600,1,1,"));
        assert!(
            lines[0].ends_with(",cap_bound,playlist_polls,edge_share,poor_uplink_draw")
                && lines[1].ends_with(",0.000000,0,0,exact"),
            "{csv}"
        );
    }
}
