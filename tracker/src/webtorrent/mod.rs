//! The WebTorrent-compatible endpoint: `GET /announce` (and `/`) upgrades to a websocket that
//! speaks [`protocol::webtorrent`], so p2p-media-loader and WebTorrent clients can use this
//! tracker. One task per connection reads frames and writes what was queued for it; all swarm
//! decisions happen in the pure `swarms` module under one lock.

mod swarms;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use protocol::webtorrent::{self, ErrorOut, Event, Id20, Request, to_json};
use service::Metrics;
use std::collections::{HashMap, HashSet};
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
    queues: HashMap<ConnId, mpsc::Sender<Utf8Bytes>>,
}

impl Hub {
    /// An empty hub under `config`'s limits; registers the `tracker_webtorrent_*` metrics.
    pub(crate) fn new(config: &Config, metrics: &Metrics) -> Self {
        let limits = Limits {
            max_offers: config.webtorrent_max_offers,
            offer_ttl_s: u32::try_from(config.offer_ttl_s).unwrap_or(u32::MAX),
            peer_ttl_s: u32::try_from(config.webtorrent_peer_ttl_s).unwrap_or(u32::MAX),
            interval_s: config.webtorrent_interval_s,
            max_pending_offers: config.webtorrent_max_pending_offers,
        };
        let seed = rand::random();
        let hub = Self {
            inner: Mutex::new(HubInner { swarms: Swarms::new(limits, seed), queues: HashMap::new() }),
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

/// `GET /announce`: the websocket upgrade (503 when `webtorrent_max_connections` are open).
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let config = &state.inner.config;
    let hub = &state.inner.webtorrent;
    if usize::try_from(hub.connections.get()).unwrap_or(0) >= config.webtorrent_max_connections {
        hub.reject("full");
        return service::error_response(axum::http::StatusCode::SERVICE_UNAVAILABLE, "full", "too many connections");
    }
    ws.max_message_size(webtorrent::MAX_FRAME_BYTES)
        .max_frame_size(webtorrent::MAX_FRAME_BYTES)
        .read_buffer_size(config.ws_read_buffer_bytes)
        .write_buffer_size(config.ws_write_buffer_bytes)
        .max_write_buffer_size(config.ws_max_write_buffer_bytes)
        .on_upgrade(move |socket| connection(state, socket))
}

/// Runs one connection until the client leaves, idles, or a write fails; then removes its peers.
async fn connection(state: AppState, socket: WebSocket) {
    let config = &state.inner.config;
    let hub = &state.inner.webtorrent;
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    let (queue, mut outgoing) = mpsc::channel::<Utf8Bytes>(config.webtorrent_queue_messages);
    hub.lock().queues.insert(conn, queue);
    hub.connections.inc();

    let (mut sink, mut stream) = socket.split();
    let idle = Duration::from_secs(config.webtorrent_idle_timeout_s);
    let mut joined: HashSet<(Id20, Id20)> = HashSet::new();
    // Reading and writing run side by side: a client that is busy sending must still have its
    // requests read while writes to it wait for it to read, or both would wait forever.
    let writer = async {
        while let Some(text) = outgoing.recv().await {
            // Write everything queued, then flush once.
            let mut next = Some(text);
            while let Some(text) = next.take() {
                if sink.feed(Message::Text(text)).await.is_err() {
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
        // None: idle for too long, the client left, or a protocol error.
        while let Ok(Some(Ok(message))) = tokio::time::timeout(idle, stream.next()).await {
            match message {
                Message::Text(text) => on_text(&state, conn, text.as_str(), &mut joined),
                Message::Close(_) => break,
                Message::Binary(_) => hub.reject("binary"),
                Message::Ping(_) | Message::Pong(_) => {}
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

/// Handles one text frame of connection `conn`.
fn on_text(state: &AppState, conn: ConnId, text: &str, joined: &mut HashSet<(Id20, Id20)>) {
    let hub = &state.inner.webtorrent;
    let request = match webtorrent::parse(text) {
        Ok(request) => request,
        Err(e) => {
            hub.reject("malformed");
            let reason = e.to_string();
            let error = to_json(&ErrorOut { failure_reason: &reason, action: None, info_hash: None });
            Outgoing { hub, queues: &hub.lock().queues }.push(conn, error);
            return;
        }
    };
    let now_s = hub.now_s();
    let mut inner = hub.lock();
    let HubInner { swarms, queues } = &mut *inner;
    let mut out = Outgoing { hub, queues };
    match request {
        Request::Scrape(hashes) => {
            let text = swarms.scrape(&hashes);
            out.push(conn, text);
        }
        Request::Announce(announce) => {
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
    queues: &'a HashMap<ConnId, mpsc::Sender<Utf8Bytes>>,
}

impl Outbox for Outgoing<'_> {
    fn has_room(&self, conn: ConnId) -> bool {
        self.queues.get(&conn).is_some_and(|q| q.capacity() > 0)
    }

    fn push(&mut self, conn: ConnId, text: String) {
        let Some(queue) = self.queues.get(&conn) else { return };
        if queue.try_send(Utf8Bytes::from(text)).is_err() {
            self.hub.reject("queue_full");
        }
    }
}
