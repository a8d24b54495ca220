//! Temporary probe: fan-out timing over several rounds.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

#[path = "edge/clients.rs"]
mod clients;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use clients::{Clients, Phase};
use service::LoopbackServer;
use swarmcast_origin::{Config, EdgeConfig, Mode};
use tokio::sync::{Notify, mpsc};

const SEGMENT_BYTES: usize = 256 * 1024;

#[derive(Clone, Default)]
struct Upstream {
    release: Arc<Notify>,
    rest: Arc<Notify>,
    first_byte_at: Arc<Mutex<Option<SystemTime>>>,
}

async fn handler(State(up): State<Upstream>, _uri: Uri) -> Response {
    let body: Vec<u8> = (0..SEGMENT_BYTES).map(|i| (i % 251) as u8).collect();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        up.release.notified().await;
        *up.first_byte_at.lock().unwrap() = Some(SystemTime::now());
        tx.send(Ok(Bytes::copy_from_slice(&body[..1000]))).await.unwrap();
        up.rest.notified().await;
        tx.send(Ok(Bytes::copy_from_slice(&body[1000..]))).await.unwrap();
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    ([(header::CONTENT_TYPE, "video/mp2t")], Body::from_stream(stream)).into_response()
}

async fn metric(edge: &LoopbackServer, prefix: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", edge.url())).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// (on-cpu ns, runqueue-wait ns) summed over this process's tokio worker threads.
fn worker_schedstat() -> (u64, u64) {
    let mut run = 0;
    let mut wait = 0;
    for t in std::fs::read_dir("/proc/self/task").unwrap() {
        let t = t.unwrap().path();
        let comm = std::fs::read_to_string(t.join("comm")).unwrap_or_default();
        if comm.trim() != "tokio-rt-worker" {
            continue;
        }
        let st = std::fs::read_to_string(t.join("schedstat")).unwrap_or_default();
        let v: Vec<u64> = st.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if v.len() >= 2 {
            run += v[0];
            wait += v[1];
        }
    }
    (run, wait)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe() {
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let n: usize = std::env::var("CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let up = Upstream::default();
    let app = Router::new().fallback(get(handler)).with_state(up.clone());
    let upstream =
        service::spawn_on_loopback(|l, stop| async move { axum::serve(l, app).with_graceful_shutdown(stop).await })
            .await
            .unwrap();
    let config = Config {
        mode: Mode::Edge,
        edge: EdgeConfig { upstream_url: upstream.url(), lock_age_ms: 30_000, ..EdgeConfig::default() },
        ..Config::default()
    };
    let edge = service::spawn_on_loopback(|l, stop| swarmcast_origin::run(config, l, stop)).await.unwrap();
    let ctl = std::env::var("PERF_CTL").ok();
    let mut maxes = Vec::new();
    for round in 0..rounds {
        let before = metric(&edge, "edge_first_byte_handoff_seconds_count").await;
        let mut c = Clients::start(edge.addr(), &format!("/live/c/v/slow_{round}.ts"), n);
        assert_eq!(c.phases.recv().await.unwrap(), Phase::Heads);
        if let Some(p) = &ctl {
            std::fs::write(p, "enable\n").unwrap();
        }
        let (r0, w0) = worker_schedstat();
        up.release.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
        while metric(&edge, "edge_first_byte_handoff_seconds_count").await < before + n as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (r1, w1) = worker_schedstat();
        if let Some(p) = &ctl {
            std::fs::write(p, "disable\n").unwrap();
        }
        c.read_first_bytes();
        assert_eq!(c.phases.recv().await.unwrap(), Phase::FirstBytes);
        up.rest.notify_one();
        let ex = c.finish().await;
        assert!(ex.iter().all(|e| e.status == 200 && e.body.len() == SEGMENT_BYTES));
        let sent = up.first_byte_at.lock().unwrap().unwrap();
        let leader = ex.iter().map(|e| e.first_byte_at).min().unwrap();
        let mut lag: Vec<f64> =
            ex.iter().map(|e| e.first_byte_at.duration_since(leader).unwrap().as_secs_f64() * 1e3).collect();
        lag.sort_by(f64::total_cmp);
        let within5 = lag.iter().filter(|&&l| l <= 5.0).count();
        maxes.push(lag[lag.len() - 1]);
        println!(
            "round {round}: workers on-cpu {:.2} ms, runqueue wait {:.2} ms; up→leader {:.2} ms; p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; ≤5ms {within5}",
            (r1 - r0) as f64 / 1e6,
            (w1 - w0) as f64 / 1e6,
            leader.duration_since(sent).map(|d| d.as_secs_f64() * 1e3).unwrap_or(-1.0),
            pct(&lag, 0.5),
            pct(&lag, 0.9),
            pct(&lag, 0.99),
            lag[lag.len() - 1],
        );
    }
    maxes.sort_by(f64::total_cmp);
    println!("max over rounds: min {:.2} median {:.2} max {:.2}", maxes[0], pct(&maxes, 0.5), maxes[maxes.len() - 1]);
}
