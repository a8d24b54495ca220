//! The segment archive over real HTTP on 127.0.0.1:0, with a local-filesystem archive.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use reqwest::{Client, StatusCode};
use service::Metrics;
use swarmcast_origin::{Config, Origin};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "ingest-secret";
/// Bytes per test segment.
const SEGMENT: usize = 10_000;

struct Server {
    base: String,
    origin: Origin,
    metrics: Metrics,
    client: Client,
    _stop: oneshot::Sender<()>,
}

async fn start(archive_url: String, max_total_bytes: u64) -> Server {
    let config = Config { ingest_token: TOKEN.into(), archive_url, max_total_bytes, ..Config::default() };
    let metrics = Metrics::new();
    let origin = Origin::new(config, &metrics).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let app = swarmcast_origin::router(origin.clone());
    tokio::spawn(service::serve(listener, app, metrics.clone(), async move {
        let _ = rx.await;
    }));
    let client = Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    Server { base: format!("http://{addr}"), origin, metrics, client, _stop: stop }
}

/// Distinct bytes for segment `n`.
fn body(n: u64) -> Vec<u8> {
    (0..SEGMENT).map(|i| (i as u64).wrapping_mul(31).wrapping_add(n * 7) as u8).collect()
}

/// A live playlist of the three segments ending at `n`.
fn playlist(n: u64) -> String {
    let first = n.saturating_sub(2);
    let mut s = format!("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
    for i in first..=n {
        s.push_str(&format!("#EXTINF:2.000000,\nseg_{i}.ts\n"));
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

    /// Ingests segments `0..n` and a playlist after each, as an encoder does.
    async fn ingest(&self, n: u64) {
        for i in 0..n {
            assert_eq!(self.put(&format!("v/seg_{i}.ts"), body(i)).await, StatusCode::CREATED);
            assert!(self.put("v/index.m3u8", playlist(i)).await.is_success());
        }
    }
}

#[tokio::test]
async fn old_segments_come_back_from_the_archive_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/archive", dir.path().display());
    // Memory holds about six segments; thirty are ingested.
    let s = start(url, 6 * SEGMENT as u64).await;
    s.ingest(30).await;
    s.origin.archive().unwrap().flushed().await;

    assert_eq!(s.get("live/c/v/seg_0.ts").await.status(), StatusCode::NOT_FOUND, "evicted from memory");
    let dvr = s.get("dvr/c/v/index.m3u8").await.text().await.unwrap();
    assert!(dvr.contains("#EXT-X-PLAYLIST-TYPE:EVENT"), "{dvr}");
    let uris: Vec<&str> = dvr.lines().filter(|l| l.ends_with(".ts")).collect();
    assert_eq!(uris.len(), 30, "{dvr}");
    for (i, uri) in uris.iter().enumerate() {
        let res = s.get(&format!("dvr/c/v/{uri}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{uri}");
        assert_eq!(res.headers()["content-type"], "video/mp2t");
        assert_eq!(res.bytes().await.unwrap().as_ref(), body(i as u64).as_slice(), "{uri}");
    }
    let on_disk = dir.path().join("archive/c/v/seg_0.ts");
    assert_eq!(std::fs::read(on_disk).unwrap(), body(0));
    let metrics = s.metrics.render();
    assert!(metrics.contains("origin_archive_writes_total{result=\"ok\"} 30"), "{metrics}");
    assert!(metrics.contains("origin_archive_reads_total{result=\"hit\"}"), "{metrics}");
}

#[tokio::test]
async fn retention_deletes_objects_older_than_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(format!("file://{}/archive", dir.path().display()), 6 * SEGMENT as u64).await;
    s.ingest(10).await;
    let archive = s.origin.archive().unwrap();
    archive.flushed().await;
    assert_eq!(archive.purge(SystemTime::now()).await.unwrap(), 0, "all inside the window");
    let window = Duration::from_secs(Config::default().dvr_window_s);
    let later = SystemTime::now() + window + Duration::from_secs(2);
    // Ten segments and the ten DVR log objects that list them.
    assert_eq!(archive.purge(later).await.unwrap(), 20);
    assert!(!dir.path().join("archive/c/v/seg_0.ts").exists());
    let logs = dir.path().join("archive/c/v/index.m3u8.dvr");
    assert!(std::fs::read_dir(&logs).map_or(true, |mut d| d.next().is_none()), "log objects deleted too");
    assert_eq!(s.get("dvr/c/v/seg_0.ts").await.status(), StatusCode::NOT_FOUND);
    assert!(s.metrics.render().contains("origin_archive_deleted_total 20"));
}

#[tokio::test]
async fn a_failing_archive_does_not_break_live_ingest() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the archive directory should be: every write fails.
    let blocker = dir.path().join("blocker");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let s = start(format!("file://{}/archive", blocker.display()), 1 << 20).await;
    s.ingest(5).await;
    s.origin.archive().unwrap().flushed().await;

    let live = s.get("live/c/v/index.m3u8").await.text().await.unwrap();
    assert!(live.contains("seg_4.ts"), "{live}");
    let seg = s.get("live/c/v/seg_4.ts").await;
    assert_eq!(seg.bytes().await.unwrap().as_ref(), body(4).as_slice());
    let metrics = s.metrics.render();
    assert!(metrics.contains("origin_archive_writes_total{result=\"error\"} 5"), "{metrics}");
    assert!(!metrics.contains("origin_ingest_rejected"), "{metrics}");
}
