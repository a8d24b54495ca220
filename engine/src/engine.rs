//! The engine state machine: inputs in, outputs and timers out.
//!
//! This file holds the state and the bookkeeping around peers and the player; the decisions
//! live in [`crate::scheduler`], transfers in [`crate::transfer`] and serving in [`crate::upload`].

use std::collections::VecDeque;

use protocol::peer::{MAX_HAVE_SEGMENTS, Message};
use protocol::{PeerId, SegmentId};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::peers::Peers;
use crate::playback::Playback;
use crate::playlist::Playlists;
use crate::segments::{Fetch, Segment, Store};
use crate::{Config, Input, Millis, Output, SegmentInfo, Stats, rank};

/// The P2P engine of one agent (one viewer of one content).
#[derive(Debug)]
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) local: PeerId,
    pub(crate) rng: SmallRng,
    pub(crate) outputs: VecDeque<Output>,
    pub(crate) stats: Stats,
    pub(crate) playlists: Playlists,
    pub(crate) playback: Playback,
    pub(crate) peers: Peers,
    pub(crate) store: Store,
    /// Latest time seen in any call, in ms (time never runs backwards inside the engine).
    pub(crate) now: Millis,
    next_request_id: u32,
    /// The last `Have` broadcast, encoded, to send only changes.
    last_have: Vec<u8>,
}

impl Engine {
    /// Creates the engine of the peer `local`.
    pub fn new(config: Config, local: PeerId) -> Self {
        let rng = SmallRng::seed_from_u64(config.seed ^ rank::fnv1a(local.as_str().as_bytes()));
        Self {
            config,
            local,
            rng,
            outputs: VecDeque::new(),
            stats: Stats::default(),
            playlists: Playlists::default(),
            playback: Playback::default(),
            peers: Peers::default(),
            store: Store::default(),
            now: 0,
            next_request_id: 0,
            last_have: Message::Have { segments: Vec::new(), fetching: Vec::new() }.encode(),
        }
    }

    /// This peer's id.
    pub fn local(&self) -> &PeerId {
        &self.local
    }

    /// The settings the engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds one input at time `now`.
    pub fn handle_input(&mut self, now: Millis, input: Input) {
        let now = self.tick(now);
        match input {
            Input::Playlist { rendition, segments } => self.on_playlist(now, rendition, segments),
            Input::Playback { position_ms, rate, .. } => self.playback.update(now, position_ms, rate),
            Input::PlayerRequest { id } => self.on_player_request(id),
            Input::PlayerAbort { id } => self.on_player_abort(id),
            Input::HttpChunk { id, offset, bytes } => self.on_http_chunk(id, offset, &bytes),
            Input::HttpDone { id, total_len } => self.on_http_done(id, total_len),
            Input::HttpFailed { id, .. } => self.on_http_failed(id),
            Input::PeersDiscovered { peers } => self.peers.discovered(&self.local, peers),
            Input::PeerConnected { peer } => self.on_peer_connected(peer),
            Input::PeerClosed { peer } => self.drop_peer(now, &peer),
            Input::PeerMessage { peer, bytes } => self.on_peer_message(now, peer, &bytes),
        }
        self.settle(now);
    }

    /// Tells the engine that the time it asked for in [`Engine::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, now: Millis) {
        let now = self.tick(now);
        self.settle(now);
    }

    /// Returns the next thing the shell must do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Returns when the engine next wants [`Engine::handle_timeout`], if ever: the earliest of
    /// its deadlines, seeding turns, peer idle timeouts, dial timeouts and tracker requests.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        let peers = self.peers.timer(self.max_peers(), self.config.connect_timeout_ms);
        let segments = self.store.iter().filter_map(|(id, seg)| self.segment_timer(self.now, id, seg));
        peers.into_iter().chain(segments).min()
    }

    /// Counters since the engine was created.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn tick(&mut self, now: Millis) -> Millis {
        self.now = self.now.max(now);
        self.now
    }

    pub(crate) fn max_peers(&self) -> usize {
        usize::try_from(self.config.max_peers).unwrap_or(usize::MAX)
    }

    /// Runs after every input and timeout: peer upkeep, decisions, deliveries, `Have` broadcast.
    fn settle(&mut self, now: Millis) {
        for peer in self.peers.expired_dials(now, self.config.connect_timeout_ms) {
            self.disconnect(now, &peer);
        }
        for peer in self.peers.dial(now, self.max_peers()) {
            self.outputs.push_back(Output::Connect { peer });
        }
        if self.peers.tracker_due(now, self.max_peers(), self.config.peer_request_interval_ms) {
            self.outputs.push_back(Output::RequestPeers);
        }
        self.schedule(now);
        self.deliver();
        let gone = self.store.trim(self.config.max_stored_segments);
        self.release(gone);
        self.broadcast_have();
        self.stats.peers_connected = u32::try_from(self.peers.connected().count()).unwrap_or(u32::MAX);
    }

    fn on_playlist(&mut self, now: Millis, rendition: u32, segments: Vec<SegmentInfo>) {
        let fresh = self.playlists.update(rendition, segments);
        if self.playlists.active() == Some(rendition) {
            for info in fresh {
                let seg = self.store.entry(SegmentId { rendition, msn: info.msn }, &info);
                if !seg.complete && seg.seed_since.is_none() {
                    seg.seed_since = Some(now);
                }
            }
        }
        if let Some(oldest) = self.playlists.oldest_msn(rendition) {
            let gone = self.store.evict_before(rendition, oldest.saturating_sub(self.config.keep_behind_window));
            self.release(gone);
        }
    }

    fn on_player_request(&mut self, id: SegmentId) {
        if self.playlists.set_active(id.rendition) {
            // The swarm of the rendition we left seeds without us.
            for (other, seg) in self.store.iter_mut() {
                if other.rendition != id.rendition {
                    seg.seed_since = None;
                }
            }
        }
        if self.store.get(id).is_none() {
            let Some(info) = self.playlists.info(id).cloned() else {
                self.outputs.push_back(Output::PlayerFailed { id });
                return;
            };
            self.store.entry(id, &info);
        }
        if let Some(seg) = self.store.get_mut(id) {
            seg.wanted = true;
            seg.http_failures = 0;
        }
    }

    fn on_player_abort(&mut self, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        seg.wanted = false;
        // A seeding fetch goes on: the swarm waits for it. Its bytes are kept either way.
        if seg.fetch == Fetch::Http && seg.seed_since.is_none() {
            seg.fetch = Fetch::Idle;
            self.outputs.push_back(Output::AbortHttp { id });
        }
    }

    fn on_peer_connected(&mut self, peer: PeerId) {
        if !self.peers.opened(peer.clone(), self.max_peers()) {
            self.outputs.push_back(Output::Disconnect { peer });
            return;
        }
        // What everyone else was told last; a change since goes to all, this peer included.
        self.outputs.push_back(Output::SendToPeer { peer, bytes: self.last_have.clone() });
    }

    fn on_peer_message(&mut self, now: Millis, peer: PeerId, bytes: &[u8]) {
        if !self.peers.is_connected(&peer) {
            return;
        }
        // A peer that speaks garbage or another protocol version is of no use.
        let Ok(message) = Message::decode(bytes) else {
            self.disconnect(now, &peer);
            return;
        };
        match message {
            Message::Have { segments, fetching } => self.peers.set_have(&peer, segments, fetching),
            Message::Request { id, request_id, offset } => self.serve(&peer, id, request_id, offset),
            Message::Chunk { id, request_id, offset, total_len, data } => {
                self.on_chunk(now, &peer, id, request_id, offset, total_len, data);
            }
            Message::Absent { id, request_id } => self.on_absent(&peer, id, request_id),
            // Chunks go out as soon as a request arrives, so there is nothing left to stop.
            Message::Cancel { .. } => {}
        }
    }

    /// Closes the connection to `peer` and forgets it.
    pub(crate) fn disconnect(&mut self, now: Millis, peer: &PeerId) {
        self.outputs.push_back(Output::Disconnect { peer: peer.clone() });
        self.drop_peer(now, peer);
    }

    /// Forgets `peer`; its unfinished transfers to us go back to the scheduler.
    fn drop_peer(&mut self, now: Millis, peer: &PeerId) {
        if !self.peers.remove(peer, now.saturating_add(self.config.reconnect_backoff_ms)) {
            return;
        }
        for (_, seg) in self.store.iter_mut() {
            if matches!(&seg.fetch, Fetch::Peer { peer: p, .. } if p == peer) {
                seg.fetch = Fetch::Idle;
            }
        }
    }

    /// Stops the transfers of segments the engine let go of.
    fn release(&mut self, gone: Vec<(SegmentId, Segment)>) {
        for (id, seg) in gone {
            match seg.fetch {
                Fetch::Idle => {}
                Fetch::Http => self.outputs.push_back(Output::AbortHttp { id }),
                Fetch::Peer { peer, request_id, .. } => self.send(&peer, &Message::Cancel { id, request_id }),
            }
        }
    }

    /// Hands the player every segment it waits for that is complete, once.
    fn deliver(&mut self) {
        for id in self.store.ids(|s| s.wanted && s.complete) {
            if let Some(seg) = self.store.get_mut(id) {
                seg.wanted = false;
                self.stats.segments_delivered += 1;
                self.outputs.push_back(Output::Deliver { id, bytes: seg.data.clone() });
            }
        }
    }

    /// What we tell peers we hold. A peer that does not upload announces nothing, so that nobody
    /// asks it or waits for it.
    fn have(&self) -> Message {
        if !self.config.upload_allowed {
            return Message::Have { segments: Vec::new(), fetching: Vec::new() };
        }
        Message::Have {
            segments: self.store.newest_ids(MAX_HAVE_SEGMENTS, |s| s.complete),
            fetching: self.store.newest_ids(MAX_HAVE_SEGMENTS, |s| s.fetch == Fetch::Http),
        }
    }

    /// Sends our `Have` to every connected peer if it changed since the last broadcast. Called
    /// once per input, so the changes one input causes go out as one message.
    fn broadcast_have(&mut self) {
        let bytes = self.have().encode();
        if bytes == self.last_have {
            return;
        }
        for peer in self.peers.connected() {
            self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: bytes.clone() });
        }
        self.last_have = bytes;
    }

    /// Queues `message` for `peer`.
    pub(crate) fn send(&mut self, peer: &PeerId, message: &Message) {
        self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: message.encode() });
    }

    /// A fresh id for a request of ours.
    pub(crate) fn next_request_id(&mut self) -> u32 {
        self.next_request_id = self.next_request_id.wrapping_add(1);
        self.next_request_id
    }
}
