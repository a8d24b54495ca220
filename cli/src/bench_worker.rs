//! `swarmcast bench signalling-worker`: one load-generator process of `bench signalling
//! --workers N`. It holds its share of the idle connections (its own open-file budget) and obeys
//! the parent over stdin/stdout, one line each way:
//!
//! - at start it opens its connections and prints `open <count> <seconds>`;
//! - `ping` → it pings every connection it holds and prints `alive <connections that answered>`;
//! - `exit` or the end of stdin → it closes everything and exits.
#![allow(clippy::print_stdout)]

use std::io::BufRead;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use protocol::signal::{ClientMessage, ServerMessage};
use tokio_tungstenite::tungstenite::Message;

use crate::bench_ws::{self, Node, Ws};

/// Longest wait for all pongs of one `ping` round.
const PING_ROUND_TIMEOUT: Duration = Duration::from_secs(120);

/// Arguments of the worker (set by the parent).
#[derive(clap::Args)]
pub(crate) struct WorkerArgs {
    /// The nodes' `ws://ip:port/v1/ws` URLs, comma-separated; connection `i` goes to node `i % K`.
    #[arg(long, value_delimiter = ',')]
    nodes: Vec<String>,
    /// Global index of this worker's first connection.
    #[arg(long)]
    first: usize,
    /// Connections this worker holds.
    #[arg(long)]
    count: usize,
    /// Connections per source address.
    #[arg(long)]
    per_source: usize,
    /// Token secret of the nodes.
    #[arg(long)]
    secret: String,
}

pub(crate) async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let nodes = args.nodes.iter().map(|u| Node::parse(u)).collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut conns = bench_ws::open_idle(&nodes, args.first, args.count, args.per_source, &args.secret).await?;
    println!("open {} {:.2}", conns.len(), started.elapsed().as_secs_f64());
    loop {
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|n| (n, line))
        })
        .await??;
        match line {
            (0, _) => break,
            (_, command) if command.trim() == "ping" => {
                let alive = ping_all(&mut conns).await;
                println!("alive {alive}");
            }
            (_, command) if command.trim() == "exit" => break,
            (_, other) => anyhow::bail!("unknown worker command {other:?}"),
        }
    }
    Ok(())
}

/// Sends `ping` on every connection and counts those whose `pong` comes back.
pub(crate) async fn ping_all(conns: &mut [Ws]) -> usize {
    let ping = serde_json::to_string(&ClientMessage::Ping).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + PING_ROUND_TIMEOUT;
    let rounds = conns.iter_mut().map(|ws| {
        let ping = ping.clone();
        async move {
            if ws.send(Message::text(ping)).await.is_err() {
                return false;
            }
            while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
                if let Message::Text(text) = frame
                    && ServerMessage::parse(text.as_str()) == Ok(ServerMessage::Pong)
                {
                    return true;
                }
            }
            false
        }
    });
    futures_util::future::join_all(rounds).await.into_iter().filter(|alive| *alive).count()
}
