//! `swarmcast bench signalling`: idle-connection memory and relay latency of signalling nodes.
//!
//! 1. Starts `--nodes` K `swarmcast serve signalling` children (limits raised for the bench;
//!    with K > 1 joined through `--broker`, or through a `redis-server` it starts itself), or
//!    drives a running server (`--url`, `--pid`).
//! 2. Opens `--connections` idle websockets, connection `i` to node `i % K`, from source address
//!    127.0.0.(1 + i / `--per-source`): in this process, or spread over `--workers` copies of this
//!    binary (`bench signalling-worker`), because the open-file limit applies per process.
//! 3. Reports the nodes' resident memory per idle connection (summed over all node processes;
//!    Redis separately).
//! 4. Relays 1 KiB offers between `--pairs` extra pairs of connections at `--rate` messages/s,
//!    each sender on node p % K and its recipient on node (p + 1) % K (so with K > 1 every relay
//!    crosses the broker), and reports p50/p99 latency from the sender's write to the recipient's
//!    read. Each sender first hands signalling the tracker's introduction of its recipient.
//! 5. Pings every idle connection and reports how many answered.
//!
//! `--echo-baseline` repeats step 4 against a trivial websocket relay (`bench_echo`) started the
//! same way, so the figures come with a floor measured in the same invocation.
#![allow(clippy::print_stdout)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::bench::{mib, rss_bytes};
use crate::bench_ws::{self, Node};
use crate::{bench_latency, bench_worker};

/// Arguments of `swarmcast bench signalling`.
#[derive(clap::Args)]
pub(crate) struct SignallingArgs {
    /// Idle websocket connections to open and hold (the relay pairs come on top).
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
    /// Idle connections opened per source address (127.0.0.1, 127.0.0.2, …).
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
    /// Signalling nodes to start; with more than one, they are joined through `--broker` and
    /// every relay goes from one node to another.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Redis URL joining the nodes (`redis://127.0.0.1:6379`); without it, several nodes share a
    /// `redis-server` started for the run.
    #[arg(long)]
    broker: Option<String>,
    /// Load-generator processes holding the idle connections (0: this process holds them).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Run the nodes with this CPU affinity (a `taskset -c` list, e.g. `0`).
    #[arg(long)]
    server_cpus: Option<String>,
    /// Tokio runtime of the nodes: `multi_thread` (default, one worker per core) or
    /// `current_thread`.
    #[arg(long)]
    server_runtime: Option<String>,
    /// Also measure the relay latency of a trivial websocket relay, started the same way.
    #[arg(long)]
    echo_baseline: bool,
}

pub(crate) async fn run(args: SignallingArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.nodes > 64 || (args.url.is_some() && args.nodes != 1) {
        bail!("--nodes is 1 to 64, and 1 with --url");
    }
    println!("load average at start: {}", load_average());
    let redis = match (&args.broker, args.nodes) {
        (None, 2..) => {
            Some(signalling::testing::LocalRedis::start().await.context("starting redis-server for --nodes")?)
        }
        _ => None,
    };
    let broker = args.broker.clone().or_else(|| redis.as_ref().map(|r| r.url().to_owned()));
    let mut nodes = Vec::new();
    let mut pids = Vec::new();
    let mut children = Vec::new();
    if let Some(url) = &args.url {
        nodes.push(Node::parse(url)?);
        pids.extend(args.pid);
    } else {
        for node in 0..args.nodes {
            let broker = broker.as_deref().map(|b| (b, format!("bench-node-{node}")));
            let (url, child) = spawn_server(&args, "signalling", broker).await?;
            pids.extend(child.id());
            nodes.push(Node::parse(&url)?);
            children.push(child);
        }
    }
    // The memory of all nodes together; unknown when a pid is missing.
    let known = pids.len() == nodes.len();
    let rss = || if known { pids.iter().map(|p| rss_bytes(*p)).sum::<Option<u64>>() } else { None };
    let redis_rss = || redis.as_ref().and_then(|r| rss_bytes(r.pid()));
    let (base, redis_base) = (rss(), redis_rss());
    let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    println!("{} node(s) at {}; node RSS at start {}", nodes.len(), urls.join(" "), mib(base));

    let started = Instant::now();
    let mut idle = Idle::open(&args, &nodes).await?;
    let open_s = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rss();
    let per_conn = match (base, held) {
        (Some(b), Some(h)) => format!("{:.2} KiB", h.saturating_sub(b) as f64 / 1024.0 / idle.count.max(1) as f64),
        _ => "unknown (no --pid)".into(),
    };
    println!(
        "{} idle connections over {} node(s) and {} load-generator process(es), opened in {open_s:.1} s ({:.0}/s)",
        idle.count,
        nodes.len(),
        idle.workers.len().max(1),
        idle.count as f64 / open_s
    );
    let node_rss: Vec<String> = pids.iter().map(|p| mib(rss_bytes(*p))).collect();
    println!("node RSS {} (sum {}): {per_conn} per idle connection", node_rss.join(" + "), mib(held));
    if redis.is_some() {
        println!("redis-server RSS {} (at start {}), not counted above", mib(redis_rss()), mib(redis_base));
    }

    let latency = bench_latency::Run::from_args(&args.secret, args.pairs, args.rate, args.duration_s, args.sdp_bytes);
    bench_latency::relay(&nodes, &pids, &latency, "signalling").await?;
    let alive = idle.ping_all().await?;
    println!("after the relay phase {alive} of {} idle connections answered a ping", idle.count);
    // The nodes go first: the run is over, and 100,000 clients leaving at once would only
    // measure the broker's directory clean-up (entries expire after `peer_ttl_s` anyway).
    drop(children);
    idle.close().await;

    if args.echo_baseline {
        let (url, echo) = spawn_server(&args, "echo", None).await?;
        let pids: Vec<u32> = echo.id().into_iter().collect();
        bench_latency::relay(&[Node::parse(&url)?], &pids, &latency, "echo baseline").await?;
        drop(echo);
    }
    println!("load average at end: {}", load_average());
    Ok(())
}

/// The idle connections: held here, or by worker processes.
struct Idle {
    count: usize,
    here: Vec<bench_ws::Ws>,
    workers: Vec<Worker>,
}

/// One `bench signalling-worker` child and its stdout.
struct Worker {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Worker {
    async fn expect(&mut self, word: &str) -> anyhow::Result<Vec<String>> {
        let line = self.lines.next_line().await?.context("a load-generator worker exited")?;
        let fields: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        if fields.first().map(String::as_str) != Some(word) {
            bail!("a load-generator worker said {line:?}, expected {word}");
        }
        Ok(fields)
    }
}

impl Idle {
    async fn open(args: &SignallingArgs, nodes: &[Node]) -> anyhow::Result<Self> {
        if args.workers == 0 {
            let here = bench_ws::open_idle(nodes, 0, args.connections, args.per_source, &args.secret).await?;
            return Ok(Self { count: here.len(), here, workers: Vec::new() });
        }
        let urls: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
        let share = args.connections.div_ceil(args.workers);
        let mut workers = Vec::new();
        for w in 0..args.workers {
            let first = w * share;
            let count = share.min(args.connections.saturating_sub(first));
            let mut child = tokio::process::Command::new(std::env::current_exe()?)
                .args(["bench", "signalling-worker", "--nodes", &urls.join(",")])
                .args(["--first", &first.to_string(), "--count", &count.to_string()])
                .args(["--per-source", &args.per_source.to_string(), "--secret", &args.secret])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .context("starting a load-generator worker")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            workers.push(Worker { child, lines: BufReader::new(stdout).lines() });
        }
        let mut count = 0;
        for worker in &mut workers {
            let fields = worker.expect("open").await?;
            count += fields.get(1).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        }
        Ok(Self { count, here: Vec::new(), workers })
    }

    /// Pings every idle connection; how many answered.
    async fn ping_all(&mut self) -> anyhow::Result<usize> {
        let mut alive = bench_worker::ping_all(&mut self.here).await;
        for worker in &mut self.workers {
            let stdin = worker.child.stdin.as_mut().context("worker stdin")?;
            stdin.write_all(b"ping\n").await?;
        }
        for worker in &mut self.workers {
            let fields = worker.expect("alive").await?;
            alive += fields.get(1).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
        }
        Ok(alive)
    }

    async fn close(self) {
        for mut worker in self.workers {
            // Closing stdin ends the worker; it may already be gone.
            drop(worker.child.stdin.take());
            let _ = tokio::time::timeout(Duration::from_secs(30), worker.child.wait()).await;
        }
    }
}

/// Starts `swarmcast serve signalling` (or, for `what` = `echo`, the trivial relay) on a free
/// loopback port with limits raised for the bench, with the `--server-cpus` affinity and
/// `--server-runtime`. With `broker` (URL, node id), the node joins that cluster.
async fn spawn_server(
    args: &SignallingArgs,
    what: &str,
    broker: Option<(&str, String)>,
) -> anyhow::Result<(String, Child)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let exe = std::env::current_exe()?;
    let listen = format!("127.0.0.1:{port}");
    let mut command = match &args.server_cpus {
        Some(cpus) => {
            let mut c = tokio::process::Command::new("taskset");
            c.args(["-c", cpus]).arg(exe);
            c
        }
        None => tokio::process::Command::new(exe),
    };
    match what {
        "echo" => command.args(["bench", "signalling-echo", "--listen", &listen]),
        _ => command.args(["serve", "signalling", "--listen", &listen]),
    };
    if let Some((url, node)) = broker {
        command.env("SWARMCAST_SIGNALLING_BROKER_URL", url).env("SWARMCAST_SIGNALLING_NODE_ID", node);
    }
    // Not inherited: the load generator may run on another runtime than the nodes.
    match &args.server_runtime {
        Some(runtime) => command.env("SWARMCAST_RUNTIME", runtime),
        None => command.env_remove("SWARMCAST_RUNTIME"),
    };
    let child = command
        .env("SWARMCAST_SIGNALLING_SECRET", &args.secret)
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
        .with_context(|| format!("starting the {what} server"))?;
    let health = format!("http://{listen}/healthz");
    for _ in 0..200 {
        if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
            return Ok((format!("ws://{listen}/v1/ws"), child));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("the {what} server did not come up at {health}")
}

/// The 1/5/15-minute load averages (`/proc/loadavg`).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
