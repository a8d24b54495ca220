//! The real ffmpeg pushing a small ladder into the real origin, both on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use m3u8_rs::{MediaPlaylist, Playlist};
use reqwest::{Client, StatusCode};
use swarmcast_transcoder::{Config, Rung, Status};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

const TOKEN: &str = "test-ingest-token";
/// How long a stream may take to show what a test waits for (ffmpeg shares 2 cores with the build).
const DEADLINE: Duration = Duration::from_secs(30);

fn ffmpeg_installed() -> bool {
    let ok = std::process::Command::new("ffmpeg").arg("-version").output().is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIPPED: ffmpeg is not installed");
    }
    ok
}

struct Live {
    base: String,
    metrics_url: String,
    client: Client,
    status: watch::Receiver<Status>,
    _stops: (oneshot::Sender<()>, oneshot::Sender<()>),
}

/// Logs go to stderr only when asked for with `RUST_LOG`.
fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        service::init_tracing();
    }
}

async fn start_live(content: &str) -> Live {
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (origin_stop, rx) = oneshot::channel::<()>();
    let origin_config = origin::Config { ingest_token: TOKEN.into(), ..origin::Config::default() };
    tokio::spawn(origin::run(origin_config, listener, async move {
        let _ = rx.await;
    }));
    let base = format!("http://{addr}/live/{content}");
    let config = Config {
        origin_url: base.clone(),
        ingest_token: TOKEN.into(),
        ladder: vec![Rung::new("180p", 320, 180, 300, 64), Rung::new("90p", 160, 90, 150, 32)],
        segment_duration_s: 1,
        window_segments: 3,
        restart_backoff_ms: 200,
        ..Config::default()
    };
    let (status_tx, status) = watch::channel(Status::default());
    let (transcoder_stop, rx) = oneshot::channel::<()>();
    tokio::spawn(swarmcast_transcoder::run_with_status(
        config,
        async move {
            let _ = rx.await;
        },
        status_tx,
    ));
    let client = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    Live { base, metrics_url: format!("http://{addr}/metrics"), client, status, _stops: (origin_stop, transcoder_stop) }
}

impl Live {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(format!("{}/{path}", self.base)).send().await.unwrap()
    }

    /// The variant URIs of the master playlist, once it is served.
    async fn variants(&self) -> Option<Vec<String>> {
        let res = self.get("master.m3u8").await;
        if res.status() != StatusCode::OK {
            return None;
        }
        assert_eq!(res.headers()["content-type"], "application/vnd.apple.mpegurl");
        let body = res.bytes().await.unwrap();
        let Ok(Playlist::MasterPlaylist(master)) = m3u8_rs::parse_playlist_res(&body) else { panic!("bad master") };
        Some(master.variants.iter().map(|v| v.uri.clone()).collect())
    }

    /// The media playlist at `uri`, checked, once it is served.
    async fn media(&self, uri: &str) -> Option<MediaPlaylist> {
        let res = self.get(uri).await;
        if res.status() != StatusCode::OK {
            return None;
        }
        let body = res.bytes().await.unwrap();
        let Ok(Playlist::MediaPlaylist(media)) = m3u8_rs::parse_playlist_res(&body) else {
            panic!("bad media playlist")
        };
        assert_eq!(media.target_duration, 1);
        assert!(media.segments.len() <= 3, "window of 3 segments exceeded: {}", media.segments.len());
        assert!(!media.end_list);
        Some(media)
    }

    /// Checks that every segment `media` (at `uri`) lists is served.
    async fn check_segments(&self, uri: &str, media: &MediaPlaylist) {
        let dir = uri.rsplit_once('/').map_or("", |(d, _)| d);
        for seg in &media.segments {
            let res = self.get(&format!("{dir}/{}", seg.uri)).await;
            assert_eq!(res.status(), StatusCode::OK, "{dir}/{}", seg.uri);
            assert_eq!(res.headers()["content-type"], "video/mp2t");
            let bytes = res.bytes().await.unwrap();
            assert!(bytes.len() > 188 && bytes[0] == 0x47, "not MPEG-TS");
        }
    }

    /// Waits until every variant's media sequence is at least `min`; returns the lowest one.
    async fn wait_sequence(&self, min: u64) -> u64 {
        let started = Instant::now();
        loop {
            assert!(
                started.elapsed() < DEADLINE,
                "stream did not reach media sequence {min}: {:?}",
                self.status.borrow()
            );
            if let Some(variants) = self.variants().await {
                assert_eq!(variants, vec!["180p/index.m3u8", "90p/index.m3u8"]);
                let mut lowest = u64::MAX;
                for uri in &variants {
                    match self.media(uri).await {
                        Some(m) => {
                            self.check_segments(uri, &m).await;
                            lowest = lowest.min(m.media_sequence);
                        }
                        None => lowest = 0,
                    }
                }
                if lowest >= min && lowest != u64::MAX {
                    return lowest;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self.client.get(&self.metrics_url).send().await.unwrap().text().await.unwrap();
        text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ladder_reaches_the_origin_and_slides() {
    if !ffmpeg_installed() {
        return;
    }
    let live = start_live("slides").await;
    let first = live.wait_sequence(1).await;
    // The window slides: the sequence advances and ffmpeg deletes what left the window.
    live.wait_sequence(first + 3).await;
    let started = Instant::now();
    while live.metric("origin_deletes_total").await < 2.0 {
        assert!(started.elapsed() < DEADLINE, "no DELETE reached the origin");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(live.metric("origin_ingest_rejected_total").await, 0.0);
    assert!(live.metric("origin_objects").await <= 2.0 * (3.0 + 1.0 + 8.0) + 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ffmpeg_is_restarted_and_the_stream_continues() {
    if !ffmpeg_installed() {
        return;
    }
    let mut live = start_live("restart").await;
    let before = live.wait_sequence(1).await;
    let pid = live.status.borrow().pid.unwrap();
    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    let restarted = live.status.wait_for(|s| s.starts >= 2 && s.pid.is_some_and(|p| p != pid));
    tokio::time::timeout(DEADLINE, restarted).await.expect("ffmpeg was not restarted").unwrap();
    let restart_number = live.status.borrow().start_number;
    assert!(restart_number > before, "restart must continue above the published numbers");
    let after = live.wait_sequence(restart_number + 1).await;
    assert!(after > before);
    assert_eq!(live.metric("origin_ingest_rejected_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_heals_after_an_origin_restart() {
    if !ffmpeg_installed() {
        return;
    }
    init_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin_config = origin::Config { ingest_token: TOKEN.into(), ..origin::Config::default() };
    let (stop_first, rx) = oneshot::channel::<()>();
    let first = tokio::spawn(origin::run(origin_config.clone(), listener, async move {
        let _ = rx.await;
    }));
    let config = Config {
        origin_url: format!("http://{addr}/live/heal"),
        ingest_token: TOKEN.into(),
        ladder: vec![Rung::new("90p", 160, 90, 150, 32)],
        segment_duration_s: 1,
        window_segments: 3,
        restart_backoff_ms: 200,
        ..Config::default()
    };
    let (status_tx, _status) = watch::channel(Status::default());
    let (_stop_transcoder, rx) = oneshot::channel::<()>();
    tokio::spawn(swarmcast_transcoder::run_with_status(
        config,
        async move {
            let _ = rx.await;
        },
        status_tx,
    ));
    let client = Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let playlist = format!("http://{addr}/live/heal/90p/index.m3u8");
    let sequence = |client: Client, url: String| async move {
        let res = client.get(&url).send().await.ok()?;
        if res.status() != StatusCode::OK {
            return None;
        }
        match m3u8_rs::parse_playlist_res(&res.bytes().await.ok()?) {
            Ok(Playlist::MediaPlaylist(m)) => Some(m.media_sequence),
            _ => None,
        }
    };
    let started = Instant::now();
    let before = loop {
        assert!(started.elapsed() < DEADLINE, "stream never started");
        if let Some(seq) = sequence(client.clone(), playlist.clone()).await {
            break seq;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // The origin restarts empty on the same address; the encoder keeps going and the window
    // refills (playlists listing segments the new origin never saw are refused meanwhile).
    stop_first.send(()).unwrap();
    first.await.unwrap().unwrap();
    let listener = TcpListener::bind(addr).await.unwrap();
    let (_stop_second, rx) = oneshot::channel::<()>();
    tokio::spawn(origin::run(origin_config, listener, async move {
        let _ = rx.await;
    }));
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < DEADLINE, "stream did not heal");
        if sequence(client.clone(), playlist.clone()).await.is_some_and(|s| s > before) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let master = client.get(format!("http://{addr}/live/heal/master.m3u8")).send().await.unwrap();
    assert_eq!(master.status(), StatusCode::OK, "the master playlist is published again");
}
