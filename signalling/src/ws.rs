//! The websocket shell: checks the token before the upgrade, then runs one task per connection
//! that reads frames, asks `relay` what they mean, and writes what other peers queued for it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use protocol::PeerId;
use protocol::signal::{CLOSE_IDLE, CLOSE_REPLACED, CLOSE_SLOW_CONSUMER, MAX_MESSAGE_BYTES, ServerMessage};
use protocol::{intro, token};
use serde::Deserialize;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::links::Kind;
use crate::per_ip::Slot;
use crate::relay::{self, Action, Epoch, Registered, Registry, Scope, TokenBucket};
use crate::{ApiError, AppState, cluster};

/// Most queued messages written to one connection before a flush, in messages.
const WRITE_BATCH: usize = 16;

/// How the rest of the server reaches one connection: its outgoing queue and its close signal.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    queue: mpsc::Sender<Utf8Bytes>,
    close: oneshot::Sender<(u16, &'static str)>,
}

impl ConnHandle {
    /// Asks the connection to close with `code`; dropping the handle without this closes it too.
    pub(crate) fn close(self, code: u16, reason: &'static str) {
        // The connection may already be gone; then there is nothing to close.
        let _ = self.close.send((code, reason));
    }
}

/// Query of `GET /v1/ws`.
#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    peer_id: String,
    token: String,
}

/// `GET /v1/ws?peer_id=&token=`: 401 unless the token was issued to `peer_id`, 503 when full,
/// 429 when the client's address holds its share of connections, else the websocket upgrade.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    client: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<Params>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let admitted = authorize(&state, query).and_then(|(peer, scope)| {
        // Without the client address (a router served without connect info) there is no cap.
        let slot = match client {
            Some(Extension(ConnectInfo(addr))) => {
                Some(state.inner.per_ip.acquire(addr.ip()).ok_or(ApiError::PerIpCap)?)
            }
            None => None,
        };
        Ok((peer, scope, slot))
    });
    let (peer, scope, slot) = match admitted {
        Ok(ok) => ok,
        Err(e) => {
            state.reject(e.code());
            return e.into_response();
        }
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    // Claimed in the broker's directory before the client learns it is connected, so a relay it
    // triggers right away finds it; of two connections of one peerId the later claim (the higher
    // epoch) wins, on every node, whatever the order in which they register there.
    let epoch = cluster::claim(&state, &peer).await;
    let config = &state.inner.config;
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .read_buffer_size(config.ws_read_buffer_bytes)
        .write_buffer_size(config.ws_write_buffer_bytes)
        .max_write_buffer_size(config.ws_max_write_buffer_bytes)
        .on_upgrade(move |socket| connection(state, peer, scope, slot, epoch, socket))
}

fn authorize(state: &AppState, query: Result<Query<Params>, QueryRejection>) -> Result<(PeerId, Scope), ApiError> {
    let Ok(Query(params)) = query else {
        return Err(ApiError::BadToken);
    };
    let peer: PeerId = params.peer_id.parse().map_err(|_| ApiError::BadToken)?;
    let claims = token::verify(state.inner.config.secret.as_bytes(), &params.token, service::unix_now_s())?;
    if claims.peer_id.as_ref() != Some(&peer) {
        return Err(ApiError::BadToken);
    }
    let open = usize::try_from(state.inner.connections.get()).unwrap_or(0);
    if open >= state.inner.config.max_connections {
        return Err(ApiError::Full);
    }
    Ok((peer, Scope { customer: claims.customer, content: claims.content }))
}

/// Runs one connection (which claimed the directory under `epoch`) until the peer leaves, is
/// replaced, idles, lags, or the server stops; its per-address `_slot` is freed when it ends.
async fn connection(
    state: AppState,
    peer: PeerId,
    scope: Scope,
    _slot: Option<Slot>,
    epoch: Option<Epoch>,
    socket: WebSocket,
) {
    let config = &state.inner.config;
    let (queue, mut outgoing) = mpsc::channel(config.queue_messages);
    let (close, mut closed) = oneshot::channel();
    let handle = ConnHandle { queue, close };
    let (conn_id, registered) = state.registry().register(Instant::now(), peer.clone(), scope.clone(), handle, epoch);
    match registered {
        Registered::Replaced(Some(older)) => older.close(CLOSE_REPLACED, "replaced by a newer connection"),
        Registered::Replaced(None) => {}
        // A newer connection of this peerId exists (its eviction came before this registration):
        // this one closes at once.
        Registered::Refused(me) => me.close(CLOSE_REPLACED, "replaced by a newer connection"),
    }
    state.inner.connections.inc();
    tracing::debug!(%peer, "connected");

    let (mut sink, mut stream) = socket.split();
    let idle = Duration::from_secs(config.idle_timeout_s);
    let send_timeout = Duration::from_secs(config.send_timeout_s);
    let mut bucket = TokenBucket::new(Instant::now(), config.max_messages_per_s, config.burst_messages);
    let mut stopping = state.inner.stopping.subscribe();
    let mut deadline = tokio::time::Instant::now() + idle;

    let close_with = loop {
        let reply = tokio::select! {
            biased;
            reason = &mut closed => break Some(reason.unwrap_or((CLOSE_SLOW_CONSUMER, "dropped"))),
            _ = stopping.wait_for(|stop| *stop) => break Some((close_code::AWAY, "server shutting down")),
            () = tokio::time::sleep_until(deadline) => break Some((CLOSE_IDLE, "idle")),
            queued = outgoing.recv() => match queued {
                Some(text) => Out::Send(Message::Text(text)),
                None => break Some((CLOSE_SLOW_CONSUMER, "dropped")),
            },
            incoming = stream.next() => {
                // None: the peer left; Err: a protocol error such as a frame above the size bound.
                let Some(Ok(message)) = incoming else { break None };
                deadline = tokio::time::Instant::now() + idle;
                match on_message(&state, &peer, &scope, &mut bucket, message) {
                    Step::Reply(reply) => Out::Send(Message::Text(encode(&reply))),
                    Step::Forward(envelope) => Out::Forward(envelope),
                    Step::Nothing => continue,
                    Step::Stop => break None,
                }
            }
        };
        let reply = match reply {
            Out::Send(message) => message,
            // Awaited outside the select (its futures are not Send) and before the next frame is
            // read, so one sender's signals reach the broker in order.
            Out::Forward(envelope) => match cluster::forward(&state, envelope).await {
                Some(reply) => Message::Text(encode(&reply)),
                None => continue,
            },
        };
        // Whatever else is queued by now goes out in the same write: one flush (one syscall)
        // for a burst of relays instead of one each.
        let write = async {
            sink.feed(reply).await?;
            for _ in 1..WRITE_BATCH {
                let Ok(more) = outgoing.try_recv() else { break };
                sink.feed(Message::Text(more)).await?;
            }
            sink.flush().await
        };
        match tokio::time::timeout(send_timeout, write).await {
            Ok(Ok(())) => {}
            _ => break None,
        }
    };

    if let Some((code, reason)) = close_with {
        let frame = CloseFrame { code, reason: reason.into() };
        let _ = tokio::time::timeout(send_timeout, sink.send(Message::Close(Some(frame)))).await;
    }
    // Released even when this connection was already removed (replaced, slow): the directory
    // drops the entry only while it still holds this connection's epoch.
    let late_epoch = {
        let mut registry = state.registry();
        let late_epoch = registry.epoch_of(&peer, conn_id);
        registry.unregister(&peer, conn_id);
        late_epoch
    };
    if let Some(epoch) = late_epoch.or(epoch) {
        cluster::release(&state, &peer, epoch);
    }
    state.inner.connections.dec();
    tracing::debug!(%peer, ?close_with, "disconnected");
}

/// What the loop writes next: a frame, or the answer of a cross-node relay.
enum Out {
    Send(Message),
    Forward(crate::broker::Envelope),
}

/// What the loop does after one inbound frame.
enum Step {
    Reply(ServerMessage),
    /// Publish to the recipient's node.
    Forward(crate::broker::Envelope),
    Nothing,
    Stop,
}

fn on_message(state: &AppState, peer: &PeerId, scope: &Scope, bucket: &mut TokenBucket, message: Message) -> Step {
    let text = match message {
        Message::Text(text) => text,
        Message::Binary(_) => {
            state.reject("binary");
            return Step::Reply(relay::error("binary_not_supported"));
        }
        Message::Close(_) => return Step::Stop,
        // The websocket layer answers pings itself.
        Message::Ping(_) | Message::Pong(_) => return Step::Nothing,
    };
    if !bucket.try_take(Instant::now()) {
        state.reject("rate_limited");
        return Step::Reply(relay::error("rate_limited"));
    }
    match relay::on_text(peer, text.as_str()) {
        Action::Reply(reply) => {
            if matches!(reply, ServerMessage::Error { .. }) {
                state.reject("malformed");
            }
            Step::Reply(reply)
        }
        Action::Relay { to, kind, message } => match cluster::outbound(state, peer, scope, &to, kind, &message) {
            Some(Ok(envelope)) => Step::Forward(envelope),
            Some(Err(reply)) => Step::Reply(reply),
            None => match deliver(state, peer, scope, to, kind, &message) {
                Some(reply) => Step::Reply(reply),
                None => Step::Nothing,
            },
        },
        Action::Introduce(text) => match introduce(state, peer, scope, &text) {
            Ok(()) => Step::Nothing,
            Err(reason) => {
                state.reject("bad_intro");
                Step::Reply(relay::error(reason))
            }
        },
    }
}

/// Verifies an introduction handed in by `peer` and records the peers it names.
fn introduce(state: &AppState, peer: &PeerId, scope: &Scope, text: &str) -> Result<(), &'static str> {
    let now_s = service::unix_now_s();
    let intro = intro::verify(state.inner.config.secret.as_bytes(), text, now_s).map_err(|_| "bad_intro")?;
    if intro.from != *peer || intro.customer != scope.customer || intro.content != scope.content {
        return Err("bad_intro");
    }
    let now = Instant::now();
    // Verified above: expires_at_s > now_s. The offer lifetime also caps it.
    let lifetime = Duration::from_secs(intro.expires_at_s - now_s).min(state.inner.policy.offer_ttl);
    state.registry().introduce(now, peer, intro.peers, now + lifetime, &state.inner.policy);
    Ok(())
}

/// Queues `message` (a `kind` signal from `from`) for `to` within `scope` under the relay rules;
/// returns what to tell the sender when that fails. A recipient whose queue is full is a slow
/// consumer: it is dropped and told to close.
fn deliver(
    state: &AppState,
    from: &PeerId,
    scope: &Scope,
    to: PeerId,
    kind: Kind,
    message: &ServerMessage,
) -> Option<ServerMessage> {
    let text = encode(message);
    let mut registry = state.registry();
    if let Err(unroutable) = registry.relay(Instant::now(), from, scope, &to, kind, &state.inner.policy) {
        state.reject(unroutable.reason());
        return Some(relay::undeliverable(to, unroutable.reason()));
    }
    enqueue(state, &mut registry, &to, text).err().map(|reason| relay::undeliverable(to, reason))
}

/// Queues `text` for the local peer `to`; the reason to report when that fails. A recipient
/// whose queue is full is a slow consumer: it is dropped and told to close.
pub(crate) fn enqueue(
    state: &AppState,
    registry: &mut Registry<ConnHandle>,
    to: &PeerId,
    text: Utf8Bytes,
) -> Result<(), &'static str> {
    let Some(handle) = registry.handle(to) else {
        state.reject("unknown_peer");
        return Err("unknown_peer");
    };
    match handle.queue.try_send(text) {
        Ok(()) => {
            state.inner.relayed.inc();
            Ok(())
        }
        Err(TrySendError::Full(_)) => {
            if let Some(slow) = registry.remove(to) {
                slow.close(CLOSE_SLOW_CONSUMER, "slow consumer");
            }
            state.reject("slow_peer");
            Err("slow_peer")
        }
        Err(TrySendError::Closed(_)) => {
            registry.remove(to);
            state.reject("unknown_peer");
            Err("unknown_peer")
        }
    }
}

/// The text frame of `message`.
pub(crate) fn encode(message: &ServerMessage) -> Utf8Bytes {
    // Serializing these plain enums of strings and integers cannot fail.
    serde_json::to_string(message).unwrap_or_default().into()
}

#[cfg(test)]
mod tests {
    use protocol::signal::Signal;

    use super::*;
    use crate::Config;

    fn id(s: &str) -> PeerId {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_slow_recipient() {
        // Relays of `bye` between strangers, so the queue is the only rule in play.
        let config = Config { secret: "s".into(), queue_messages: 1, require_introduction: false, ..Config::default() };
        let state = AppState::new(config, &service::Metrics::new()).unwrap();
        let scope = Scope { customer: "acme".into(), content: "live".into() };
        let (queue, mut outgoing) = mpsc::channel(1);
        let (close, closed) = oneshot::channel();
        state.registry().register(Instant::now(), id("slow"), scope.clone(), ConnHandle { queue, close }, None);
        let message = ServerMessage::Relay { from: id("a"), signal: Signal::Bye };

        assert_eq!(deliver(&state, &id("a"), &scope, id("slow"), Kind::Other, &message), None);
        let refused = deliver(&state, &id("a"), &scope, id("slow"), Kind::Other, &message);
        assert_eq!(refused, Some(relay::undeliverable(id("slow"), "slow_peer")));
        assert_eq!(closed.await.unwrap().0, CLOSE_SLOW_CONSUMER);
        assert!(outgoing.recv().await.is_some());
        // Gone from the registry: later relays are unknown.
        let later = deliver(&state, &id("a"), &scope, id("slow"), Kind::Other, &message);
        assert_eq!(later, Some(relay::undeliverable(id("slow"), "unknown_peer")));
    }
}
