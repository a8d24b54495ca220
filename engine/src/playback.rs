//! Where the player is, and so when each segment is needed.

use crate::Millis;

/// The last [`crate::Input::Playback`], stamped with the time it arrived.
#[derive(Debug, Clone, Default)]
pub(crate) struct Playback {
    /// When the report arrived, in engine ms.
    at: Millis,
    /// Playhead then, on the media timeline, in ms.
    position_ms: u64,
    /// Playback rate then; 0 when paused or not started.
    rate: f64,
}

impl Playback {
    /// Records a playback report received at `now`.
    pub(crate) fn update(&mut self, now: Millis, position_ms: u64, rate: f64) {
        let rate = if rate.is_finite() && rate > 0.0 { rate.min(16.0) } else { 0.0 };
        *self = Self { at: now, position_ms, rate };
    }

    /// Whether the playhead moves. Before it does, nothing has a deadline and the player's
    /// requests are urgent: startup time is what the viewer notices.
    pub(crate) fn playing(&self) -> bool {
        self.rate > 0.0
    }

    /// The playhead at `now`, extrapolated from the last report, on the media timeline in ms.
    pub(crate) fn position_at(&self, now: Millis) -> u64 {
        let moved = now.saturating_sub(self.at) as f64 * self.rate;
        // Saturating float-to-int cast.
        self.position_ms.saturating_add(moved as u64)
    }

    /// When the segment starting at `start_ms` on the media timeline must be complete, in engine
    /// ms: `now + (start − playhead) / rate − margin`, extrapolated from the last report.
    /// `None` while not playing.
    pub(crate) fn deadline(&self, start_ms: u64, margin_ms: u64) -> Option<Millis> {
        if !self.playing() {
            return None;
        }
        let ahead_ms = (start_ms as f64 - self.position_ms as f64) / self.rate;
        let at = self.at as f64 + ahead_ms - margin_ms as f64;
        // Saturating float-to-int cast: a deadline before the clock's origin is simply "now".
        Some(at.max(0.0) as Millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_deadline_before_playback_starts() {
        let mut p = Playback::default();
        assert_eq!(p.deadline(10_000, 1_500), None);
        p.update(100, 0, 0.0);
        assert!(!p.playing());
        assert_eq!(p.deadline(10_000, 1_500), None);
    }

    #[test]
    fn deadline_is_play_time_minus_margin() {
        let mut p = Playback::default();
        p.update(1_000, 20_000, 1.0);
        assert_eq!(p.deadline(26_000, 1_500), Some(1_000 + 6_000 - 1_500));
    }

    #[test]
    fn deadline_scales_with_rate_and_saturates_in_the_past() {
        let mut p = Playback::default();
        p.update(1_000, 20_000, 2.0);
        assert_eq!(p.deadline(26_000, 500), Some(1_000 + 3_000 - 500));
        assert_eq!(p.deadline(0, 500), Some(0));
    }

    #[test]
    fn nonsense_rates_count_as_paused() {
        let mut p = Playback::default();
        p.update(0, 0, f64::NAN);
        assert!(!p.playing());
        p.update(0, 0, -1.0);
        assert!(!p.playing());
    }
}
