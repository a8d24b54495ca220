//! The live window: every object of every stream, in memory, with time passed in (pure, no IO).
//!
//! A stream is one content id. Playlists are replaced in place once [`crate::playlist::validate`]
//! accepts them. Segments are immutable once listed. A segment that is deleted, or that leaves
//! the window of its playlist, stays served for a grace period of twice the stream's window (the
//! longest media playlist duration), which covers RFC 8216 §6.2.2's availability duration; a
//! segment that no playlist ever lists expires after [`ORPHAN_TTL_MS`] (or the grace period if
//! longer). With a timeshift window ([`Limits::dvr_window_ms`]) a segment is also served until it
//! leaves that window, and each media playlist keeps a [`DvrLog`] for its DVR and VOD views.
//! Capacity limits evict the soonest-expiring objects first (so the oldest DVR segments go first)
//! and refuse ingest only when nothing can be evicted.
//!
//! Every segment's SHA-256 is computed when it is stored ([`Store::digests`]).

use std::collections::HashMap;

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use crate::dvr::{DvrLog, View};
use crate::path::{Kind, ObjectPath};
use crate::playlist::{self, Accepted, PlaylistError};
use crate::window;

/// Least time an uploaded but never listed segment is kept, in milliseconds.
pub const ORPHAN_TTL_MS: u64 = 30_000;

/// Capacity bounds of a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most streams (content ids) held at once.
    pub max_streams: usize,
    /// Most objects (playlists and segments, expiring ones included) per stream.
    pub max_objects_per_stream: usize,
    /// Most bytes held over all streams.
    pub max_total_bytes: u64,
    /// Timeshift window, in milliseconds: how long a segment stays served after it was first
    /// listed, and what the DVR playlists cover (0: no DVR).
    pub dvr_window_ms: u64,
}

/// The digest of one listed segment, as [`Store::digests`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDigest {
    /// Media sequence number.
    pub msn: u64,
    /// The URI as written in the playlist.
    pub uri: String,
    /// Size, in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
}

/// One stored object as served.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// The bytes as uploaded.
    pub bytes: Bytes,
    /// Its kind (decides `Content-Type` and caching).
    pub kind: Kind,
    /// When it stops being served, in store milliseconds (`None` while listed or for playlists).
    pub expires_at_ms: Option<u64>,
}

/// What a successful `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object did not exist.
    Created,
    /// An existing playlist (or a not yet listed segment) was replaced.
    Replaced,
}

/// Why the store refused an operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The playlist failed validation; the previous version is kept.
    #[error(transparent)]
    Playlist(#[from] PlaylistError),
    /// A new stream would exceed [`Limits::max_streams`].
    #[error("too many streams")]
    TooManyStreams,
    /// The stream holds [`Limits::max_objects_per_stream`] objects and none can be evicted.
    #[error("too many objects in this stream")]
    StreamFull,
    /// [`Limits::max_total_bytes`] would be exceeded and nothing can be evicted.
    #[error("origin storage is full")]
    StoreFull,
    /// The segment was already listed or deleted; segments are immutable once published.
    #[error("segment {0} is already published and cannot be replaced")]
    Immutable(String),
    /// No such object.
    #[error("not found")]
    NotFound,
}

#[derive(Debug)]
struct Entry {
    bytes: Bytes,
    kind: Kind,
    /// The accepted version's state, for playlists.
    accepted: Option<Accepted>,
    /// Set by DELETE: no new playlist may list it.
    deleted: bool,
    /// When it stops being served and is dropped, in store milliseconds; `None` while listed.
    expires_at_ms: Option<u64>,
    /// SHA-256 of `bytes`, for segments.
    sha256: Option<[u8; 32]>,
    /// When a playlist first listed it, in store milliseconds.
    first_listed_ms: Option<u64>,
}

impl Entry {
    fn live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}

#[derive(Debug, Default)]
struct Stream {
    objects: HashMap<String, Entry>,
    /// The timeshift log of each media playlist, by path.
    dvr: HashMap<String, DvrLog>,
}

impl Stream {
    /// The longest media playlist duration of this stream, in milliseconds.
    fn window_ms(&self) -> u64 {
        self.media_states().map(|m| m.duration_ms).max().unwrap_or(0)
    }

    fn grace_ms(&self) -> u64 {
        self.window_ms().saturating_mul(2)
    }

    fn media_states(&self) -> impl Iterator<Item = &playlist::MediaState> {
        self.objects.values().filter_map(|e| match &e.accepted {
            Some(Accepted::Media(m)) => Some(m),
            _ => None,
        })
    }

    fn is_listed(&self, path: &str) -> bool {
        self.media_states().any(|m| m.segments.iter().chain(&m.maps).any(|s| s == path))
    }

    /// Makes the segments `old` listed, and that no playlist lists any more, expire at `expires`
    /// or when they leave the timeshift window, whichever is later.
    fn release(&mut self, old: Option<Accepted>, expires: u64, dvr_window_ms: u64) {
        let Some(Accepted::Media(old)) = old else { return };
        for seg in old.segments.iter().chain(&old.maps) {
            if self.is_listed(seg) {
                continue;
            }
            let until = self.dvr_expiry(seg, dvr_window_ms).map_or(expires, |d| d.max(expires));
            if let Some(e) = self.objects.get_mut(seg) {
                e.expires_at_ms = Some(e.expires_at_ms.map_or(until, |t| t.min(until)));
            }
        }
    }

    /// When `path` leaves the timeshift window of every DVR log, if any records it.
    fn dvr_expiry(&self, path: &str, dvr_window_ms: u64) -> Option<u64> {
        let first_listed = self.objects.get(path).and_then(|e| e.first_listed_ms);
        let logged = self.dvr.values().filter_map(|log| log.expiry_of(path, dvr_window_ms)).max();
        // Init sections are not in the logs: keep them as long as the segments that used them.
        let init = first_listed.filter(|_| dvr_window_ms > 0).map(|t| t.saturating_add(dvr_window_ms));
        logged.max(init)
    }

    fn served(&self, now_ms: u64, path: &str) -> bool {
        self.objects.get(path).is_some_and(|e| e.live(now_ms))
    }
}

/// All streams of the origin. See the module docs for the rules.
#[derive(Debug)]
pub struct Store {
    limits: Limits,
    streams: HashMap<String, Stream>,
    total_bytes: u64,
}

impl Store {
    /// An empty store bounded by `limits`.
    pub fn new(limits: Limits) -> Self {
        Self { limits, streams: HashMap::new(), total_bytes: 0 }
    }

    /// The object at `path` if it is still served at `now_ms`.
    pub fn get(&self, now_ms: u64, path: &ObjectPath) -> Option<Object> {
        let e = self.streams.get(&path.content)?.objects.get(&path.path)?;
        e.live(now_ms).then(|| Object { bytes: e.bytes.clone(), kind: e.kind, expires_at_ms: e.expires_at_ms })
    }

    /// The DVR or VOD rendering of the media playlist at `path`, if it has a timeshift log with
    /// something still served (and, for VOD, the stream ended).
    pub fn dvr_playlist(&self, now_ms: u64, path: &ObjectPath, view: View) -> Option<Bytes> {
        let stream = self.streams.get(&path.content)?;
        let log = stream.dvr.get(&path.path)?;
        log.render(now_ms, view, |p| stream.served(now_ms, p)).map(Bytes::from)
    }

    /// Whether the media playlist at `path` has a timeshift log.
    pub fn has_dvr_log(&self, path: &ObjectPath) -> bool {
        self.streams.get(&path.content).is_some_and(|s| s.dvr.contains_key(&path.path))
    }

    /// The digests of the segments the media playlist at `path` lists, oldest first.
    pub fn digests(&self, now_ms: u64, path: &ObjectPath) -> Option<Vec<ListedDigest>> {
        let stream = self.streams.get(&path.content)?;
        let entry = stream.objects.get(&path.path).filter(|e| e.live(now_ms))?;
        let Some(Accepted::Media(m)) = &entry.accepted else { return None };
        let digests = m
            .items
            .iter()
            .zip(&m.segments)
            .enumerate()
            .filter_map(|(i, (item, seg))| {
                let e = stream.objects.get(seg)?;
                Some(ListedDigest {
                    msn: m.media_sequence.saturating_add(i as u64),
                    uri: item.uri.clone(),
                    bytes: e.bytes.len() as u64,
                    sha256: e.sha256?,
                })
            })
            .collect();
        Some(digests)
    }

    /// The content ids held.
    pub fn contents(&self) -> Vec<String> {
        self.streams.keys().cloned().collect()
    }

    /// Stores `body` at `path` (validating playlists first).
    ///
    /// # Errors
    /// [`StoreError`]; on error nothing changed except the expiry sweep.
    pub fn put(&mut self, now_ms: u64, path: &ObjectPath, body: Bytes) -> Result<PutOutcome, StoreError> {
        self.sweep(now_ms);
        if !self.streams.contains_key(&path.content) && self.streams.len() >= self.limits.max_streams {
            return Err(StoreError::TooManyStreams);
        }
        let empty = Stream::default();
        let stream = self.streams.get(&path.content).unwrap_or(&empty);
        let existing = stream.objects.get(&path.path);
        let mut body = body;
        let accepted = if path.kind.is_playlist() {
            let previous = existing.and_then(|e| e.accepted.as_ref());
            let stored = |p: &str| stream.objects.get(p).is_some_and(|e| !e.deleted && e.live(now_ms));
            let accepted = playlist::validate(path, &body, previous, stored)?;
            match (previous, &accepted) {
                (Some(Accepted::Media(prev)), Accepted::Media(new)) => {
                    match window::pad(prev, new, &body, |p| stream.served(now_ms, p)) {
                        Some((padded, republished)) => {
                            body = republished;
                            Some(Accepted::Media(padded))
                        }
                        None => Some(accepted),
                    }
                }
                _ => Some(accepted),
            }
        } else {
            if existing.is_some_and(|e| e.deleted || e.first_listed_ms.is_some() || stream.is_listed(&path.path)) {
                return Err(StoreError::Immutable(path.path.clone()));
            }
            None
        };
        // Objects the new version relies on must survive eviction.
        let mut keep: Vec<&str> = vec![path.path.as_str()];
        if let Some(Accepted::Media(m)) = &accepted {
            keep.extend(m.segments.iter().chain(&m.maps).map(String::as_str));
        }
        let keep: Vec<String> = keep.into_iter().map(str::to_owned).collect();
        let old_len = existing.map_or(0, |e| e.bytes.len() as u64);
        let is_new = existing.is_none();
        self.make_room(path, is_new, body.len() as u64, old_len, &keep)?;

        let stream = self.streams.entry(path.content.clone()).or_default();
        let grace_before = stream.grace_ms();
        let expires_at_ms = match accepted {
            Some(_) => None,
            None => Some(now_ms.saturating_add(stream.grace_ms().max(ORPHAN_TTL_MS))),
        };
        let sha256 = (!path.kind.is_playlist()).then(|| Sha256::digest(&body).into());
        let dvr_window_ms = self.limits.dvr_window_ms;
        if let (Some(Accepted::Media(m)), true) = (&accepted, dvr_window_ms > 0) {
            stream.dvr.entry(path.path.clone()).or_default().record(now_ms, m, dvr_window_ms);
        }
        let new_listed: Vec<String> = match &accepted {
            Some(Accepted::Media(m)) => m.segments.iter().chain(&m.maps).cloned().collect(),
            _ => Vec::new(),
        };
        self.total_bytes = self.total_bytes.saturating_sub(old_len).saturating_add(body.len() as u64);
        let entry = Entry {
            bytes: body,
            kind: path.kind,
            accepted,
            deleted: false,
            expires_at_ms,
            sha256,
            first_listed_ms: None,
        };
        let old = stream.objects.insert(path.path.clone(), entry);
        for seg in &new_listed {
            if let Some(e) = stream.objects.get_mut(seg) {
                e.expires_at_ms = None;
                e.first_listed_ms.get_or_insert(now_ms);
            }
        }
        let released_until = now_ms.saturating_add(grace_before.max(stream.grace_ms()));
        stream.release(old.and_then(|o| o.accepted), released_until, dvr_window_ms);
        Ok(if is_new { PutOutcome::Created } else { PutOutcome::Replaced })
    }

    /// Deletes `path`: a playlist is dropped at once (its segments start their grace period), a
    /// segment keeps being served for the grace period but can no longer be listed.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when nothing is stored there.
    pub fn delete(&mut self, now_ms: u64, path: &ObjectPath) -> Result<(), StoreError> {
        self.sweep(now_ms);
        let dvr_window_ms = self.limits.dvr_window_ms;
        let stream = self.streams.get_mut(&path.content).ok_or(StoreError::NotFound)?;
        let grace = stream.grace_ms();
        let dvr_until = stream.dvr_expiry(&path.path, dvr_window_ms);
        let entry = stream.objects.get_mut(&path.path).ok_or(StoreError::NotFound)?;
        if entry.kind.is_playlist() || (grace == 0 && dvr_until.is_none()) {
            let old = stream.objects.remove(&path.path);
            self.total_bytes = self.total_bytes.saturating_sub(old.as_ref().map_or(0, |o| o.bytes.len() as u64));
            if let Some(log) = stream.dvr.get_mut(&path.path) {
                log.end();
            }
            stream.release(old.and_then(|o| o.accepted), now_ms.saturating_add(grace), dvr_window_ms);
        } else {
            entry.deleted = true;
            let expires = now_ms.saturating_add(grace);
            let expires = dvr_until.map_or(expires, |d| d.max(expires));
            entry.expires_at_ms = Some(entry.expires_at_ms.map_or(expires, |t| t.min(expires)));
        }
        if stream.objects.is_empty() {
            self.streams.remove(&path.content);
        }
        Ok(())
    }

    /// Drops every object whose grace period ended at or before `now_ms`, and empty streams.
    pub fn sweep(&mut self, now_ms: u64) {
        let mut freed = 0_u64;
        self.streams.retain(|_, s| {
            s.objects.retain(|_, e| {
                let keep = e.live(now_ms);
                if !keep {
                    freed += e.bytes.len() as u64;
                }
                keep
            });
            !s.objects.is_empty()
        });
        self.total_bytes = self.total_bytes.saturating_sub(freed);
    }

    /// Number of streams, number of objects and bytes held.
    pub fn stats(&self) -> (usize, usize, u64) {
        let objects = self.streams.values().map(|s| s.objects.len()).sum();
        (self.streams.len(), objects, self.total_bytes)
    }

    /// Evicts soonest-expiring objects (never those in `keep` of `path.content`) until one more
    /// object of `new_len` bytes (replacing `old_len`) fits.
    fn make_room(
        &mut self,
        path: &ObjectPath,
        is_new: bool,
        new_len: u64,
        old_len: u64,
        keep: &[String],
    ) -> Result<(), StoreError> {
        let count = |s: &Self| s.streams.get(&path.content).map_or(0, |st| st.objects.len());
        while is_new && count(self) >= self.limits.max_objects_per_stream {
            if !self.evict_one(Some(&path.content), &path.content, keep) {
                return Err(StoreError::StreamFull);
            }
        }
        while self.total_bytes.saturating_sub(old_len).saturating_add(new_len) > self.limits.max_total_bytes {
            if !self.evict_one(None, &path.content, keep) {
                return Err(StoreError::StoreFull);
            }
        }
        Ok(())
    }

    /// Evicts the expiring object with the earliest expiry, within `only` if given. Returns false
    /// when there is none.
    fn evict_one(&mut self, only: Option<&str>, content: &str, keep: &[String]) -> bool {
        let victim = self
            .streams
            .iter()
            .filter(|(c, _)| only.is_none_or(|o| o == c.as_str()))
            .flat_map(|(c, s)| s.objects.iter().map(move |(p, e)| (c, p, e)))
            .filter(|(c, p, _)| !(c.as_str() == content && keep.contains(p)))
            .filter_map(|(c, p, e)| e.expires_at_ms.map(|t| (t, c.clone(), p.clone())))
            .min();
        let Some((_, c, p)) = victim else { return false };
        if let Some(s) = self.streams.get_mut(&c) {
            if let Some(e) = s.objects.remove(&p) {
                self.total_bytes = self.total_bytes.saturating_sub(e.bytes.len() as u64);
            }
            if s.objects.is_empty() {
                self.streams.remove(&c);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits =
        Limits { max_streams: 2, max_objects_per_stream: 8, max_total_bytes: 1 << 20, dvr_window_ms: 0 };

    fn p(path: &str) -> ObjectPath {
        ObjectPath::new("live", path).unwrap()
    }

    fn playlist(seq: u64, segs: &[&str]) -> Bytes {
        let mut s = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
        for uri in segs {
            s.push_str(&format!("#EXTINF:2.0,\n{uri}\n"));
        }
        Bytes::from(s)
    }

    fn seg(store: &mut Store, now: u64, name: &str) {
        store.put(now, &p(&format!("v/{name}")), Bytes::from_static(b"media")).unwrap();
    }

    #[test]
    fn playlist_needs_its_segments_and_keeps_previous_on_error() {
        let mut s = Store::new(LIMITS);
        let pl = p("v/index.m3u8");
        let err = s.put(0, &pl, playlist(0, &["a.ts"])).unwrap_err();
        assert!(matches!(err, StoreError::Playlist(PlaylistError::SegmentMissing(_))));
        seg(&mut s, 0, "a.ts");
        assert_eq!(s.put(1, &pl, playlist(0, &["a.ts"])).unwrap(), PutOutcome::Created);
        assert!(s.put(2, &pl, playlist(0, &["b.ts"])).is_err());
        assert_eq!(s.get(2, &pl).unwrap().bytes, playlist(0, &["a.ts"]));
    }

    #[test]
    fn listed_segments_are_immutable() {
        let mut s = Store::new(LIMITS);
        seg(&mut s, 0, "a.ts");
        seg(&mut s, 0, "a.ts"); // not listed yet: a retry may replace it
        s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts"])).unwrap();
        assert_eq!(s.put(0, &p("v/a.ts"), Bytes::from_static(b"x")), Err(StoreError::Immutable("v/a.ts".into())));
    }

    #[test]
    fn deleted_segment_is_served_for_twice_the_window() {
        let mut s = Store::new(LIMITS);
        for name in ["a.ts", "b.ts", "c.ts"] {
            seg(&mut s, 0, name);
        }
        s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts", "b.ts", "c.ts"])).unwrap(); // window 6 s
        seg(&mut s, 2000, "d.ts");
        s.put(2000, &p("v/index.m3u8"), playlist(1, &["b.ts", "c.ts", "d.ts"])).unwrap();
        s.delete(2000, &p("v/a.ts")).unwrap();
        assert!(s.get(2000 + 11_999, &p("v/a.ts")).is_some());
        assert!(s.get(2000 + 12_000, &p("v/a.ts")).is_none());
        // A deleted segment cannot come back into a playlist.
        let again = s.put(2001, &p("v/index.m3u8"), playlist(1, &["b.ts", "c.ts", "d.ts", "a.ts"])).unwrap_err();
        assert!(matches!(again, StoreError::Playlist(PlaylistError::SegmentMissing(_))));
        s.sweep(20_000);
        assert_eq!(s.stats().1, 4);
    }

    #[test]
    fn segments_leaving_the_window_expire_without_delete() {
        let mut s = Store::new(LIMITS);
        for name in ["a.ts", "b.ts", "c.ts"] {
            seg(&mut s, 0, name);
        }
        s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts", "b.ts", "c.ts"])).unwrap(); // grace 12 s
        seg(&mut s, 2000, "d.ts");
        s.put(2000, &p("v/index.m3u8"), playlist(1, &["b.ts", "c.ts", "d.ts"])).unwrap();
        assert!(s.get(13_999, &p("v/a.ts")).is_some());
        assert!(s.get(14_000, &p("v/a.ts")).is_none());
        assert!(s.get(1_000_000, &p("v/b.ts")).is_some(), "listed segments never expire");
    }

    #[test]
    fn a_window_shrunk_below_three_target_durations_is_padded() {
        let mut s = Store::new(LIMITS);
        for name in ["a.ts", "b.ts", "c.ts"] {
            seg(&mut s, 0, name);
        }
        s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts", "b.ts", "c.ts"])).unwrap();
        seg(&mut s, 2000, "d.ts");
        // The encoder restarted: one segment only.
        s.put(2000, &p("v/index.m3u8"), playlist(3, &["d.ts"])).unwrap();
        let served = String::from_utf8(s.get(2000, &p("v/index.m3u8")).unwrap().bytes.to_vec()).unwrap();
        assert!(served.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{served}");
        assert!(!served.contains("a.ts") && served.contains("b.ts") && served.contains("d.ts"), "{served}");
    }

    #[test]
    fn timeshift_keeps_segments_and_renders_dvr_and_vod() {
        let mut s = Store::new(Limits { dvr_window_ms: 60_000, max_objects_per_stream: 64, ..LIMITS });
        for (i, name) in ["a.ts", "b.ts", "c.ts", "d.ts"].iter().enumerate() {
            seg(&mut s, i as u64 * 2000, name);
        }
        s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts", "b.ts", "c.ts"])).unwrap();
        s.put(6000, &p("v/index.m3u8"), playlist(1, &["b.ts", "c.ts", "d.ts"])).unwrap();
        s.delete(6000, &p("v/a.ts")).unwrap();
        assert!(s.get(59_999, &p("v/a.ts")).is_some(), "kept for the timeshift window");
        assert!(s.get(60_000, &p("v/a.ts")).is_none());
        let dvr = String::from_utf8(s.dvr_playlist(7000, &p("v/index.m3u8"), View::Dvr).unwrap().to_vec()).unwrap();
        assert!(dvr.contains("EVENT") && dvr.contains("a.ts") && dvr.contains("d.ts"), "{dvr}");
        assert!(s.dvr_playlist(7000, &p("v/index.m3u8"), View::Vod).is_none());
        let mut ended = String::from_utf8(playlist(1, &["b.ts", "c.ts", "d.ts"]).to_vec()).unwrap();
        ended.push_str("#EXT-X-ENDLIST\n");
        s.put(8000, &p("v/index.m3u8"), Bytes::from(ended)).unwrap();
        let vod = String::from_utf8(s.dvr_playlist(8000, &p("v/index.m3u8"), View::Vod).unwrap().to_vec()).unwrap();
        assert!(
            vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("#EXT-X-ENDLIST") && vod.contains("a.ts"),
            "{vod}"
        );
        let digests = s.digests(8000, &p("v/index.m3u8")).unwrap();
        assert_eq!(digests.len(), 3);
        assert_eq!((digests[0].msn, digests[0].uri.as_str(), digests[0].bytes), (1, "b.ts", 5));
        assert_eq!(digests[0].sha256, <[u8; 32]>::from(Sha256::digest(b"media")));
    }

    #[test]
    fn orphans_expire_and_capacity_evicts_expiring_first() {
        let mut s = Store::new(Limits { max_objects_per_stream: 3, ..LIMITS });
        seg(&mut s, 0, "a.ts");
        assert!(s.get(ORPHAN_TTL_MS, &p("v/a.ts")).is_none());
        seg(&mut s, 0, "b.ts");
        s.put(0, &p("v/index.m3u8"), playlist(0, &["b.ts"])).unwrap();
        // Full (a, b, index): the orphan a.ts is evicted for c.ts.
        seg(&mut s, 1, "c.ts");
        assert!(s.get(1, &p("v/a.ts")).is_none());
        // Now b and index are pinned and c.ts is the only candidate: d.ts evicts it.
        seg(&mut s, 2, "d.ts");
        assert!(s.get(2, &p("v/c.ts")).is_none());
        let mut pinned = Store::new(Limits { max_objects_per_stream: 1, ..LIMITS });
        seg(&mut pinned, 0, "a.ts");
        pinned.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts"])).unwrap_err();
    }

    #[test]
    fn stream_and_byte_limits() {
        let mut s = Store::new(Limits { max_total_bytes: 8, ..LIMITS });
        s.put(0, &ObjectPath::new("one", "a.ts").unwrap(), Bytes::from_static(b"12345")).unwrap();
        s.put(0, &ObjectPath::new("two", "a.ts").unwrap(), Bytes::from_static(b"1")).unwrap();
        let third = s.put(0, &ObjectPath::new("three", "a.ts").unwrap(), Bytes::from_static(b"1"));
        assert_eq!(third, Err(StoreError::TooManyStreams));
        // 5 + 1 + 5 > 8: the soonest-expiring orphan (one/a.ts, same expiry, smallest key) goes.
        s.put(1, &ObjectPath::new("two", "b.ts").unwrap(), Bytes::from_static(b"12345")).unwrap();
        assert_eq!(s.stats(), (1, 2, 6));
    }

    #[test]
    fn deleting_a_playlist_releases_its_segments() {
        let mut s = Store::new(LIMITS);
        seg(&mut s, 0, "a.ts");
        s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts"])).unwrap();
        s.delete(10, &p("v/index.m3u8")).unwrap();
        assert!(s.get(10, &p("v/index.m3u8")).is_none());
        assert_eq!(s.delete(10, &p("v/index.m3u8")), Err(StoreError::NotFound));
        // a.ts keeps the grace period of the window it was listed in (2 × 2 s).
        assert!(s.get(4009, &p("v/a.ts")).is_some());
        assert!(s.get(4010, &p("v/a.ts")).is_none());
    }
}
