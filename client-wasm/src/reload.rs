//! Early playlist reload (`engine::Output::ReloadPlaylist`): the engine's designated seeder of
//! the next segment loads the media playlist (an eighth of a target duration after each answer,
//! at least 250 ms: [`engine::playlist_poll_interval_ms`]) until it lists that
//! segment, so that it fetches the segment from the CDN when the origin publishes it rather than
//! at the player's next reload, 0 to 1 target duration later (see the engine's `reload` module).
//!
//! The playlist's URL is the one the page gave with `agent.playlist(rendition, segments, url)`.
//! Each answer is parsed with `m3u8-rs` into the window the page would have given for it
//! ([`window`], as the adapter's `segmentsOf` describes hls.js's parsed playlist), and once it
//! lists the segment it goes to the engine through [`driver::playlist`], so that the stored window
//! and the engine's agree. One loop per rendition runs at a time; a newer segment retargets it.

use std::cell::RefCell;
use std::rc::Weak;

use engine::SegmentInfo;

use crate::driver::{self, Mode, Shell, ShellRef};
use crate::http::{self, HttpError};
use crate::js;
use crate::vec_map::VecMap;
use crate::wire::{self, MAX_PLAYLIST_SEGMENTS};

/// Polling stops this long after one target duration from the ask, in ms (the target duration
/// is taken as the duration of the rendition's newest known segment).
const GRACE_MS: u64 = 1_000;

/// Largest media playlist read, in bytes; a larger one ends the loop.
pub(crate) const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;

/// Longest playlist URL kept, in bytes.
const MAX_URL_BYTES: usize = 16 * 1024;

/// Why a polled playlist gave no window.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistError {
    /// Larger than [`MAX_PLAYLIST_BYTES`].
    TooLarge,
    /// Not a media playlist `m3u8-rs` can parse, or its sequence numbers overflow.
    Malformed,
    /// No segment in common with the known window: nothing to anchor its timeline on.
    NoOverlap,
}

impl std::fmt::Display for PlaylistError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::TooLarge => "playlist too large",
            Self::Malformed => "not a media playlist",
            Self::NoOverlap => "playlist shares no segment with the known window",
        })
    }
}

/// The window of the media playlist `text`, shaped like the page's `agent.playlist()` segments
/// (the adapter's `segmentsOf` of hls.js's parsed playlist), oldest first, at most
/// [`MAX_PLAYLIST_SEGMENTS`] (the newest).
///
/// - Segment i has media sequence number `EXT-X-MEDIA-SEQUENCE` + i (RFC 8216 §6.3.2).
/// - `url` is its URI resolved by `resolve` (against the playlist's URL); segments with an
///   unresolvable URI or an `EXT-X-BYTERANGE` are left out, as the adapter leaves them out.
/// - `duration_ms` is `EXTINF` in whole ms, `start_ms` is on the player's timeline: segments of
///   `known` (the window the page gave, sorted by msn) keep their start and duration; the others
///   follow on from their neighbours, `start_ms` = previous `start_ms` + previous `duration_ms`.
///
/// # Errors
/// [`PlaylistError`] when `text` is too large, not a media playlist, or shares no msn with `known`.
pub fn window(
    text: &str,
    known: &[SegmentInfo],
    resolve: impl Fn(&str) -> Option<String>,
) -> Result<Vec<SegmentInfo>, PlaylistError> {
    if text.len() > MAX_PLAYLIST_BYTES {
        return Err(PlaylistError::TooLarge);
    }
    let playlist = m3u8_rs::parse_media_playlist_res(text.as_bytes()).map_err(|_| PlaylistError::Malformed)?;
    let known_of = |msn: u64| known.binary_search_by_key(&msn, |s| s.msn).ok().and_then(|i| known.get(i));
    // Every listed segment's msn, duration and known entry, byte ranges included: they take
    // their place on the timeline even though they are not handed over.
    let mut all = Vec::with_capacity(playlist.segments.len());
    for (i, segment) in playlist.segments.iter().enumerate() {
        let msn = u64::try_from(i)
            .ok()
            .and_then(|i| playlist.media_sequence.checked_add(i))
            .ok_or(PlaylistError::Malformed)?;
        let known = known_of(msn);
        let duration_ms = known.map_or_else(|| duration_ms(segment.duration), |k| k.duration_ms);
        all.push((msn, duration_ms, known));
    }
    let anchor = all.iter().position(|(_, _, known)| known.is_some()).ok_or(PlaylistError::NoOverlap)?;
    let mut starts = vec![0; all.len()];
    starts[anchor] = all[anchor].2.map_or(0, |k| k.start_ms);
    for i in (0..anchor).rev() {
        starts[i] = starts[i + 1].saturating_sub(all[i].1);
    }
    for i in anchor + 1..all.len() {
        starts[i] = match all[i].2 {
            Some(k) => k.start_ms,
            None => starts[i - 1].saturating_add(all[i - 1].1),
        };
    }
    let mut out = Vec::with_capacity(all.len());
    for ((segment, (msn, duration_ms, known)), start_ms) in playlist.segments.iter().zip(all).zip(starts) {
        if segment.byte_range.is_some() || segment.uri.is_empty() {
            continue;
        }
        let Some(url) = resolve(&segment.uri) else { continue };
        out.push(SegmentInfo { msn, start_ms, duration_ms, url, byte_len: known.and_then(|k| k.byte_len) });
    }
    let skip = out.len().saturating_sub(MAX_PLAYLIST_SEGMENTS);
    out.drain(..skip);
    Ok(out)
}

/// `EXTINF` seconds in whole ms, rounded as the adapter rounds hls.js's durations; 0 when not finite.
fn duration_ms(seconds: f32) -> u64 {
    wire::to_u64((f64::from(seconds) * 1_000.0).round()).unwrap_or(0)
}

/// The shell's side of early reloads: each rendition's playlist URL, and the running polls.
#[derive(Default)]
pub(crate) struct Reloads {
    /// The media playlist URL of each rendition, as the page last gave it.
    urls: VecMap<u32, String>,
    /// The segment each running poll loop waits for, by rendition.
    polls: VecMap<u32, Target>,
}

/// What a poll loop waits for.
#[derive(Debug, Clone, Copy)]
struct Target {
    /// The media sequence number the playlist must list.
    msn: u64,
    /// No new poll is sent after this, in ms on `performance.now()`.
    until_ms: u64,
    /// Wait between an answer and the next poll, in ms.
    interval_ms: u32,
}

impl Reloads {
    /// Records the media playlist URL of `rendition` (at most [`driver::MAX_RENDITIONS`] are kept,
    /// URLs over 16 KiB are ignored).
    pub(crate) fn set_url(&mut self, rendition: u32, url: &str) {
        if url.len() > MAX_URL_BYTES {
            return;
        }
        if let Some(known) = self.urls.get_mut(&rendition) {
            if known != url {
                url.clone_into(known);
            }
        } else if self.urls.len() < driver::MAX_RENDITIONS {
            self.urls.insert(rendition, url.to_owned());
        }
    }
}

/// Polls the playlist of `rendition` until it lists `msn` (the engine's
/// `Output::ReloadPlaylist`). Does nothing without a playlist URL or a known window; retargets
/// the running loop of `rendition` when `msn` is newer than its target.
pub(crate) fn start(shell: &ShellRef, rendition: u32, msn: u64) {
    let weak = {
        let mut s = shell.borrow_mut();
        let Some(newest) = s.playlists.get(&rendition).and_then(|w| w.last()) else { return };
        if newest.msn >= msn || !s.reloads.urls.contains_key(&rendition) {
            return;
        }
        let until_ms = js::now_ms().saturating_add(newest.duration_ms).saturating_add(GRACE_MS);
        let interval_ms = u32::try_from(engine::playlist_poll_interval_ms(newest.duration_ms)).unwrap_or(u32::MAX);
        let target = Target { msn, until_ms, interval_ms };
        if let Some(running) = s.reloads.polls.get_mut(&rendition) {
            if msn > running.msn {
                *running = target;
            }
            return;
        }
        s.reloads.polls.insert(rendition, target);
        s.weak()
    };
    wasm_bindgen_futures::spawn_local(poll_loop(weak, rendition));
}

/// What to do after an answer.
enum Step {
    /// Ask again after this many ms.
    Again(u32),
    /// The loop is over; hand this window to the engine if any.
    Done(Option<Vec<SegmentInfo>>),
}

async fn poll_loop(weak: Weak<RefCell<Shell>>, rendition: u32) {
    loop {
        let Some((url, timeout_ms)) = next_poll(&weak, rendition) else { return };
        let answer = http::get_text(&url, timeout_ms, MAX_PLAYLIST_BYTES).await;
        let Some(shell) = weak.upgrade() else { return };
        let wait_ms = match answered(&shell, rendition, &url, answer) {
            Step::Again(wait_ms) => wait_ms,
            Step::Done(Some(segments)) => return driver::playlist(&shell, rendition, segments),
            Step::Done(None) => return,
        };
        drop(shell);
        js::sleep(wait_ms).await;
    }
}

/// The URL to poll and the timeout, or `None` (and the loop ends) when the agent is gone, the
/// URL was dropped, or the player's own reload already listed the target.
fn next_poll(weak: &Weak<RefCell<Shell>>, rendition: u32) -> Option<(String, u32)> {
    let shell = weak.upgrade()?;
    let mut s = shell.borrow_mut();
    let target = s.reloads.polls.get(&rendition).copied()?;
    let listed = s.playlists.get(&rendition).and_then(|w| w.last()).is_some_and(|n| n.msn >= target.msn);
    let url = s.reloads.urls.get(&rendition).cloned();
    match url {
        Some(url) if s.mode != Mode::Destroyed && !listed => Some((url, s.options.http_timeout_ms)),
        _ => {
            s.reloads.polls.remove(&rendition);
            None
        }
    }
}

/// Counts the poll and decides from its `answer` whether the target is listed, to poll again, or
/// to give up (the time is up, or the answer is too large, malformed or unanchored).
fn answered(shell: &ShellRef, rendition: u32, url: &str, answer: Result<String, HttpError>) -> Step {
    let mut s = shell.borrow_mut();
    s.counters.playlist_polls = s.counters.playlist_polls.saturating_add(1);
    let Some(target) = s.reloads.polls.get(&rendition).copied() else { return Step::Done(None) };
    let known = s.playlists.get(&rendition).map_or(&[][..], Vec::as_slice);
    // The player's own reload may have listed it meanwhile.
    let listed = known.last().is_some_and(|n| n.msn >= target.msn);
    let step = match answer {
        _ if listed => Step::Done(None),
        Ok(text) => match window(&text, known, |uri| resolve(uri, url)) {
            Ok(segments) if segments.last().is_some_and(|n| n.msn >= target.msn) => Step::Done(Some(segments)),
            Ok(_) => Step::Again(target.interval_ms),
            Err(e) => {
                s.log(&format!("playlist poll of rendition {rendition}: {e}"));
                Step::Done(None)
            }
        },
        // Too large or not text.
        Err(HttpError::Body) => Step::Done(None),
        // No answer this time (network, timeout, status): ask again while there is time.
        Err(_) => Step::Again(target.interval_ms),
    };
    let step = match step {
        Step::Again(wait_ms) if js::now_ms().saturating_add(u64::from(wait_ms)) < target.until_ms => {
            Step::Again(wait_ms)
        }
        Step::Again(_) => Step::Done(None),
        done => done,
    };
    if matches!(step, Step::Done(_)) {
        s.reloads.polls.remove(&rendition);
    }
    step
}

/// `uri` resolved against `base` with the browser's URL parser (`new URL(uri, base).href`).
fn resolve(uri: &str, base: &str) -> Option<String> {
    web_sys::Url::new_with_base(uri, base).ok().map(|u| u.href())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the browser's URL parser: joins relative URIs to the playlist's directory.
    fn resolve(uri: &str) -> Option<String> {
        if uri.contains("://") { Some(uri.to_owned()) } else { Some(format!("http://cdn/live/v/{uri}")) }
    }

    fn seg(msn: u64, start_ms: u64, duration_ms: u64) -> SegmentInfo {
        SegmentInfo { msn, start_ms, duration_ms, url: format!("http://cdn/live/v/{msn}.ts"), byte_len: None }
    }

    fn playlist(first: u64, durations: &[&str]) -> String {
        let mut text = format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for (i, d) in durations.iter().enumerate() {
            text.push_str(&format!("#EXTINF:{d},\n{}.ts\n", first + i as u64));
        }
        text
    }

    #[test]
    fn a_playlist_like_the_known_window_keeps_its_timeline() {
        let known = vec![seg(10, 40_100, 2_000), seg(11, 42_100, 2_000), seg(12, 44_100, 2_002)];
        let text = playlist(10, &["2.000", "2.0", "2.002"]);
        assert_eq!(window(&text, &known, resolve).unwrap(), known);
    }

    #[test]
    fn a_new_segment_follows_the_known_window() {
        let known = vec![seg(10, 40_100, 2_000), seg(11, 42_100, 2_000), seg(12, 44_100, 1_990)];
        let text = playlist(11, &["2.000", "1.990", "2.0004"]) + "#EXTINF:1.5,\nhttp://other/13.ts\n";
        let got = window(&text, &known, resolve).unwrap();
        assert_eq!(got[..2], known[1..]);
        assert_eq!(got[2], seg(13, 46_090, 2_000));
        let newest = SegmentInfo { url: "http://other/13.ts".into(), ..seg(14, 48_090, 1_500) };
        assert_eq!(got[3], newest);
    }

    #[test]
    fn segments_older_than_the_known_window_count_back_from_it() {
        let known = vec![seg(12, 44_100, 2_000)];
        let got = window(&playlist(10, &["2", "3", "2"]), &known, resolve).unwrap();
        let starts: Vec<_> = got.iter().map(|s| (s.msn, s.start_ms)).collect();
        assert_eq!(starts, vec![(10, 39_100), (11, 41_100), (12, 44_100)]);
    }

    #[test]
    fn byte_ranges_are_left_out_but_keep_their_place() {
        let known = vec![seg(10, 0, 2_000)];
        let text = playlist(10, &["2"]) + "#EXTINF:2,\n#EXT-X-BYTERANGE:100@0\nall.ts\n#EXTINF:2,\n12.ts\n";
        let got = window(&text, &known, resolve).unwrap();
        assert_eq!(got.iter().map(|s| (s.msn, s.start_ms)).collect::<Vec<_>>(), vec![(10, 0), (12, 4_000)]);
    }

    #[test]
    fn a_playlist_sharing_no_segment_cannot_be_anchored() {
        let known = vec![seg(10, 0, 2_000), seg(11, 2_000, 2_000)];
        assert_eq!(window(&playlist(12, &["2", "2"]), &known, resolve), Err(PlaylistError::NoOverlap));
        assert_eq!(window(&playlist(12, &[]), &known, resolve), Err(PlaylistError::NoOverlap));
        assert_eq!(window(&playlist(10, &["2"]), &[], resolve), Err(PlaylistError::NoOverlap));
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        let known = vec![seg(0, 0, 2_000)];
        for text in ["", "hello", "<html>404</html>", "{\"segments\":[]}", "\u{feff}#EXTM3U"] {
            assert!(window(text, &known, resolve).is_err(), "{text:?}");
        }
        // Broken tags and every truncation of a real playlist: an answer or an error, no panic.
        let _ = window("#EXTM3U\n#EXTINF:x\n\u{0}\u{ffff}\n#EXT-X-BYTERANGE:@\n", &known, resolve);
        let text = playlist(0, &["2", "1.5"]) + "#EXT-X-PROGRAM-DATE-TIME:2026-13-99T99:00:00Z\n#EXTINF:2,\n2.ts\n";
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let _ = window(&text[..end], &known, resolve);
        }
        let overflow = "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:18446744073709551615\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        assert_eq!(window(overflow, &known, resolve), Err(PlaylistError::Malformed));
        let unresolvable = window(&playlist(0, &["2"]), &known, |_| None).unwrap();
        assert!(unresolvable.is_empty());
    }

    #[test]
    fn an_oversized_playlist_is_refused() {
        let known = vec![seg(0, 0, 2_000)];
        let mut text = playlist(0, &["2"]);
        text.push_str(&"#".repeat(MAX_PLAYLIST_BYTES));
        assert_eq!(window(&text, &known, resolve), Err(PlaylistError::TooLarge));
    }

    #[test]
    fn urls_are_kept_per_rendition_and_bounded() {
        let mut r = Reloads::default();
        r.set_url(1, "http://cdn/a.m3u8");
        r.set_url(1, "http://cdn/b.m3u8");
        r.set_url(2, &"x".repeat(MAX_URL_BYTES + 1));
        assert_eq!(r.urls.get(&1).map(String::as_str), Some("http://cdn/b.m3u8"));
        assert!(!r.urls.contains_key(&2));
        for rendition in 10..100 {
            r.set_url(rendition, "http://cdn/c.m3u8");
        }
        assert_eq!(r.urls.len(), driver::MAX_RENDITIONS);
    }
}
