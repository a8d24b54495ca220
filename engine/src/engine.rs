//! The engine state machine: inputs in, outputs and timers out.
//!
//! This file holds the state and the bookkeeping around peers and the player; the decisions
//! live in [`crate::scheduler`], transfers in [`crate::transfer`] and serving in [`crate::upload`].

use std::collections::VecDeque;

use protocol::peer::{MAX_HAVE_SEGMENTS, Message};
use protocol::{PeerId, SegmentId};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::estimate::{HttpEstimate, SizeEstimate, Uplink};
use crate::integrity::Digests;
use crate::peers::Peers;
use crate::playback::Playback;
use crate::playlist::Playlists;
use crate::rank::Seeder;
use crate::segments::{Fetch, Segment, Store};
use crate::{Config, Input, Millis, Output, SegmentInfo, Stats, rank};

/// The largest number of stream copies announced in `Uplink`: beyond it, more uplink does not
/// change the seeding order (the hash does). In the simulator, ranking by the true copies capped
/// at 6 did better than at 3 or 4.
const MAX_ANNOUNCED_STREAMS: u64 = 6;

/// Live latency, beyond one segment duration and the deadline margin, below which a peer is at
/// the live edge: its deadline for a new segment comes so soon after the segment is listed that
/// it fetches it from the CDN on sight, too soon for a neighbour to seed it first (ms).
const LIVE_EDGE_SLACK_MS: u64 = 1_000;

/// How far above the live-edge threshold the latency must rise before a peer leaves the live
/// edge, so that the seeding order does not flap with the playlist's phase (ms).
const LIVE_EDGE_HYSTERESIS_MS: u64 = 500;

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
    /// How long CDN fetches take.
    pub(crate) http: HttpEstimate,
    /// How much our uplink can still carry.
    pub(crate) uplink: Uplink,
    /// How large segments are.
    pub(crate) sizes: SizeEstimate,
    /// Digests published by the origin.
    pub(crate) digests: Digests,
    /// Latest time seen in any call, in ms (time never runs backwards inside the engine).
    pub(crate) now: Millis,
    /// When the player first asked for a segment, in engine ms (start of the startup wait).
    pub(crate) startup_since: Option<Millis>,
    /// Viewers in our swarm by the tracker's last count, us included, and when it came (ms).
    pub(crate) swarm_peers: Option<(u32, Millis)>,
    /// The segment of the last [`Output::ReloadPlaylist`] asked for.
    pub(crate) reload_asked: Option<SegmentId>,
    /// When the tracker was last asked only to refresh its count of the swarm.
    pub(crate) swarm_count_asked: Option<Millis>,
    /// What we last announced to peers as a seeder (`Uplink`): our uplink's copies of the
    /// stream and whether we play at the live edge.
    pub(crate) announced: Seeder,
    /// A [`Output::ReloadPlaylist`] put off until a time (ms).
    pub(crate) reload_at: Option<(SegmentId, Millis)>,
    next_request_id: u32,
    /// The last `Have` broadcast, to send only changes.
    last_have: Message,
}

impl Engine {
    /// Creates the engine of the peer `local`.
    pub fn new(config: Config, local: PeerId) -> Self {
        let rng = SmallRng::seed_from_u64(config.seed ^ rank::fnv1a(local.as_str().as_bytes()));
        let uplink = Uplink::with_rate(config.uplink_bytes_per_s);
        let (http_prior, stream_prior) = (config.http_prior_bytes_per_s, config.stream_prior_bytes_per_s);
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
            http: HttpEstimate::new(http_prior),
            uplink,
            sizes: SizeEstimate::new(stream_prior),
            digests: Digests::default(),
            now: 0,
            startup_since: None,
            swarm_peers: None,
            reload_asked: None,
            swarm_count_asked: None,
            announced: Seeder::default(),
            reload_at: None,
            next_request_id: 0,
            last_have: Message::Have { segments: Vec::new(), fetching: Vec::new() },
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
            Input::PlayerRequest { id } => self.on_player_request(now, id),
            Input::PlayerAbort { id } => self.on_player_abort(id),
            Input::HttpChunk { id, offset, bytes } => self.on_http_chunk(now, id, offset, &bytes),
            Input::HttpDone { id, total_len } => self.on_http_done(now, id, total_len),
            Input::HttpFailed { id, .. } => self.on_http_failed(id),
            Input::PeersDiscovered { peers } => self.peers.discovered(&self.local, peers),
            Input::SwarmSize { peers } => self.swarm_peers = Some((peers, now)),
            Input::PeerConnected { peer } => self.on_peer_connected(peer),
            Input::PeerClosed { peer } => self.drop_peer(now, &peer),
            Input::PeerMessage { peer, bytes } => self.on_peer_message(now, peer, &bytes),
        }
        self.settle(now);
    }

    /// Gives the SHA-256 digests the origin published for segments of `rendition`, as
    /// `(msn, digest)` pairs, after the shell checked their signature. Segments assembled from
    /// peers are then checked against them before they reach the player or other peers.
    pub fn handle_digests(&mut self, now: Millis, rendition: u32, digests: Vec<(u64, [u8; 32])>) {
        let now = self.tick(now);
        self.on_digests(now, rendition, digests);
        self.settle(now);
    }

    /// Tells the engine what the shell measured of the uplink: its throughput while sending, in
    /// bytes/s (0 if not measured), and the bytes queued for peers and not sent yet. The engine
    /// refuses requests its uplink cannot serve in time, and a peer whose uplink cannot carry
    /// the stream stops seeding.
    pub fn handle_uplink(&mut self, now: Millis, bytes_per_s: u64, queued_bytes: u64) {
        let now = self.tick(now);
        self.uplink.measured(now, bytes_per_s);
        self.uplink.backlog(now, queued_bytes);
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
        let reload = self.reload_at.map(|(_, at)| at);
        peers.into_iter().chain(self.swarm_count_timer()).chain(reload).chain(segments).min()
    }

    /// Counters since the engine was created.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Why the CDN fetch of `id` under way was started; `None` when no CDN fetch of it runs.
    pub fn fetch_reason(&self, id: SegmentId) -> Option<crate::CdnReason> {
        self.store.get(id).filter(|seg| seg.fetch == Fetch::Http).map(|seg| seg.http_reason)
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
        let due = self.peers.tracker_due(now, self.max_peers(), self.config.peer_request_interval_ms);
        if self.swarm_count_wanted(now) || due {
            self.outputs.push_back(Output::RequestPeers);
        }
        // Before deciding: our seeding rank depends on what we announce.
        self.announce_seeder(now);
        self.reload_due(now);
        self.forget_played(now);
        self.schedule(now);
        self.deliver();
        let gone = self.store.trim(self.config.max_stored_segments);
        self.release(gone);
        self.broadcast_have();
        self.stats.peers_connected = u32::try_from(self.peers.connected().count()).unwrap_or(u32::MAX);
    }

    fn on_playlist(&mut self, now: Millis, rendition: u32, segments: Vec<SegmentInfo>) {
        let fresh = self.playlists.update(rendition, segments);
        let active = self.playlists.active() == Some(rendition);
        // Segments first heard of from peers now have their CDN URL and real timing.
        for (id, seg) in self.store.iter_mut() {
            if id.rendition == rendition
                && !seg.listed
                && let Some(info) = self.playlists.info(id)
            {
                seg.info = info.clone();
                seg.listed = true;
            }
        }
        for info in fresh {
            let id = SegmentId { rendition, msn: info.msn };
            let digest = self.digests.get(id);
            let seg = self.store.entry(id, &info);
            seg.digest = seg.digest.or(digest);
            if active && !seg.ready() && seg.seed_since.is_none() {
                seg.seed_since = Some(now);
            }
        }
        if let Some(oldest) = self.playlists.oldest_msn(rendition) {
            let gone = self.store.evict_before(rendition, oldest.saturating_sub(self.config.keep_behind_window));
            self.release(gone);
        }
        if active {
            self.reload_early(now, rendition);
        }
    }

    /// Segments of the played rendition that peers announce before our playlist lists them:
    /// fetched from those peers ahead of time (their timing estimated from our newest segment).
    fn learn(&mut self, now: Millis, announced: &[SegmentId]) {
        let Some(rendition) = self.playlists.active() else { return };
        let Some(newest) = self.playlists.newest(rendition).cloned() else { return };
        let limit = newest.msn.saturating_add(self.config.prefetch_ahead_segments);
        for &id in announced {
            if id.rendition != rendition || id.msn <= newest.msn || id.msn > limit || self.store.get(id).is_some() {
                continue;
            }
            let ahead = id.msn - newest.msn;
            let info = SegmentInfo {
                msn: id.msn,
                start_ms: newest.start_ms.saturating_add(ahead.saturating_mul(newest.duration_ms)),
                duration_ms: newest.duration_ms,
                url: String::new(),
                byte_len: None,
            };
            let digest = self.digests.get(id);
            let seg = self.store.entry(id, &info);
            seg.listed = false;
            seg.digest = digest;
            seg.seed_since = Some(now);
        }
    }

    fn on_player_request(&mut self, now: Millis, id: SegmentId) {
        self.startup_since.get_or_insert(now);
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
        let digest = self.digests.get(id);
        if let Some(seg) = self.store.get_mut(id) {
            seg.wanted = true;
            seg.http_failures = 0;
            seg.digest = seg.digest.or(digest);
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
        // Room beyond `max_peers` for peers that dial us: in a swarm where everyone is full, a
        // joiner would otherwise find no open slot.
        let extra = usize::try_from(self.config.extra_incoming_peers).unwrap_or(usize::MAX);
        if !self.peers.opened(peer.clone(), self.max_peers().saturating_add(extra)) {
            self.outputs.push_back(Output::Disconnect { peer });
            return;
        }
        // What everyone else was told last; a change since goes to all, this peer included.
        self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: self.last_have.encode() });
        self.send(&peer, &self.announced.message());
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
            Message::Have { segments, fetching } => {
                self.learn(now, &fetching);
                self.learn(now, &segments);
                self.peers.set_have(&peer, segments, fetching);
            }
            Message::Request { id, request_id, offset, end, deadline_ms } => {
                self.serve(now, &peer, id, request_id, crate::upload::Want { offset, end, deadline_ms });
            }
            Message::HaveChunk { id, len } => self.peers.set_progress(&peer, id, len),
            Message::Uplink { streams, live_edge } => self.peers.set_seeder(&peer, Seeder { streams, live_edge }),
            Message::Chunk { id, request_id, offset, total_len, data } => {
                self.on_chunk(now, &peer, id, request_id, offset, total_len, data);
            }
            Message::Absent { id, request_id } => self.on_absent(now, &peer, id, request_id),
            Message::Cancel { id, request_id } => self.on_cancel(&peer, id, request_id),
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
        let mut tails = Vec::new();
        for (id, seg) in self.store.iter_mut() {
            if matches!(&seg.fetch, Fetch::Peer { peer: p, .. } if p == peer) {
                seg.fetch = Fetch::Idle;
                seg.peer_cut = true;
            }
            if seg.tail.as_ref().is_some_and(|t| &t.peer == peer) {
                tails.push(id);
            }
            seg.uploads.retain(|u| &u.peer != peer);
        }
        for id in tails {
            self.tail_failed(id);
        }
    }

    /// Stops the transfers of segments the engine let go of.
    fn release(&mut self, gone: Vec<(SegmentId, Segment)>) {
        for (id, seg) in gone {
            for up in &seg.uploads {
                self.send(&up.peer, &Message::Absent { id, request_id: up.request_id });
            }
            if let Some(tail) = seg.tail.filter(|t| t.active) {
                self.send(&tail.peer, &Message::Cancel { id, request_id: tail.request_id });
            }
            match seg.fetch {
                Fetch::Idle => {}
                Fetch::Http => self.outputs.push_back(Output::AbortHttp { id }),
                Fetch::Peer { peer, request_id, .. } => self.send(&peer, &Message::Cancel { id, request_id }),
            }
        }
    }

    /// Stops getting ahead of time the segments the playhead has already passed.
    fn forget_played(&mut self, now: Millis) {
        if !self.playback.playing() {
            return;
        }
        let position = self.playback.position_at(now);
        let mut stopped = Vec::new();
        for (id, seg) in self.store.iter_mut() {
            let end = seg.info.start_ms.saturating_add(seg.info.duration_ms);
            if seg.seed_since.is_some() && !seg.wanted && end <= position {
                seg.seed_since = None;
                stopped.push(id);
            }
        }
        for id in stopped {
            if let Some(seg) = self.store.get_mut(id)
                && seg.fetch == Fetch::Http
                && !seg.complete
            {
                seg.fetch = Fetch::Idle;
                self.outputs.push_back(Output::AbortHttp { id });
            }
        }
    }

    /// Hands the player every segment it waits for that is complete, once.
    fn deliver(&mut self) {
        for id in self.store.ids(|s| s.wanted && s.ready()) {
            if let Some(seg) = self.store.get_mut(id) {
                seg.wanted = false;
                self.stats.segments_delivered += 1;
                self.outputs.push_back(Output::Deliver { id, bytes: seg.data.clone() });
            }
        }
    }

    /// What we tell peers we hold. A peer that does not upload, or whose uplink is slower than
    /// the stream, announces nothing, so that nobody asks it or waits for it.
    fn have(&self) -> Message {
        if !self.config.upload_allowed || self.uplink_below(1) {
            return Message::Have { segments: Vec::new(), fetching: Vec::new() };
        }
        // Segments being received are announced too: we relay them as they arrive. With a
        // digest, bytes from peers are passed on only once checked, so those wait. In a partial
        // mesh that includes a transfer still waiting for its first byte: the news that someone
        // is on the segment then reaches neighbours of ours that do not hear its seeder, so they
        // do not seed it a second time. In a full mesh everyone hears the seeder itself, and
        // such an announcement only draws requests we must turn down (`upload.rs` serves from
        // bytes held); when our source then leaves, peers that wait on each other's
        // announcements hold the segment until its deadline, and each fetches it from the CDN
        // (`docs/BENCHMARKS.md`, "Announcing transfers").
        let meshed = self.meshed(self.now);
        let relays = |s: &Segment| {
            let announced = if meshed { s.relaying() } else { s.receiving() };
            announced && (s.digest.is_none() || !s.from_peers)
        };
        Message::Have {
            segments: self.store.newest_ids(MAX_HAVE_SEGMENTS, Segment::ready),
            fetching: self.store.newest_ids(MAX_HAVE_SEGMENTS, relays),
        }
    }

    /// Sends our `Have` to every connected peer if it changed since the last broadcast. Called
    /// once per input, so the changes one input causes go out as one message.
    fn broadcast_have(&mut self) {
        // Compared before encoding: most inputs change nothing we announce.
        let have = self.have();
        if have == self.last_have {
            return;
        }
        let bytes = have.encode();
        for peer in self.peers.connected() {
            self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: bytes.clone() });
        }
        self.last_have = have;
    }

    /// Tells every connected peer how many copies of the stream our uplink carries and whether
    /// we play at the live edge, when either changed (the seeding order depends on them, so all
    /// must see the same values).
    fn announce_seeder(&mut self, now: Millis) {
        // A peer that may not seed ranks itself last: it must not claim the live edge's first
        // place either.
        let claim = self.config.live_edge_first && self.may_seed() && self.at_live_edge(now);
        let seeder = Seeder { streams: self.uplink_streams(), live_edge: claim };
        if seeder == self.announced {
            return;
        }
        self.announced = seeder;
        self.stats.announced_streams = seeder.streams;
        self.stats.at_live_edge = seeder.live_edge;
        let bytes = seeder.message().encode();
        for peer in self.peers.connected() {
            self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: bytes.clone() });
        }
    }

    /// Whether we play at the live edge: the playhead trails the end of the newest segment
    /// listed by less than one segment duration + `deadline_margin_ms` + [`LIVE_EDGE_SLACK_MS`]
    /// (+ [`LIVE_EDGE_HYSTERESIS_MS`] to stay there). Such a peer fetches each new segment from
    /// the CDN as soon as it is listed (a player that started on a young stream, or a
    /// low-latency configuration), so it had better be the one that seeds it.
    fn at_live_edge(&self, now: Millis) -> bool {
        if !self.playback.playing() {
            return false;
        }
        let Some(newest) = self.playlists.active().and_then(|r| self.playlists.newest(r)) else { return false };
        let edge_ms = newest.start_ms.saturating_add(newest.duration_ms);
        let latency_ms = edge_ms.saturating_sub(self.playback.position_at(now));
        let mut threshold = newest.duration_ms + self.config.deadline_margin_ms + LIVE_EDGE_SLACK_MS;
        if self.announced.live_edge {
            threshold += LIVE_EDGE_HYSTERESIS_MS;
        }
        latency_ms < threshold
    }

    /// Copies of the stream our measured uplink carries, rounded down and capped at
    /// [`MAX_ANNOUNCED_STREAMS`]; 0 while not measured.
    fn uplink_streams(&self) -> u8 {
        let copies = self.uplink_copies().unwrap_or(0);
        u8::try_from(copies.min(MAX_ANNOUNCED_STREAMS)).unwrap_or(u8::MAX)
    }

    /// Whether we may seed: we upload, and our uplink was not measured below two copies per
    /// segment duration (a copy that reaches one peer at most would help few).
    pub(crate) fn may_seed(&self) -> bool {
        self.config.upload_allowed && !self.uplink_below(2)
    }

    /// Whether our measured uplink sends less than `times` segments per segment duration of the
    /// rendition played (a peer below 1 cannot pass anything on in time).
    pub(crate) fn uplink_below(&self, times: u64) -> bool {
        self.uplink_copies().is_some_and(|copies| copies < times)
    }

    /// Segments of the rendition played our measured uplink sends per segment duration, rounded
    /// down; `None` while the uplink or the rendition is unknown.
    fn uplink_copies(&self) -> Option<u64> {
        let up = self.uplink.bytes_per_s()?;
        let newest = self.playlists.active().and_then(|r| self.playlists.newest(r))?;
        let size = self.sizes.guess(newest.duration_ms);
        let per_segment = size.checked_mul(1_000).filter(|&s| s > 0)?;
        Some(up.saturating_mul(newest.duration_ms) / per_segment)
    }

    /// The size of `seg` in bytes: known, or guessed from the segments seen so far.
    pub(crate) fn size_of(&self, seg: &Segment) -> u64 {
        seg.expected_len().unwrap_or_else(|| self.sizes.guess(seg.info.duration_ms))
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
