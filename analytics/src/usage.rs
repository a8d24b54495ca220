//! Pure logic: the latest cumulative report per session and running totals per content.
//!
//! No IO and no clock: every call takes `now`. Reports are cumulative, so the store keeps per
//! session only the one with the highest `seq` and adds to the content totals the difference
//! from the one it replaces; a repeated or older report changes nothing (idempotent on
//! `(session, seq)`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use protocol::api::{CdnBytesByReason, Summary, UsageReport};

/// Byte and stall counters of one report, or a difference between two.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) http_bytes: u64,
    pub(crate) p2p_down_bytes: u64,
    pub(crate) p2p_up_bytes: u64,
    pub(crate) stalls: u64,
    /// `http_bytes` by reason, in [`protocol::api::CdnBytesByReason::NAMES`] order.
    pub(crate) cdn_bytes: [u64; 8],
}

impl Counters {
    fn of(report: &UsageReport) -> Self {
        Self {
            http_bytes: report.http_bytes,
            p2p_down_bytes: report.p2p_down_bytes,
            p2p_up_bytes: report.p2p_up_bytes,
            stalls: u64::from(report.stalls),
            cdn_bytes: report.cdn_bytes.counts(),
        }
    }

    /// `self - other` per field, never below 0 (a client that reset its counters adds nothing).
    fn minus(self, other: Self) -> Self {
        Self {
            http_bytes: self.http_bytes.saturating_sub(other.http_bytes),
            p2p_down_bytes: self.p2p_down_bytes.saturating_sub(other.p2p_down_bytes),
            p2p_up_bytes: self.p2p_up_bytes.saturating_sub(other.p2p_up_bytes),
            stalls: self.stalls.saturating_sub(other.stalls),
            cdn_bytes: std::array::from_fn(|i| self.cdn_bytes[i].saturating_sub(other.cdn_bytes[i])),
        }
    }
}

/// What [`UsageStore::ingest`] did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ingested {
    /// A newer report: `delta` was added to the content's totals.
    Accepted { delta: Counters, new_session: bool },
    /// A report with a `seq` at or below the stored one: ignored.
    Stale,
}

/// No room for a new content: every known content still has live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreFull;

/// Latest report per session and totals per content, both bounded.
#[derive(Debug)]
pub(crate) struct UsageStore {
    max_sessions: usize,
    max_contents: usize,
    active_window: Duration,
    sessions: HashMap<String, Session>,
    /// Sessions by the tick of their latest report, oldest first (eviction order).
    by_activity: BTreeMap<u64, String>,
    contents: HashMap<String, ContentTotals>,
    next_tick: u64,
}

#[derive(Debug)]
struct Session {
    content: String,
    seq: u64,
    counters: Counters,
    tick: u64,
}

#[derive(Debug, Default)]
struct ContentTotals {
    sessions_seen: u32,
    counters: Counters,
    /// Stored sessions of this content: tick of their latest report → its time.
    recent: BTreeMap<u64, Instant>,
}

impl UsageStore {
    /// An empty store of at most `max_sessions` sessions and `max_contents` contents; a viewer is
    /// a session that reported within `active_window`.
    pub(crate) fn new(max_sessions: usize, max_contents: usize, active_window: Duration) -> Self {
        Self {
            max_sessions,
            max_contents,
            active_window,
            sessions: HashMap::new(),
            by_activity: BTreeMap::new(),
            contents: HashMap::new(),
            next_tick: 0,
        }
    }

    /// Records `report` received at `now`. A new session beyond `max_sessions` evicts the session
    /// that reported least recently (its bytes stay in the totals).
    ///
    /// # Errors
    /// [`StoreFull`] when the report names a new content, the content table is full and every
    /// content in it still has stored sessions.
    pub(crate) fn ingest(&mut self, now: Instant, report: &UsageReport) -> Result<Ingested, StoreFull> {
        if self.sessions.get(&report.session).is_some_and(|s| report.seq <= s.seq) {
            return Ok(Ingested::Stale);
        }
        if !self.contents.contains_key(&report.content) {
            self.make_room_for_a_content()?;
        }
        let counters = Counters::of(report);
        let old = self.sessions.remove(&report.session);
        let new_session = old.is_none();
        let previous = match old {
            Some(old) => {
                self.by_activity.remove(&old.tick);
                if let Some(totals) = self.contents.get_mut(&old.content) {
                    totals.recent.remove(&old.tick);
                    totals.counters = totals.counters.minus(old.counters);
                }
                if old.content != report.content {
                    // Moved to another content: counted there as a new session.
                    self.contents.entry(report.content.clone()).or_default().sessions_seen += 1;
                }
                old.counters
            }
            None => {
                if self.sessions.len() >= self.max_sessions {
                    self.evict_oldest();
                }
                self.contents.entry(report.content.clone()).or_default().sessions_seen += 1;
                Counters::default()
            }
        };
        let tick = self.next_tick;
        self.next_tick += 1;
        let totals = self.contents.entry(report.content.clone()).or_default();
        totals.counters = add(totals.counters, counters);
        totals.recent.insert(tick, now);
        self.by_activity.insert(tick, report.session.clone());
        let session = Session { content: report.content.clone(), seq: report.seq, counters, tick };
        self.sessions.insert(report.session.clone(), session);
        Ok(Ingested::Accepted { delta: counters.minus(previous), new_session })
    }

    /// Totals of `content` at `now` (zeros for an unknown content).
    pub(crate) fn summary(&self, now: Instant, content: &str) -> Summary {
        let Some(totals) = self.contents.get(content) else {
            return summary_of(content, 0, &ContentTotals::default());
        };
        let viewers = totals
            .recent
            .values()
            .rev()
            .take_while(|&&at| now.saturating_duration_since(at) <= self.active_window)
            .count();
        summary_of(content, u32::try_from(viewers).unwrap_or(u32::MAX), totals)
    }

    /// Number of stored sessions.
    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    fn evict_oldest(&mut self) {
        let Some((tick, session)) = self.by_activity.pop_first() else {
            return;
        };
        if let Some(old) = self.sessions.remove(&session)
            && let Some(totals) = self.contents.get_mut(&old.content)
        {
            totals.recent.remove(&tick);
        }
    }

    /// When the content table is full, drops a content that has no stored session left (its
    /// totals are forgotten).
    fn make_room_for_a_content(&mut self) -> Result<(), StoreFull> {
        if self.contents.len() < self.max_contents {
            return Ok(());
        }
        let idle = self.contents.iter().find(|(_, totals)| totals.recent.is_empty()).map(|(name, _)| name.clone());
        let Some(idle) = idle else {
            return Err(StoreFull);
        };
        self.contents.remove(&idle);
        Ok(())
    }
}

fn add(a: Counters, b: Counters) -> Counters {
    Counters {
        http_bytes: a.http_bytes.saturating_add(b.http_bytes),
        p2p_down_bytes: a.p2p_down_bytes.saturating_add(b.p2p_down_bytes),
        p2p_up_bytes: a.p2p_up_bytes.saturating_add(b.p2p_up_bytes),
        stalls: a.stalls.saturating_add(b.stalls),
        cdn_bytes: std::array::from_fn(|i| a.cdn_bytes[i].saturating_add(b.cdn_bytes[i])),
    }
}

fn summary_of(content: &str, viewers: u32, totals: &ContentTotals) -> Summary {
    let c = totals.counters;
    let downloaded = c.p2p_down_bytes.saturating_add(c.http_bytes);
    let offload_ratio = if downloaded == 0 { 0.0 } else { c.p2p_down_bytes as f64 / downloaded as f64 };
    Summary {
        content: content.to_owned(),
        viewers,
        sessions: totals.sessions_seen,
        http_bytes: c.http_bytes,
        p2p_down_bytes: c.p2p_down_bytes,
        p2p_up_bytes: c.p2p_up_bytes,
        offload_ratio,
        stalls: c.stalls,
        cdn_bytes: CdnBytesByReason::from_counts(c.cdn_bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(10);

    fn report(session: &str, content: &str, seq: u64, http: u64, p2p: u64) -> UsageReport {
        UsageReport {
            customer: "acme".into(),
            content: content.into(),
            session: session.into(),
            seq,
            http_bytes: http,
            p2p_down_bytes: p2p,
            p2p_up_bytes: p2p / 2,
            peers: 1,
            rendition: 0,
            stalls: 0,
            cdn_bytes: CdnBytesByReason::default(),
        }
    }

    fn secs(t0: Instant, s: u64) -> Instant {
        t0 + Duration::from_secs(s)
    }

    #[test]
    fn cumulative_reports_sum_per_content_with_offload_ratio() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(100, 100, WINDOW);
        store.ingest(t0, &report("a", "live", 0, 100, 0)).unwrap();
        store.ingest(t0, &report("a", "live", 1, 100, 300)).unwrap();
        store.ingest(t0, &report("b", "live", 0, 0, 600)).unwrap();
        store.ingest(t0, &report("c", "other", 0, 50, 0)).unwrap();
        let s = store.summary(t0, "live");
        assert_eq!((s.viewers, s.sessions, s.http_bytes, s.p2p_down_bytes, s.p2p_up_bytes), (2, 2, 100, 900, 450));
        assert!((s.offload_ratio - 0.9).abs() < 1e-9, "{}", s.offload_ratio);
        assert_eq!(store.summary(t0, "other").http_bytes, 50);
    }

    #[test]
    fn the_summary_splits_cdn_bytes_by_reason_from_the_latest_reports() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(100, 100, WINDOW);
        let with = |session: &str, seq: u64, seed: u64, retry: u64| UsageReport {
            cdn_bytes: CdnBytesByReason { seed, retry, ..CdnBytesByReason::default() },
            ..report(session, "live", seq, seed + retry, 0)
        };
        store.ingest(t0, &with("a", 0, 100, 10)).unwrap();
        store.ingest(t0, &with("a", 1, 150, 10)).unwrap();
        store.ingest(t0, &with("b", 0, 40, 5)).unwrap();
        let s = store.summary(t0, "live");
        assert_eq!((s.cdn_bytes.seed, s.cdn_bytes.retry, s.cdn_bytes.churn), (190, 15, 0));
        assert_eq!(s.http_bytes, 205);
    }

    #[test]
    fn duplicate_and_out_of_order_reports_change_nothing() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(100, 100, WINDOW);
        let first = store.ingest(t0, &report("a", "live", 1, 10, 20)).unwrap();
        let delta = Counters { http_bytes: 10, p2p_down_bytes: 20, p2p_up_bytes: 10, ..Counters::default() };
        assert_eq!(first, Ingested::Accepted { delta, new_session: true });
        assert_eq!(store.ingest(t0, &report("a", "live", 1, 10, 20)).unwrap(), Ingested::Stale);
        assert_eq!(store.ingest(t0, &report("a", "live", 0, 5, 5)).unwrap(), Ingested::Stale);
        let s = store.summary(t0, "live");
        assert_eq!((s.sessions, s.http_bytes, s.p2p_down_bytes), (1, 10, 20));
        let later = store.ingest(t0, &report("a", "live", 3, 15, 20)).unwrap();
        let delta = Counters { http_bytes: 5, ..Counters::default() };
        assert_eq!(later, Ingested::Accepted { delta, new_session: false });
        assert_eq!(store.summary(t0, "live").http_bytes, 15);
    }

    #[test]
    fn viewers_are_sessions_within_the_window() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(100, 100, WINDOW);
        store.ingest(t0, &report("a", "live", 0, 1, 0)).unwrap();
        store.ingest(secs(t0, 8), &report("b", "live", 0, 1, 0)).unwrap();
        assert_eq!(store.summary(secs(t0, 10), "live").viewers, 2);
        assert_eq!(store.summary(secs(t0, 11), "live").viewers, 1);
        store.ingest(secs(t0, 12), &report("a", "live", 1, 1, 0)).unwrap();
        assert_eq!(store.summary(secs(t0, 19), "live").viewers, 1);
        assert_eq!(store.summary(secs(t0, 19), "live").sessions, 2);
    }

    #[test]
    fn nothing_downloaded_means_zero_offload_and_unknown_content_is_empty() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(100, 100, WINDOW);
        store.ingest(t0, &report("a", "live", 0, 0, 0)).unwrap();
        assert_eq!(store.summary(t0, "live").offload_ratio, 0.0);
        let empty = store.summary(t0, "nope");
        assert_eq!((empty.viewers, empty.sessions, empty.http_bytes), (0, 0, 0));
    }

    #[test]
    fn the_least_recently_active_session_is_evicted_but_its_bytes_stay() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(2, 100, WINDOW);
        store.ingest(t0, &report("a", "live", 0, 10, 0)).unwrap();
        store.ingest(t0, &report("b", "live", 0, 10, 0)).unwrap();
        store.ingest(secs(t0, 1), &report("a", "live", 1, 20, 0)).unwrap();
        store.ingest(secs(t0, 2), &report("c", "live", 0, 10, 0)).unwrap();
        assert_eq!(store.session_count(), 2);
        let s = store.summary(secs(t0, 2), "live");
        assert_eq!((s.viewers, s.sessions, s.http_bytes), (2, 3, 40));
        // "b" was evicted: a stale seq from it is accepted again as a new session.
        assert!(matches!(store.ingest(secs(t0, 3), &report("b", "live", 0, 10, 0)), Ok(Ingested::Accepted { .. })));
    }

    #[test]
    fn content_table_is_bounded_and_reuses_idle_entries() {
        let t0 = Instant::now();
        let mut store = UsageStore::new(2, 2, WINDOW);
        store.ingest(t0, &report("a", "one", 0, 1, 0)).unwrap();
        store.ingest(t0, &report("b", "two", 0, 1, 0)).unwrap();
        assert_eq!(store.ingest(t0, &report("x", "three", 0, 1, 0)), Err(StoreFull));
        // "c" evicts "a", the least recently active session, which leaves "one" without sessions.
        store.ingest(t0, &report("c", "two", 0, 1, 0)).unwrap();
        assert!(store.ingest(t0, &report("x", "three", 0, 1, 0)).is_ok());
        assert_eq!(store.summary(t0, "one").sessions, 0);
        assert_eq!(store.summary(t0, "three").sessions, 1);
    }
}
