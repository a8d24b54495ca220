//! Playlist validation at ingest (RFC 8216 §4.3.3.1, §6.2.1, §6.2.2), pure.
//!
//! Every `.m3u8` is parsed with `m3u8-rs`. A media playlist must keep its target duration, must not
//! move its media sequence number backwards, must not rewrite a segment it already listed under
//! the same sequence number, must keep every rounded `EXTINF` at or below the target duration, and
//! may only list segments the origin already holds (an encoder uploads a segment before the
//! playlist that lists it), and must account for every `EXT-X-DISCONTINUITY` it drops from the
//! front in `EXT-X-DISCONTINUITY-SEQUENCE` (§6.2.2). A master playlist must reference its
//! variants by relative URIs.

use m3u8_rs::Playlist;

use crate::path::{ObjectPath, PathError, resolve};

/// Largest playlist accepted, in bytes (a live window of thousands of segments fits).
pub const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;

/// What the origin remembers of the last accepted version of a playlist.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// A master (multivariant) playlist.
    Master,
    /// A media playlist.
    Media(MediaState),
}

/// The parts of an accepted media playlist that the next version is checked against.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaState {
    /// `EXT-X-MEDIA-SEQUENCE`: sequence number of the first listed segment.
    pub media_sequence: u64,
    /// `EXT-X-TARGETDURATION`, in seconds.
    pub target_duration: u64,
    /// Object paths (below the content) of the listed segments, in order; init sections
    /// (`EXT-X-MAP`) are not included.
    pub segments: Vec<String>,
    /// Object paths of the `EXT-X-MAP` initialization sections the playlist uses.
    pub maps: Vec<String>,
    /// Sum of the listed `EXTINF` durations, in milliseconds: the live window.
    pub duration_ms: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// Whether the playlist carries `EXT-X-ENDLIST`: the stream ended.
    pub ended: bool,
    /// The listed segments as parsed (parallel to `segments`), for the DVR log and for
    /// republishing a window.
    pub items: Vec<m3u8_rs::MediaSegment>,
}

impl MediaState {
    /// Media sequence number of the last listed segment, if any.
    pub fn last_msn(&self) -> Option<u64> {
        let n = self.segments.len() as u64;
        (n > 0).then(|| self.media_sequence.saturating_add(n - 1))
    }
}

/// Why a playlist was refused (422); the previous accepted version keeps being served.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PlaylistError {
    /// Larger than [`MAX_PLAYLIST_BYTES`].
    #[error("playlist larger than {MAX_PLAYLIST_BYTES} bytes")]
    TooLarge,
    /// Not UTF-8 or not an M3U8 playlist.
    #[error("not a valid M3U8 playlist: {0}")]
    Unparsable(&'static str),
    /// A media playlist without a positive `EXT-X-TARGETDURATION`.
    #[error("media playlist has no EXT-X-TARGETDURATION")]
    MissingTargetDuration,
    /// The playlist switched between master and media.
    #[error("playlist changed between master and media")]
    KindChanged,
    /// `EXT-X-MEDIA-SEQUENCE` went backwards (RFC 8216 §6.2.2).
    #[error("media sequence went backwards: {got} < {previous}")]
    SequenceBackwards {
        /// The accepted version's media sequence number.
        previous: u64,
        /// The refused version's media sequence number.
        got: u64,
    },
    /// `EXT-X-TARGETDURATION` changed (RFC 8216 §6.2.1), in seconds.
    #[error("target duration changed from {previous} s to {got} s")]
    TargetDurationChanged {
        /// The accepted version's target duration, in seconds.
        previous: u64,
        /// The refused version's target duration, in seconds.
        got: u64,
    },
    /// A rounded `EXTINF` exceeds the target duration (RFC 8216 §4.3.3.1), in seconds.
    #[error("segment {uri} lasts {duration} s, above the target duration {target} s")]
    SegmentTooLong {
        /// The segment URI as written in the playlist.
        uri: String,
        /// Its `EXTINF`, in seconds.
        duration: f32,
        /// The target duration, in seconds.
        target: u64,
    },
    /// A URI is not a plain relative reference to a valid object path.
    #[error("bad URI {uri:?}: {reason}")]
    BadUri {
        /// The URI as written in the playlist.
        uri: String,
        /// Why it was refused.
        reason: PathError,
    },
    /// A listed segment (or init section) has not been uploaded, or was deleted.
    #[error("segment {0} is listed but not stored")]
    SegmentMissing(String),
    /// A sequence number already listed now names a different segment (RFC 8216 §6.2.1 allows
    /// only appending and removing from the front).
    #[error("media sequence {msn} was {previous}, now {got}")]
    SegmentRewritten {
        /// The sequence number.
        msn: u64,
        /// The URI it had.
        previous: String,
        /// The URI it has now.
        got: String,
    },
    /// A master playlist without any variant.
    #[error("master playlist lists no variant")]
    NoVariants,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` does not count the discontinuities removed from the front
    /// (RFC 8216 §6.2.2).
    #[error("discontinuity sequence {got}, expected {expected}")]
    DiscontinuitySequence {
        /// The value the removed segments imply.
        expected: u64,
        /// The value in the refused playlist.
        got: u64,
    },
}

impl PlaylistError {
    /// Machine-readable reason, used in the error body and the rejection metric.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "playlist_too_large",
            Self::Unparsable(_) => "playlist_unparsable",
            Self::MissingTargetDuration => "missing_target_duration",
            Self::KindChanged => "playlist_kind_changed",
            Self::SequenceBackwards { .. } => "media_sequence_backwards",
            Self::TargetDurationChanged { .. } => "target_duration_changed",
            Self::SegmentTooLong { .. } => "segment_too_long",
            Self::BadUri { .. } => "bad_uri",
            Self::SegmentMissing(_) => "segment_missing",
            Self::SegmentRewritten { .. } => "segment_rewritten",
            Self::NoVariants => "no_variants",
            Self::DiscontinuitySequence { .. } => "discontinuity_sequence",
        }
    }
}

/// Validates `body`, uploaded at `path`, against the `previous` accepted version of the same
/// playlist; `is_stored(object_path)` tells whether a segment is held (and not deleted).
///
/// # Errors
/// The first [`PlaylistError`] found.
pub fn validate(
    path: &ObjectPath,
    body: &[u8],
    previous: Option<&Accepted>,
    is_stored: impl Fn(&str) -> bool,
) -> Result<Accepted, PlaylistError> {
    if body.len() > MAX_PLAYLIST_BYTES {
        return Err(PlaylistError::TooLarge);
    }
    std::str::from_utf8(body).map_err(|_| PlaylistError::Unparsable("not UTF-8"))?;
    let parsed = m3u8_rs::parse_playlist_res(body)
        .map_err(|_| PlaylistError::Unparsable("no #EXTM3U header or malformed tags"))?;
    let resolve_uri = |uri: &str| {
        resolve(path, uri).map(|p| p.path).map_err(|reason| PlaylistError::BadUri { uri: uri.to_owned(), reason })
    };
    match parsed {
        Playlist::MasterPlaylist(master) => {
            if matches!(previous, Some(Accepted::Media(_))) {
                return Err(PlaylistError::KindChanged);
            }
            if master.variants.is_empty() {
                return Err(PlaylistError::NoVariants);
            }
            let alternatives = master.alternatives.iter().filter_map(|a| a.uri.as_deref());
            for uri in master.variants.iter().map(|v| v.uri.as_str()).chain(alternatives) {
                resolve_uri(uri)?;
            }
            Ok(Accepted::Master)
        }
        Playlist::MediaPlaylist(media) => {
            let previous = match previous {
                Some(Accepted::Master) => return Err(PlaylistError::KindChanged),
                Some(Accepted::Media(m)) => Some(m),
                None => None,
            };
            let target = media.target_duration;
            if target == 0 {
                return Err(PlaylistError::MissingTargetDuration);
            }
            if let Some(prev) = previous {
                if media.media_sequence < prev.media_sequence {
                    return Err(PlaylistError::SequenceBackwards {
                        previous: prev.media_sequence,
                        got: media.media_sequence,
                    });
                }
                if target != prev.target_duration {
                    return Err(PlaylistError::TargetDurationChanged { previous: prev.target_duration, got: target });
                }
                check_discontinuity_sequence(prev, media.media_sequence, media.discontinuity_sequence)?;
            }
            let mut segments = Vec::with_capacity(media.segments.len());
            let mut maps: Vec<String> = Vec::new();
            let mut duration_ms = 0_u64;
            for (i, seg) in media.segments.iter().enumerate() {
                let d = seg.duration;
                // RFC 8216 §4.3.3.1: the EXTINF duration, rounded to the nearest integer, ≤ target.
                if !d.is_finite() || d < 0.0 || f64::from(d).round() > target as f64 {
                    return Err(PlaylistError::SegmentTooLong { uri: seg.uri.clone(), duration: d, target });
                }
                // Bounded above by the target duration, itself a u64 from the parser.
                duration_ms = duration_ms.saturating_add((f64::from(d) * 1000.0).round() as u64);
                let resolved = resolve_uri(&seg.uri)?;
                if !is_stored(&resolved) {
                    return Err(PlaylistError::SegmentMissing(resolved));
                }
                if let Some(prev) = previous {
                    let msn = media.media_sequence.saturating_add(i as u64);
                    let old =
                        msn.checked_sub(prev.media_sequence).and_then(|k| prev.segments.get(usize::try_from(k).ok()?));
                    if let Some(old) = old.filter(|old| **old != resolved) {
                        return Err(PlaylistError::SegmentRewritten { msn, previous: old.clone(), got: resolved });
                    }
                }
                if let Some(map) = &seg.map {
                    let map = resolve_uri(&map.uri)?;
                    if !is_stored(&map) {
                        return Err(PlaylistError::SegmentMissing(map));
                    }
                    if !maps.contains(&map) {
                        maps.push(map);
                    }
                }
                segments.push(resolved);
            }
            Ok(Accepted::Media(MediaState {
                media_sequence: media.media_sequence,
                target_duration: target,
                segments,
                maps,
                duration_ms,
                discontinuity_sequence: media.discontinuity_sequence,
                ended: media.end_list,
                items: media.segments,
            }))
        }
    }
}

/// Checks that `dsn` counts the `EXT-X-DISCONTINUITY` tags of the segments `prev` listed and a
/// playlist starting at `msn` no longer lists.
fn check_discontinuity_sequence(prev: &MediaState, msn: u64, dsn: u64) -> Result<(), PlaylistError> {
    let removed = usize::try_from(msn.saturating_sub(prev.media_sequence)).unwrap_or(usize::MAX);
    let dropped = prev.items.iter().take(removed).filter(|s| s.discontinuity).count() as u64;
    let expected = prev.discontinuity_sequence.saturating_add(dropped);
    // Past the end of the previous window the encoder may have dropped segments we never saw.
    let ok = if removed > prev.items.len() { dsn >= expected } else { dsn == expected };
    if ok { Ok(()) } else { Err(PlaylistError::DiscontinuitySequence { expected, got: dsn }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn media(seq: u64, target: u64, segs: &[(f32, &str)]) -> String {
        let mut s = format!("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
        for (d, uri) in segs {
            s.push_str(&format!("#EXTINF:{d:.6},\n{uri}\n"));
        }
        s
    }

    fn path() -> ObjectPath {
        ObjectPath::new("live", "360p/index.m3u8").unwrap()
    }

    fn all(_: &str) -> bool {
        true
    }

    fn accept(body: &str, prev: Option<&Accepted>) -> Result<Accepted, PlaylistError> {
        validate(&path(), body.as_bytes(), prev, all)
    }

    #[test]
    fn accepts_ffmpeg_like_media_playlist() {
        let a = accept(&media(10, 2, &[(2.0, "seg_10.ts"), (2.0, "seg_11.ts")]), None).unwrap();
        let Accepted::Media(m) = a else { panic!("media expected") };
        assert_eq!(m.media_sequence, 10);
        assert_eq!(m.segments, vec!["360p/seg_10.ts", "360p/seg_11.ts"]);
        assert_eq!(m.duration_ms, 4000);
    }

    #[test]
    fn accepts_ffmpeg_5_1_output_with_program_date_time() {
        // Verbatim from ffmpeg 5.1 (`-hls_flags +program_date_time`): its offset has no colon.
        let body = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:12356\n\
            #EXT-X-INDEPENDENT-SEGMENTS\n#EXTINF:1.000000,\n#EXT-X-PROGRAM-DATE-TIME:2026-11-21T01:47:01.709+0000\n\
            seg_12356.ts\n#EXTINF:0.933333,\n#EXT-X-PROGRAM-DATE-TIME:2026-11-21T01:47:02.709+0000\nseg_12357.ts\n";
        let Accepted::Media(m) = accept(body, None).unwrap() else { panic!("media expected") };
        assert_eq!(m.segments, vec!["360p/seg_12356.ts", "360p/seg_12357.ts"]);
        assert_eq!(m.duration_ms, 1933);
    }

    #[test]
    fn enforces_live_rules_against_previous() {
        let prev = accept(&media(10, 2, &[(2.0, "seg_10.ts"), (2.0, "seg_11.ts")]), None).unwrap();
        let next = media(11, 2, &[(2.0, "seg_11.ts"), (2.0, "seg_12.ts")]);
        assert!(accept(&next, Some(&prev)).is_ok());
        let back = accept(&media(9, 2, &[(2.0, "seg_9.ts")]), Some(&prev)).unwrap_err();
        assert_eq!(back.code(), "media_sequence_backwards");
        let td = accept(&media(11, 3, &[(2.0, "seg_11.ts")]), Some(&prev)).unwrap_err();
        assert_eq!(td.code(), "target_duration_changed");
        let rewritten = accept(&media(11, 2, &[(2.0, "other.ts")]), Some(&prev)).unwrap_err();
        assert_eq!(rewritten.code(), "segment_rewritten");
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n360p/index.m3u8\n";
        assert_eq!(accept(master, Some(&prev)).unwrap_err().code(), "playlist_kind_changed");
    }

    #[test]
    fn discontinuity_sequence_counts_removed_discontinuities() {
        let body = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-DISCONTINUITY\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        let prev = accept(body, None).unwrap();
        let next = |dsn: u64| {
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:2\n#EXT-X-DISCONTINUITY-SEQUENCE:{dsn}\n#EXTINF:2,\nb.ts\n"
            )
        };
        assert!(accept(&next(1), Some(&prev)).is_ok());
        let e = accept(&next(0), Some(&prev)).unwrap_err();
        assert_eq!(e, PlaylistError::DiscontinuitySequence { expected: 1, got: 0 });
        let Accepted::Media(m) = prev else { panic!("media expected") };
        assert_eq!((m.last_msn(), m.items.len(), m.ended), (Some(2), 2, false));
    }

    #[test]
    fn extinf_is_rounded_against_target() {
        assert!(accept(&media(0, 2, &[(2.49, "a.ts")]), None).is_ok());
        let e = accept(&media(0, 2, &[(2.5, "a.ts")]), None).unwrap_err();
        assert_eq!(e.code(), "segment_too_long");
    }

    #[test]
    fn refuses_missing_segments_and_bad_uris() {
        let body = media(0, 2, &[(2.0, "a.ts"), (2.0, "b.ts")]);
        let e = validate(&path(), body.as_bytes(), None, |p| p == "360p/a.ts").unwrap_err();
        assert_eq!(e, PlaylistError::SegmentMissing("360p/b.ts".into()));
        for uri in ["../x.ts", "http://cdn/x.ts", "/live/live/x.ts"] {
            assert_eq!(accept(&media(0, 2, &[(2.0, uri)]), None).unwrap_err().code(), "bad_uri", "{uri}");
        }
    }

    #[test]
    fn refuses_garbage_and_missing_target() {
        assert_eq!(accept("hello", None).unwrap_err().code(), "playlist_unparsable");
        assert_eq!(validate(&path(), &[0xff, 0xfe], None, all).unwrap_err().code(), "playlist_unparsable");
        assert_eq!(accept("#EXTM3U\n#EXTINF:2,\na.ts\n", None).unwrap_err().code(), "missing_target_duration");
        let big = vec![b'#'; MAX_PLAYLIST_BYTES + 1];
        assert_eq!(validate(&path(), &big, None, all).unwrap_err(), PlaylistError::TooLarge);
    }

    #[test]
    fn master_needs_relative_variants() {
        let m = ObjectPath::new("live", "master.m3u8").unwrap();
        let good = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=640x360\n360p/index.m3u8\n";
        assert_eq!(validate(&m, good.as_bytes(), None, |_| false).unwrap(), Accepted::Master);
        let abs = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nhttp://evil/index.m3u8\n";
        assert_eq!(validate(&m, abs.as_bytes(), None, all).unwrap_err().code(), "bad_uri");
        let empty = "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=1000\n";
        assert!(validate(&m, empty.as_bytes(), None, all).is_err());
    }
}
