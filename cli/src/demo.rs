//! `swarmcast demo`: every part of the system on one address, with a live test stream.
//!
//! Binds one listener per server (ephemeral ports) plus the viewer page's port, wires their URLs
//! and a shared random secret together, starts the transcoder pushing into the origin, waits for
//! the multivariant playlist, then prints the page URL (and a `SWARMCAST_DEMO_URL=` line for scripts).
//!
//! Delivery is multi-CDN: origin → shield (an edge in this process) → two edges, `cdn-a` and
//! `cdn-b`, each its own `swarmcast origin --mode edge` child process (so a test can kill one:
//! their pids are printed as `SWARMCAST_CDN_A_PID=` and `SWARMCAST_CDN_B_PID=`). The page gets the
//! origin's steered multivariant playlist, which lists every rendition on both CDNs with content
//! steering fed by the origin's prober, and carries a CDN access token the edges check.
#![allow(clippy::print_stdout)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::ValueEnum;
use rand::RngCore;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::web;

/// Arguments of `swarmcast demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Address every server binds to. WebRTC in Chromium needs a non-loopback address to connect
    /// tabs to each other; 127.0.0.1 still serves the page and plays over HTTP.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port of the viewer page (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Segment duration, in seconds.
    #[arg(long, default_value_t = 2)]
    segment_duration_s: u32,
    /// Segments in the live window of each media playlist.
    #[arg(long, default_value_t = 5)]
    window_segments: u32,
    /// Encoding ladder.
    #[arg(long, value_enum, default_value = "reference")]
    ladder: Ladder,
    /// Customer id of the demo content.
    #[arg(long, default_value = "demo")]
    customer: String,
    /// Content id of the live stream.
    #[arg(long, default_value = "live")]
    content: String,
    /// Repository root holding demo/, client-wasm/js/ and node_modules/.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Servers whose URL the distributor hands out as unreachable (fault injection for tests):
    /// any of tracker, signalling, analytics.
    #[arg(long, value_delimiter = ',')]
    dead: Vec<Dead>,
    /// `TTL` of the content steering manifest, in seconds.
    #[arg(long, default_value_t = 4)]
    steering_ttl_s: u64,
    /// Time between two probes of each CDN, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    probe_interval_ms: u64,
    /// Lifetime of the tracker's session tokens, in seconds (agents renew them at 80 %).
    #[arg(long, default_value_t = 3600)]
    token_ttl_s: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Ladder {
    /// 360p 1.0 Mbit/s, 540p 1.8 Mbit/s, 720p 2.3 Mbit/s.
    Reference,
    /// 180p 300 kbit/s, 270p 500 kbit/s, 360p 800 kbit/s: cheap enough for several browser tabs on 2 cores.
    Small,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Dead {
    Tracker,
    Signalling,
    Analytics,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let root = args.root.canonicalize().with_context(|| format!("repository root {}", args.root.display()))?;
    for needed in ["demo/index.html", "client-wasm/js/pkg", "node_modules/hls.js/dist/hls.mjs"] {
        if !root.join(needed).exists() {
            bail!("{} is missing: run `cargo xtask demo` from the repository root", root.join(needed).display());
        }
    }
    let ip = args.bind;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };

    let secret = random_hex(32);
    let ingest_token = random_hex(16);
    let cdn_secret = random_hex(32);
    let digest_seed = random_hex(32);
    let origin_l = bind(ip, 0).await?;
    let shield_l = bind(ip, 0).await?;
    let distributor_l = bind(ip, 0).await?;
    let tracker_l = bind(ip, 0).await?;
    let signalling_l = bind(ip, 0).await?;
    let analytics_l = bind(ip, 0).await?;
    let web_l = bind(ip, args.port).await?;

    let base = |l: &TcpListener| -> anyhow::Result<String> { Ok(format!("http://{}", l.local_addr()?)) };
    let dead_url = dead_address(ip).await?;
    let url_of = |which: Dead, live: String| if args.dead.contains(&which) { dead_url.clone() } else { live };
    let origin_url = base(&origin_l)?;
    let shield_url = base(&shield_l)?;
    let cdn_a_url = dead_address(ip).await?;
    let cdn_b_url = dead_address(ip).await?;
    let distributor_url = base(&distributor_l)?;
    let tracker_url = url_of(Dead::Tracker, base(&tracker_l)?);
    let signalling_url =
        url_of(Dead::Signalling, format!("ws://{}/v1/ws", signalling_l.local_addr()?)).replace("http://", "ws://");
    let analytics_url = url_of(Dead::Analytics, base(&analytics_l)?);

    let mut tasks = tokio::task::JoinSet::new();
    let pathways = [("cdn-a", &cdn_a_url), ("cdn-b", &cdn_b_url)]
        .map(|(id, url)| origin::steering::Pathway { id: id.into(), base_url: url.clone() });
    let origin_config = origin::Config {
        ingest_token: ingest_token.clone(),
        digest_signing_key: digest_seed.clone(),
        steering: origin::steering::SteeringConfig {
            pathways: pathways.to_vec(),
            ttl_s: args.steering_ttl_s,
            probe_interval_ms: args.probe_interval_ms,
            access_secret: cdn_secret.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    tasks.spawn(origin::run(origin_config, origin_l, stop()));
    let shield_config = origin::Config {
        mode: origin::Mode::Edge,
        edge: origin::EdgeConfig { name: "shield".into(), upstream_url: origin_url.clone(), ..Default::default() },
        ..Default::default()
    };
    tasks.spawn(origin::run(shield_config, shield_l, stop()));
    let cdn_a = spawn_edge("cdn-a", &cdn_a_url, &shield_url, &cdn_secret)?;
    let cdn_b = spawn_edge("cdn-b", &cdn_b_url, &shield_url, &cdn_secret)?;
    let distributor_config = distributor::Config {
        secret: secret.clone(),
        tracker_url: tracker_url.clone(),
        signalling_url: signalling_url.clone(),
        analytics_url: analytics_url.clone(),
        cdn_secret: cdn_secret.clone(),
        digest_public_key: origin::digest::public_key_hex(&digest_seed).unwrap_or_default(),
        ..Default::default()
    };
    tasks.spawn(distributor::run(distributor_config, distributor_l, stop()));
    let tracker_config =
        tracker::Config { secret: secret.clone(), token_ttl_s: args.token_ttl_s, ..Default::default() };
    tasks.spawn(tracker::run(tracker_config, tracker_l, stop()));
    let signalling_config = signalling::Config { secret: secret.clone(), ..Default::default() };
    tasks.spawn(signalling::run(signalling_config, signalling_l, stop()));
    tasks.spawn(analytics::run(analytics::Config::default(), analytics_l, stop()));

    let stream_url = format!("{origin_url}/live/{}", args.content);
    // The page's one token for the whole demo; the distributor issues one per session too.
    let grant = protocol::access::Grant {
        expires_at_s: service::unix_now_s() + 7 * 24 * 3600,
        path_prefix: format!("/live/{}/", args.content),
        ip: None,
    };
    let page_token = origin::edge::encode_token(&protocol::access::sign(cdn_secret.as_bytes(), &grant));
    let origin_master_url = format!("{stream_url}/master.m3u8");
    let master_url = format!("{origin_url}/steer/{}/master.m3u8?__token__={page_token}", args.content);
    let transcoder_config = transcoder::Config {
        origin_url: stream_url,
        ingest_token,
        ladder: ladder(args.ladder),
        segment_duration_s: args.segment_duration_s,
        window_segments: args.window_segments,
        ..Default::default()
    };
    tasks.spawn(transcoder::run(transcoder_config, stop()));

    let page = web::PageConfig {
        customer: args.customer.clone(),
        content: args.content.clone(),
        distributor_url: distributor_url.clone(),
        master_url: master_url.clone(),
        analytics_url: analytics_url.clone(),
    };
    let page_url = format!("http://{}/", web_l.local_addr()?);
    tasks.spawn(web::run(root, page, web_l, stop()));

    wait_for_stream(&origin_master_url).await?;
    wait_for_stream(&format!("{cdn_a_url}/healthz")).await?;
    wait_for_stream(&format!("{cdn_b_url}/healthz")).await?;
    println!("Swarmcast demo is live. Open {page_url} in two or more tabs (Ctrl-C stops).");
    println!("  origin       {origin_url}   (multivariant playlist: {origin_master_url})");
    println!("  shield       {shield_url}");
    println!("  cdn-a        {cdn_a_url}");
    println!("  cdn-b        {cdn_b_url}");
    println!("  steering     {origin_url}/steer/health   (steered playlist: {master_url})");
    println!("  distributor  {distributor_url}");
    println!("  tracker      {tracker_url}");
    println!("  signalling   {signalling_url}");
    println!("  analytics    {analytics_url}   (GET /v1/summary?content={})", args.content);
    println!("SWARMCAST_CDN_A_PID={}", cdn_a.id().unwrap_or(0));
    println!("SWARMCAST_CDN_B_PID={}", cdn_b.id().unwrap_or(0));
    println!("SWARMCAST_DEMO_URL={page_url}");

    tokio::select! {
        () = service::shutdown_signal() => {}
        Some(res) = tasks.join_next() => {
            tracing::error!(?res, "a demo part stopped");
        }
    }
    let _ = stop_tx.send(true);
    for mut child in [cdn_a, cdn_b] {
        let _ = child.kill().await;
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Starts `swarmcast origin --mode edge` as a child process serving `url` in front of `upstream`.
fn spawn_edge(name: &str, url: &str, upstream: &str, access_secret: &str) -> anyhow::Result<tokio::process::Child> {
    let listen = url.trim_start_matches("http://");
    tokio::process::Command::new(std::env::current_exe()?)
        .args(["origin", "--mode", "edge", "--name", name, "--upstream", upstream, "--listen", listen])
        .env("SWARMCAST_ORIGIN_EDGE__ACCESS_SECRET", access_secret)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting edge {name}"))
}

fn ladder(ladder: Ladder) -> Vec<transcoder::Rung> {
    let rung = |name: &str, width, height, video_kbps| transcoder::Rung {
        name: name.into(),
        width,
        height,
        video_kbps,
        audio_kbps: 96,
    };
    match ladder {
        Ladder::Reference => {
            vec![rung("360p", 640, 360, 1000), rung("540p", 960, 540, 1800), rung("720p", 1280, 720, 2300)]
        }
        Ladder::Small => vec![rung("180p", 320, 180, 300), rung("270p", 480, 270, 500), rung("360p", 640, 360, 800)],
    }
}

async fn bind(ip: IpAddr, port: u16) -> anyhow::Result<TcpListener> {
    let addr = SocketAddr::new(ip, port);
    TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))
}

/// A URL on `ip` where nothing listens: bound once to get a free port, then released.
async fn dead_address(ip: IpAddr) -> anyhow::Result<String> {
    let l = bind(ip, 0).await?;
    let addr = l.local_addr()?;
    drop(l);
    Ok(format!("http://{addr}"))
}

/// Polls the multivariant playlist until the origin serves it (the first segments take a few seconds).
async fn wait_for_stream(master_url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    for _ in 0..120 {
        if let Ok(resp) = client.get(master_url).send().await
            && resp.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!(
        "the live stream did not appear at {master_url} within 30 s (is ffmpeg working? RUST_LOG=debug shows its output)"
    )
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
