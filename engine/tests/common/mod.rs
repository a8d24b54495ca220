//! A small swarm on a virtual clock: engines wired to each other, a fake CDN that publishes a
//! segment every 2 s, a tracker that knows everyone, and a player model shaped like hls.js
//! (live sync 3 segments behind the edge, one fragment request at a time, playlist reload every
//! target duration). Everything is an event in one ordered queue, so a run is deterministic.

#![allow(dead_code)] // each test binary uses part of the harness

use std::collections::{BTreeMap, BTreeSet};

use protocol::peer::Message;
use sha2::{Digest, Sha256};

use protocol::{PeerId, SegmentId};
use swarmcast_engine::{Config, Engine, Input, Millis, Output, SegmentInfo, Stats};

/// Segment duration and playlist reload period, in ms.
pub(crate) const SEG_MS: u64 = 2_000;
/// Segments in the live window.
const WINDOW: u64 = 5;
/// Segments behind the newest one where the player starts (hls.js `liveSyncDurationCount`).
const LIVE_SYNC: u64 = 3;
/// Playback reports, every this many ms.
const TICK_MS: u64 = 250;
/// The clock when the stream has been running long enough to fill the window, in ms.
pub(crate) const START_MS: Millis = 20_000;

/// The network: CDN, data channels, tracker.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Net {
    /// First response byte of an HTTP fetch after the request, in ms.
    pub(crate) http_latency_ms: u64,
    /// CDN throughput per fetch, in bytes per ms (1 000 = 8 Mbit/s).
    pub(crate) http_bytes_per_ms: u64,
    /// One-way delay of a data channel message, in ms.
    pub p2p_latency_ms: u64,
    /// Data channel throughput per direction, in bytes per ms.
    pub p2p_bytes_per_ms: u64,
    /// Time from `Connect` to an open data channel, in ms.
    pub(crate) connect_ms: u64,
    /// Tracker round trip, in ms.
    pub(crate) tracker_ms: u64,
}

impl Default for Net {
    fn default() -> Self {
        let (http_latency_ms, http_bytes_per_ms, p2p_latency_ms, p2p_bytes_per_ms) = (40, 1_000, 20, 2_000);
        Self { http_latency_ms, http_bytes_per_ms, p2p_latency_ms, p2p_bytes_per_ms, connect_ms: 800, tracker_ms: 60 }
    }
}

/// Body bytes per `HttpChunk`.
const HTTP_CHUNK: usize = 16 * 1024;

/// Size and content of segment `msn`, as the CDN serves it.
fn cdn_bytes(msn: u64) -> Vec<u8> {
    let len = 150_000 + (msn * 7_919 % 100_000) as usize;
    let mut x = msn.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    // Knuth's MMIX LCG; the high bits are random enough for test content.
    let mut next = || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (x >> 56) as u8
    };
    (0..len).map(|_| next()).collect()
}

enum Event {
    Publish,
    Reload(usize),
    Tick(usize),
    Wake(usize),
    Leave(usize),
    /// An input for a viewer.
    Input(usize, Input),
    /// An HTTP input for a viewer, dropped unless the fetch (segment, generation) is still current.
    Http(usize, SegmentId, u64, Input),
    /// A data channel opens between two viewers.
    Open(usize, usize),
}

/// What one viewer's player saw.
#[derive(Debug, Default)]
struct Player {
    /// Msns of the last playlist loaded.
    playlist: Vec<u64>,
    next: Option<u64>,
    pending: Option<u64>,
    /// End of the buffered media, in ms.
    buffered_end: Option<u64>,
    position: u64,
    playing: bool,
    stalled_ms: u64,
    delivered: u64,
    failed: u64,
}

struct Viewer {
    engine: Engine,
    player: Player,
    present: bool,
    http_gen: BTreeMap<SegmentId, u64>,
}

/// Outcome for one viewer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub(crate) stats: Stats,
    pub(crate) delivered: u64,
    pub(crate) failed: u64,
    pub(crate) stalled_ms: u64,
}

impl Report {
    /// Share of segment bytes that came from peers.
    pub(crate) fn offload(&self) -> f64 {
        let total = self.stats.p2p_down_bytes + self.stats.http_bytes;
        if total == 0 { 0.0 } else { self.stats.p2p_down_bytes as f64 / total as f64 }
    }
}

pub(crate) struct Swarm {
    net: Net,
    now: Millis,
    seq: u64,
    queue: BTreeMap<(Millis, u64), Event>,
    newest: u64,
    viewers: Vec<Viewer>,
    ids: Vec<PeerId>,
    /// Open data channels and dials under way, by (smaller, larger) viewer index.
    open: BTreeSet<(usize, usize)>,
    dialling: BTreeSet<(usize, usize)>,
    /// When each directed link is free again, in ms.
    link_free: BTreeMap<(usize, usize), Millis>,
    /// Viewers that flip a byte in every chunk they send.
    pub(crate) corrupting: BTreeSet<usize>,
    /// Directed links (sender, receiver) slower than `Net::p2p_bytes_per_ms`, in bytes per ms.
    pub(crate) slow_links: BTreeMap<(usize, usize), u64>,
    /// Whether viewers get the origin's digests with every playlist.
    pub(crate) digests: bool,
}

impl Swarm {
    pub(crate) fn new(net: Net) -> Self {
        let mut swarm = Self {
            net,
            now: START_MS,
            seq: 0,
            queue: BTreeMap::new(),
            newest: START_MS / SEG_MS - 1,
            viewers: Vec::new(),
            ids: Vec::new(),
            open: BTreeSet::new(),
            dialling: BTreeSet::new(),
            link_free: BTreeMap::new(),
            corrupting: BTreeSet::new(),
            slow_links: BTreeMap::new(),
            digests: false,
        };
        swarm.at(START_MS + SEG_MS, Event::Publish);
        swarm
    }

    /// A viewer arrives at `at` and starts loading the playlist.
    pub(crate) fn join(&mut self, at: Millis, config: Config) -> usize {
        let v = self.viewers.len();
        let id: PeerId = format!("viewer{v}").parse().unwrap();
        let engine = Engine::new(Config { seed: 42, ..config }, id.clone());
        self.viewers.push(Viewer { engine, player: Player::default(), present: true, http_gen: BTreeMap::new() });
        self.ids.push(id);
        self.at(at, Event::Reload(v));
        self.at(at, Event::Tick(v));
        v
    }

    /// The viewer closes its tab at `at`.
    pub(crate) fn leave(&mut self, v: usize, at: Millis) {
        self.at(at, Event::Leave(v));
    }

    pub(crate) fn run_until(&mut self, end: Millis) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > end {
                break;
            }
            let ((now, _), event) = entry.remove_entry();
            self.now = now;
            self.handle(event);
        }
    }

    pub(crate) fn report(&self, v: usize) -> Report {
        let viewer = &self.viewers[v];
        let p = &viewer.player;
        Report {
            stats: viewer.engine.stats().clone(),
            delivered: p.delivered,
            failed: p.failed,
            stalled_ms: p.stalled_ms,
        }
    }

    fn at(&mut self, at: Millis, event: Event) {
        self.seq += 1;
        self.queue.insert((at, self.seq), event);
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Publish => {
                self.newest += 1;
                self.at(self.now + SEG_MS, Event::Publish);
            }
            Event::Leave(v) => {
                self.viewers[v].present = false;
                for other in 0..self.viewers.len() {
                    self.close(v, other);
                }
            }
            Event::Open(a, b) => {
                if self.dialling.remove(&(a, b)) && self.viewers[a].present && self.viewers[b].present {
                    self.open.insert((a, b));
                    self.input(a, Input::PeerConnected { peer: self.ids[b].clone() });
                    self.input(b, Input::PeerConnected { peer: self.ids[a].clone() });
                }
            }
            _ if !self.present(&event) => {}
            Event::Reload(v) => {
                let window: Vec<u64> = (self.newest + 1 - WINDOW..=self.newest).collect();
                let segments = window.iter().map(|&msn| info(msn)).collect();
                self.viewers[v].player.playlist = window.clone();
                self.at(self.now + SEG_MS, Event::Reload(v));
                self.input(v, Input::Playlist { rendition: 0, segments });
                if self.digests {
                    let digests = window.iter().map(|&msn| (msn, Sha256::digest(cdn_bytes(msn)).into())).collect();
                    self.viewers[v].engine.handle_digests(self.now, 0, digests);
                    self.drain(v);
                }
                let p = &mut self.viewers[v].player;
                p.next.get_or_insert(self.newest + 1 - LIVE_SYNC);
                self.maybe_request(v);
            }
            Event::Tick(v) => {
                let p = &mut self.viewers[v].player;
                if let Some(end) = p.buffered_end {
                    if p.playing {
                        let to = p.position + TICK_MS;
                        p.stalled_ms += to.saturating_sub(end);
                        p.position = to.min(end);
                    }
                    p.playing = true;
                }
                let playback = Input::Playback {
                    position_ms: p.position,
                    rate: if p.playing { 1.0 } else { 0.0 },
                    buffered_end_ms: p.buffered_end.unwrap_or(0),
                };
                self.at(self.now + TICK_MS, Event::Tick(v));
                self.input(v, playback);
                self.maybe_request(v);
            }
            Event::Wake(v) => {
                if self.viewers[v].engine.poll_timeout().is_some_and(|t| t <= self.now) {
                    self.viewers[v].engine.handle_timeout(self.now);
                    self.drain(v);
                }
            }
            Event::Input(v, input) => self.input(v, input),
            Event::Http(v, id, generation, input) => {
                if self.viewers[v].http_gen.get(&id) == Some(&generation) {
                    self.input(v, input);
                }
            }
        }
    }

    fn present(&self, event: &Event) -> bool {
        match event {
            Event::Reload(v) | Event::Tick(v) | Event::Wake(v) | Event::Input(v, _) | Event::Http(v, ..) => {
                self.viewers[*v].present
            }
            _ => true,
        }
    }

    fn input(&mut self, v: usize, input: Input) {
        self.viewers[v].engine.handle_input(self.now, input);
        self.drain(v);
    }

    /// The player asks for its next fragment when it has none in flight and it is published.
    fn maybe_request(&mut self, v: usize) {
        let p = &mut self.viewers[v].player;
        let Some(next) = p.next else { return };
        if p.pending.is_none() && p.playlist.contains(&next) {
            p.pending = Some(next);
            self.input(v, Input::PlayerRequest { id: SegmentId { rendition: 0, msn: next } });
        }
    }

    /// Carries out everything viewer `v`'s engine asked for, then arms its timer.
    fn drain(&mut self, v: usize) {
        while let Some(output) = self.viewers[v].engine.poll_output() {
            self.perform(v, output);
        }
        if let Some(t) = self.viewers[v].engine.poll_timeout() {
            assert!(t > self.now, "viewer {v}: timer {t} not after now {} would spin the shell", self.now);
            self.at(t, Event::Wake(v));
        }
    }

    fn perform(&mut self, v: usize, output: Output) {
        let now = self.now;
        match output {
            Output::FetchHttp { id, range_start, .. } => {
                let generation = self.bump(v, id);
                let bytes = cdn_bytes(id.msn);
                let mut t = now + self.net.http_latency_ms;
                for (i, piece) in bytes[range_start as usize..].chunks(HTTP_CHUNK).enumerate() {
                    t += piece.len() as u64 / self.net.http_bytes_per_ms;
                    let offset = range_start + (i * HTTP_CHUNK) as u64;
                    self.at(t, Event::Http(v, id, generation, Input::HttpChunk { id, offset, bytes: piece.to_vec() }));
                }
                let done = Input::HttpDone { id, total_len: bytes.len() as u64 };
                self.at(t, Event::Http(v, id, generation, done));
            }
            Output::AbortHttp { id } => {
                self.bump(v, id);
            }
            Output::SendToPeer { peer, mut bytes } => {
                let to = self.index(&peer);
                if self.corrupting.contains(&v) {
                    bytes = corrupt(bytes);
                }
                if self.open.contains(&pair(v, to)) {
                    let rate = self.slow_links.get(&(v, to)).copied().unwrap_or(self.net.p2p_bytes_per_ms).max(1);
                    let free = self.link_free.entry((v, to)).or_default();
                    let arrive = (*free).max(now + self.net.p2p_latency_ms) + bytes.len() as u64 / rate;
                    *free = arrive;
                    self.at(arrive, Event::Input(to, Input::PeerMessage { peer: self.ids[v].clone(), bytes }));
                }
            }
            Output::Connect { peer } => {
                let key = pair(v, self.index(&peer));
                if !self.open.contains(&key) && self.dialling.insert(key) {
                    self.at(now + self.net.connect_ms, Event::Open(key.0, key.1));
                }
            }
            Output::Disconnect { peer } => {
                let other = self.index(&peer);
                self.dialling.remove(&pair(v, other));
                self.close(v, other);
            }
            Output::RequestPeers => {
                let peers = (0..self.viewers.len()).filter(|&o| o != v && self.viewers[o].present);
                let peers = peers.map(|o| self.ids[o].clone()).collect();
                self.at(now + self.net.tracker_ms, Event::Input(v, Input::PeersDiscovered { peers }));
            }
            Output::Deliver { id, bytes } => {
                let p = &mut self.viewers[v].player;
                assert_eq!(p.pending, Some(id.msn), "viewer {v} got a segment it did not ask for");
                assert!(bytes == cdn_bytes(id.msn), "viewer {v}: segment {id} differs from the CDN's");
                p.pending = None;
                p.delivered += 1;
                p.next = Some(id.msn + 1);
                if p.buffered_end.is_none() {
                    p.position = id.msn * SEG_MS;
                }
                p.buffered_end = Some((id.msn + 1) * SEG_MS);
                self.maybe_request(v);
            }
            // Never asked: this harness does not tell engines the swarm's size.
            Output::ReloadPlaylist { .. } => {}
            Output::PlayerFailed { id } => {
                let p = &mut self.viewers[v].player;
                p.failed += 1;
                p.pending = None;
                p.next = Some(id.msn);
            }
        }
    }

    /// Closes the channel between `v` and `other`; `other` learns it one latency later.
    fn close(&mut self, v: usize, other: usize) {
        if self.open.remove(&pair(v, other)) {
            let peer = self.ids[v].clone();
            self.at(self.now + self.net.p2p_latency_ms, Event::Input(other, Input::PeerClosed { peer }));
        }
    }

    fn bump(&mut self, v: usize, id: SegmentId) -> u64 {
        let generation = self.viewers[v].http_gen.entry(id).or_default();
        *generation += 1;
        *generation
    }

    fn index(&self, peer: &PeerId) -> usize {
        self.ids.iter().position(|p| p == peer).unwrap()
    }
}

/// The message with one data byte flipped, if it is a chunk with data.
fn corrupt(bytes: Vec<u8>) -> Vec<u8> {
    match Message::decode(&bytes) {
        Ok(Message::Chunk { id, request_id, offset, total_len, mut data }) if !data.is_empty() => {
            let at = data.len() / 2;
            data[at] ^= 0x5a;
            Message::Chunk { id, request_id, offset, total_len, data }.encode()
        }
        _ => bytes,
    }
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

fn info(msn: u64) -> SegmentInfo {
    SegmentInfo {
        msn,
        start_ms: msn * SEG_MS,
        duration_ms: SEG_MS,
        url: format!("https://cdn.test/live/r0/{msn}.ts"),
        byte_len: None,
    }
}

/// `n` viewers with default settings, joining `gap_ms` apart.
pub(crate) fn start(net: Net, n: u64, gap_ms: u64) -> Swarm {
    let mut swarm = Swarm::new(net);
    for v in 0..n {
        swarm.join(START_MS + 300 + v * gap_ms, Config::default());
    }
    swarm
}
