//! The WebTorrent-compatible endpoint: `GET /announce` (and `/`) upgrades to a websocket that
//! speaks [`protocol::webtorrent`], so p2p-media-loader and WebTorrent clients can use this
//! tracker. One task per connection reads frames and writes what was queued for it; all swarm
//! decisions happen in the pure `swarms` module under one lock.

mod probe;
mod swarms;

pub use probe::WebTorrentProbe;

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use fastwebsockets::{Frame, OpCode, Payload, WebSocket};
use foldhash::fast::RandomState;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use protocol::webtorrent::{self, ErrorOut, Event, Id20, to_json};
use service::Metrics;
use tokio::io::BufWriter;
use tokio::sync::mpsc;

use crate::{AppState, Config};
use swarms::{ConnId, Limits, Outbox, Swarms};

/// The endpoint's shared state: swarms and the outgoing queue of every connection.
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
    next_conn: AtomicU64,
    epoch: Instant,
    connections: Gauge,
    peers: Gauge,
    swarms: Gauge,
    announces: Counter,
    offers: Counter,
    answers: Counter,
    rejected: Family<[(&'static str, &'static str); 1], Counter>,
}

struct HubInner {
    swarms: Swarms,
    queues: HashMap<ConnId, mpsc::Sender<Out>, RandomState>,
}

impl Hub {
    /// An empty hub under `config`'s limits; registers the `tracker_webtorrent_*` metrics.
    pub(crate) fn new(config: &Config, metrics: &Metrics) -> Self {
        let limits = Limits {
            max_offers: config.webtorrent_max_offers,
            offer_ttl_s: u32::try_from(config.offer_ttl_s).unwrap_or(u32::MAX).min(swarms::MAX_OFFER_TTL_S),
            peer_ttl_s: u32::try_from(config.webtorrent_peer_ttl_s).unwrap_or(u32::MAX),
            interval_s: config.webtorrent_interval_s,
            max_pending_offers: config.webtorrent_max_pending_offers,
        };
        let seed = rand::random();
        let hub = Self {
            inner: Mutex::new(HubInner { swarms: Swarms::new(limits, seed), queues: HashMap::default() }),
            next_conn: AtomicU64::new(0),
            epoch: Instant::now(),
            connections: Gauge::default(),
            peers: Gauge::default(),
            swarms: Gauge::default(),
            announces: Counter::default(),
            offers: Counter::default(),
            answers: Counter::default(),
            rejected: Family::default(),
        };
        metrics.register("tracker_webtorrent_connections", "Open WebTorrent websockets", hub.connections.clone());
        metrics.register("tracker_webtorrent_peers", "Peers in WebTorrent swarms", hub.peers.clone());
        metrics.register("tracker_webtorrent_swarms", "WebTorrent swarms with at least one peer", hub.swarms.clone());
        metrics.register("tracker_webtorrent_announces", "WebTorrent announces handled", hub.announces.clone());
        metrics.register("tracker_webtorrent_offers", "Offers relayed to peers", hub.offers.clone());
        metrics.register("tracker_webtorrent_answers", "Answers relayed to offerers", hub.answers.clone());
        metrics.register(
            "tracker_webtorrent_rejected",
            "Refused frames and dropped messages, by reason",
            hub.rejected.clone(),
        );
        hub
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        // Swarm updates are plain map operations that a panic cannot leave half-done in a way
        // that breaks later calls; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_s(&self) -> u32 {
        u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    fn reject(&self, reason: &'static str) {
        self.rejected.get_or_create(&[("reason", reason)]).inc();
    }

    /// Drops silent peers and old offers; called by the tracker's timer.
    pub(crate) fn clean(&self) {
        let now_s = self.now_s();
        let mut inner = self.lock();
        inner.swarms.clean(now_s);
        self.refresh(&inner);
    }

    fn refresh(&self, inner: &HubInner) {
        self.peers.set(i64::try_from(inner.swarms.peer_count()).unwrap_or(i64::MAX));
        self.swarms.set(i64::try_from(inner.swarms.swarm_count()).unwrap_or(i64::MAX));
    }
}

/// `GET /announce`: the websocket upgrade (RFC 6455 §4.2; 400 when the request is not one,
/// 503 when `webtorrent_max_connections` are open).
pub(crate) async fn upgrade(State(state): State<AppState>, mut request: Request) -> Response {
    let hub = &state.inner.webtorrent;
    if !fastwebsockets::upgrade::is_upgrade_request(&request) {
        hub.reject("not_websocket");
        return service::error_response(StatusCode::BAD_REQUEST, "not_websocket", "expected a websocket upgrade");
    }
    if usize::try_from(hub.connections.get()).unwrap_or(0) >= state.inner.config.webtorrent_max_connections {
        hub.reject("full");
        return service::error_response(StatusCode::SERVICE_UNAVAILABLE, "full", "too many connections");
    }
    let (response, upgraded) = match fastwebsockets::upgrade::upgrade(&mut request) {
        Ok(upgrade) => upgrade,
        Err(e) => {
            hub.reject("bad_upgrade");
            return service::error_response(StatusCode::BAD_REQUEST, "bad_upgrade", e.to_string());
        }
    };
    tokio::spawn(async move {
        if let Ok(socket) = upgraded.await {
            connection(state, socket).await;
        }
    });
    response.map(Body::new)
}

/// The (info hash, peer id) pairs one connection announced; foldhash, seeded per process, as
/// in the swarms.
pub(crate) type Joined = HashSet<(Id20, Id20), RandomState>;

/// What the writer half sends: messages from the swarms, and the replies the protocol owes.
enum Out {
    /// A JSON message (a text frame).
    Text(Vec<u8>),
    /// The answer to a ping, with its payload.
    Pong(Vec<u8>),
}

/// Runs one connection until the client leaves, idles, or a write fails; then removes its peers.
///
/// fastwebsockets instead of tungstenite: under aquatic_ws_load_test, tungstenite's UTF-8
/// check of every text frame (std's, slow on the ids' non-ASCII bytes) was 12 % of the
/// endpoint's CPU; here the frame's bytes go straight to simd-json, which checks UTF-8 with SIMD
/// while it decodes, in place, in the frame's own buffer.
async fn connection(state: AppState, socket: WebSocket<TokioIo<Upgraded>>) {
    let config = &state.inner.config;
    let hub = &state.inner.webtorrent;
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    let (queue, mut outgoing) = mpsc::channel::<Out>(config.webtorrent_queue_messages);
    let own = queue.clone();
    hub.lock().queues.insert(conn, queue);
    hub.connections.inc();

    let write_buffer = config.ws_write_buffer_bytes;
    let (mut source, mut sink) = socket.split(|io| {
        let (read, write) = tokio::io::split(io);
        (read, BufWriter::with_capacity(write_buffer, write))
    });
    // Pings and closes are answered here (the writer owns the write half), and fragments are
    // joined here, within the frame bound.
    source.set_auto_pong(false);
    source.set_auto_close(false);
    source.set_max_message_size(webtorrent::MAX_FRAME_BYTES + 1);
    sink.set_writev(false);
    let idle = Duration::from_secs(config.webtorrent_idle_timeout_s);
    let mut joined: Joined = HashSet::default();
    // Reading and writing run side by side: a client that is busy sending must still have its
    // requests read while writes to it wait for it to read, or both would wait forever.
    let writer = async {
        while let Some(out) = outgoing.recv().await {
            // Write everything queued into the buffer, then flush once: one TLS record and one
            // system call for the batch.
            let mut next = Some(out);
            while let Some(out) = next.take() {
                let frame = match &out {
                    Out::Text(text) => Frame::text(Payload::Borrowed(text)),
                    Out::Pong(payload) => Frame::pong(Payload::Borrowed(payload)),
                };
                if sink.write_frame(frame).await.is_err() {
                    return;
                }
                next = outgoing.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    };
    let reader = async {
        let mut partial: Option<Vec<u8>> = None;
        let mut no_obligations = |_: Frame<'_>| async { Ok::<(), std::io::Error>(()) };
        // Ends when idle for too long, the client left, or a protocol error.
        while let Ok(Ok(mut frame)) = tokio::time::timeout(idle, source.read_frame(&mut no_obligations)).await {
            match frame.opcode {
                OpCode::Text if frame.fin && partial.is_none() => {
                    on_text(&state, conn, frame.payload.to_mut(), &mut joined);
                }
                OpCode::Text if partial.is_none() => partial = Some(frame.payload.to_vec()),
                OpCode::Continuation if partial.is_some() => {
                    let Some(mut text) = partial.take() else { break };
                    if text.len() + frame.payload.len() > webtorrent::MAX_FRAME_BYTES {
                        hub.reject("too_large");
                        break;
                    }
                    text.extend_from_slice(&frame.payload);
                    if frame.fin {
                        on_text(&state, conn, &mut text, &mut joined);
                    } else {
                        partial = Some(text);
                    }
                }
                OpCode::Binary => hub.reject("binary"),
                OpCode::Ping => {
                    let _ = own.try_send(Out::Pong(frame.payload.to_vec()));
                }
                OpCode::Pong => {}
                // A close, or a fragment out of order.
                _ => break,
            }
        }
    };
    tokio::select! {
        () = writer => {}
        () = reader => {}
    }
    let mut inner = hub.lock();
    inner.queues.remove(&conn);
    inner.swarms.remove_connection(conn, joined.iter());
    hub.refresh(&inner);
    drop(inner);
    hub.connections.dec();
}

thread_local! {
    /// One decoder per runtime thread: simd-json's scratch buffers are allocated once.
    static DECODER: RefCell<webtorrent::Decoder> = RefCell::new(webtorrent::Decoder::default());
}

/// Handles one text frame of connection `conn`; `frame` is decoded in place.
fn on_text(state: &AppState, conn: ConnId, frame: &mut [u8], joined: &mut Joined) {
    DECODER.with_borrow_mut(|decoder| match decoder.decode(frame) {
        Ok(request) => on_request(state, conn, request, joined),
        Err(e) => {
            let hub = &state.inner.webtorrent;
            hub.reject("malformed");
            let reason = e.to_string();
            let error = to_json(&ErrorOut { failure_reason: &reason, action: None, info_hash: None });
            Outgoing { hub, queues: &hub.lock().queues }.push(conn, error);
        }
    });
}

/// Applies one decoded request of connection `conn`.
fn on_request(state: &AppState, conn: ConnId, request: webtorrent::Request<'_>, joined: &mut Joined) {
    let hub = &state.inner.webtorrent;
    let now_s = hub.now_s();
    let mut inner = hub.lock();
    let HubInner { swarms, queues } = &mut *inner;
    let mut out = Outgoing { hub, queues };
    match request {
        webtorrent::Request::Scrape(hashes) => {
            let text = swarms.scrape(&hashes);
            out.push(conn, text);
        }
        webtorrent::Request::Announce(announce) => {
            let key = (announce.info_hash, announce.peer_id);
            let known = joined.contains(&key);
            let max = state.inner.config.webtorrent_max_swarms_per_connection;
            if !known && announce.event != Event::Stopped && joined.len() >= max {
                hub.reject("too_many_swarms");
                let error = ErrorOut {
                    failure_reason: "too many swarms on one connection",
                    action: Some("announce"),
                    info_hash: Some(announce.info_hash),
                };
                out.push(conn, to_json(&error));
                return;
            }
            let outcome = swarms.announce(now_s, conn, &announce, &mut out);
            hub.announces.inc();
            hub.offers.inc_by(outcome.offers as u64);
            hub.answers.inc_by(u64::from(outcome.answered));
            if outcome.dropped > 0 {
                hub.rejected.get_or_create(&[("reason", "queue_full")]).inc_by(outcome.dropped as u64);
            }
            if outcome.answer_refused {
                hub.reject("no_offer");
            }
            if outcome.ignored {
                hub.reject("peer_id_taken");
            }
            match (known, outcome.member) {
                (false, true) => {
                    joined.insert(key);
                }
                (true, false) => {
                    joined.remove(&key);
                }
                _ => {}
            }
            hub.peers.set(i64::try_from(swarms.peer_count()).unwrap_or(i64::MAX));
            hub.swarms.set(i64::try_from(swarms.swarm_count()).unwrap_or(i64::MAX));
        }
    }
}

/// The connections' queues as an [`Outbox`]: a full queue takes nothing (the client is not
/// reading), as aquatic_ws drops messages for a full connection channel.
struct Outgoing<'a> {
    hub: &'a Hub,
    queues: &'a HashMap<ConnId, mpsc::Sender<Out>, RandomState>,
}

impl Outbox for Outgoing<'_> {
    fn has_room(&self, conn: ConnId) -> bool {
        self.queues.get(&conn).is_some_and(|q| q.capacity() > 0)
    }

    fn push(&mut self, conn: ConnId, text: String) {
        let Some(queue) = self.queues.get(&conn) else { return };
        if queue.try_send(Out::Text(text.into_bytes())).is_err() {
            self.hub.reject("queue_full");
        }
    }
}
