//! Parses arbitrary text as a polled media playlist against a known window, as the agent's early
//! reload does: it must never panic, and whatever it yields must be a well-formed window (msns
//! increasing, starts never going backwards, the known segments where the page put them).
#![no_main]

use client::fuzzing::media_playlist_window;
use engine::SegmentInfo;
use libfuzzer_sys::fuzz_target;

/// The window hls.js gave last: msns 100..=104, 2 s each, from 200 s on its timeline.
fn known() -> Vec<SegmentInfo> {
    (100..105)
        .map(|msn| SegmentInfo {
            msn,
            start_ms: msn * 2_000,
            duration_ms: 2_000,
            url: format!("https://cdn.test/live/v0/{msn}.ts"),
            byte_len: None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let known = known();
    let Ok(window) = media_playlist_window(text, &known, |uri| Some(format!("https://cdn.test/live/v0/{uri}")))
    else {
        return;
    };
    for pair in window.windows(2) {
        assert!(pair[0].msn < pair[1].msn, "msns must increase: {window:?}");
        assert!(pair[0].start_ms <= pair[1].start_ms, "starts must not go backwards: {window:?}");
    }
    for seg in &window {
        if let Some(k) = known.iter().find(|k| k.msn == seg.msn) {
            assert_eq!((seg.start_ms, seg.duration_ms), (k.start_ms, k.duration_ms), "{window:?}");
        }
    }
});
