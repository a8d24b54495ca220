//! The conformance rules between two successive versions of one media playlist (pure), after
//! Eyevinn's hls-monitor: media sequence, playlist size, playlist content, segment continuity,
//! discontinuity sequence and window length (RFC 8216 §6.2.1–6.2.2).

use serde::Serialize;

/// The kinds of problem the monitor reports (hls-monitor's vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ErrorKind {
    /// The playlist could not be fetched or parsed.
    ManifestRetrieval,
    /// `EXT-X-MEDIA-SEQUENCE` went backwards.
    MediaSequence,
    /// The playlist shrank without its media sequence advancing, or its window fell below
    /// 3 × target duration after reaching it.
    PlaylistSize,
    /// A sequence number names a different segment than before (on this or another pathway).
    PlaylistContent,
    /// Segments were skipped: the new playlist does not continue the previous one.
    SegmentContinuity,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` does not count the discontinuities removed.
    DiscontinuitySequence,
    /// The playlist did not change for longer than the stale limit.
    StaleManifest,
}

/// One media playlist version, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `EXT-X-MEDIA-SEQUENCE`.
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE`.
    pub discontinuity_sequence: u64,
    /// `EXT-X-TARGETDURATION`, in seconds.
    pub target_duration_s: u64,
    /// Segment URIs (without query) and whether each carries `EXT-X-DISCONTINUITY`.
    pub segments: Vec<(String, bool)>,
    /// Sum of the `EXTINF` durations, in milliseconds.
    pub duration_ms: u64,
    /// `EXT-X-ENDLIST` present.
    pub ended: bool,
}

impl Snapshot {
    /// Parses a media playlist; `None` when it is not one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let m3u8_rs::Playlist::MediaPlaylist(m) = m3u8_rs::parse_playlist_res(body).ok()? else { return None };
        let segments = m.segments.iter().map(|s| (strip_query(&s.uri).to_owned(), s.discontinuity)).collect();
        let duration_ms = m.segments.iter().map(|s| crate::window::ms(s.duration)).sum();
        Some(Self {
            media_sequence: m.media_sequence,
            discontinuity_sequence: m.discontinuity_sequence,
            target_duration_s: m.target_duration,
            segments,
            duration_ms,
            ended: m.end_list,
        })
    }

    /// What identifies this version: the media sequence and the newest URI.
    pub fn version(&self) -> (u64, Option<&str>) {
        (self.media_sequence, self.segments.last().map(|(u, _)| u.as_str()))
    }
}

fn strip_query(uri: &str) -> &str {
    uri.split('?').next().unwrap_or(uri)
}

/// Compares `next` with `prev`; returns every problem found.
pub fn compare(prev: &Snapshot, next: &Snapshot) -> Vec<(ErrorKind, String)> {
    let mut out = Vec::new();
    if next.media_sequence < prev.media_sequence {
        out.push((
            ErrorKind::MediaSequence,
            format!("media sequence went from {} to {}", prev.media_sequence, next.media_sequence),
        ));
        return out;
    }
    let shift = usize::try_from(next.media_sequence - prev.media_sequence).unwrap_or(usize::MAX);
    if shift == 0 && next.segments.len() < prev.segments.len() {
        out.push((
            ErrorKind::PlaylistSize,
            format!(
                "shrank from {} to {} segments at the same media sequence",
                prev.segments.len(),
                next.segments.len()
            ),
        ));
    }
    let need = next.target_duration_s.saturating_mul(3000);
    if !next.ended && prev.duration_ms >= need && next.duration_ms < need {
        out.push((ErrorKind::PlaylistSize, format!("window {} ms is below 3 x target duration", next.duration_ms)));
    }
    if shift > prev.segments.len() {
        out.push((
            ErrorKind::SegmentContinuity,
            format!("{} segments skipped between two polls", shift - prev.segments.len()),
        ));
        return out;
    }
    for (i, (uri, _)) in next.segments.iter().enumerate() {
        let Some((old, _)) = prev.segments.get(i + shift) else { break };
        if old != uri {
            let msn = next.media_sequence + i as u64;
            out.push((ErrorKind::PlaylistContent, format!("media sequence {msn} was {old}, now {uri}")));
            break;
        }
    }
    let dropped = prev.segments.iter().take(shift).filter(|(_, d)| *d).count() as u64;
    let expected = prev.discontinuity_sequence + dropped;
    if next.discontinuity_sequence != expected {
        out.push((
            ErrorKind::DiscontinuitySequence,
            format!("discontinuity sequence {} where {expected} was expected", next.discontinuity_sequence),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(msn: u64, dsn: u64, segs: &[&str]) -> Snapshot {
        Snapshot {
            media_sequence: msn,
            discontinuity_sequence: dsn,
            target_duration_s: 2,
            segments: segs.iter().map(|s| ((*s).trim_start_matches('!').to_owned(), s.starts_with('!'))).collect(),
            duration_ms: segs.len() as u64 * 2000,
            ended: false,
        }
    }

    fn kinds(prev: &Snapshot, next: &Snapshot) -> Vec<ErrorKind> {
        compare(prev, next).into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn a_sliding_window_is_clean() {
        let a = snap(10, 0, &["a", "b", "c"]);
        assert!(kinds(&a, &snap(11, 0, &["b", "c", "d"])).is_empty());
        assert!(kinds(&a, &a).is_empty());
        assert!(kinds(&a, &snap(10, 0, &["a", "b", "c", "d"])).is_empty());
    }

    #[test]
    fn each_rule_is_reported() {
        let a = snap(10, 0, &["!a", "b", "c"]);
        assert_eq!(kinds(&a, &snap(9, 0, &["z", "a", "b"])), [ErrorKind::MediaSequence]);
        assert_eq!(kinds(&a, &snap(10, 0, &["!a", "b"])), [ErrorKind::PlaylistSize, ErrorKind::PlaylistSize]);
        assert_eq!(kinds(&a, &snap(11, 1, &["x", "c", "d"])), [ErrorKind::PlaylistContent]);
        assert_eq!(kinds(&a, &snap(20, 1, &["x", "y", "z"])), [ErrorKind::SegmentContinuity]);
        assert_eq!(kinds(&a, &snap(11, 0, &["b", "c", "d"])), [ErrorKind::DiscontinuitySequence]);
        assert!(kinds(&a, &snap(11, 1, &["b", "c", "d"])).is_empty());
    }

    #[test]
    fn parses_queries_away() {
        let body = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:2,\na.ts?__token__=x\n";
        let s = Snapshot::parse(body).unwrap();
        assert_eq!((s.media_sequence, s.segments[0].0.as_str(), s.duration_ms), (3, "a.ts", 2000));
        assert!(Snapshot::parse(b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n").is_none());
    }
}
