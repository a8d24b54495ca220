//! The uplink-capacity bound: how much of the stream the viewers present could upload at best.

use crate::clock::Micros;

/// Running integrals of the uplink-capacity bound ([`crate::Report::cap_bound`]), updated on
/// every change of the set of viewers present. Between two changes the viewer count n and the
/// sum Σu of their uplinks are constant, so the integrals grow by the interval times the rates.
#[derive(Debug, Default)]
pub(crate) struct Capacity {
    /// Viewers present now.
    present: u32,
    /// Sum of the present viewers' uplinks, in bytes/s.
    uplinks: f64,
    /// When `present` last changed, in µs (`None` before the first arrival).
    since: Option<Micros>,
    /// ∫ min((n − 1)·b, Σu) dt so far: the most peers could have uploaded, in bytes.
    numerator: f64,
    /// ∫ n·b dt so far: what the viewers present watched, in bytes.
    denominator: f64,
}

impl Capacity {
    /// A viewer with an uplink of `up_bytes_per_s` arrives at `now`; `stream_bytes_per_s` is
    /// the stream bitrate b in bytes/s.
    pub(crate) fn join(&mut self, now: Micros, up_bytes_per_s: f64, stream_bytes_per_s: f64) {
        self.advance(now, stream_bytes_per_s);
        self.present += 1;
        self.uplinks += up_bytes_per_s;
    }

    /// A viewer with an uplink of `up_bytes_per_s` leaves at `now`.
    pub(crate) fn leave(&mut self, now: Micros, up_bytes_per_s: f64, stream_bytes_per_s: f64) {
        self.advance(now, stream_bytes_per_s);
        self.present = self.present.saturating_sub(1);
        // An empty swarm has no uplink: drop any rounding left over by the subtractions.
        self.uplinks = if self.present == 0 { 0.0 } else { (self.uplinks - up_bytes_per_s).max(0.0) };
    }

    /// Adds the interval since the last change, at the current rates, to the integrals.
    pub(crate) fn advance(&mut self, now: Micros, stream_bytes_per_s: f64) {
        if let Some(since) = self.since {
            let dt_s = now.saturating_sub(since) as f64 / 1e6;
            let n = f64::from(self.present);
            let demand = f64::from(self.present.saturating_sub(1)) * stream_bytes_per_s;
            self.numerator += dt_s * demand.min(self.uplinks);
            self.denominator += dt_s * n * stream_bytes_per_s;
        }
        self.since = Some(now);
    }

    /// The bound so far, 0..=1 (0 before anyone watched).
    pub(crate) fn bound(&self) -> f64 {
        if self.denominator > 0.0 { self.numerator / self.denominator } else { 0.0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: f64 = 312_500.0;

    #[test]
    fn fast_uplinks_give_one_minus_one_over_n_weighted_by_time() {
        let mut cap = Capacity::default();
        cap.join(0, 10e6, B);
        cap.join(10_000_000, 10e6, B); // 10 s alone: nothing to share
        cap.advance(30_000_000, B); // 20 s with two viewers: 1/2 each
        // (0 + 20·b) / (10·b + 40·b)
        assert!((cap.bound() - 20.0 / 50.0).abs() < 1e-12, "{cap:?}");
    }

    #[test]
    fn slow_uplinks_cap_the_share_and_leavers_take_theirs_away() {
        let mut cap = Capacity::default();
        for _ in 0..4 {
            cap.join(0, B / 2.0, B);
        }
        cap.advance(10_000_000, B);
        // min(3b, 2b) / 4b
        assert!((cap.bound() - 0.5).abs() < 1e-12, "{cap:?}");
        cap.leave(10_000_000, B / 2.0, B);
        cap.join(10_000_000, 10e6, B); // a churn replacement with a fast uplink
        cap.advance(20_000_000, B);
        // (10·2b + 10·3b) / (10·4b + 10·4b)
        assert!((cap.bound() - 50.0 / 80.0).abs() < 1e-12, "{cap:?}");
    }

    #[test]
    fn nothing_watched_is_zero_and_the_last_leaver_clears_the_uplinks() {
        let mut cap = Capacity::default();
        assert_eq!(cap.bound(), 0.0);
        cap.join(5, 0.1, B);
        cap.leave(5, 0.3, B);
        assert_eq!((cap.present, cap.uplinks), (0, 0.0));
        cap.advance(1_000_000, B);
        assert_eq!(cap.bound(), 0.0);
    }
}
