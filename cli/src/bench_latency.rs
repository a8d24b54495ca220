//! The relay-latency phase of `swarmcast bench signalling`: pairs of extra connections, each
//! sender introduced to its recipient as the tracker would, offers paced at a fixed rate, and the
//! time from the sender's write to the recipient's read.
#![allow(clippy::print_stdout)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use protocol::PeerId;
use protocol::signal::{ClientMessage, ServerMessage, Signal};
use tokio_tungstenite::tungstenite::Message;

use crate::bench_ws::{self, Node, Ws};

/// Source address of the relay pairs (the idle connections use 127.0.0.x).
const PAIR_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 1, 1);

/// Longest wait for one setup step (connect, introduction acknowledged).
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the wake-up probe sleeps at a time.
const PROBE_SLEEP: Duration = Duration::from_millis(1);

/// What one latency phase does.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    secret: String,
    pairs: usize,
    rate: u32,
    duration: Duration,
    sdp_bytes: usize,
}

impl Run {
    /// `pairs` pairs relay `rate` offers per second in all, for `duration_s` seconds, each with an
    /// SDP of `sdp_bytes`; tokens and introductions are signed with `secret`.
    pub(crate) fn from_args(secret: &str, pairs: usize, rate: u32, duration_s: u64, sdp_bytes: usize) -> Self {
        Self { secret: secret.to_owned(), pairs, rate, duration: Duration::from_secs(duration_s), sdp_bytes }
    }
}

/// One relay pair: the sender's socket and id, the recipient's socket.
struct Pair {
    from: Ws,
    to_id: PeerId,
    to: Ws,
}

/// Opens the pairs (sender `s<p>` on node `p % K`, recipient `r<p>` on node `(p + 1) % K`),
/// introduces each recipient to its sender, relays, and prints throughput, latency and the CPU
/// time the server processes `pids` spent per relayed message.
pub(crate) async fn relay(nodes: &[Node], pids: &[u32], run: &Run, label: &str) -> anyhow::Result<()> {
    if run.pairs == 0 || run.rate == 0 {
        return Ok(());
    }
    let mut pairs = Vec::with_capacity(run.pairs);
    for p in 0..run.pairs {
        let (from_id, to_id) = (format!("s{p:x}"), format!("r{p:x}"));
        let from_node = &nodes[p % nodes.len()];
        let to_node = &nodes[(p + 1) % nodes.len()];
        let from = bench_ws::connect(PAIR_SOURCE, from_node, &from_id, &run.secret);
        let to = bench_ws::connect(PAIR_SOURCE, to_node, &to_id, &run.secret);
        let (from, to) = tokio::time::timeout(SETUP_TIMEOUT, async { tokio::try_join!(from, to) })
            .await
            .context("opening a relay pair timed out")??;
        pairs.push(Pair { from, to_id: to_id.parse()?, to });
        introduce(pairs.last_mut().context("just pushed")?, &from_id, &run.secret).await?;
    }
    let cpu = || pids.iter().map(|p| cpu_seconds(*p)).sum::<Option<f64>>();
    let before = cpu();
    let received = measure(pairs, run, label).await?;
    if let (Some(before), Some(after)) = (before, cpu()) {
        println!(
            "  server CPU {:.2} s: {:.1} µs per relayed message",
            after - before,
            (after - before) * 1e6 / received.max(1) as f64
        );
    }
    Ok(())
}

/// User + system CPU time of process `pid` so far, in seconds (`/proc/<pid>/stat`, 100 ticks/s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ")?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Hands the sender the tracker's introduction of its recipient, then waits for the answer to a
/// ping so the introduction is in force before the first offer.
async fn introduce(pair: &mut Pair, from_id: &str, secret: &str) -> anyhow::Result<()> {
    let intro = bench_ws::introduction(secret, &from_id.parse()?, std::slice::from_ref(&pair.to_id));
    for message in [ClientMessage::Introduce { intro }, ClientMessage::Ping] {
        pair.from.send(Message::text(serde_json::to_string(&message)?)).await?;
    }
    loop {
        let frame = tokio::time::timeout(SETUP_TIMEOUT, pair.from.next()).await.context("no pong")?;
        match frame {
            Some(Ok(Message::Text(text))) => match ServerMessage::parse(text.as_str()) {
                Ok(ServerMessage::Pong) => return Ok(()),
                Ok(ServerMessage::Error { reason }) => bail!("the introduction was refused: {reason}"),
                _ => {}
            },
            Some(Ok(_)) => {}
            _ => bail!("a relay sender's connection closed during setup"),
        }
    }
}

/// Relays offers from each pair's sender to its recipient at the configured rate; prints
/// throughput and latency percentiles; returns how many messages arrived.
async fn measure(pairs: Vec<Pair>, run: &Run, label: &str) -> anyhow::Result<u64> {
    let count = pairs.len();
    let stop_probe = Arc::new(AtomicBool::new(false));
    let probe = wakeup_probe(Arc::clone(&stop_probe));
    let epoch = Instant::now();
    let deadline = epoch + run.duration;
    let drained = tokio::time::Instant::from_std(deadline + Duration::from_secs(2));
    let received = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut senders = Vec::new();
    for pair in pairs {
        senders.push((pair.from, pair.to_id));
        let received = Arc::clone(&received);
        let to = pair.to;
        readers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let (_, mut stream) = to.split();
            while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(drained, stream.next()).await {
                // Stamped before decoding, so the figure is the relay's, not the parser's.
                let now_us = epoch.elapsed().as_micros() as u64;
                let Message::Text(text) = frame else { continue };
                if let Ok(ServerMessage::Relay { signal: Signal::Offer { sdp }, .. }) =
                    ServerMessage::parse(text.as_str())
                {
                    let sent_us: u64 = sdp.split(' ').next().and_then(|t| t.parse().ok()).unwrap_or(0);
                    samples.push(now_us.saturating_sub(sent_us));
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        }));
    }
    // One writer paces all pairs round-robin, so sends are spread evenly over time.
    let period = Duration::from_secs_f64(1.0 / f64::from(run.rate));
    let padding = "x".repeat(run.sdp_bytes);
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
    stop_probe.store(true, Ordering::Relaxed);
    let late = probe.join().unwrap_or_default();
    let got = received.load(Ordering::Relaxed);
    println!(
        "{label}: {count} pairs, {sent} sent, {got} received ({} lost), {:.0} msgs/s over {} s; latency {}",
        sent.saturating_sub(got),
        got as f64 / run.duration.as_secs_f64(),
        run.duration.as_secs(),
        percentiles(samples)
    );
    println!("  wake-up delay of a thread sleeping 1 ms at a time, meanwhile: {}", percentiles(late));
    Ok(got)
}

/// `p50 … µs, p99 … µs, p99.9 … µs, max … µs` of `samples` (µs).
fn percentiles(mut samples: Vec<u64>) -> String {
    samples.sort_unstable();
    let pct = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    format!(
        "p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
        pct(0.5),
        pct(0.99),
        pct(0.999),
        samples.last().copied().unwrap_or(0)
    )
}

/// Measures, until `stop` is set, how late a thread that sleeps [`PROBE_SLEEP`] at a time wakes
/// up, in µs (as `cyclictest` does): the scheduling delay that any process on the machine sees
/// meanwhile, server and load generator alike. On an idle machine it is the kernel's timer slack
/// (about 50-100 µs); more means the cores are busy with other work.
fn wakeup_probe(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut late = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let asleep = Instant::now();
            std::thread::sleep(PROBE_SLEEP);
            late.push(asleep.elapsed().saturating_sub(PROBE_SLEEP).as_micros() as u64);
        }
        late
    })
}
