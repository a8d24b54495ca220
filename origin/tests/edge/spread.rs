//! The first-byte spread of one coalescing round, and the CPU the runtime's workers used and
//! waited for meanwhile.

use std::fmt;
use std::time::SystemTime;

/// When the followers' first bytes arrived, relative to the leader's (the earliest).
pub(crate) struct Spread {
    /// Each client's first byte after the leader's, in ms, ascending.
    lags_ms: Vec<f64>,
    /// From the upstream sending the first byte to it reaching the leader's socket, in ms.
    upstream_to_leader_ms: f64,
    /// The runtime's workers' CPU time during the round's fan-out window, and how long they were
    /// runnable but not running, in ms (summed over the workers; `None` without `/proc`).
    workers: Option<WorkerTimes>,
}

/// CPU time used and run-queue wait, in ms, summed over the runtime's worker threads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WorkerTimes {
    pub(crate) cpu_ms: f64,
    pub(crate) wait_ms: f64,
}

impl WorkerTimes {
    /// The times since `earlier`.
    pub(crate) fn since(self, earlier: Self) -> Self {
        Self { cpu_ms: self.cpu_ms - earlier.cpu_ms, wait_ms: self.wait_ms - earlier.wait_ms }
    }
}

impl Spread {
    pub(crate) fn new(
        upstream_sent: SystemTime,
        first_bytes: impl Iterator<Item = SystemTime>,
        workers: Option<WorkerTimes>,
    ) -> Self {
        let first_bytes: Vec<SystemTime> = first_bytes.collect();
        let leader = *first_bytes.iter().min().unwrap();
        let ms = |later: SystemTime, earlier: SystemTime| {
            later.duration_since(earlier).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        let mut lags_ms: Vec<f64> = first_bytes.iter().map(|&t| ms(t, leader)).collect();
        lags_ms.sort_by(f64::total_cmp);
        Self { lags_ms, upstream_to_leader_ms: ms(leader, upstream_sent), workers }
    }

    fn percentile(&self, p: f64) -> f64 {
        self.lags_ms[((self.lags_ms.len() - 1) as f64 * p).round() as usize]
    }

    /// The last follower's first byte after the leader's, in ms.
    pub(crate) fn max_ms(&self) -> f64 {
        self.lags_ms[self.lags_ms.len() - 1]
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "first byte after the leader's: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms; upstream to leader {:.2} ms; ",
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.max_ms(),
            self.upstream_to_leader_ms,
        )?;
        match self.workers {
            Some(w) => write!(f, "workers' CPU {:.2} ms, run-queue wait {:.2} ms", w.cpu_ms, w.wait_ms),
            None => write!(f, "workers' CPU n/a"),
        }
    }
}

/// CPU time and run-queue wait so far of this process's Tokio worker threads
/// (`/proc/self/task/*/schedstat`, first two fields), or `None` where that is not available.
pub(crate) fn worker_times() -> Option<WorkerTimes> {
    let (mut cpu_ns, mut wait_ns) = (0_u64, 0_u64);
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !name.starts_with("tokio-r") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
        let mut fields = stat.split_whitespace().map(str::parse::<u64>);
        cpu_ns += fields.next()?.ok()?;
        wait_ns += fields.next()?.ok()?;
    }
    Some(WorkerTimes { cpu_ms: cpu_ns as f64 / 1e6, wait_ms: wait_ns as f64 / 1e6 })
}
