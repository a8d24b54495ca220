//! The edge's Prometheus metrics, in the nginx cache vocabulary, labelled by edge name.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use service::Metrics;

type Labels = Vec<(&'static str, String)>;

/// Handles on the edge metrics; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct EdgeMetrics {
    name: String,
    /// Requests by `kind` (`playlist`, `segment`) and cache `status` (HIT, MISS, STALE, UPDATING).
    requests: Family<Labels, Counter>,
    /// Upstream requests made, by `kind` (a stalled fill's replacement counts).
    upstream: Family<Labels, Counter>,
    /// Requests that joined a fill already in flight instead of fetching, by `kind`.
    coalesced: Family<Labels, Counter>,
    /// Body bytes sent to clients.
    egress: Family<Labels, Counter>,
    /// Requests refused for a missing or bad access token.
    denied: Family<Labels, Counter>,
    /// HIT (and UPDATING, STALE) over all cache lookups, since start.
    hit_ratio: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Bytes held in the cache.
    cache_bytes: Family<Labels, Gauge>,
    /// How long after a fill's first byte arrived from upstream each reader was handed it.
    handoff: Family<Labels, Histogram, fn() -> Histogram>,
    hits: std::sync::Arc<AtomicU64>,
    lookups: std::sync::Arc<AtomicU64>,
}

/// Buckets of the hand-off histogram, in seconds.
const HANDOFF_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5];

fn handoff_histogram() -> Histogram {
    Histogram::new(HANDOFF_BUCKETS)
}

impl EdgeMetrics {
    pub(crate) fn register(registry: &Metrics, name: &str) -> Self {
        let m = Self {
            name: name.to_owned(),
            requests: Family::default(),
            upstream: Family::default(),
            coalesced: Family::default(),
            egress: Family::default(),
            denied: Family::default(),
            hit_ratio: Family::default(),
            cache_bytes: Family::default(),
            handoff: Family::new_with_constructor(handoff_histogram),
            hits: std::sync::Arc::default(),
            lookups: std::sync::Arc::default(),
        };
        registry.register(
            "edge_first_byte_handoff_seconds",
            "Time from a fill's first upstream byte to handing it to each reader",
            m.handoff.clone(),
        );
        registry.register(
            "edge_requests",
            "Edge requests by kind and cache status (nginx vocabulary)",
            m.requests.clone(),
        );
        registry.register("edge_upstream_requests", "Upstream requests made by the edge, by kind", m.upstream.clone());
        registry.register(
            "edge_coalesced",
            "Requests that joined an in-flight upstream fetch, by kind",
            m.coalesced.clone(),
        );
        registry.register("edge_egress_bytes", "Body bytes sent to clients", m.egress.clone());
        registry.register("edge_denied", "Requests refused for a missing or bad access token", m.denied.clone());
        registry.register("edge_cache_hit_ratio", "Cache hits over lookups since start", m.hit_ratio.clone());
        registry.register("edge_cache_bytes", "Bytes held in the edge cache", m.cache_bytes.clone());
        m
    }

    fn labels(&self, extra: &[(&'static str, &str)]) -> Labels {
        let mut l = vec![("edge", self.name.clone())];
        l.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        l
    }

    pub(crate) fn request(&self, kind: &str, status: &str) {
        self.requests.get_or_create(&self.labels(&[("kind", kind), ("status", status)])).inc();
        let hits = if status == "MISS" {
            self.hits.load(Ordering::Relaxed)
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed) + 1
        };
        let lookups = self.lookups.fetch_add(1, Ordering::Relaxed) + 1;
        self.hit_ratio.get_or_create(&self.labels(&[])).set(hits as f64 / lookups as f64);
    }

    pub(crate) fn upstream(&self, kind: &str, n: u32) {
        self.upstream.get_or_create(&self.labels(&[("kind", kind)])).inc_by(u64::from(n));
    }

    pub(crate) fn coalesced(&self, kind: &str) {
        self.coalesced.get_or_create(&self.labels(&[("kind", kind)])).inc();
    }

    pub(crate) fn egress(&self, bytes: usize) {
        self.egress.get_or_create(&self.labels(&[])).inc_by(bytes as u64);
    }

    pub(crate) fn denied(&self, reason: &str) {
        self.denied.get_or_create(&self.labels(&[("reason", reason)])).inc();
    }

    pub(crate) fn handoff(&self, lag: std::time::Duration) {
        self.handoff.get_or_create(&self.labels(&[])).observe(lag.as_secs_f64());
    }

    pub(crate) fn cache_bytes(&self, bytes: u64) {
        self.cache_bytes.get_or_create(&self.labels(&[])).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
