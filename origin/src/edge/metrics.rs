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
    /// How long after a fill's first byte arrived from upstream each reader was handed it
    /// (recorded when the reader's tally is flushed: after 256 KiB or at the end of the body).
    handoff: Family<Labels, Histogram, fn() -> Histogram>,
    /// This edge's series of `egress` and `handoff`, resolved once, for [`BodyTally`].
    body: BodyMetrics,
    hits: std::sync::Arc<AtomicU64>,
    lookups: std::sync::Arc<AtomicU64>,
}

/// Buckets of the hand-off histogram, in seconds.
const HANDOFF_BUCKETS: [f64; 8] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5];

fn handoff_histogram() -> Histogram {
    Histogram::new(HANDOFF_BUCKETS)
}

/// The two series a response body updates as it is sent; cheap to clone (shared handles).
#[derive(Debug, Clone)]
struct BodyMetrics {
    egress: Counter,
    handoff: Histogram,
}

/// Bytes a [`BodyTally`] accumulates before adding them to the shared counter.
const TALLY_FLUSH_BYTES: u64 = 256 * 1024;

/// One response body's egress bytes and first-byte hand-off, kept by the body and added to the
/// shared series every [`TALLY_FLUSH_BYTES`] and when it is dropped: when a fill fans a chunk
/// out to a thousand readers on two cores, they do not all write the same counter and histogram
/// (each write would move their cache lines between the cores).
#[derive(Debug)]
pub(crate) struct BodyTally {
    metrics: BodyMetrics,
    bytes: u64,
    handoff: Option<std::time::Duration>,
}

impl BodyTally {
    /// Counts a chunk of `bytes` handed out; `handoff` is, for the first, how long after its
    /// arrival from upstream it was handed to the reader.
    pub(crate) fn chunk(&mut self, bytes: usize, handoff: Option<std::time::Duration>) {
        self.bytes += bytes as u64;
        if handoff.is_some() {
            self.handoff = handoff;
        }
        if self.bytes >= TALLY_FLUSH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.bytes > 0 {
            self.metrics.egress.inc_by(std::mem::take(&mut self.bytes));
        }
        if let Some(lag) = self.handoff.take() {
            self.metrics.handoff.observe(lag.as_secs_f64());
        }
    }
}

impl Drop for BodyTally {
    fn drop(&mut self) {
        self.flush();
    }
}

impl EdgeMetrics {
    pub(crate) fn register(registry: &Metrics, name: &str) -> Self {
        let egress: Family<Labels, Counter> = Family::default();
        let handoff: Family<Labels, Histogram, fn() -> Histogram> = Family::new_with_constructor(handoff_histogram);
        let labels = vec![("edge", name.to_owned())];
        let body = BodyMetrics {
            egress: egress.get_or_create(&labels).clone(),
            handoff: handoff.get_or_create(&labels).clone(),
        };
        let m = Self {
            name: name.to_owned(),
            requests: Family::default(),
            upstream: Family::default(),
            coalesced: Family::default(),
            egress,
            denied: Family::default(),
            hit_ratio: Family::default(),
            cache_bytes: Family::default(),
            handoff,
            body,
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
        self.body.egress.inc_by(bytes as u64);
    }

    /// A tally for one response body.
    pub(crate) fn body_tally(&self) -> BodyTally {
        BodyTally { metrics: self.body.clone(), bytes: 0, handoff: None }
    }

    pub(crate) fn denied(&self, reason: &str) {
        self.denied.get_or_create(&self.labels(&[("reason", reason)])).inc();
    }

    pub(crate) fn cache_bytes(&self, bytes: u64) {
        self.cache_bytes.get_or_create(&self.labels(&[])).set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
