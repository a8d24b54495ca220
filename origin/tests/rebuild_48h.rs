//! How long the origin takes to rebuild a full 48 h timeshift window from the archive: 2 s
//! segments × 3 renditions, one log object per playlist update (259,200 objects).
//!
//! `cargo test --release -p swarmcast-origin --test rebuild_48h -- --ignored --nocapture`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use service::Metrics;
use swarmcast_origin::dvr::DvrLog;
use swarmcast_origin::dvr::persist::{self, Clock};
use swarmcast_origin::path::ObjectPath;
use swarmcast_origin::playlist::{Accepted, validate};
use swarmcast_origin::{Config, MAX_DVR_WINDOW_S, Origin};

const RENDITIONS: [&str; 3] = ["360p", "540p", "720p"];
/// Segment duration, in milliseconds.
const SEGMENT_MS: u64 = 2000;

/// Writes the log objects an origin would have written over the last 48 h (minus a minute).
fn write_logs(root: &Path, per_rendition: u64) {
    let unix_now_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap();
    let span_ms = per_rendition * SEGMENT_MS;
    for r in RENDITIONS {
        let playlist = ObjectPath::new("c", &format!("{r}/index.m3u8")).unwrap();
        let dir = root.join(format!("c/{}", persist::log_dir(&playlist.path)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = DvrLog::default();
        for i in 0..per_rendition {
            let body =
                format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{i}\n#EXTINF:2.000000,\nseg_{i}.ts\n");
            let Accepted::Media(state) = validate(&playlist, body.as_bytes(), None, |_| true).unwrap() else {
                panic!("media expected")
            };
            let now_ms = i * SEGMENT_MS;
            let update = log.record(now_ms, &state, u64::MAX, i > 0).unwrap();
            let clock = Clock { store_now_ms: now_ms, unix_now_ms: unix_now_ms - span_ms + now_ms };
            let name = persist::object_key(&playlist.path, &update);
            let file = root.join("c").join(name);
            std::fs::write(file, persist::encode(&update, clock, |_| false)).unwrap();
        }
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes 259,200 files; run in release with --ignored"]
async fn rebuild_a_48h_window_of_three_renditions() {
    let per_rendition = MAX_DVR_WINDOW_S * 1000 / SEGMENT_MS - 30;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    write_logs(&dir.path().join("archive"), per_rendition);
    println!("wrote {} log objects in {:?}", per_rendition * 3, started.elapsed());

    let config = Config {
        ingest_token: "t".into(),
        archive_url: format!("file://{}/archive", dir.path().display()),
        dvr_window_s: MAX_DVR_WINDOW_S,
        ..Config::default()
    };
    let origin = Origin::new(config, &Metrics::new()).unwrap();
    let rss_before = rss_kib();
    let started = Instant::now();
    let report = origin.restore().await.unwrap();
    let elapsed = started.elapsed();
    println!("{report:?}");
    println!(
        "rebuilt {} entries of {} logs from {} objects in {elapsed:?} ({:.0} objects/s), RSS +{} MiB",
        report.entries,
        report.logs,
        report.objects,
        report.objects as f64 / elapsed.as_secs_f64(),
        rss_kib().saturating_sub(rss_before) / 1024
    );
    assert_eq!((report.logs, report.entries, report.malformed), (3, 3 * per_rendition as usize, 0));

    let app = swarmcast_origin::router(origin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/dvr/c/720p/index.m3u8");
    let mut times = Vec::new();
    let mut len = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        len = res.bytes().await.unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    println!("GET of the {per_rendition}-segment DVR playlist ({len} bytes): median {:?}", times[2]);
    assert!(elapsed < Duration::from_secs(600));
}
