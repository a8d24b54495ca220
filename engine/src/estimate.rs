//! Measured speeds: how long the CDN takes to deliver a segment, how fast each peer sends to
//! us, and how much our own uplink can still carry.
//!
//! Every estimate is an exponentially weighted moving average, so it follows a changing
//! network within a few samples and one outlier does not swing it.

use crate::Millis;

/// Weight of a new sample in every moving average.
const ALPHA: f64 = 0.3;

/// Blends `sample` into `avg` (the first sample is taken as is).
pub(crate) fn ewma(avg: Option<f64>, sample: f64) -> f64 {
    avg.map_or(sample, |a| a + ALPHA * (sample - a))
}

/// How long an HTTP fetch from the CDN takes: time to first byte, then throughput.
#[derive(Debug, Clone)]
pub(crate) struct HttpEstimate {
    /// Time from the request to the first body byte, in ms.
    ttfb_ms: Option<f64>,
    /// Mean deviation of the time to first byte, in ms.
    ttfb_dev_ms: f64,
    /// Body throughput after the first byte, in bytes per ms.
    bytes_per_ms: Option<f64>,
    /// Fetches measured so far.
    samples: u32,
    /// Throughput assumed before measurements, in bytes per ms.
    prior_bytes_per_ms: f64,
    /// How much longer than estimated fetches took lately (≥ 1): rises at once with a late
    /// fetch, and decays a tenth of the way back per fetch on time. Catches what the averages
    /// miss, like a downlink shared with peer transfers.
    correction: f64,
}

/// Until this many fetches were measured, the measured estimate is not trusted as it is.
const TRUSTED_SAMPLES: u32 = 3;

/// Until `TRUSTED_SAMPLES` fetches were measured, the measured estimate is multiplied by this.
const UNTRUSTED_FACTOR: f64 = 2.0;

/// Assumed before the first fetch: 300 ms to first byte.
const PRIOR_TTFB_MS: f64 = 300.0;

/// Longest an estimate may claim a fetch takes, in ms (a broken measurement must not make
/// every segment urgent forever).
const MAX_FETCH_MS: f64 = 20_000.0;

impl HttpEstimate {
    /// An estimate that assumes `prior_bytes_per_s` until it has measured fetches.
    pub(crate) fn new(prior_bytes_per_s: u64) -> Self {
        let prior_bytes_per_ms = (prior_bytes_per_s as f64 / 1_000.0).max(0.001);
        Self { ttfb_ms: None, ttfb_dev_ms: 0.0, bytes_per_ms: None, samples: 0, prior_bytes_per_ms, correction: 1.0 }
    }

    /// Records a finished fetch: requested at `started`, first byte at `first_byte`, last byte
    /// at `done` (engine ms), `bytes` long, estimated to take `predicted_ms`.
    pub(crate) fn record(&mut self, started: Millis, first_byte: Millis, done: Millis, bytes: u64, predicted_ms: u64) {
        let took = done.saturating_sub(started) as f64;
        let ratio = (took / predicted_ms.max(1) as f64).clamp(1.0, 10.0);
        self.correction = (self.correction + 0.1 * (1.0 - self.correction)).max(ratio);
        let ttfb = first_byte.saturating_sub(started) as f64;
        self.samples = self.samples.saturating_add(1);
        if let Some(avg) = self.ttfb_ms {
            self.ttfb_dev_ms = ewma(Some(self.ttfb_dev_ms), (ttfb - avg).abs());
        }
        self.ttfb_ms = Some(ewma(self.ttfb_ms, ttfb));
        // A body that took under 20 ms says little about throughput; keep the estimate.
        let body_ms = done.saturating_sub(first_byte) as f64;
        if body_ms >= 20.0 && bytes > 0 {
            let rate = bytes as f64 / body_ms;
            self.bytes_per_ms = Some(ewma(self.bytes_per_ms, rate));
        }
    }

    /// Time to fetch `bytes` over HTTP that is rarely exceeded, in ms: the time to first byte
    /// plus twice its mean deviation (as TCP bounds a round trip), then the body at the
    /// measured throughput with a quarter more for a downlink shared with peer transfers.
    pub(crate) fn time_ms(&self, bytes: u64) -> u64 {
        let ttfb = self.ttfb_ms.unwrap_or(PRIOR_TTFB_MS) + 2.0 * self.ttfb_dev_ms;
        let rate = self.bytes_per_ms.unwrap_or(self.prior_bytes_per_ms).max(0.001);
        let mut ms = (ttfb + 1.25 * bytes as f64 / rate) * self.correction;
        if self.samples == 0 {
            ms = ms.max(PRIOR_TTFB_MS + 1.25 * bytes as f64 / self.prior_bytes_per_ms);
        } else if self.samples < TRUSTED_SAMPLES {
            // A first fetch or two say little (a lucky fast one must not make us bold): twice
            // what they showed. Not the prior: a joiner's first fetch tells it the CDN is fast,
            // and a pessimistic prior would send its next segments to the CDN before any peer
            // had a chance.
            ms *= UNTRUSTED_FACTOR;
        }
        // Saturating float-to-int cast of a value bounded just above.
        ms.min(MAX_FETCH_MS) as u64
    }
}

/// The stream's byte rate, to guess the size of a segment not seen yet.
#[derive(Debug, Clone)]
pub(crate) struct SizeEstimate {
    /// Segment bytes per ms of media (moving average over complete segments).
    bytes_per_media_ms: Option<f64>,
    /// Assumed before the first complete segment, in bytes per ms of media.
    prior_bytes_per_media_ms: f64,
}

impl SizeEstimate {
    /// An estimate that assumes a stream of `prior_bytes_per_s` until it has seen segments.
    pub(crate) fn new(prior_bytes_per_s: u64) -> Self {
        Self { bytes_per_media_ms: None, prior_bytes_per_media_ms: prior_bytes_per_s as f64 / 1_000.0 }
    }

    /// Records a complete segment of `bytes` bytes playing for `duration_ms`.
    pub(crate) fn record(&mut self, bytes: u64, duration_ms: u64) {
        if duration_ms > 0 {
            self.bytes_per_media_ms = Some(ewma(self.bytes_per_media_ms, bytes as f64 / duration_ms as f64));
        }
    }

    /// Expected size of a segment playing for `duration_ms`, in bytes.
    pub(crate) fn guess(&self, duration_ms: u64) -> u64 {
        // Saturating float-to-int cast.
        (self.bytes_per_media_ms.unwrap_or(self.prior_bytes_per_media_ms) * duration_ms as f64) as u64
    }
}

/// Our uplink: a queue of bytes handed to the shell, drained at the measured rate. Lets the
/// engine refuse a request it cannot serve before the requester's deadline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Uplink {
    /// Measured (or configured) uplink, in bytes per ms; `None` until known.
    bytes_per_ms: Option<f64>,
    /// Bytes queued and not yet sent, as of `at`.
    queued: f64,
    /// When `queued` was last brought up to date, in engine ms.
    at: Millis,
}

impl Uplink {
    /// An uplink known to carry `bytes_per_s` (0: unknown).
    pub(crate) fn with_rate(bytes_per_s: u64) -> Self {
        let bytes_per_ms = (bytes_per_s > 0).then(|| bytes_per_s as f64 / 1_000.0);
        Self { bytes_per_ms, ..Self::default() }
    }

    /// Records a measurement of the uplink, in bytes per second.
    pub(crate) fn measured(&mut self, now: Millis, bytes_per_s: u64) {
        self.drain(now);
        if bytes_per_s > 0 {
            self.bytes_per_ms = Some(ewma(self.bytes_per_ms, bytes_per_s as f64 / 1_000.0));
        }
    }

    /// The uplink in bytes per second, when known.
    pub(crate) fn bytes_per_s(&self) -> Option<u64> {
        // Saturating float-to-int cast.
        self.bytes_per_ms.map(|r| (r * 1_000.0) as u64)
    }

    /// The shell says `queued` bytes still wait to be sent (an exact reading replaces the model).
    pub(crate) fn backlog(&mut self, now: Millis, queued: u64) {
        self.at = now.max(self.at);
        self.queued = queued as f64;
    }

    fn drain(&mut self, now: Millis) {
        if let Some(rate) = self.bytes_per_ms {
            let elapsed = now.saturating_sub(self.at) as f64;
            self.queued = (self.queued - elapsed * rate).max(0.0);
        }
        self.at = now.max(self.at);
    }

    /// Counts `bytes` handed to the shell at `now`.
    pub(crate) fn sent(&mut self, now: Millis, bytes: u64) {
        self.drain(now);
        self.queued += bytes as f64;
    }

    /// When `bytes` more handed over at `now` would be sent out, in ms from now; `None` when
    /// the uplink is unknown.
    pub(crate) fn delay_ms(&mut self, now: Millis, bytes: u64) -> Option<u64> {
        self.drain(now);
        let rate = self.bytes_per_ms?.max(0.001);
        // Saturating float-to-int cast.
        Some(((self.queued + bytes as f64) / rate) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_time_uses_priors_then_measurements() {
        let mut h = HttpEstimate::new(500_000);
        assert_eq!(h.time_ms(400_000), 300 + 1_000, "a quarter more than 800 ms at 500 kB/s");
        h.record(0, 100, 600, 1_000_000, 10_000);
        assert_eq!(h.time_ms(800_000), 2 * (100 + 500), "one fetch is trusted at half its speed");
        h.record(0, 100, 600, 1_000_000, 10_000);
        h.record(0, 100, 600, 1_000_000, 10_000);
        assert_eq!(h.time_ms(800_000), 100 + 500);
        h.record(0, 200, 210, 1_000, 10_000);
        // ttfb 100 + 0.3 × 100 = 130, deviation 0.3 × 100 = 30 → 130 + 2 × 30.
        assert_eq!(h.time_ms(0), 190, "quick bodies update the time to first byte only");
    }

    #[test]
    fn a_fetch_slower_than_estimated_makes_the_next_estimates_careful() {
        let mut h = HttpEstimate::new(500_000);
        for _ in 0..3 {
            h.record(0, 100, 600, 1_000_000, 10_000);
        }
        assert_eq!(h.time_ms(800_000), 600);
        h.record(0, 100, 1_200, 1_000_000, 600);
        // Throughput 2 000 → 1 673 bytes/ms; twice as careful after a fetch twice as slow.
        assert_eq!(h.time_ms(800_000), 1_395);
    }

    #[test]
    fn uplink_queue_drains_at_the_measured_rate() {
        let mut u = Uplink::default();
        assert_eq!(u.delay_ms(0, 1_000), None);
        u.measured(0, 1_000_000);
        u.sent(0, 500_000);
        assert_eq!(u.delay_ms(0, 500_000), Some(1_000));
        assert_eq!(u.delay_ms(250, 0), Some(250));
        assert_eq!(u.delay_ms(10_000, 0), Some(0));
        u.backlog(10_000, 2_000);
        assert_eq!(u.delay_ms(10_000, 0), Some(2));
    }
}
