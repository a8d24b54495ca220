//! `swarmcast bench signalling-echo`: the trivial relay that `bench signalling --echo-baseline`
//! measures next to signalling. Same websocket stack (axum, tungstenite, 4 KiB buffers,
//! `TCP_NODELAY`), same frames (`relay` → `relay` to the addressed peer, `ping` → `pong`), and
//! nothing else: no token check, rules, rate limits, metrics or queue bounds. Its latency is the
//! floor that the machine, the load generator and the websocket stack set.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use protocol::PeerId;
use protocol::signal::{ClientMessage, ServerMessage};
use serde::Deserialize;
use tokio::sync::mpsc;

/// Arguments of the echo relay.
#[derive(clap::Args)]
pub(crate) struct EchoArgs {
    /// Address to listen on.
    #[arg(long)]
    listen: SocketAddr,
}

type Peers = Arc<Mutex<HashMap<PeerId, mpsc::UnboundedSender<Utf8Bytes>>>>;

#[derive(Deserialize)]
struct Params {
    peer_id: PeerId,
}

pub(crate) async fn run(args: EchoArgs) -> anyhow::Result<()> {
    let peers: Peers = Arc::default();
    let app = Router::new().route("/healthz", get(|| async { "ok" })).route("/v1/ws", get(upgrade)).with_state(peers);
    let listener = tokio::net::TcpListener::bind(args.listen).await?.tap_io(|tcp| {
        // Loopback sockets take TCP_NODELAY; a failure only costs latency.
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).with_graceful_shutdown(service::shutdown_signal()).await?;
    Ok(())
}

async fn upgrade(State(peers): State<Peers>, Query(params): Query<Params>, ws: WebSocketUpgrade) -> Response {
    ws.read_buffer_size(4096)
        .write_buffer_size(4096)
        .on_upgrade(move |socket| connection(peers, params.peer_id, socket))
}

async fn connection(peers: Peers, me: PeerId, socket: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    peers.lock().unwrap_or_else(PoisonError::into_inner).insert(me.clone(), tx);
    let (mut sink, mut stream) = socket.split();
    loop {
        let out = tokio::select! {
            queued = rx.recv() => match queued {
                Some(text) => text,
                None => break,
            },
            incoming = stream.next() => {
                let Some(Ok(Message::Text(text))) = incoming else { break };
                match ClientMessage::parse(text.as_str()) {
                    Ok(ClientMessage::Ping) => encode(&ServerMessage::Pong),
                    Ok(ClientMessage::Relay { to, signal }) => {
                        let relayed = encode(&ServerMessage::Relay { from: me.clone(), signal });
                        if let Some(peer) = peers.lock().unwrap_or_else(PoisonError::into_inner).get(&to) {
                            // A peer that is gone just misses the message.
                            let _ = peer.send(relayed);
                        }
                        continue;
                    }
                    _ => continue,
                }
            }
        };
        if sink.send(Message::Text(out)).await.is_err() {
            break;
        }
    }
    peers.lock().unwrap_or_else(PoisonError::into_inner).remove(&me);
}

fn encode(message: &ServerMessage) -> Utf8Bytes {
    // Plain enums of strings and integers: serializing cannot fail.
    serde_json::to_string(message).unwrap_or_default().into()
}
