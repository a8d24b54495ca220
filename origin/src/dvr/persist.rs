//! The persisted form of a [`DvrLog`](super::DvrLog): one small HLS media playlist per
//! [`LogUpdate`] (pure; the archive stores and lists them, see [`crate::archive`]).
//!
//! The update that appends entries `seq..` to the log of `{content}/{path}` is stored at
//! `{content}/{path}.dvr/{seq:020}.m3u8` ([`object_key`]), so that keys sort in log order. It is
//! written and read with `m3u8-rs`:
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:3
//! #EXT-X-TARGETDURATION:2
//! #EXT-X-MEDIA-SEQUENCE:1200              <- seq of the first entry (the file name)
//! #EXT-X-DISCONTINUITY-SEQUENCE:3         <- as in a playlist starting at that entry
//! #EXT-X-PLAYLIST-TYPE:EVENT              <- only when this is the log's first entry ever
//! #EXT-X-PROGRAM-DATE-TIME:…              <- the segment's tags as the encoder listed them
//! #EXT-X-SWARMCAST-LOG:MSN=1200,ADDED=1732153621709
//! #EXTINF:2.000000,
//! seg_1200.ts
//! #EXT-X-ENDLIST                          <- when the stream ended with this update
//! ```
//!
//! `EXT-X-SWARMCAST-LOG` carries, per segment, the encoder's media sequence number and when the
//! segment was first listed (Unix milliseconds). A segment the archive could not store is marked
//! `EXT-X-GAP`. An update that only ends the stream has no segment and is stored at the next
//! `seq`, where the next update (if the stream resumes) replaces it.

use m3u8_rs::{ExtTag, MediaPlaylist, MediaPlaylistType, Playlist};

use super::{Entry, LogUpdate, MAX_DVR_SEGMENTS};
use crate::path::{ObjectPath, resolve};
use crate::window::ms;

/// Largest log object read back, in bytes (an update lists at most one accepted playlist, itself
/// at most [`crate::playlist::MAX_PLAYLIST_BYTES`], plus a tag per segment).
pub const MAX_LOG_OBJECT_BYTES: u64 = 4 * crate::playlist::MAX_PLAYLIST_BYTES as u64;

/// Suffix of the folder that holds a playlist's log objects.
pub const LOG_DIR_SUFFIX: &str = ".dvr";

/// The tag (after `#EXT-`) with what the log needs beyond HLS.
const LOG_TAG: &str = "X-SWARMCAST-LOG";

/// Maps the store's millisecond clock to the wall clock and back, as of one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The store clock now, in milliseconds.
    pub store_now_ms: u64,
    /// The wall clock now, in milliseconds since the Unix epoch.
    pub unix_now_ms: u64,
}

impl Clock {
    /// The Unix time of the store time `store_ms`, in milliseconds.
    pub fn to_unix(self, store_ms: u64) -> u64 {
        let age = self.store_now_ms.saturating_sub(store_ms);
        self.unix_now_ms.saturating_sub(age).saturating_add(store_ms.saturating_sub(self.store_now_ms))
    }

    /// The store time of the Unix time `unix_ms`, in milliseconds (0 when before the store's
    /// clock began).
    pub fn to_store(self, unix_ms: u64) -> u64 {
        let age = self.unix_now_ms.saturating_sub(unix_ms);
        self.store_now_ms.saturating_sub(age).saturating_add(unix_ms.saturating_sub(self.unix_now_ms))
    }
}

/// A log object read back: one [`LogUpdate`] with its entries on the store clock.
#[derive(Debug, Clone, PartialEq)]
pub struct LogObject {
    /// `EXT-X-TARGETDURATION`, in seconds.
    pub target_duration: u64,
    /// Sequence number of the first entry (or of the next one, for an end marker).
    pub first_seq: u64,
    /// The entries, oldest first.
    pub entries: Vec<Entry>,
    /// Whether the first entry was the first of the log.
    pub starts: bool,
    /// Whether the stream ended with this update.
    pub ended: bool,
}

/// Why a log object was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogObjectError {
    /// Larger than [`MAX_LOG_OBJECT_BYTES`].
    #[error("log object larger than {MAX_LOG_OBJECT_BYTES} bytes")]
    Oversized,
    /// Not a log object as [`encode`] writes them.
    #[error("malformed log object: {0}")]
    Malformed(&'static str),
}

/// The folder (below the content) of the log objects of the playlist at `playlist_path`.
pub fn log_dir(playlist_path: &str) -> String {
    format!("{playlist_path}{LOG_DIR_SUFFIX}")
}

/// The path (below the content) of the log object of `update` for the playlist at `playlist_path`.
pub fn object_key(playlist_path: &str, update: &LogUpdate) -> String {
    format!("{}/{:020}.m3u8", log_dir(playlist_path), update.first_seq)
}

/// The sequence number in a log object's file name (`{seq:020}.m3u8`).
pub fn parse_object_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".m3u8")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// The log object of `update`: `clock` gives the entries' Unix times, `is_lost(path)` which
/// segments to mark `EXT-X-GAP`.
pub fn encode(update: &LogUpdate, clock: Clock, is_lost: impl Fn(&str) -> bool) -> Vec<u8> {
    let first_dsn = update.entries.first().map_or(0, |e| e.dsn.saturating_sub(u64::from(e.segment.discontinuity)));
    let segments = update
        .entries
        .iter()
        .map(|e| {
            let mut s = if is_lost(&e.path) { super::with_gap(&e.segment) } else { e.segment.clone() };
            let rest = format!("MSN={},ADDED={}", e.source_msn, clock.to_unix(e.added_ms));
            s.unknown_tags.push(ExtTag { tag: LOG_TAG.into(), rest: Some(rest) });
            s
        })
        .collect();
    let playlist = MediaPlaylist {
        version: Some(3),
        target_duration: update.target_duration,
        media_sequence: update.first_seq,
        discontinuity_sequence: first_dsn,
        end_list: update.ended,
        playlist_type: update.starts.then_some(MediaPlaylistType::Event),
        segments,
        ..MediaPlaylist::default()
    };
    let mut out = Vec::with_capacity(128 + 160 * update.entries.len());
    // Writing to a Vec cannot fail.
    let _ = playlist.write_to(&mut out);
    out
}

/// Reads back the log object `bytes` of the playlist at `playlist`, named for `first_seq`;
/// `clock` converts the entries' Unix times to the store clock.
///
/// # Errors
/// [`LogObjectError`] when it is too large or not what [`encode`] writes.
pub fn decode(playlist: &ObjectPath, first_seq: u64, bytes: &[u8], clock: Clock) -> Result<LogObject, LogObjectError> {
    use LogObjectError::Malformed;
    if bytes.len() as u64 > MAX_LOG_OBJECT_BYTES {
        return Err(LogObjectError::Oversized);
    }
    std::str::from_utf8(bytes).map_err(|_| Malformed("not UTF-8"))?;
    let Ok(Playlist::MediaPlaylist(p)) = m3u8_rs::parse_playlist_res(bytes) else {
        return Err(Malformed("not a media playlist"));
    };
    if p.media_sequence != first_seq {
        return Err(Malformed("media sequence does not match the name"));
    }
    if p.target_duration == 0 {
        return Err(Malformed("no target duration"));
    }
    if p.segments.len() > MAX_DVR_SEGMENTS {
        return Err(Malformed("too many segments"));
    }
    let mut dsn = p.discontinuity_sequence;
    let mut entries = Vec::with_capacity(p.segments.len());
    for (i, mut segment) in p.segments.into_iter().enumerate() {
        let d = segment.duration;
        if !d.is_finite() || d < 0.0 || ms(d).div_ceil(1000) > p.target_duration.saturating_add(1) {
            return Err(Malformed("bad EXTINF"));
        }
        let path = resolve(playlist, &segment.uri).map_err(|_| Malformed("bad segment URI"))?.path;
        let at = segment.unknown_tags.iter().position(|t| t.tag == LOG_TAG).ok_or(Malformed("no log tag"))?;
        let tag = segment.unknown_tags.remove(at);
        let (source_msn, added_unix_ms) = parse_log_tag(tag.rest.as_deref()).ok_or(Malformed("bad log tag"))?;
        if segment.discontinuity {
            dsn = dsn.saturating_add(1);
        }
        let seq = first_seq.checked_add(i as u64).ok_or(Malformed("sequence overflow"))?;
        entries.push(Entry { seq, source_msn, path, segment, dsn, added_ms: clock.to_store(added_unix_ms) });
    }
    let starts = p.playlist_type == Some(MediaPlaylistType::Event) && !entries.is_empty();
    Ok(LogObject { target_duration: p.target_duration, first_seq, entries, starts, ended: p.end_list })
}

/// `MSN=<u64>,ADDED=<u64>`.
fn parse_log_tag(rest: Option<&str>) -> Option<(u64, u64)> {
    let (mut msn, mut added) = (None, None);
    for pair in rest?.split(',') {
        match pair.split_once('=')? {
            ("MSN", v) => msn = Some(v.parse().ok()?),
            ("ADDED", v) => added = Some(v.parse().ok()?),
            _ => {}
        }
    }
    Some((msn?, added?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dvr::tests::state;
    use crate::dvr::{DvrLog, GAP_TAG, View};

    const CLOCK: Clock = Clock { store_now_ms: 100_000, unix_now_ms: 1_700_000_000_000 };

    fn playlist() -> ObjectPath {
        ObjectPath::new("live", "v/index.m3u8").unwrap()
    }

    #[test]
    fn clock_round_trips() {
        assert_eq!(CLOCK.to_unix(90_000), 1_699_999_990_000);
        assert_eq!(CLOCK.to_store(1_699_999_990_000), 90_000);
        assert_eq!(CLOCK.to_store(1_700_000_001_000), 101_000, "later than now");
        assert_eq!(CLOCK.to_store(1_000), 0, "before the store's clock began");
    }

    #[test]
    fn names() {
        let update = LogUpdate { target_duration: 2, first_seq: 42, entries: vec![], starts: false, ended: true };
        assert_eq!(object_key("v/index.m3u8", &update), "v/index.m3u8.dvr/00000000000000000042.m3u8");
        assert_eq!(parse_object_name("00000000000000000042.m3u8"), Some(42));
        for bad in ["42.m3u8", "0000000000000000004x.m3u8", "00000000000000000042.ts", "99999999999999999999.m3u8"] {
            assert_eq!(parse_object_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn updates_round_trip_into_the_same_log() {
        let mut live = DvrLog::default();
        let mut rebuilt = DvrLog::default();
        let mut m = state(10, &["a.ts", "b.ts"], false);
        m.items[1].discontinuity = true;
        let mut updates = vec![live.record(90_000, &m, 60_000, false).unwrap()];
        updates.push(live.record(92_000, &state(11, &["b.ts", "c.ts"], true), 60_000, true).unwrap());
        for (i, u) in updates.iter().enumerate() {
            let bytes = encode(u, CLOCK, |p| p == "v/c.ts");
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(text.contains("#EXT-X-SWARMCAST-LOG:MSN="), "{text}");
            assert_eq!(text.contains("EVENT"), i == 0, "{text}");
            let object = decode(&playlist(), u.first_seq, &bytes, CLOCK).unwrap();
            assert_eq!(object.first_seq, u.first_seq);
            assert!(!rebuilt.apply(object, 100_000, 60_000), "no gap");
        }
        let got: Vec<_> = rebuilt.entries().cloned().collect();
        let want: Vec<_> = live.entries().cloned().collect();
        assert_eq!(got.len(), 3);
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (g.seq, g.source_msn, &g.path, g.dsn, g.added_ms),
                (w.seq, w.source_msn, &w.path, w.dsn, w.added_ms)
            );
        }
        assert!(got[2].segment.unknown_tags.iter().any(|t| t.tag == GAP_TAG), "lost segment marked");
        let vod = rebuilt.render_within(100_000, View::Vod, 60_000, |_| false).unwrap();
        assert!(
            vod.contains("#EXT-X-GAP\n#EXTINF:2,\nc.ts") || vod.contains("#EXT-X-GAP\n#EXTINF:2.000000,\nc.ts"),
            "{vod}"
        );
        assert!(vod.contains("#EXT-X-MEDIA-SEQUENCE:10") && vod.contains("#EXT-X-DISCONTINUITY\n"), "{vod}");
    }

    #[test]
    fn refuses_what_it_did_not_write() {
        let cases: [(&[u8], LogObjectError); 5] = [
            (b"garbage", LogObjectError::Malformed("not a media playlist")),
            (&[0xff, 0xfe], LogObjectError::Malformed("not UTF-8")),
            (
                b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2,\na.ts\n",
                LogObjectError::Malformed("media sequence does not match the name"),
            ),
            (b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\na.ts\n", LogObjectError::Malformed("no log tag")),
            (
                b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-SWARMCAST-LOG:MSN=1,ADDED=2\n#EXTINF:2,\n../x.ts\n",
                LogObjectError::Malformed("bad segment URI"),
            ),
        ];
        for (bytes, err) in cases {
            assert_eq!(decode(&playlist(), 0, bytes, CLOCK), Err(err));
        }
        let big = vec![b'#'; MAX_LOG_OBJECT_BYTES as usize + 1];
        assert_eq!(decode(&playlist(), 0, &big, CLOCK), Err(LogObjectError::Oversized));
        let end = b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:5\n#EXT-X-ENDLIST\n";
        let object = decode(&playlist(), 5, end, CLOCK).unwrap();
        assert!(object.ended && object.entries.is_empty() && !object.starts);
    }
}
