use super::*;
use crate::path::ObjectPath;
use crate::playlist::{Accepted, validate};

const NOW: u64 = 6000;

/// The accepted state of a media playlist of 2 s segments `segs` (below `v/`) starting at `seq`.
pub(crate) fn state(seq: u64, segs: &[&str], ended: bool) -> MediaState {
    let mut s = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{seq}\n");
    for uri in segs {
        s.push_str(&format!("#EXTINF:2.000000,\n{uri}\n"));
    }
    if ended {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    let path = ObjectPath::new("live", "v/index.m3u8").unwrap();
    match validate(&path, s.as_bytes(), None, |_| true).unwrap() {
        Accepted::Media(m) => m,
        Accepted::Master => panic!("media expected"),
    }
}

fn seqs(log: &DvrLog) -> Vec<(u64, u64, &str, bool)> {
    log.entries().map(|e| (e.seq, e.source_msn, e.path.as_str(), e.segment.discontinuity)).collect()
}

#[test]
fn event_then_sliding_then_vod() {
    let mut log = DvrLog::default();
    log.record(0, &state(0, &["a.ts", "b.ts"], false), 5000, false);
    log.record(2000, &state(1, &["b.ts", "c.ts"], false), 5000, true);
    let dvr = log.render(NOW, View::Dvr, |_| true).unwrap();
    assert!(dvr.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{dvr}");
    assert!(dvr.contains("a.ts") && dvr.contains("c.ts") && !dvr.contains("ENDLIST"), "{dvr}");
    assert_eq!(log.render(NOW, View::Vod, |_| true), None, "no VOD while live");

    log.record(5000, &state(2, &["c.ts", "d.ts"], false), 5000, true);
    let dvr = log.render(NOW, View::Dvr, |_| true).unwrap();
    // a.ts and b.ts were first listed at 0 and left the 5 s window.
    assert!(!dvr.contains("PLAYLIST-TYPE") && !dvr.contains("b.ts"), "{dvr}");
    assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:2"), "{dvr}");

    log.record(6000, &state(3, &["d.ts", "e.ts"], true), 5000, true);
    let vod = log.render(NOW, View::Vod, |_| true).unwrap();
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.contains("#EXT-X-ENDLIST"), "{vod}");
    assert!(vod.contains("c.ts") && vod.contains("e.ts"), "{vod}");
    assert_eq!(log.expiry_of("v/e.ts", 5000), Some(11_000));
}

#[test]
fn an_idle_stream_counts_as_ended() {
    let mut log = DvrLog::default();
    log.record(0, &state(0, &["a.ts"], false), 60_000, false);
    assert_eq!(log.render(6000, View::Vod, |_| true), None);
    let vod = log.render(6001, View::Vod, |_| true).unwrap();
    assert!(vod.contains("#EXT-X-ENDLIST"), "{vod}");
}

#[test]
fn lists_only_the_newest_served_run() {
    let mut log = DvrLog::default();
    log.record(0, &state(0, &["a.ts", "b.ts", "c.ts"], false), 60_000, false);
    let dvr = log.render(NOW, View::Dvr, |p| p != "v/b.ts").unwrap();
    assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:2") && !dvr.contains("a.ts"), "{dvr}");
    assert_eq!(log.render(NOW, View::Dvr, |_| false), None);
}

#[test]
fn within_lists_the_window_whatever_memory_holds() {
    let mut log = DvrLog::default();
    log.record(0, &state(0, &["a.ts"], false), 10_000, false);
    log.record(2000, &state(1, &["b.ts"], false), 10_000, true);
    let dvr = log.render_within(NOW, View::Dvr, 10_000, |_| false).unwrap();
    assert!(dvr.contains("a.ts") && dvr.contains("b.ts"), "{dvr}");
    let dvr = log.render_within(11_000, View::Dvr, 10_000, |_| false).unwrap();
    assert!(!dvr.contains("a.ts") && dvr.contains("b.ts"), "{dvr}");
    assert_eq!(log.render_within(12_000, View::Dvr, 10_000, |_| false), None);
    let gap = log.render_within(NOW, View::Dvr, 10_000, |p| p == "v/a.ts").unwrap();
    assert!(gap.contains("#EXT-X-GAP\n#EXTINF:2,\na.ts") && gap.matches("GAP").count() == 1, "{gap}");
}

#[test]
fn discontinuities_keep_their_numbers() {
    let mut log = DvrLog::default();
    let mut m = state(0, &["a.ts", "b.ts"], false);
    m.items[1].discontinuity = true;
    log.record(0, &m, 60_000, false);
    let dvr = log.render(NOW, View::Dvr, |p| p != "v/a.ts").unwrap();
    assert!(!dvr.contains("DISCONTINUITY-SEQUENCE") && dvr.contains("#EXT-X-DISCONTINUITY\n"), "{dvr}");
}

#[test]
fn updates_carry_what_was_appended() {
    let mut log = DvrLog::default();
    let first = log.record(0, &state(5, &["a.ts", "b.ts"], false), 60_000, false).unwrap();
    assert_eq!((first.first_seq, first.entries.len(), first.starts, first.ended), (5, 2, true, false));
    assert_eq!(log.record(1000, &state(5, &["a.ts", "b.ts"], false), 60_000, true), None, "nothing new");
    let next = log.record(2000, &state(6, &["b.ts", "c.ts"], false), 60_000, true).unwrap();
    assert_eq!((next.first_seq, next.entries.len(), next.starts), (7, 1, false));
    let end = log.end().unwrap();
    assert_eq!((end.first_seq, end.entries.len(), end.ended), (8, 0, true));
    assert_eq!(log.end(), None, "already ended");
    assert_eq!(DvrLog::default().end(), None, "nothing recorded");
    let endlist = log.record(3000, &state(7, &["c.ts"], true), 60_000, false);
    assert_eq!(endlist, None, "still ended, nothing new");
}

#[test]
fn numbering_survives_jumps_and_encoder_restarts() {
    let mut log = DvrLog::default();
    log.record(0, &state(100, &["a.ts", "b.ts"], false), 60_000, false);
    // Segments 102..=104 never reached the origin.
    log.record(2000, &state(105, &["c.ts"], false), 60_000, true);
    // After an origin restart a new encoder starts again at 0.
    let restart = log.record(4000, &state(0, &["d.ts", "e.ts"], false), 60_000, false).unwrap();
    assert_eq!(restart.first_seq, 103);
    assert_eq!(
        seqs(&log),
        vec![
            (100, 100, "v/a.ts", false),
            (101, 101, "v/b.ts", false),
            (102, 105, "v/c.ts", true),
            (103, 0, "v/d.ts", true),
            (104, 1, "v/e.ts", false)
        ]
    );
    // The same encoder after an origin restart: its playlist overlaps what was recorded.
    log.record(6000, &state(1, &["e.ts", "f.ts"], false), 60_000, false);
    assert_eq!(seqs(&log).last(), Some(&(105, 2, "v/f.ts", false)));
    let dvr = log.render(NOW, View::Dvr, |_| true).unwrap();
    assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:100") && dvr.matches("#EXT-X-DISCONTINUITY\n").count() == 2, "{dvr}");
}

#[test]
fn a_rebuilt_log_with_a_gap_keeps_its_numbers() {
    let mut live = DvrLog::default();
    let clock = Clock { store_now_ms: 10_000, unix_now_ms: 1_000_000 };
    let updates: Vec<LogUpdate> = (0..4)
        .map(|i| live.record(i * 2000, &state(i, &[&format!("s{i}.ts")], false), 60_000, i > 0).unwrap())
        .collect();
    let mut rebuilt = DvrLog::default();
    let path = ObjectPath::new("live", "v/index.m3u8").unwrap();
    let mut gaps = 0;
    for u in updates.iter().filter(|u| u.first_seq != 2) {
        let bytes = persist::encode(u, clock, |_| false);
        let object = persist::decode(&path, u.first_seq, &bytes, clock).unwrap();
        gaps += u32::from(rebuilt.apply(object, clock.store_now_ms, 60_000));
    }
    assert_eq!(gaps, 1);
    let dvr = rebuilt.render_within(clock.store_now_ms, View::Dvr, 60_000, |_| false).unwrap();
    // Numbered back from the newest entry: s3.ts keeps 3, the run before the gap moves up.
    assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{dvr}");
    assert!(dvr.contains("#EXT-X-DISCONTINUITY\n#EXTINF:2,\ns3.ts"), "{dvr}");
    assert!(dvr.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "the first object started the log: {dvr}");
    // It continues where it stopped.
    let next = rebuilt.record(clock.store_now_ms, &state(4, &["s4.ts"], false), 60_000, false).unwrap();
    assert_eq!(next.first_seq, 4);
    // Trimmed to the window while rebuilding.
    let mut short = DvrLog::default();
    for u in &updates {
        let bytes = persist::encode(u, clock, |_| false);
        short.apply(persist::decode(&path, u.first_seq, &bytes, clock).unwrap(), clock.store_now_ms, 5000);
    }
    assert_eq!(short.len(), 1, "only s3.ts (added at 6 s) is inside 5 s of 10 s");
    let dvr = short.render_within(clock.store_now_ms, View::Dvr, 5000, |_| false).unwrap();
    assert!(!dvr.contains("EVENT") && dvr.contains("#EXT-X-MEDIA-SEQUENCE:3"), "{dvr}");
}
