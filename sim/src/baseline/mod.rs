//! A re-implementation of p2p-media-loader v2.3's decisions (PML `core/src/hybrid-loader.ts`,
//! `utils/queue.ts`, `p2p/loader.ts`), as a [`Scheduler`] to compare the engine against on the
//! same swarms and seeds.
//!
//! What it does, with PML's defaults:
//! - **Queue**: from the segment the player asked for last, forward while a segment lies in a
//!   time window of the playhead: high demand 15 s, HTTP 3000 s, P2P 6000 s (P2P only if a
//!   connected peer has it loaded or is fetching it over HTTP).
//! - **High-demand items** go to HTTP while one of 2 HTTP slots is free (aborting the last HTTP
//!   download later in the queue to free one, and switching an ongoing P2P download to HTTP),
//!   else to a peer; **other items** go to peers only, 3 at a time.
//! - **Random HTTP seeding**: every `1 s + rand × 1 s × connected peers`, segments nobody has
//!   or fetches are fetched over HTTP with probability `count / (peers + 1)`, so about one peer
//!   in the swarm fetches each.
//! - **Peers**: one download per peer at a time, chosen at random weighted by the peer's
//!   measured 15 s throughput (unproven peers weigh 10 % of the best); a peer that sends
//!   nothing for 2 s is given up, and after 3 such errors disconnected.
//! - **Announcements**: the full lists of loaded and HTTP-loading segments on every change.
//! - **Storage** (live): a segment is dropped once the playhead is 15 s past its end.
//! - **Tracker**: announces every 30 s and dials at most 5 new peers per answer (WebTorrent's
//!   `numwant` 5).
//!
//! Known differences from the original: bytes travel as this project's peer messages (same
//! information: announcement `l`/`p` lists, request with byte offset, chunks, absent, cancel);
//! an upload cannot be stopped once queued (the sans-IO shell has no send-buffer feedback); and
//! connections are capped at `max_peers` (v2.3 has no cap; later PML versions add one).
//!
//! PML's hls.js integration also changes the player: `liveSyncDurationCount` becomes
//! `min(window − 1, 120 s / target duration)` and `maxBufferLength` `max(2 × target, 15 s)`;
//! [`player_settings`] applies that to a [`SimConfig`], and [`run`] runs it.

mod peers;
mod queue;

use std::collections::{BTreeMap, VecDeque};

use engine::{Input, Millis, Output, SegmentInfo, Stats};
use protocol::peer::{MAX_CHUNK_HEADER_BYTES, MAX_MESSAGE_BYTES, Message};
use protocol::{PeerId, SegmentId};
use rand::SeedableRng;
use rand::rngs::SmallRng;

use crate::cdn::mix;
use crate::{ConfigError, Report, Scheduler, SimConfig, run_with};
use peers::Peers;

/// PML's stream settings (v2.3 `DEFAULT_STREAM_CONFIG`), in the units of the names.
#[derive(Debug, Clone, PartialEq)]
pub struct P2pmlConfig {
    /// `highDemandTimeWindow`, in ms.
    pub high_demand_window_ms: u64,
    /// `httpDownloadTimeWindow`, in ms.
    pub http_window_ms: u64,
    /// `p2pDownloadTimeWindow`, in ms.
    pub p2p_window_ms: u64,
    /// `simultaneousHttpDownloads`.
    pub simultaneous_http: usize,
    /// `simultaneousP2PDownloads`.
    pub simultaneous_p2p: usize,
    /// `p2pNotReceivingBytesTimeoutMs`, in ms.
    pub p2p_idle_timeout_ms: u64,
    /// `httpErrorRetries`.
    pub http_retries: u8,
    /// `p2pErrorRetries`: stall errors after which a peer is disconnected.
    pub p2p_retries: u8,
    /// Data bytes per chunk message, in the bytes the scheduler sees (`webRtcMaxMessageSize`
    /// scaled down by the simulation's byte scale).
    pub chunk_bytes: usize,
    /// Tracker announce interval, in ms.
    pub announce_interval_ms: u64,
    /// New peers dialled per tracker answer.
    pub dials_per_announce: usize,
    /// Most connections kept.
    pub max_peers: usize,
    /// A dial without an answer is dropped after this long (WebTorrent offer timeout), in ms.
    pub connect_timeout_ms: u64,
    /// Seed of the random choices.
    pub seed: u64,
}

impl Default for P2pmlConfig {
    fn default() -> Self {
        Self {
            high_demand_window_ms: 15_000,
            http_window_ms: 3_000_000,
            p2p_window_ms: 6_000_000,
            simultaneous_http: 2,
            simultaneous_p2p: 3,
            p2p_idle_timeout_ms: 2_000,
            http_retries: 3,
            p2p_retries: 3,
            chunk_bytes: MAX_MESSAGE_BYTES - 1 - MAX_CHUNK_HEADER_BYTES,
            announce_interval_ms: 30_000,
            dials_per_announce: 5,
            max_peers: 20,
            connect_timeout_ms: 50_000,
            seed: 0,
        }
    }
}

/// `config` with the player settings PML's hls.js integration forces (see the module doc), and
/// with cancelled uploads stopped, as PML's uploader does.
pub fn player_settings(config: &SimConfig) -> SimConfig {
    let target_s = config.segment_duration_ms.div_ceil(1_000).max(1);
    let live_sync = (config.window_segments - 1).min(120 / target_s).max(1);
    let max_buffer_ms = (2 * config.segment_duration_ms).max(15_000);
    SimConfig {
        live_sync_segments: live_sync,
        max_buffer_ms,
        purge_cancelled_uploads: true,
        control_first: false,
        ..config.clone()
    }
}

/// Runs the swarm of `config` (with PML's player settings) with [`P2pml`] in every viewer; the
/// report's scheduler name is `"p2pml"`.
pub fn run(config: &SimConfig) -> Result<Report, ConfigError> {
    run_pml(&player_settings(config), "p2pml", P2pmlConfig::default())
}

/// Runs [`P2pml`] with its defaults at `config`'s own live latency (`live_sync_segments`, 3
/// by default, as the engine plays): PML's player settings but the live sync point; the
/// report's scheduler name is `"p2pml-low"`.
pub fn run_low_latency(config: &SimConfig) -> Result<Report, ConfigError> {
    let low = SimConfig { live_sync_segments: config.live_sync_segments, ..player_settings(config) };
    run_pml(&low, "p2pml-low", P2pmlConfig::default())
}

/// As [`run_low_latency`] with PML tuned for it as measured in real browsers:
/// `highDemandTimeWindow` 3 s; the report's scheduler name is `"p2pml-tuned"`.
pub fn run_tuned(config: &SimConfig) -> Result<Report, ConfigError> {
    let low = SimConfig { live_sync_segments: config.live_sync_segments, ..player_settings(config) };
    run_pml(&low, "p2pml-tuned", P2pmlConfig { high_demand_window_ms: 3_000, ..P2pmlConfig::default() })
}

fn run_pml(config: &SimConfig, name: &str, pml: P2pmlConfig) -> Result<Report, ConfigError> {
    let real = (MAX_MESSAGE_BYTES - 1) as u64 / config.byte_scale.max(1);
    let chunk_bytes = usize::try_from(real).unwrap_or(usize::MAX).saturating_sub(MAX_CHUNK_HEADER_BYTES).max(16);
    let pml = P2pmlConfig { chunk_bytes, seed: config.seed, ..pml };
    run_with(config, name, |id| P2pml::new(pml.clone(), id))
}

/// Where the missing bytes of a segment come from now.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Via {
    Idle,
    Http,
    Peer { peer: PeerId, request_id: u32, last_byte: Millis },
}

/// A segment being loaded (PML `Request`): bytes accumulate across attempts, so a download
/// resumes on the other source.
#[derive(Debug)]
struct Load {
    data: Vec<u8>,
    via: Via,
    http_attempts: u8,
    failed_at: Option<Millis>,
}

/// A complete segment in storage.
#[derive(Debug)]
struct Stored {
    data: Vec<u8>,
    /// End of the segment on the media timeline, in ms.
    end_ms: u64,
}

/// One viewer running p2p-media-loader's algorithm.
#[derive(Debug)]
pub struct P2pml {
    config: P2pmlConfig,
    local: PeerId,
    rng: SmallRng,
    outputs: VecDeque<Output>,
    stats: Stats,
    now: Millis,
    rendition: Option<u32>,
    playlist: BTreeMap<u64, SegmentInfo>,
    /// Playhead (media ms) and rate from the last report; PML ignores a rate of 0. Before the
    /// first report, the start of the first segment asked for.
    position_ms: u64,
    playback_seen: bool,
    rate: f64,
    last_requested: Option<u64>,
    /// The segment the player waits for, and whether it must start at once.
    engine_request: Option<(u64, bool)>,
    storage: BTreeMap<u64, Stored>,
    loads: BTreeMap<u64, Load>,
    peers: Peers,
    next_random_http: Option<Millis>,
    next_announce: Millis,
    next_request_id: u32,
    last_have: Vec<u8>,
}

impl P2pml {
    /// The scheduler of peer `local`.
    pub fn new(config: P2pmlConfig, local: PeerId) -> Self {
        let seed = config.seed ^ mix(local.as_str().bytes().fold(0, |h, b| h.rotate_left(8) ^ u64::from(b)));
        Self {
            config,
            local,
            rng: SmallRng::seed_from_u64(seed),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            now: 0,
            rendition: None,
            playlist: BTreeMap::new(),
            position_ms: 0,
            playback_seen: false,
            rate: 1.0,
            last_requested: None,
            engine_request: None,
            storage: BTreeMap::new(),
            loads: BTreeMap::new(),
            peers: Peers::default(),
            next_random_http: None,
            next_announce: 0,
            next_request_id: 0,
            last_have: Message::Have { segments: Vec::new(), fetching: Vec::new() }.encode(),
        }
    }

    fn id(&self, msn: u64) -> SegmentId {
        SegmentId { rendition: self.rendition.unwrap_or(0), msn }
    }

    fn on_input(&mut self, input: Input) {
        match input {
            Input::Playlist { rendition, segments } => {
                if self.rendition.is_none_or(|r| r == rendition) {
                    self.rendition = Some(rendition);
                    self.playlist = segments.into_iter().map(|s| (s.msn, s)).collect();
                }
            }
            Input::Playback { position_ms, rate, .. } => {
                let jump = position_ms.abs_diff(self.position_ms) as f64 > 0.5 * self.avg_duration_ms();
                self.position_ms = position_ms;
                self.playback_seen = true;
                self.evict();
                if rate.is_finite() && rate > 0.0 {
                    self.rate = rate;
                }
                if jump && let Some((_, immediately)) = self.engine_request.as_mut() {
                    *immediately = true;
                }
            }
            Input::PlayerRequest { id } => self.on_player_request(id.msn),
            Input::PlayerAbort { id } => {
                if self.engine_request.is_some_and(|(msn, _)| msn == id.msn) {
                    self.engine_request = None;
                }
            }
            Input::HttpChunk { id, offset, bytes } => {
                if let Some(load) = self.loads.get_mut(&id.msn).filter(|l| l.via == Via::Http)
                    && offset == load.data.len() as u64
                {
                    load.data.extend_from_slice(&bytes);
                    self.stats.http_bytes += bytes.len() as u64;
                }
            }
            Input::HttpDone { id, total_len } => self.on_http_end(id.msn, Some(total_len)),
            Input::HttpFailed { id, .. } => self.on_http_end(id.msn, None),
            Input::PeersDiscovered { peers } => {
                let dial = self.peers.discovered(&self.local, peers, self.now, &self.config);
                self.outputs.extend(dial.into_iter().map(|peer| Output::Connect { peer }));
            }
            Input::PeerConnected { peer } => {
                if self.peers.connected(peer.clone(), self.config.max_peers) {
                    self.outputs.push_back(Output::SendToPeer { peer, bytes: self.last_have.clone() });
                } else {
                    self.outputs.push_back(Output::Disconnect { peer });
                }
            }
            Input::PeerClosed { peer } => self.drop_peer(&peer),
            Input::PeerMessage { peer, bytes } => self.on_message(peer, &bytes),
            // p2p-media-loader does not use the swarm's size.
            Input::SwarmSize { .. } => {}
        }
    }

    fn on_player_request(&mut self, msn: u64) {
        self.last_requested = Some(msn);
        if !self.playback_seen {
            self.position_ms = self.playlist.get(&msn).map_or(self.position_ms, |s| s.start_ms);
        }
        let id = self.id(msn);
        match self.storage.get(&msn) {
            Some(stored) => {
                self.stats.segments_delivered += 1;
                self.outputs.push_back(Output::Deliver { id, bytes: stored.data.clone() });
                self.engine_request = None;
            }
            None if self.playlist.contains_key(&msn) => self.engine_request = Some((msn, false)),
            None => self.outputs.push_back(Output::PlayerFailed { id }),
        }
    }

    fn on_http_end(&mut self, msn: u64, total_len: Option<u64>) {
        let Some(load) = self.loads.get_mut(&msn).filter(|l| l.via == Via::Http) else { return };
        load.via = Via::Idle;
        if total_len.is_some_and(|len| len == load.data.len() as u64) {
            self.complete(msn);
            return;
        }
        load.http_attempts = load.http_attempts.saturating_add(1);
        load.failed_at = Some(self.now);
        if total_len.is_some() {
            load.data.clear(); // the resumed prefix does not fit: start over
        }
    }

    fn on_message(&mut self, peer: PeerId, bytes: &[u8]) {
        if !self.peers.is_connected(&peer) {
            return;
        }
        let Ok(message) = Message::decode(bytes) else {
            self.disconnect(&peer);
            return;
        };
        match message {
            Message::Have { segments, fetching } => self.peers.announced(&peer, &segments, &fetching),
            // PML requests the rest of a segment and has no deadline: range and deadline unused.
            Message::Request { id, request_id, offset, .. } => self.upload(peer, id, request_id, offset),
            Message::Chunk { id, request_id, offset, total_len, data } => {
                self.on_chunk(&peer, id.msn, request_id, offset, total_len, &data);
            }
            Message::Absent { id, request_id } => {
                self.peers.absent(&peer, id.msn);
                self.p2p_failed(id.msn, &peer, request_id, false);
            }
            // PML has no progress announcements.
            Message::Cancel { .. } | Message::HaveChunk { .. } | Message::Uplink { .. } => {}
        }
    }

    fn on_chunk(&mut self, peer: &PeerId, msn: u64, request_id: u32, offset: u64, total_len: u64, data: &[u8]) {
        let Some(load) = self.loads.get_mut(&msn) else { return };
        let current = matches!(&load.via, Via::Peer { peer: p, request_id: r, .. } if p == peer && *r == request_id);
        if !current || offset != load.data.len() as u64 || offset + data.len() as u64 > total_len {
            return;
        }
        load.data.extend_from_slice(data);
        self.stats.p2p_down_bytes += data.len() as u64;
        self.peers.received(peer, data.len() as u64, self.now);
        if load.data.len() as u64 == total_len {
            load.via = Via::Idle;
            self.peers.download_done(peer);
            self.complete(msn);
        } else if let Via::Peer { last_byte, .. } = &mut load.via {
            *last_byte = self.now;
        }
    }

    /// A peer download failed (absent, or stalled when `stalled`); the bytes stay for a resume.
    fn p2p_failed(&mut self, msn: u64, peer: &PeerId, request_id: u32, stalled: bool) {
        let Some(load) = self.loads.get_mut(&msn) else { return };
        if !matches!(&load.via, Via::Peer { peer: p, request_id: r, .. } if p == peer && *r == request_id) {
            return;
        }
        load.via = Via::Idle;
        self.peers.download_done(peer);
        if stalled && self.peers.stalled(peer, self.config.p2p_retries) {
            self.disconnect(peer);
        }
    }

    /// Segment `msn` is whole: store it, hand it to a waiting player.
    fn complete(&mut self, msn: u64) {
        let Some(load) = self.loads.remove(&msn) else { return };
        if self.engine_request.is_some_and(|(m, _)| m == msn) {
            self.engine_request = None;
            self.stats.segments_delivered += 1;
            self.outputs.push_back(Output::Deliver { id: self.id(msn), bytes: load.data.clone() });
        }
        let end_ms = self.playlist.get(&msn).map_or(self.position_ms, |s| s.start_ms + s.duration_ms);
        self.storage.insert(msn, Stored { data: load.data, end_ms });
    }

    /// Answers a peer's request with the rest of the segment, or absent.
    fn upload(&mut self, peer: PeerId, id: SegmentId, request_id: u32, offset: u64) {
        let data = self.storage.get(&id.msn).map(|s| &s.data);
        let data = data.filter(|d| Some(id.rendition) == self.rendition && offset <= d.len() as u64);
        let Some(data) = data else {
            self.outputs.push_back(Output::SendToPeer { peer, bytes: Message::Absent { id, request_id }.encode() });
            return;
        };
        let total_len = data.len() as u64;
        // offset <= data.len(), checked above.
        let rest = &data[offset as usize..];
        let mut sent = offset;
        for piece in rest.chunks(self.config.chunk_bytes.max(1)) {
            let chunk = Message::Chunk { id, request_id, offset: sent, total_len, data: piece.to_vec() };
            self.outputs.push_back(Output::SendToPeer { peer: peer.clone(), bytes: chunk.encode() });
            sent += piece.len() as u64;
        }
        self.stats.p2p_up_bytes += sent - offset;
    }

    fn disconnect(&mut self, peer: &PeerId) {
        self.outputs.push_back(Output::Disconnect { peer: peer.clone() });
        self.drop_peer(peer);
    }

    fn drop_peer(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
        for load in self.loads.values_mut() {
            if matches!(&load.via, Via::Peer { peer: p, .. } if p == peer) {
                load.via = Via::Idle;
            }
        }
    }

    fn avg_duration_ms(&self) -> f64 {
        let n = self.playlist.len().max(1) as f64;
        self.playlist.values().map(|s| s.duration_ms as f64).sum::<f64>() / n
    }

    /// Sends the announcement to every peer if it changed.
    fn announce(&mut self) {
        let loaded: Vec<SegmentId> = self.storage.keys().map(|&msn| self.id(msn)).collect();
        let http: Vec<SegmentId> =
            self.loads.iter().filter(|(_, l)| l.via == Via::Http).map(|(&msn, _)| self.id(msn)).collect();
        let keep = protocol::peer::MAX_HAVE_SEGMENTS;
        let have = Message::Have {
            segments: loaded[loaded.len().saturating_sub(keep)..].to_vec(),
            fetching: http[http.len().saturating_sub(keep)..].to_vec(),
        };
        let bytes = have.encode();
        if bytes == self.last_have {
            return;
        }
        for peer in self.peers.connected_ids() {
            self.outputs.push_back(Output::SendToPeer { peer, bytes: bytes.clone() });
        }
        self.last_have = bytes;
    }
}

impl Scheduler for P2pml {
    fn handle_input(&mut self, now: Millis, input: Input) {
        self.now = self.now.max(now);
        self.on_input(input);
        self.settle();
    }

    fn handle_timeout(&mut self, now: Millis) {
        self.now = self.now.max(now);
        self.settle();
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        let idle = self.loads.values().filter_map(|l| match l.via {
            Via::Peer { last_byte, .. } => Some(last_byte + self.config.p2p_idle_timeout_ms),
            Via::Idle | Via::Http => None,
        });
        let dials = self.peers.dial_deadline(self.config.connect_timeout_ms);
        let failed = self.loads.values().filter_map(|l| l.failed_at.map(|at| at + queue::FAILED_CLEAR_MS));
        let timers = [self.next_random_http, Some(self.next_announce)].into_iter().flatten();
        timers.chain(idle).chain(dials).chain(failed).map(|t| t.max(self.now + 1)).min()
    }

    fn stats(&self) -> Stats {
        Stats { peers_connected: u32::try_from(self.peers.count()).unwrap_or(u32::MAX), ..self.stats.clone() }
    }
}

#[cfg(test)]
mod tests;
