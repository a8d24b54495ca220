//! A player shaped like hls.js on a live stream.
//!
//! It starts `live_sync_segments` behind the live edge (hls.js `liveSyncDurationCount`), asks for
//! one segment at a time, in order, while less than `max_buffer_ms` is buffered ahead, and plays
//! at rate 1 from the first delivered segment on (startup time = arrival → first frame). When
//! the playhead reaches the end of the buffer it stalls until the next segment arrives; it never
//! speeds up to catch up. If the segment it needs next has left the playlist (after a long
//! stall) it jumps back to the live sync point, like hls.js does.
//!
//! Media time is aligned with the simulation clock: the segment `msn` covers media time
//! `msn × duration .. (msn + 1) × duration` and is published when that span has been captured.
//! The live latency is measured as hls.js does (`hls.latency`): the end of the newest segment of
//! the last playlist, plus the time since that playlist was loaded, minus the playhead. It is
//! what the browser tests measure; the age of the picture (`now − playhead`) is larger by how
//! late after a publication the player happens to reload its playlist (0 to one duration).

use crate::clock::{Micros, US_PER_MS, to_ms};

/// How the player behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayerConfig {
    /// Segment duration, in ms.
    pub segment_ms: u64,
    /// Segments behind the live edge where playback starts.
    pub live_sync_segments: u64,
    /// Media buffered ahead of the playhead beyond which no segment is requested, in ms.
    pub max_buffer_ms: u64,
    /// Wait before asking again for a segment that failed, in µs.
    pub retry_us: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No frame shown yet.
    Loading,
    /// The playhead moves.
    Playing,
    /// The playhead waits for media since the given time.
    Stalled(Micros),
}

/// One viewer's player, and what it experienced.
#[derive(Debug)]
pub struct Player {
    config: PlayerConfig,
    joined: Micros,
    /// Oldest and newest msn of the last playlist.
    window: Option<(u64, u64)>,
    next: Option<u64>,
    pending: Option<u64>,
    retry_at: Micros,
    state: State,
    /// The playhead was at `anchor.1` (media ms) at `anchor.0`, and moves on from there while playing.
    anchor: (Micros, u64),
    buffered_end_ms: u64,
    /// Time from arrival to the first frame, in µs.
    pub startup_us: Option<Micros>,
    /// Stalls after the first frame.
    pub stalls: u64,
    /// Time spent stalled after the first frame, in µs.
    pub stalled_us: u64,
    /// Segments the engine failed to deliver.
    pub failures: u64,
    /// Jumps back to the live sync point.
    pub skips: u64,
    latency_sum_ms: f64,
    latency_samples: u64,
    /// End of the newest segment of the last playlist (media ms) and when it was loaded.
    edge: (u64, Micros),
}

impl Player {
    /// A player that arrived at `now`.
    pub fn new(config: PlayerConfig, now: Micros) -> Self {
        Self {
            config,
            joined: now,
            window: None,
            next: None,
            pending: None,
            retry_at: 0,
            state: State::Loading,
            anchor: (now, 0),
            buffered_end_ms: 0,
            startup_us: None,
            stalls: 0,
            stalled_us: 0,
            failures: 0,
            skips: 0,
            latency_sum_ms: 0.0,
            latency_samples: 0,
            edge: (0, now),
        }
    }

    /// A playlist with segments `oldest..=newest` was loaded; returns whether the playhead
    /// jumped (the engine must hear of it).
    pub fn on_playlist(&mut self, now: Micros, oldest: u64, newest: u64) -> bool {
        self.window = Some((oldest, newest));
        self.edge = ((newest + 1) * self.config.segment_ms, now);
        let live_sync = (newest + 1).saturating_sub(self.config.live_sync_segments).max(oldest);
        let Some(next) = self.next else {
            self.next = Some(live_sync);
            return false;
        };
        if next >= oldest || self.pending.is_some() {
            return false;
        }
        self.skips += 1;
        self.next = Some(live_sync);
        if self.state == State::Loading {
            return false;
        }
        if self.state == State::Playing {
            self.state = State::Stalled(now);
            self.stalls += 1;
        }
        self.anchor = (now, live_sync * self.config.segment_ms);
        self.buffered_end_ms = self.anchor.1;
        true
    }

    /// The segment to ask for now, if any; it is then pending until delivered or failed.
    pub fn request(&mut self, now: Micros) -> Option<u64> {
        let (next, (oldest, newest)) = (self.next?, self.window?);
        let ahead_ms = self.buffered_end_ms.saturating_sub(self.position_ms(now));
        let room = self.state == State::Loading || ahead_ms < self.config.max_buffer_ms;
        if self.pending.is_some() || now < self.retry_at || !(oldest..=newest).contains(&next) || !room {
            return None;
        }
        self.pending = Some(next);
        Some(next)
    }

    /// Segment `msn` was delivered; returns `None` if it was not the one asked for, else
    /// whether playback started or resumed (the engine must hear of it).
    pub fn on_deliver(&mut self, now: Micros, msn: u64) -> Option<bool> {
        if self.pending != Some(msn) {
            return None;
        }
        self.pending = None;
        self.next = Some(msn + 1);
        let start_ms = msn * self.config.segment_ms;
        let changed = match self.state {
            State::Loading => {
                self.startup_us = Some(now - self.joined);
                self.anchor = (now, start_ms);
                true
            }
            State::Stalled(since) => {
                self.stalled_us += now - since;
                self.anchor = (now, self.anchor.1);
                true
            }
            State::Playing => false,
        };
        self.state = State::Playing;
        self.buffered_end_ms = (msn + 1) * self.config.segment_ms;
        Some(changed)
    }

    /// The engine could not deliver segment `msn`; it is asked for again after the retry wait.
    pub fn on_failed(&mut self, now: Micros, msn: u64) {
        if self.pending == Some(msn) {
            self.failures += 1;
            self.pending = None;
            self.next = Some(msn);
            self.retry_at = now + self.config.retry_us;
        }
    }

    /// When the playhead will reach the end of the buffer, while playing.
    pub fn empty_at(&self) -> Option<Micros> {
        (self.state == State::Playing)
            .then(|| self.anchor.0 + self.buffered_end_ms.saturating_sub(self.anchor.1) * US_PER_MS)
    }

    /// The time from [`Player::empty_at`] came; returns whether the player stalled.
    pub fn on_empty(&mut self, now: Micros) -> bool {
        if self.empty_at().is_none_or(|at| now < at) {
            return false;
        }
        self.state = State::Stalled(now);
        self.anchor = (now, self.buffered_end_ms);
        self.stalls += 1;
        true
    }

    /// What the agent reports: playhead (media ms), rate and end of the buffered range (media ms).
    pub fn playback(&self, now: Micros) -> (u64, f64, u64) {
        let rate = if self.state == State::Playing { 1.0 } else { 0.0 };
        (self.position_ms(now), rate, self.buffered_end_ms)
    }

    /// Records the live latency now (as hls.js measures it, see the module doc), once playback
    /// has started.
    pub fn sample_latency(&mut self, now: Micros) {
        if self.startup_us.is_some() {
            let edge = self.edge.0 + to_ms(now.saturating_sub(self.edge.1));
            self.latency_sum_ms += edge.saturating_sub(self.position_ms(now)) as f64;
            self.latency_samples += 1;
        }
    }

    /// Mean of the latency samples, in ms.
    pub fn mean_latency_ms(&self) -> Option<f64> {
        (self.latency_samples > 0).then(|| self.latency_sum_ms / self.latency_samples as f64)
    }

    /// The viewer leaves (or the run ends) at `now`: an ongoing stall is counted up to now.
    /// Returns the time watched since the first frame, in µs.
    pub fn finish(&mut self, now: Micros) -> Micros {
        if let State::Stalled(since) = self.state {
            self.stalled_us += now - since;
            self.state = State::Stalled(now);
        }
        self.startup_us.map_or(0, |startup| now.saturating_sub(self.joined + startup))
    }

    fn position_ms(&self, now: Micros) -> u64 {
        match self.state {
            State::Playing => {
                let moved = to_ms(now.saturating_sub(self.anchor.0));
                (self.anchor.1 + moved).min(self.buffered_end_ms)
            }
            State::Loading | State::Stalled(_) => self.anchor.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn player() -> Player {
        let config = PlayerConfig { segment_ms: 2_000, live_sync_segments: 3, max_buffer_ms: 6_000, retry_us: S };
        Player::new(config, 0)
    }

    #[test]
    fn starts_three_segments_behind_the_edge_and_measures_startup() {
        let mut p = player();
        assert_eq!(p.request(0), None, "no playlist yet");
        p.on_playlist(0, 10, 15);
        assert_eq!(p.request(S / 10), Some(13));
        assert_eq!(p.request(S / 10), None, "one at a time");
        assert_eq!(p.on_deliver(S / 2, 14), None, "not the one asked for");
        assert_eq!(p.on_deliver(S / 2, 13), Some(true));
        assert_eq!(p.startup_us, Some(S / 2));
        assert_eq!(p.playback(S / 2), (26_000, 1.0, 28_000));
        assert_eq!(p.request(S), Some(14));
    }

    #[test]
    fn stalls_when_the_buffer_runs_out_and_resumes_on_delivery() {
        let mut p = player();
        p.on_playlist(0, 10, 15);
        p.request(0);
        p.on_deliver(0, 13);
        assert_eq!(p.empty_at(), Some(2 * S));
        assert!(!p.on_empty(S));
        assert!(p.on_empty(2 * S));
        assert_eq!(p.playback(3 * S), (28_000, 0.0, 28_000));
        p.request(2 * S);
        assert_eq!(p.on_deliver(3 * S, 14), Some(true));
        assert_eq!((p.stalls, p.stalled_us), (1, S));
        assert_eq!(p.playback(4 * S), (29_000, 1.0, 30_000));
    }

    #[test]
    fn latency_is_the_age_of_the_picture() {
        // Arrives at 30 s, when segment 14 (media 28–30 s) has just been published.
        let config = PlayerConfig { segment_ms: 2_000, live_sync_segments: 3, max_buffer_ms: 6_000, retry_us: S };
        let mut p = Player::new(config, 30 * S);
        p.on_playlist(30 * S, 9, 14);
        p.sample_latency(30 * S);
        assert_eq!(p.mean_latency_ms(), None, "not started");
        assert_eq!(p.request(30 * S), Some(12));
        p.on_deliver(30 * S + S / 2, 12);
        p.sample_latency(31 * S);
        assert_eq!(p.mean_latency_ms(), Some(6_500.0));
    }

    #[test]
    fn latency_counts_from_the_playlist_load_as_hls_js_does() {
        // Segment 14 (media 28–30 s) was published at 30 s, but the playlist is loaded at 31 s.
        let config = PlayerConfig { segment_ms: 2_000, live_sync_segments: 3, max_buffer_ms: 6_000, retry_us: S };
        let mut p = Player::new(config, 31 * S);
        p.on_playlist(31 * S, 9, 14);
        assert_eq!(p.request(31 * S), Some(12));
        p.on_deliver(31 * S + S / 2, 12);
        p.sample_latency(32 * S);
        // Edge 30 s + 1 s since the load − playhead 24.5 s; the picture is 7.5 s old.
        assert_eq!(p.mean_latency_ms(), Some(6_500.0));
    }

    #[test]
    fn stops_asking_when_enough_is_buffered() {
        let mut p = player();
        p.on_playlist(0, 10, 20);
        for msn in 18..21 {
            assert_eq!(p.request(0), Some(msn));
            p.on_deliver(0, msn);
        }
        assert_eq!(p.request(0), None, "6 s buffered");
        assert_eq!(p.request(S), None, "nothing newer published");
    }

    #[test]
    fn a_failed_segment_is_retried_after_a_wait() {
        let mut p = player();
        p.on_playlist(0, 10, 15);
        p.request(0);
        p.on_failed(0, 13);
        assert_eq!(p.request(S / 2), None);
        assert_eq!(p.request(S), Some(13));
        assert_eq!(p.failures, 1);
    }

    #[test]
    fn jumps_to_live_when_the_next_segment_left_the_playlist() {
        let mut p = player();
        p.on_playlist(0, 10, 15);
        p.request(0);
        p.on_deliver(0, 13);
        p.on_empty(2 * S);
        assert!(p.on_playlist(3 * S, 15, 20));
        assert_eq!(p.skips, 1);
        assert_eq!(p.request(3 * S), Some(18));
        assert_eq!(p.finish(4 * S), 4 * S);
        assert_eq!(p.stalled_us, 2 * S);
    }
}
