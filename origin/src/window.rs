//! Republishing a live window that an encoder shrank below 3 × target duration (pure).
//!
//! RFC 8216 §6.2.2: the server MUST NOT remove a segment from a live playlist if that leaves the
//! playlist shorter than three target durations. An encoder that restarts (the transcoder's
//! supervisor restarts ffmpeg, which starts a fresh list) or is configured with a short list does
//! exactly that. Rather than refuse the playlist (which would freeze the stream) the origin keeps
//! the newest segments the encoder dropped, while it still serves them, at the front of the
//! window: only lines are added at the front of what the encoder sent, the media and
//! discontinuity sequence numbers are lowered to match, and both still never go backwards
//! relative to what was published before.

use bytes::Bytes;

use crate::playlist::MediaState;

/// The window RFC 8216 §6.2.2 requires, in milliseconds, for `target_duration_s`.
pub fn min_window_ms(target_duration_s: u64) -> u64 {
    target_duration_s.saturating_mul(3000)
}

/// Pads `new` (accepted from `body`) with the newest segments `prev` listed and `new` dropped,
/// while `is_served(path)` and the window is under 3 × target duration. Returns the republished
/// state and body, or `None` when nothing needs (or can be) added.
pub fn pad(
    prev: &MediaState,
    new: &MediaState,
    body: &[u8],
    is_served: impl Fn(&str) -> bool,
) -> Option<(MediaState, Bytes)> {
    let need = min_window_ms(new.target_duration);
    if new.ended || new.duration_ms >= need || new.media_sequence <= prev.media_sequence {
        return None;
    }
    let removed = usize::try_from(new.media_sequence - prev.media_sequence).unwrap_or(usize::MAX);
    // Only a contiguous continuation can be padded: a gap means we never saw what came between.
    if removed > prev.segments.len() {
        return None;
    }
    let mut duration_ms = new.duration_ms;
    let mut take = 0;
    for i in (0..removed).rev() {
        if duration_ms >= need || !is_served(&prev.segments[i]) {
            break;
        }
        duration_ms = duration_ms.saturating_add(ms(prev.items[i].duration));
        take += 1;
    }
    if take == 0 {
        return None;
    }
    let from = removed - take;
    let m3u8_rs::Playlist::MediaPlaylist(mut playlist) = m3u8_rs::parse_playlist_res(body).ok()? else { return None };
    let added = &prev.items[from..removed];
    let added_discontinuities = added.iter().filter(|s| s.discontinuity).count() as u64;
    playlist.media_sequence = new.media_sequence - take as u64;
    playlist.discontinuity_sequence = new.discontinuity_sequence.saturating_sub(added_discontinuities);
    playlist.segments.splice(0..0, added.iter().cloned());
    let mut out = Vec::with_capacity(body.len() + take * 64);
    playlist.write_to(&mut out).ok()?;
    let mut segments = prev.segments[from..removed].to_vec();
    segments.extend(new.segments.iter().cloned());
    let state = MediaState {
        media_sequence: playlist.media_sequence,
        discontinuity_sequence: playlist.discontinuity_sequence,
        duration_ms,
        segments,
        items: playlist.segments,
        ..new.clone()
    };
    Some((state, Bytes::from(out)))
}

/// An `EXTINF` duration in milliseconds (bounded by the target duration at validation).
pub(crate) fn ms(duration_s: f32) -> u64 {
    (f64::from(duration_s.max(0.0)) * 1000.0).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::ObjectPath;
    use crate::playlist::{Accepted, validate};

    fn media(seq: u64, segs: &[&str]) -> String {
        let mut s = format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
        for uri in segs {
            s.push_str(&format!("#EXTINF:2.000000,\n{uri}\n"));
        }
        s
    }

    fn state(body: &str, prev: Option<&MediaState>) -> MediaState {
        let path = ObjectPath::new("live", "v/index.m3u8").unwrap();
        let prev = prev.cloned().map(Accepted::Media);
        match validate(&path, body.as_bytes(), prev.as_ref(), |_| true).unwrap() {
            Accepted::Media(m) => m,
            Accepted::Master => panic!("media expected"),
        }
    }

    #[test]
    fn restart_keeps_three_target_durations() {
        let prev = state(&media(10, &["a.ts", "b.ts", "c.ts", "d.ts"]), None);
        // The encoder restarted and lists only its first new segment.
        let body = media(14, &["e.ts"]);
        let new = state(&body, Some(&prev));
        let (padded, out) = pad(&prev, &new, body.as_bytes(), |_| true).unwrap();
        assert_eq!(padded.media_sequence, 12);
        assert_eq!(padded.segments, vec!["v/c.ts", "v/d.ts", "v/e.ts"]);
        assert_eq!(padded.duration_ms, 6000);
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:12"), "{text}");
        assert_eq!(state(&text, Some(&prev)).segments, padded.segments);
        // The encoder's next playlist is valid against the padded one.
        let next = state(&media(14, &["e.ts", "f.ts"]), Some(&padded));
        assert_eq!(next.media_sequence, 14);
    }

    #[test]
    fn only_served_contiguous_segments_are_kept() {
        let prev = state(&media(10, &["a.ts", "b.ts"]), None);
        let body = media(12, &["c.ts"]);
        let new = state(&body, Some(&prev));
        let (padded, _) = pad(&prev, &new, body.as_bytes(), |p| p != "v/a.ts").unwrap();
        assert_eq!(padded.segments, vec!["v/b.ts", "v/c.ts"]);
        assert!(pad(&prev, &new, body.as_bytes(), |_| false).is_none());
        let gap = media(20, &["x.ts"]);
        assert!(pad(&prev, &state(&gap, Some(&prev)), gap.as_bytes(), |_| true).is_none());
        let long = state(&media(10, &["a.ts", "b.ts", "c.ts"]), None);
        assert!(pad(&prev, &long, b"", |_| true).is_none(), "no removal, nothing to do");
    }
}
