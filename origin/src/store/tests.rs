use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::*;

const LIMITS: Limits =
    Limits { max_streams: 2, max_objects_per_stream: 8, max_total_bytes: 1 << 20, dvr_window_ms: 0, archived: false };

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
    let dvr =
        String::from_utf8(s.dvr_playlist(7000, &p("v/index.m3u8"), View::Dvr, |_| false).unwrap().to_vec()).unwrap();
    assert!(dvr.contains("EVENT") && dvr.contains("a.ts") && dvr.contains("d.ts"), "{dvr}");
    assert!(s.dvr_playlist(7000, &p("v/index.m3u8"), View::Vod, |_| false).is_none());
    let mut ended = String::from_utf8(playlist(1, &["b.ts", "c.ts", "d.ts"]).to_vec()).unwrap();
    ended.push_str("#EXT-X-ENDLIST\n");
    s.put(8000, &p("v/index.m3u8"), Bytes::from(ended)).unwrap();
    let vod =
        String::from_utf8(s.dvr_playlist(8000, &p("v/index.m3u8"), View::Vod, |_| false).unwrap().to_vec()).unwrap();
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
fn with_an_archive_memory_keeps_only_the_grace_period() {
    let mut s = Store::new(Limits { dvr_window_ms: 60_000, max_objects_per_stream: 64, archived: true, ..LIMITS });
    for (i, name) in ["a.ts", "b.ts", "c.ts", "d.ts"].iter().enumerate() {
        seg(&mut s, i as u64 * 2000, name);
    }
    s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts", "b.ts", "c.ts"])).unwrap();
    s.put(6000, &p("v/index.m3u8"), playlist(1, &["b.ts", "c.ts", "d.ts"])).unwrap();
    s.delete(6000, &p("v/a.ts")).unwrap();
    // Grace: twice the 6 s window, not the 60 s timeshift window.
    assert!(s.get(6000 + 11_999, &p("v/a.ts")).is_some());
    assert!(s.get(6000 + 12_000, &p("v/a.ts")).is_none());
    let dvr =
        String::from_utf8(s.dvr_playlist(20_000, &p("v/index.m3u8"), View::Dvr, |_| false).unwrap().to_vec()).unwrap();
    assert!(dvr.contains("a.ts") && dvr.contains("d.ts"), "listed from the archive: {dvr}");
    assert!(s.archived(&p("v/a.ts")) && !s.archived(&p("v/index.m3u8")));
    let updates = s.take_log_updates();
    let firsts: Vec<(u64, usize)> = updates.iter().map(|u| (u.update.first_seq, u.update.entries.len())).collect();
    assert_eq!(firsts, vec![(0, 3), (3, 1)], "one update per accepted playlist with new segments");
    assert!(updates.iter().all(|u| u.content == "live" && u.path == "v/index.m3u8"));
    let lost = s.dvr_playlist(20_000, &p("v/index.m3u8"), View::Dvr, |p| p == "v/b.ts").unwrap();
    assert!(String::from_utf8_lossy(&lost).contains("#EXT-X-GAP\n#EXTINF:2,\nb.ts"), "{lost:?}");
    // The stream ends; its log outlives every object until the timeshift window passes.
    s.delete(20_000, &p("v/index.m3u8")).unwrap();
    let end = s.take_log_updates();
    assert_eq!(end.len(), 1);
    assert!(end[0].update.ended && end[0].update.entries.is_empty() && end[0].update.first_seq == 4);
    s.sweep(50_000);
    assert_eq!(s.stats().1, 0);
    let vod =
        String::from_utf8(s.dvr_playlist(50_000, &p("v/index.m3u8"), View::Vod, |_| false).unwrap().to_vec()).unwrap();
    assert!(vod.contains("#EXT-X-ENDLIST") && vod.contains("a.ts"), "{vod}");
    s.sweep(66_000);
    assert!(s.contents().is_empty(), "dropped once the window passed");
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

#[test]
fn restored_logs_serve_and_count_against_streams() {
    let limits = Limits { dvr_window_ms: 60_000, max_objects_per_stream: 64, archived: true, max_streams: 1, ..LIMITS };
    let mut s = Store::new(limits);
    seg(&mut s, 0, "a.ts");
    s.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts"])).unwrap();
    let update = s.take_log_updates().remove(0).update;
    let clock = crate::dvr::Clock { store_now_ms: 0, unix_now_ms: 1_000_000 };
    let bytes = crate::dvr::persist::encode(&update, clock, |_| false);
    let object = crate::dvr::persist::decode(&p("v/index.m3u8"), 0, &bytes, clock).unwrap();
    let mut log = DvrLog::default();
    log.apply(object, 1000, 60_000);

    let mut fresh = Store::new(limits);
    fresh.restore_log(&p("v/index.m3u8"), log.clone()).unwrap();
    let other = ObjectPath::new("other", "v/index.m3u8").unwrap();
    assert_eq!(fresh.restore_log(&other, log), Err(StoreError::TooManyStreams));
    assert!(fresh.take_log_updates().is_empty(), "a restore persists nothing");
    let dvr = fresh.dvr_playlist(1000, &p("v/index.m3u8"), View::Dvr, |_| false).unwrap();
    assert!(String::from_utf8_lossy(&dvr).contains("a.ts"));
    assert!(fresh.has_dvr_log(&p("v/index.m3u8")) && fresh.archived(&p("v/a.ts")));
    fresh.sweep(61_000);
    assert!(fresh.contents().is_empty(), "trimmed out of the window");
    // Without an archive nothing is collected.
    let mut plain = Store::new(Limits { dvr_window_ms: 60_000, ..LIMITS });
    seg(&mut plain, 0, "a.ts");
    plain.put(0, &p("v/index.m3u8"), playlist(0, &["a.ts"])).unwrap();
    assert!(plain.take_log_updates().is_empty());
}
