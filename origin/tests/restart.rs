//! The DVR and VOD playlists survive an origin restart: a second origin on the same
//! `file://` archive rebuilds them from the log objects (real HTTP on 127.0.0.1:0).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use reqwest::{Client, StatusCode};
use service::Metrics;
use swarmcast_origin::{Config, Origin};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "ingest-secret";
/// Bytes per test segment.
const SEGMENT: usize = 4_000;
/// The segment that starts a new timeline (`EXT-X-DISCONTINUITY`).
const DISCONTINUITY_AT: u64 = 6;

struct Server {
    base: String,
    /// The origin, when started with [`start`] (not through `run`).
    origin: Option<Origin>,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn config(dir: &Path, dvr_window_s: u64) -> Config {
    let archive_url = format!("file://{}/archive", dir.display());
    Config {
        ingest_token: TOKEN.into(),
        archive_url,
        dvr_window_s,
        max_total_bytes: 8 * SEGMENT as u64,
        ..Config::default()
    }
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// An origin with its handle, rebuilt from the archive as `run` does.
async fn start(config: Config) -> Server {
    let metrics = Metrics::new();
    let origin = Origin::new(config, &metrics).unwrap();
    origin.restore().await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let app = swarmcast_origin::router(origin.clone());
    let served = tokio::spawn(service::serve(listener, app, metrics, async move {
        let _ = rx.await;
    }));
    Server { base: format!("http://{addr}"), origin: Some(origin), client: client(), stop: Some(stop), served }
}

/// An origin started the way the binary does, through [`swarmcast_origin::run`].
async fn run(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let served = tokio::spawn(swarmcast_origin::run(config, listener, async move {
        let _ = rx.await;
    }));
    Server { base: format!("http://{addr}"), origin: None, client: client(), stop: Some(stop), served }
}

/// Distinct bytes for segment `n`.
fn body(n: u64) -> Vec<u8> {
    (0..SEGMENT).map(|i| (i as u64).wrapping_mul(13).wrapping_add(n * 5) as u8).collect()
}

/// A live playlist of the three segments ending at `n`, with program date-times and a
/// discontinuity before segment [`DISCONTINUITY_AT`].
fn playlist(n: u64, ended: bool) -> String {
    let first = n.saturating_sub(2);
    let dsn = u64::from(first > DISCONTINUITY_AT);
    let mut s = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:{dsn}\n"
    );
    for i in first..=n {
        if i == DISCONTINUITY_AT {
            s.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let (m, sec) = (i * 2 / 60, i * 2 % 60);
        s.push_str(&format!("#EXT-X-PROGRAM-DATE-TIME:2026-11-21T01:{m:02}:{sec:02}.500+00:00\n"));
        s.push_str(&format!("#EXTINF:1.{},\nseg_{i}.ts\n", 900 + i));
    }
    if ended {
        s.push_str("#EXT-X-ENDLIST\n");
    }
    s
}

impl Server {
    async fn put(&self, path: &str, body: impl Into<reqwest::Body>) -> StatusCode {
        let url = format!("{}/live/c/{path}", self.base);
        self.client.put(url).bearer_auth(TOKEN).body(body).send().await.unwrap().status()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}/{path}", self.base)).send().await.unwrap()
    }

    async fn text(&self, path: &str) -> (StatusCode, String) {
        let res = self.get(path).await;
        (res.status(), res.text().await.unwrap())
    }

    /// Ingests segments `from..to` and a playlist after each, as an encoder does; the last
    /// playlist ends the stream when `end`.
    async fn ingest(&self, from: u64, to: u64, end: bool) -> Vec<StatusCode> {
        let mut statuses = Vec::new();
        for i in from..to {
            assert_eq!(self.put(&format!("v/seg_{i}.ts"), body(i)).await, StatusCode::CREATED);
            statuses.push(self.put("v/index.m3u8", playlist(i, end && i + 1 == to)).await);
        }
        statuses
    }

    /// Waits for the archive writer, then shuts the origin down and drops it.
    async fn stop(mut self) {
        if let Some(origin) = self.origin.take() {
            origin.archive().unwrap().flushed().await;
        }
        drop(self.stop.take());
        self.served.await.unwrap().unwrap();
    }

    /// Every segment `playlist` lists (under `prefix`), checked byte-identical to what was
    /// ingested; returns their numbers.
    async fn check_segments(&self, prefix: &str, playlist: &str) -> Vec<u64> {
        let mut numbers = Vec::new();
        for uri in playlist.lines().filter(|l| l.ends_with(".ts")) {
            let n: u64 = uri.trim_start_matches("seg_").trim_end_matches(".ts").parse().unwrap();
            let res = self.get(&format!("{prefix}/c/v/{uri}")).await;
            assert_eq!(res.status(), StatusCode::OK, "{uri}");
            assert_eq!(res.bytes().await.unwrap().as_ref(), body(n).as_slice(), "{uri}");
            numbers.push(n);
        }
        numbers
    }
}

/// The playlist without what only says whether the stream is still live.
fn timeline(playlist: &str) -> Vec<&str> {
    playlist.lines().filter(|l| !l.starts_with("#EXT-X-ENDLIST") && !l.starts_with("#EXT-X-PLAYLIST-TYPE")).collect()
}

#[tokio::test]
async fn the_timeshift_window_survives_a_restart_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(config(dir.path(), 7200)).await;
    assert!(a.ingest(0, 12, false).await.iter().all(StatusCode::is_success));
    let (status, before) = a.text("dvr/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK);
    assert!(before.contains("#EXT-X-DISCONTINUITY\n") && before.contains("PROGRAM-DATE-TIME"), "{before}");
    assert_eq!(before.matches(".ts").count(), 12, "{before}");
    a.stop().await;
    assert!(dir.path().join("archive/c/v/index.m3u8.dvr/00000000000000000000.m3u8").exists());

    let b = run(config(dir.path(), 7200)).await;
    let (status, after) = b.text("dvr/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(timeline(&after), timeline(&before), "same segments, EXTINF, discontinuities and date-times");
    assert_eq!(b.check_segments("dvr", &after).await, (0..12).collect::<Vec<_>>());
    let metrics = b.text("metrics").await.1;
    assert!(metrics.contains("origin_archive_rebuilt_total{result=\"ok\"} 12"), "{metrics}");

    // The encoder carries on: its next two playlists list segments only the old process had
    // (refused), then the log continues where it stopped.
    let statuses = b.ingest(12, 16, false).await;
    assert_eq!(statuses[..2], [StatusCode::UNPROCESSABLE_ENTITY; 2]);
    assert!(statuses[2..].iter().all(StatusCode::is_success), "{statuses:?}");
    let (_, resumed) = b.text("dvr/c/v/index.m3u8").await;
    let recorded = timeline(&before);
    assert_eq!(timeline(&resumed)[..recorded.len()], recorded[..], "{resumed}");
    assert!(!resumed.contains("#EXT-X-ENDLIST"), "live again: {resumed}");
    assert_eq!(resumed.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "no break: {resumed}");
    assert_eq!(b.check_segments("dvr", &resumed).await, (0..16).collect::<Vec<_>>());
    b.stop().await;

    // And again, with what the second process recorded.
    let c = run(config(dir.path(), 7200)).await;
    let (_, again) = c.text("dvr/c/v/index.m3u8").await;
    assert_eq!(timeline(&again), timeline(&resumed));
}

#[tokio::test]
async fn the_vod_of_an_ended_stream_is_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(config(dir.path(), 7200)).await;
    a.ingest(0, 8, true).await;
    let (status, before) = a.text("vod/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    a.stop().await;

    let b = run(config(dir.path(), 7200)).await;
    let (status, vod) = b.text("vod/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{vod}");
    assert_eq!(vod, before);
    assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD") && vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    assert_eq!(b.check_segments("vod", &vod).await, (0..8).collect::<Vec<_>>());
    assert_eq!(b.get("live/c/v/index.m3u8").await.status(), StatusCode::NOT_FOUND, "the live window is gone");
}

#[tokio::test]
async fn malformed_and_oversized_log_objects_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(config(dir.path(), 7200)).await;
    a.ingest(0, 5, false).await;
    a.stop().await;
    let logs = dir.path().join("archive/c/v/index.m3u8.dvr");
    std::fs::write(logs.join("garbage.m3u8"), "#EXTM3U\n").unwrap();
    std::fs::write(logs.join("00000000000000000099.m3u8"), "not a playlist").unwrap();
    let tagless = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:98\n#EXTINF:2,\nseg_98.ts\n";
    std::fs::write(logs.join("00000000000000000098.m3u8"), tagless).unwrap();
    std::fs::write(logs.join("00000000000000000100.m3u8"), vec![b'#'; 5 << 20]).unwrap();
    let other = dir.path().join("archive/c/w/index.m3u8.dvr");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("00000000000000000000.m3u8"), [0xff, 0xfe, 0x00]).unwrap();

    let b = start(config(dir.path(), 7200)).await;
    let (status, dvr) = b.text("dvr/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{dvr}");
    assert_eq!(b.check_segments("dvr", &dvr).await, (0..5).collect::<Vec<_>>());
    assert_eq!(b.get("dvr/c/w/index.m3u8").await.status(), StatusCode::NOT_FOUND);
    let metrics = b.text("metrics").await.1;
    for want in ["{result=\"ok\"} 5", "{result=\"malformed\"} 4", "{result=\"oversized\"} 1"] {
        assert!(metrics.contains(&format!("origin_archive_rebuilt_total{want}")), "{want}: {metrics}");
    }
}

/// A log object as the origin writes it, for segment `n` first listed `age` ago.
fn log_object(n: u64, age: Duration, starts: bool) -> String {
    let added = SystemTime::now().checked_sub(age).unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let event = if starts { "#EXT-X-PLAYLIST-TYPE:EVENT\n" } else { "" };
    format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{n}\n{event}\
         #EXT-X-SWARMCAST-LOG:MSN={n},ADDED={}\n#EXTINF:2,\nseg_{n}.ts\n",
        added.as_millis()
    )
}

#[tokio::test]
async fn a_rebuilt_log_keeps_only_the_timeshift_window() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive/c/v");
    let logs = root.join("index.m3u8.dvr");
    std::fs::create_dir_all(&logs).unwrap();
    let hour = Duration::from_secs(3600);
    // Listed 3 h, 2 h (its object also last modified then), 30 min and 10 s ago; window 1 h.
    let ages = [3 * hour, 2 * hour, hour / 2, Duration::from_secs(10)];
    for (n, age) in ages.iter().enumerate() {
        let n = n as u64;
        std::fs::write(root.join(format!("seg_{n}.ts")), body(n)).unwrap();
        let object = logs.join(format!("{n:020}.m3u8"));
        std::fs::write(&object, log_object(n, *age, n == 0)).unwrap();
        if n == 1 {
            let file = std::fs::File::options().write(true).open(&object).unwrap();
            file.set_modified(SystemTime::now() - *age).unwrap();
        }
    }
    let b = start(config(dir.path(), 3600)).await;
    let (status, dvr) = b.text("dvr/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{dvr}");
    assert!(dvr.contains("#EXT-X-MEDIA-SEQUENCE:2\n") && !dvr.contains("EVENT"), "{dvr}");
    assert_eq!(b.check_segments("dvr", &dvr).await, vec![2, 3]);
    // Idle for more than three target durations: the stream counts as ended.
    let (status, vod) = b.text("vod/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{vod}");
    assert_eq!(b.check_segments("vod", &vod).await, vec![2, 3]);
}

#[tokio::test]
async fn a_segment_the_archive_lost_is_marked_as_a_gap_before_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // A non-empty directory where segment 3 should be written: that write fails.
    std::fs::create_dir_all(dir.path().join("archive/c/v/seg_3.ts/x")).unwrap();
    let a = start(config(dir.path(), 7200)).await;
    a.ingest(0, 6, false).await;
    a.origin.as_ref().unwrap().archive().unwrap().flushed().await;
    let (_, before) = a.text("dvr/c/v/index.m3u8").await;
    assert!(before.contains("#EXT-X-GAP\n#EXTINF:1.903,\nseg_3.ts"), "{before}");
    assert_eq!(before.matches("#EXT-X-GAP").count(), 1, "{before}");
    a.stop().await;

    let b = start(config(dir.path(), 7200)).await;
    let (_, after) = b.text("dvr/c/v/index.m3u8").await;
    assert_eq!(timeline(&after), timeline(&before));
    let served: Vec<&str> = after.lines().filter(|l| l.ends_with(".ts") && *l != "seg_3.ts").collect();
    assert_eq!(served.len(), 5);
    assert_eq!(b.get("dvr/c/v/seg_3.ts").await.status(), StatusCode::NOT_FOUND);
}

/// The multivariant playlist the encoder sends once, after its first media playlists.
const MASTER: &str = "#EXTM3U\n#EXT-X-VERSION:3\n\
    #EXT-X-STREAM-INF:BANDWIDTH=1400000,RESOLUTION=960x540,CODECS=\"avc1.64001f,mp4a.40.2\"\nv/index.m3u8\n";

/// Sets the modification time of the archived object at `key` to `age` ago.
fn age_object(dir: &Path, key: &str, age: Duration) {
    let file = std::fs::File::options().write(true).open(dir.join("archive").join(key)).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn the_dvr_multivariant_playlist_is_served_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(config(dir.path(), 7200)).await;
    a.ingest(0, 3, false).await;
    assert_eq!(a.put("master.m3u8", MASTER).await, StatusCode::CREATED);
    a.ingest(3, 6, false).await;
    assert_eq!(a.text("dvr/c/master.m3u8").await, (StatusCode::OK, MASTER.to_owned()));
    a.stop().await;
    assert!(dir.path().join("archive/c/master.m3u8.master").exists());

    let b = run(config(dir.path(), 7200)).await;
    assert_eq!(b.get("live/c/master.m3u8").await.status(), StatusCode::NOT_FOUND, "the live window is gone");
    for view in ["dvr", "vod"] {
        let res = b.get(&format!("{view}/c/master.m3u8")).await;
        assert_eq!(res.status(), StatusCode::OK, "{view}");
        assert_eq!(res.headers()["content-type"], "application/vnd.apple.mpegurl");
        assert_eq!(res.text().await.unwrap(), MASTER, "{view}: byte-identical");
    }
    // The variant it lists plays.
    let (status, dvr) = b.text("dvr/c/v/index.m3u8").await;
    assert_eq!(status, StatusCode::OK, "{dvr}");
    assert_eq!(b.check_segments("dvr", &dvr).await, (0..6).collect::<Vec<_>>());
    let metrics = b.text("metrics").await.1;
    assert!(metrics.contains("origin_archive_rebuilt_total{result=\"ok\"} 7"), "6 log objects + 1: {metrics}");
}

#[tokio::test]
async fn retention_keeps_the_multivariant_playlist_until_the_last_log_leaves_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let hour = Duration::from_secs(3600);
    let a = start(config(dir.path(), 3600)).await;
    a.ingest(0, 4, false).await;
    assert_eq!(a.put("master.m3u8", MASTER).await, StatusCode::CREATED);
    a.stop().await;
    let log = |seq: u64| format!("c/v/index.m3u8.dvr/{seq:020}.m3u8");
    let master = dir.path().join("archive/c/master.m3u8.master");
    // Sent when the stream started, two hours ago; the newest log object is still fresh.
    age_object(dir.path(), "c/master.m3u8.master", 2 * hour);
    for seq in 0..3 {
        age_object(dir.path(), &log(seq), 2 * hour);
    }

    let b = start(config(dir.path(), 3600)).await;
    let archive = b.origin.as_ref().unwrap().archive().unwrap();
    archive.purge(SystemTime::now()).await.unwrap();
    assert!(!dir.path().join("archive").join(log(2)).exists(), "old log objects go");
    assert!(dir.path().join("archive").join(log(3)).exists());
    assert!(master.exists(), "kept while the stream has a log inside the window");
    assert_eq!(b.text("dvr/c/master.m3u8").await, (StatusCode::OK, MASTER.to_owned()));

    // The last log object leaves the window: the multivariant playlist goes with it.
    age_object(dir.path(), &log(3), 2 * hour);
    archive.purge(SystemTime::now()).await.unwrap();
    assert!(!dir.path().join("archive").join(log(3)).exists());
    assert!(!master.exists(), "deleted with the last log object");
}
