//! `swarmcast bench tracker|signalling`: load generators that report throughput, latency and the
//! server's memory.
//!
//! - `signalling` starts `swarmcast serve signalling` as a child process (or drives `--url`),
//!   opens `--connections` websocket clients spread over `127.0.0.x` source addresses (one
//!   address has about 28k ephemeral ports), measures the server's resident memory per idle
//!   connection, then relays offers between `--pairs` pairs at `--rate` messages per second and
//!   reports p50/p99 relay latency (sender write to recipient read). With `--nodes 2 --broker
//!   redis://…` it starts two nodes joined by that broker, spreads the connections over both and
//!   pairs a sender on one node with a recipient on the other, so every relay crosses the broker.
//! - `tracker` measures the swarm state per (peer, swarm).
//!
//! Raise the open-file limit first for large runs (`ulimit -n 300000`); the child inherits it.
#![allow(clippy::print_stdout)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use protocol::PeerId;
use protocol::signal::{ClientMessage, ServerMessage, Signal};
use protocol::token::{self, Claims};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

/// Arguments of `swarmcast bench`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    target: Target,
}

#[derive(clap::Subcommand)]
enum Target {
    /// Idle-connection memory and relay latency of the signalling server.
    Signalling(SignallingArgs),
    /// Swarm state per (peer, swarm) of the tracker.
    Tracker(TrackerArgs),
}

#[derive(clap::Args)]
struct SignallingArgs {
    /// Websocket connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Pairs of connections that relay offers to each other during the latency phase.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Offers relayed per second over all pairs.
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Length of the latency phase, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Size of the SDP in each relayed offer, in bytes.
    #[arg(long, default_value_t = 1_000)]
    sdp_bytes: usize,
    /// Connections opened per source address (127.0.0.1, 127.0.0.2, …).
    #[arg(long, default_value_t = 20_000)]
    per_source: usize,
    /// Drive this running server (`ws://host:port/v1/ws`) instead of starting one; its secret
    /// must be `--secret` and its process id `--pid` (for memory).
    #[arg(long)]
    url: Option<String>,
    /// Process id of the server behind `--url`.
    #[arg(long)]
    pid: Option<u32>,
    /// Token secret of the server.
    #[arg(long, default_value = "bench-secret")]
    secret: String,
    /// Signalling nodes to start (1 or 2); with 2, every relay goes from one node to the other
    /// through `--broker`.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Redis URL joining the nodes (`redis://127.0.0.1:6379`); required with `--nodes 2`.
    #[arg(long)]
    broker: Option<String>,
}

#[derive(clap::Args)]
struct TrackerArgs {
    /// Peers to track.
    #[arg(long, default_value_t = 1_000_000)]
    peers: usize,
    /// Swarms they spread over.
    #[arg(long, default_value_t = 100)]
    swarms: u32,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.target {
        Target::Signalling(args) => signalling(args).await,
        Target::Tracker(args) => {
            tracker(&args);
            Ok(())
        }
    }
}

fn tracker(args: &TrackerArgs) {
    let before = rss_bytes(std::process::id()).unwrap_or(0);
    let started = Instant::now();
    let probe = tracker::StateProbe::fill(args.peers, args.swarms);
    let elapsed = started.elapsed();
    let grown = rss_bytes(std::process::id()).unwrap_or(0).saturating_sub(before);
    drop(probe);
    println!(
        "tracker state: {} peers in {} swarms: {:.0} bytes per (peer, swarm) ({:.1} MiB), filled in {:.2} s",
        args.peers,
        args.swarms,
        grown as f64 / args.peers.max(1) as f64,
        grown as f64 / 1_048_576.0,
        elapsed.as_secs_f64()
    );
}

type Ws = WebSocketStream<TcpStream>;

async fn signalling(args: SignallingArgs) -> anyhow::Result<()> {
    if !(1..=2).contains(&args.nodes) || (args.nodes == 2 && (args.broker.is_none() || args.url.is_some())) {
        bail!("--nodes is 1, or 2 with --broker and without --url");
    }
    let mut urls = Vec::new();
    let mut pids = Vec::new();
    let mut _children = Vec::new();
    match (&args.url, args.pid) {
        (Some(url), pid) => {
            urls.push(url.clone());
            pids.extend(pid);
        }
        (None, _) => {
            for node in 0..args.nodes {
                let broker = args.broker.as_deref().map(|b| (b, format!("bench-node-{node}")));
                let (url, child) = spawn_server(&args.secret, broker).await?;
                pids.extend(child.id());
                urls.push(url);
                _children.push(child);
            }
        }
    }
    // The memory of all nodes together; unknown when a pid is missing.
    let known = pids.len() == urls.len();
    let rss = || if known { pids.iter().map(|p| rss_bytes(*p)).sum::<Option<u64>>() } else { None };
    let base = rss();
    println!("signalling at {}, RSS at start {}", urls.join(" + "), mib(base));

    let started = Instant::now();
    let conns = open_all(&urls, &args).await?;
    let open_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rss();
    let per_conn = match (base, held) {
        (Some(b), Some(h)) => format!("{:.1} KiB", (h.saturating_sub(b)) as f64 / 1024.0 / conns.len().max(1) as f64),
        _ => "unknown (no --pid)".into(),
    };
    println!(
        "{} idle connections opened in {open_s:.1} s ({:.0}/s); server RSS {}; {per_conn} per idle connection",
        conns.len(),
        conns.len() as f64 / open_s,
        mib(held)
    );
    latency(conns, &args).await
}

/// Starts `swarmcast serve signalling` on a free loopback port with limits raised for the bench.
/// With `broker` (URL, node id), the server joins that cluster.
async fn spawn_server(secret: &str, broker: Option<(&str, String)>) -> anyhow::Result<(String, tokio::process::Child)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?;
    let mut command = tokio::process::Command::new(exe);
    if let Some((url, node)) = broker {
        command.env("SWARMCAST_SIGNALLING_BROKER_URL", url).env("SWARMCAST_SIGNALLING_NODE_ID", node);
    }
    let child = command
        .args(["serve", "signalling", "--listen", &format!("127.0.0.1:{port}")])
        .env("SWARMCAST_SIGNALLING_SECRET", secret)
        .env("SWARMCAST_SIGNALLING_MAX_CONNECTIONS", "10000000")
        .env("SWARMCAST_SIGNALLING_MAX_CONNECTIONS_PER_IP", "10000000")
        .env("SWARMCAST_SIGNALLING_IDLE_TIMEOUT_S", "3600")
        .env("SWARMCAST_SIGNALLING_MAX_MESSAGES_PER_S", "1000000")
        .env("SWARMCAST_SIGNALLING_BURST_MESSAGES", "1000000")
        .env("SWARMCAST_SIGNALLING_QUEUE_MESSAGES", "1024")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the signalling server")?;
    let health = format!("http://127.0.0.1:{port}/healthz");
    for _ in 0..200 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
            return Ok((format!("ws://127.0.0.1:{port}/v1/ws"), child));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the signalling server did not come up at {health}")
}

/// Opens `args.connections` clients, 512 at a time, each from its share of source addresses;
/// client `i` goes to node `i % urls.len()`.
async fn open_all(urls: &[String], args: &SignallingArgs) -> anyhow::Result<Vec<Ws>> {
    let mut servers = Vec::new();
    for url in urls {
        let url = url::Url::parse(url)?;
        let host = url.host_str().context("url without host")?.to_owned();
        let port = url.port().context("url without port")?;
        let server: SocketAddr = format!("{host}:{port}").parse().context("the bench url needs an IP address")?;
        servers.push((url, server));
    }
    let gate = Arc::new(Semaphore::new(512));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let permit = Arc::clone(&gate).acquire_owned().await?;
        let source = Ipv4Addr::new(127, 0, 0, 1 + u8::try_from(i / args.per_source.max(1)).unwrap_or(254));
        let peer = format!("b{i:x}");
        let token = peer_token(&args.secret, &peer);
        let (url, server) = &servers[i % servers.len()];
        let (url, server) = (format!("{url}?peer_id={peer}&token={token}"), *server);
        tasks.spawn(async move {
            let ws = connect_from(IpAddr::V4(source), server, &url).await;
            drop(permit);
            ws.map(|ws| (i, ws))
        });
    }
    let mut conns: Vec<Option<Ws>> = (0..args.connections).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        let (i, ws) = joined??;
        conns[i] = Some(ws);
    }
    Ok(conns.into_iter().flatten().collect())
}

async fn connect_from(source: IpAddr, server: SocketAddr, url: &str) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 4096;
    config.write_buffer_size = 4096;
    let (ws, _) = client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

fn peer_token(secret: &str, peer: &str) -> String {
    // Bench peerIds are "b" and hex digits: always valid.
    let peer_id: PeerId = peer.parse().expect("bench peerIds are valid");
    let claims = Claims {
        customer: "bench".into(),
        content: "bench".into(),
        peer_id: Some(peer_id),
        expires_at_s: service::unix_now_s() + 24 * 3600,
        rules: None,
    };
    token::sign(secret.as_bytes(), &claims)
}

/// Relays offers from the first connection of each pair to the second at the configured rate;
/// prints throughput and latency percentiles.
async fn latency(mut conns: Vec<Ws>, args: &SignallingArgs) -> anyhow::Result<()> {
    let pairs = args.pairs.min(conns.len() / 2);
    if pairs == 0 || args.rate == 0 {
        return Ok(());
    }
    let epoch = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(args.duration_s);
    let drained = tokio::time::Instant::from_std(deadline + Duration::from_secs(2));
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for p in 0..pairs {
        let (to, from) = (conns.remove(pairs * 2 - 1 - 2 * p), conns.remove(pairs * 2 - 2 - 2 * p));
        let to_id: PeerId = format!("b{:x}", pairs * 2 - 1 - 2 * p).parse()?;
        senders.push((from, to_id));
        let received = Arc::clone(&received);
        readers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let (_, mut stream) = to.split();
            while let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout_at(drained, stream.next()).await {
                if let Ok(ServerMessage::Relay { signal: Signal::Offer { sdp }, .. }) =
                    ServerMessage::parse(text.as_str())
                {
                    let sent_us: u64 = sdp.split(' ').next().and_then(|t| t.parse().ok()).unwrap_or(0);
                    samples.push(epoch.elapsed().as_micros() as u64 - sent_us);
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        }));
    }
    // One writer paces all pairs round-robin, so sends are spread evenly over time.
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let padding = "x".repeat(args.sdp_bytes);
    let writer = tokio::spawn(async move {
        let mut sinks: Vec<_> = senders.into_iter().map(|(ws, to)| (ws.split().0, to)).collect();
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sent = 0u64;
        'send: while Instant::now() < deadline {
            for (sink, to) in &mut sinks {
                tick.tick().await;
                let sdp = format!("{} {padding}", epoch.elapsed().as_micros());
                let msg = ClientMessage::Relay { to: to.clone(), signal: Signal::Offer { sdp } };
                let text = serde_json::to_string(&msg).unwrap_or_default();
                if sink.send(Message::text(text)).await.is_err() {
                    break 'send;
                }
                sent += 1;
            }
        }
        sent
    });
    let sent = writer.await?;
    let mut samples = Vec::new();
    for r in readers {
        samples.extend(r.await?);
    }
    samples.sort_unstable();
    let pct = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    println!(
        "relay: {pairs} pairs, {sent} sent, {} received, {:.0} msgs/s over {} s; latency p50 {} µs, p99 {} µs, max {} µs",
        received.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed) as f64 / args.duration_s as f64,
        args.duration_s,
        pct(0.5),
        pct(0.99),
        samples.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// Resident memory of process `pid`, in bytes (Linux `/proc/<pid>/status`).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "unknown".into(), |b| format!("{:.1} MiB", b as f64 / 1_048_576.0))
}
