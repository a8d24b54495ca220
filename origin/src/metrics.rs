//! The origin's Prometheus metrics, registered on the shared [`service::Metrics`] registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use service::Metrics;

type Labels = [(&'static str, &'static str); 1];

/// Handles on the origin's metrics; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginMetrics {
    /// Bytes accepted by `PUT`.
    pub(crate) ingest_bytes: Counter,
    /// Objects accepted by `PUT`, by `kind` (`playlist` or `segment`).
    pub(crate) ingest_objects: Family<Labels, Counter>,
    /// Refused `PUT`/`DELETE` requests, by `reason` (the error code).
    pub(crate) ingest_rejected: Family<Labels, Counter>,
    /// Accepted `DELETE` requests.
    pub(crate) deletes: Counter,
    /// `GET`/`HEAD` requests, by response `status`.
    pub(crate) gets: Family<Labels, Counter>,
    /// Body bytes sent in answer to `GET`.
    pub(crate) egress_bytes: Counter,
    /// Streams held.
    pub(crate) streams: Gauge,
    /// Objects held, expiring ones included.
    pub(crate) objects: Gauge,
    /// Bytes held.
    pub(crate) stored_bytes: Gauge,
    /// DVR and VOD playlists rendered (each rendering is then shared until its log changes).
    pub(crate) dvr_renders: Counter,
}

impl OriginMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub(crate) fn register(registry: &Metrics) -> Self {
        let m = Self::default();
        registry.register("origin_ingest_bytes", "Bytes accepted by PUT", m.ingest_bytes.clone());
        registry.register("origin_ingest_objects", "Objects accepted by PUT, by kind", m.ingest_objects.clone());
        registry.register(
            "origin_ingest_rejected",
            "Refused PUT/DELETE requests, by reason",
            m.ingest_rejected.clone(),
        );
        registry.register("origin_deletes", "Accepted DELETE requests", m.deletes.clone());
        registry.register("origin_get_requests", "GET/HEAD requests, by status", m.gets.clone());
        registry.register("origin_egress_bytes", "Body bytes sent in answer to GET", m.egress_bytes.clone());
        registry.register("origin_streams", "Streams held", m.streams.clone());
        registry.register("origin_objects", "Objects held, expiring ones included", m.objects.clone());
        registry.register("origin_stored_bytes", "Bytes held", m.stored_bytes.clone());
        registry.register(
            "origin_dvr_renders",
            "DVR and VOD playlists rendered (shared until their log changes)",
            m.dvr_renders.clone(),
        );
        m
    }

    /// Sets the gauges from the store's `(streams, objects, bytes)`.
    pub(crate) fn set_store(&self, (streams, objects, bytes): (usize, usize, u64)) {
        self.streams.set(i64::try_from(streams).unwrap_or(i64::MAX));
        self.objects.set(i64::try_from(objects).unwrap_or(i64::MAX));
        self.stored_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }
}
