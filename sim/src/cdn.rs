//! The virtual CDN: a live HLS stream that publishes one segment every target duration.
//!
//! The playlist window holds the newest `window_segments` segments. Segments stay fetchable for
//! another window after they leave the playlist (as on a real origin, for lagging players),
//! then answer 404. Segment sizes are `bitrate × duration / 8`, varied per segment, and the
//! content is pseudo-random bytes fixed by (seed, msn), so every copy can be checked.

use std::collections::VecDeque;

use engine::SegmentInfo;

use crate::config::SimConfig;

/// One published segment.
#[derive(Debug)]
struct Published {
    msn: u64,
    /// Its content, in simulated bytes (`byte_scale` real bytes each).
    body: Vec<u8>,
}

/// The live stream at the CDN.
#[derive(Debug)]
pub struct Cdn {
    segment_ms: u64,
    window: u64,
    bitrate_bps: u64,
    byte_scale: u64,
    jitter: f64,
    seed: u64,
    /// Published segments still fetchable, oldest first.
    published: VecDeque<Published>,
    /// The playlist, cached between publications.
    playlist: Vec<SegmentInfo>,
}

impl Cdn {
    /// A stream that has been running long enough that its newest segment is `newest`.
    pub fn new(config: &SimConfig, newest: u64) -> Self {
        let mut cdn = Self {
            segment_ms: config.segment_duration_ms,
            window: config.window_segments,
            bitrate_bps: config.bitrate_bps,
            byte_scale: config.byte_scale,
            jitter: config.segment_size_jitter,
            seed: config.seed,
            published: VecDeque::new(),
            playlist: Vec::new(),
        };
        for msn in newest.saturating_sub(2 * config.window_segments - 1)..=newest {
            cdn.add(msn);
        }
        cdn.refresh();
        cdn
    }

    /// Publishes the next segment.
    pub fn publish(&mut self) {
        let next = self.newest() + 1;
        self.add(next);
        while self.published.len() as u64 > 2 * self.window {
            self.published.pop_front();
        }
        self.refresh();
    }

    /// Msn of the newest segment.
    pub fn newest(&self) -> u64 {
        self.published.back().map_or(0, |p| p.msn)
    }

    /// Msn of the oldest segment in the playlist.
    pub fn oldest_listed(&self) -> u64 {
        self.playlist.first().map_or(0, |s| s.msn)
    }

    /// The playlist's window, oldest first.
    pub fn playlist(&self) -> &[SegmentInfo] {
        &self.playlist
    }

    /// Content of segment `msn` in simulated bytes; `None` when not (or no longer) served.
    pub fn body(&self, msn: u64) -> Option<&[u8]> {
        let first = self.published.front()?.msn;
        let index = usize::try_from(msn.checked_sub(first)?).ok()?;
        self.published.get(index).map(|p| p.body.as_slice())
    }

    /// Simulated bytes of segment `msn`: `bitrate × duration / 8` real bytes, ± the jitter.
    pub fn size(&self, msn: u64) -> u64 {
        let nominal = self.bitrate_bps as f64 / 8.0 * self.segment_ms as f64 / 1_000.0;
        let u = (mix(self.seed ^ mix(msn)) >> 11) as f64 / (1u64 << 53) as f64;
        let real = nominal * (1.0 + self.jitter * (2.0 * u - 1.0));
        // Validated: real is positive and below MAX_SEGMENT_BYTES × byte_scale.
        ((real / self.byte_scale as f64).ceil() as u64).max(1)
    }

    fn add(&mut self, msn: u64) {
        let len = self.size(msn);
        let mut x = mix(self.seed.wrapping_add(msn)) | 1;
        let body = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        self.published.push_back(Published { msn, body });
    }

    fn refresh(&mut self) {
        let newest = self.newest();
        let first = newest.saturating_sub(self.window - 1);
        self.playlist = (first..=newest).map(|msn| self.info(msn)).collect();
    }

    fn info(&self, msn: u64) -> SegmentInfo {
        SegmentInfo {
            msn,
            start_ms: msn * self.segment_ms,
            duration_ms: self.segment_ms,
            url: format!("https://cdn.sim/live/r0/{msn}.ts"),
            byte_len: None,
        }
    }
}

/// SplitMix64's finalizer: a fixed, well-spread hash of a u64.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimConfig {
        SimConfig { window_segments: 4, bitrate_bps: 2_048_000, byte_scale: 64, ..SimConfig::default() }
    }

    fn cdn() -> Cdn {
        Cdn::new(&config(), 20)
    }

    #[test]
    fn the_playlist_is_the_newest_window() {
        let mut cdn = cdn();
        let msns: Vec<u64> = cdn.playlist().iter().map(|s| s.msn).collect();
        assert_eq!(msns, vec![17, 18, 19, 20]);
        cdn.publish();
        assert_eq!((cdn.oldest_listed(), cdn.newest()), (18, 21));
        assert_eq!(cdn.playlist()[3].start_ms, 21 * 2_000);
    }

    #[test]
    fn segments_outlive_the_playlist_by_one_window() {
        let mut cdn = cdn();
        assert!(cdn.body(13).is_some());
        assert!(cdn.body(12).is_none());
        assert!(cdn.body(21).is_none());
        cdn.publish();
        assert!(cdn.body(13).is_none());
        assert!(cdn.body(21).is_some());
    }

    #[test]
    fn sizes_follow_the_bitrate_and_content_is_fixed() {
        let cdn = cdn();
        // 2.048 Mbit/s × 2 s = 512 000 real bytes = 8 000 simulated, ± 10 %.
        for msn in 13..=20 {
            let len = cdn.body(msn).unwrap().len() as u64;
            assert_eq!(len, cdn.size(msn));
            assert!((7_200..=8_800).contains(&len), "{len}");
        }
        assert_eq!(cdn.body(15), Cdn::new(&config(), 20).body(15));
        assert_ne!(cdn.body(15), cdn.body(16));
    }
}
