//! The swarm: viewers arriving and leaving, their players, and the event loop that drives them.
//!
//! What a viewer's scheduler asks for (fetches, messages, connections) is carried out in
//! [`crate::shell`]; this file owns the clock, the arrivals, churn, playlists and players.

use engine::{Input, Millis, Stats};
use protocol::{PeerId, SegmentId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::cdn::{Cdn, mix};
use crate::clock::{Micros, Queue, from_ms, to_ms};
use crate::config::SimConfig;
use crate::net::{Endpoint, Net, PairMap};
use crate::player::{Player, PlayerConfig};
use crate::report::{Report, Tally};
use crate::scheduler::Scheduler;
use crate::tracker::Tracker;

/// Slowest link rate drawn, in bytes/s (a distribution's tail must not stop a link dead).
const MIN_RATE_BYTES_PER_S: f64 = 1_000.0;
/// A viewer present for less than this at the end of the run is not blamed for not starting, in µs.
const STARTUP_GRACE_US: Micros = 10_000_000;

/// Something that happens at a point in simulated time.
#[derive(Debug)]
pub(crate) enum Event {
    /// The CDN publishes the next segment.
    Publish,
    /// A new viewer arrives; `poor` is its uplink class when the population fixes it
    /// ([`crate::PoorUplinkDraw::Exact`]), `None` to draw it.
    Arrive { poor: Option<bool> },
    /// A random viewer leaves and a new one arrives.
    Churn,
    /// A viewer's player reloads the playlist.
    Reload(usize),
    /// A viewer's periodic playback report.
    Report(usize),
    /// A viewer's playhead may have reached the end of its buffer.
    Empty(usize),
    /// A viewer's player may retry a failed segment.
    Retry(usize),
    /// A viewer's scheduler timer (the time it asked for, in ms).
    Wake(usize, Millis),
    /// The next chunk of an HTTP response starts (fetch generation, byte offset in simulated bytes).
    HttpNext { v: usize, id: SegmentId, fetch: u64, offset: u64 },
    /// A chunk of an HTTP response has arrived.
    HttpData { v: usize, id: SegmentId, fetch: u64, offset: u64, len: u64 },
    /// A viewer's uplink finished sending a message.
    TxDone(usize),
    /// A data channel message arrives.
    Message { to: usize, from: usize, link: u64, payload: u64, bytes: Vec<u8> },
    /// A data channel dialled between two viewers opens.
    Open(usize, usize),
    /// A viewer learns that its channel to `peer` closed.
    Closed { v: usize, peer: usize },
    /// The tracker's answer reaches a viewer: candidates, and viewers in the swarm.
    Peers { v: usize, peers: Vec<usize>, swarm: u32 },
    /// The answer to a viewer's playlist poll (`Output::ReloadPlaylist`) arrives: it waits for
    /// segment `msn` and polls again until `until` (µs).
    Poll { v: usize, msn: u64, until: Micros },
}

/// One viewer: its scheduler (gone once it left), player and fetches.
pub(crate) struct Viewer<S> {
    pub(crate) sched: Option<S>,
    pub(crate) id: PeerId,
    pub(crate) player: Player,
    /// The current fetch generation of each segment being fetched over HTTP.
    pub(crate) http: Vec<(SegmentId, u64)>,
    /// The scheduler timer an event is queued for.
    pub(crate) armed: Option<Millis>,
    /// Counters, frozen when the viewer leaves.
    pub(crate) final_stats: Stats,
    pub(crate) joined: Micros,
    /// Whether the viewer's uplink is drawn from the poor-uplink distribution.
    pub(crate) poor: bool,
}

/// The whole simulated world.
pub(crate) struct Swarm<'c, S, F> {
    pub(crate) config: &'c SimConfig,
    pub(crate) queue: Queue<Event>,
    /// Draws the population: arrival times, links, regions, churn. Nothing a scheduler does
    /// changes its sequence, so every scheduler faces the very same viewers.
    population: SmallRng,
    /// Draws per-request randomness: CDN response times, connection delays, tracker answers.
    pub(crate) rng: SmallRng,
    pub(crate) net: Net,
    pub(crate) cdn: Cdn,
    pub(crate) tracker: Tracker,
    pub(crate) viewers: Vec<Viewer<S>>,
    make: F,
    /// Dials under way, by unordered pair.
    pub(crate) dialling: PairMap<()>,
    pub(crate) next_fetch: u64,
    /// Whether segment `first_msn + i` was played by someone.
    played: Vec<bool>,
    /// How many viewers fetched segment `first_msn + i` from the CDN to seed it.
    seeds: Vec<u16>,
    first_msn: u64,
    pub(crate) tally: Tally,
    id_prefix: String,
    end: Micros,
    player: PlayerConfig,
}

impl<'c, S: Scheduler, F: FnMut(PeerId) -> S> Swarm<'c, S, F> {
    /// A stream that has been live for two windows, with the N first arrivals queued.
    pub(crate) fn new(config: &'c SimConfig, make: F) -> Self {
        let segment_us = from_ms(config.segment_duration_ms);
        let start = (2 * config.window_segments + 1) * segment_us;
        let cdn = Cdn::new(config, start / segment_us - 1);
        let mut swarm = Self {
            config,
            queue: Queue::new(start),
            population: SmallRng::seed_from_u64(mix(config.seed)),
            rng: SmallRng::seed_from_u64(mix(config.seed ^ 0x005e_ed0f_2e9e_u64)),
            net: {
                let mut net = Net::new(from_ms(config.inter_region_latency_ms));
                net.control_first = config.control_first;
                net
            },
            first_msn: cdn.oldest_listed(),
            cdn,
            tracker: Tracker::new(config.tracker, config.tracker_max_peers as usize, config.regions),
            viewers: Vec::new(),
            make,
            dialling: PairMap::default(),
            next_fetch: 0,
            played: Vec::new(),
            seeds: Vec::new(),
            tally: Tally::default(),
            id_prefix: format!("s{:08x}p", config.seed as u32),
            end: start + config.duration_s * 1_000_000,
            player: PlayerConfig {
                segment_ms: config.segment_duration_ms,
                live_sync_segments: config.live_sync_segments,
                max_buffer_ms: config.max_buffer_ms,
                retry_us: from_ms(config.player_retry_ms),
            },
        };
        swarm.queue.push(start + segment_us, Event::Publish);
        let ramp_us = config.join_ramp_s * 1_000_000;
        // Arrival times are drawn independently, so the poor uplinks land at random places
        // in the join order.
        let poor_count = (config.poor_uplink_share * f64::from(config.peers)).round() as u32;
        for i in 0..config.peers {
            let at = start + (swarm.population.random::<f64>() * ramp_us as f64) as Micros;
            swarm.queue.push(at, Event::Arrive { poor: config.poor_uplink_draw.class(i < poor_count) });
        }
        if config.churn_per_min > 0.0 {
            let at = start + ramp_us + swarm.churn_gap();
            swarm.queue.push(at, Event::Churn);
        }
        swarm
    }

    /// Runs every event up to the end of the simulated time.
    pub(crate) fn run(&mut self) {
        while let Some(event) = self.queue.pop_until(self.end) {
            self.handle(event);
        }
    }

    /// Closes the books: every viewer still present stops watching now.
    pub(crate) fn finish(mut self, scheduler: &str) -> Report {
        let now = self.end;
        self.tally.capacity.advance(now, self.stream_bytes_per_s());
        for v in 0..self.viewers.len() {
            if self.viewers[v].sched.is_some() {
                self.settle_viewer(v, now);
            }
        }
        for viewer in &self.viewers {
            self.tally.http_bytes += viewer.final_stats.http_bytes;
            self.tally.p2p_bytes += viewer.final_stats.p2p_down_bytes;
            let s = &viewer.final_stats;
            for (sum, n) in self.tally.cdn_fetch_reasons.iter_mut().zip([
                s.cdn_seed_fetches,
                s.cdn_deadline_fetches,
                s.cdn_other_fetches,
            ]) {
                *sum += n;
            }
            for r in 0..self.tally.cdn_bytes_by_reason.len() {
                self.tally.cdn_bytes_by_reason[r] += s.cdn_bytes_by_reason[r];
                self.tally.cdn_fetches_by_reason[r] += s.cdn_fetches_by_reason[r];
            }
        }
        self.tally.duplicate_seeds = self.seeds.iter().map(|&n| u64::from(n.saturating_sub(1))).sum();
        self.tally.segments_played = self.played.iter().filter(|&&p| p).count() as u64;
        let (dropped, events) = (self.net.dropped, self.queue.popped());
        self.tally.finish(self.config, scheduler, dropped, events)
    }

    fn handle(&mut self, event: Event) {
        let now = self.queue.now();
        match event {
            Event::Publish => {
                self.cdn.publish();
                self.tally.segments_published += 1;
                self.queue.push(now + from_ms(self.config.segment_duration_ms), Event::Publish);
            }
            Event::Arrive { poor } => self.arrive(poor),
            Event::Churn => {
                let present = self.tracker.present();
                if !present.is_empty() {
                    let v = present[self.population.random_range(0..present.len())];
                    self.leave(v);
                    self.arrive(self.config.poor_uplink_draw.class(self.viewers[v].poor));
                }
                let at = now + self.churn_gap();
                self.queue.push(at, Event::Churn);
            }
            Event::Reload(v) => self.reload(v),
            Event::Report(v) => {
                if self.present(v) {
                    self.viewers[v].player.sample_latency(now);
                    if self.config.uplink_reports {
                        self.report_uplink(v);
                    }
                    self.report_playback(v);
                    self.try_request(v);
                    self.queue.push(now + from_ms(self.config.playback_report_ms), Event::Report(v));
                }
            }
            Event::Empty(v) => {
                if self.present(v) && self.viewers[v].player.on_empty(now) {
                    self.report_playback(v);
                }
            }
            Event::Retry(v) => self.try_request(v),
            Event::Wake(v, at) => {
                let viewer = &mut self.viewers[v];
                if viewer.armed == Some(at) {
                    viewer.armed = None;
                    if let Some(sched) = viewer.sched.as_mut() {
                        sched.handle_timeout(to_ms(now));
                        self.drain(v);
                    }
                }
            }
            Event::HttpNext { v, id, fetch, offset } => self.http_next(v, id, fetch, offset),
            Event::HttpData { v, id, fetch, offset, len } => self.http_data(v, id, fetch, offset, len),
            Event::TxDone(from) => {
                if let Some(tx) = self.net.sent(now, from) {
                    self.transmit(from, tx);
                }
            }
            Event::Message { to, from, link, payload, bytes } => self.message(to, from, link, payload, bytes),
            Event::Open(a, b) => self.open(a, b),
            Event::Closed { v, peer } => {
                let peer = self.viewers[peer].id.clone();
                self.input(v, Input::PeerClosed { peer });
            }
            Event::Peers { v, peers, swarm } => {
                let peers = peers.into_iter().map(|p| self.viewers[p].id.clone()).collect();
                self.input(v, Input::SwarmSize { peers: swarm });
                self.input(v, Input::PeersDiscovered { peers });
            }
            Event::Poll { v, msn, until } => self.poll(v, msn, until),
        }
    }

    /// A new viewer with links drawn from the configured distributions, in the uplink class
    /// `poor` when given; its player starts by loading the playlist.
    fn arrive(&mut self, poor: Option<bool>) {
        let (config, now) = (self.config, self.queue.now());
        let rng = &mut self.population;
        // Drawn even when the class is given, so both draws see the same links for a class.
        let draw = rng.random::<f64>() < config.poor_uplink_share;
        let poor = poor.unwrap_or(draw);
        let up = if poor { config.poor_uplink_bytes_per_s } else { config.uplink_bytes_per_s };
        let endpoint = Endpoint {
            up_bytes_per_s: up.sample(rng).max(MIN_RATE_BYTES_PER_S),
            down_bytes_per_s: config.downlink_bytes_per_s.sample(rng).max(MIN_RATE_BYTES_PER_S),
            access_latency_us: (config.access_latency_ms.sample(rng) * 1e3) as Micros,
            region: rng.random_range(0..config.regions),
        };
        let at_edge = config.edge_share > 0.0 && rng.random::<f64>() < config.edge_share;
        let v = self.net.add(endpoint);
        self.tracker.join(v, endpoint.region);
        let stream = self.stream_bytes_per_s();
        self.tally.capacity.join(now, endpoint.up_bytes_per_s, stream);
        let id = format!("{}{v}", self.id_prefix);
        // The prefix is `s` + 8 hex digits + `p`, the index at most 20 digits: always a valid peerId.
        let id: PeerId = id.parse().expect("simulated peerIds are well-formed");
        let sched = (self.make)(id.clone());
        self.viewers.push(Viewer {
            sched: Some(sched),
            id,
            player: Player::new(
                if at_edge { PlayerConfig { live_sync_segments: 1, ..self.player } } else { self.player },
                now,
            ),
            http: Vec::new(),
            armed: None,
            final_stats: Stats::default(),
            joined: now,
            poor,
        });
        self.tally.sessions += 1;
        let playlist_at = now + self.ttfb();
        self.queue.push(playlist_at, Event::Reload(v));
        self.queue.push(playlist_at + from_ms(self.config.playback_report_ms), Event::Report(v));
    }

    /// Viewer `v` closes its tab: its channels close and its counters are frozen.
    fn leave(&mut self, v: usize) {
        let now = self.queue.now();
        if self.present(v) {
            let (up, stream) = (self.net.endpoint(v).up_bytes_per_s, self.stream_bytes_per_s());
            self.tally.capacity.leave(now, up, stream);
        }
        self.settle_viewer(v, now);
        self.tracker.leave(v);
        self.net.clear(v);
        for other in self.net.links_of(v).to_vec() {
            self.close(v, other);
        }
    }

    /// Freezes viewer `v`'s counters and player outcome at `now`, and drops its scheduler.
    fn settle_viewer(&mut self, v: usize, now: Micros) {
        let viewer = &mut self.viewers[v];
        let Some(sched) = viewer.sched.take() else { return };
        viewer.final_stats = sched.stats();
        viewer.http.clear();
        let p = &mut viewer.player;
        let watched = p.finish(now);
        let t = &mut self.tally;
        (t.stalls, t.stalled_us, t.watched_us) =
            (t.stalls + p.stalls, t.stalled_us + p.stalled_us, t.watched_us + watched);
        (t.player_failures, t.live_skips) = (t.player_failures + p.failures, t.live_skips + p.skips);
        match p.startup_us {
            Some(us) => t.startups_us.push(us),
            None if now - viewer.joined >= STARTUP_GRACE_US => t.never_started += 1,
            None => {}
        }
        if let Some(latency) = p.mean_latency_ms() {
            (t.latency_ms_sum, t.latency_viewers) = (t.latency_ms_sum + latency, t.latency_viewers + 1);
        }
    }

    fn reload(&mut self, v: usize) {
        if !self.present(v) {
            return;
        }
        let now = self.queue.now();
        let (oldest, newest) = (self.cdn.oldest_listed(), self.cdn.newest());
        let jumped = self.viewers[v].player.on_playlist(now, oldest, newest);
        let segments = self.cdn.playlist().to_vec();
        self.input(v, Input::Playlist { rendition: 0, segments });
        if jumped {
            self.report_playback(v);
        }
        self.try_request(v);
        self.queue.push(now + from_ms(self.config.segment_duration_ms), Event::Reload(v));
    }

    /// A viewer's playlist poll is answered: the playlist goes to its scheduler (not its player,
    /// which reloads on its own schedule) once it lists `msn`; until then the shell asks again
    /// every [`Swarm::poll_interval`] until `until`.
    fn poll(&mut self, v: usize, msn: u64, until: Micros) {
        if !self.present(v) {
            return;
        }
        let now = self.queue.now();
        self.tally.playlist_polls += 1;
        if self.cdn.newest() >= msn {
            let segments = self.cdn.playlist().to_vec();
            self.input(v, Input::Playlist { rendition: 0, segments });
        } else if now + self.poll_interval() < until {
            let at = now + self.poll_interval() + self.ttfb();
            self.queue.push(at, Event::Poll { v, msn, until });
        }
    }

    /// Time between a playlist poll's answer and the next poll, in µs, as every shell polls
    /// ([`engine::playlist_poll_interval_ms`]).
    fn poll_interval(&self) -> Micros {
        from_ms(engine::playlist_poll_interval_ms(self.config.segment_duration_ms))
    }

    /// Tells viewer `v`'s scheduler where playback is.
    pub(crate) fn report_playback(&mut self, v: usize) {
        let (position_ms, rate, buffered_end_ms) = self.viewers[v].player.playback(self.queue.now());
        self.input(v, Input::Playback { position_ms, rate, buffered_end_ms });
    }

    /// Tells viewer `v`'s scheduler what its shell measured of the uplink, in the scheduler's
    /// (simulated) bytes.
    fn report_uplink(&mut self, v: usize) {
        let scale = self.config.byte_scale;
        let (sent, queued) = self.net.upload_counters(v);
        // Below one chunk sent there is nothing to measure yet.
        let measured = sent >= 64 * 1024;
        let rate = if measured { self.net.endpoint(v).up_bytes_per_s / scale as f64 } else { 0.0 };
        let now = to_ms(self.queue.now());
        let Some(sched) = self.viewers[v].sched.as_mut() else { return };
        // Saturating float-to-int cast of a positive rate.
        sched.handle_uplink(now, rate as u64, queued / scale);
        self.drain(v);
    }

    /// Lets viewer `v`'s player ask for its next segment, if it wants one.
    pub(crate) fn try_request(&mut self, v: usize) {
        if !self.present(v) {
            return;
        }
        if let Some(msn) = self.viewers[v].player.request(self.queue.now()) {
            self.input(v, Input::PlayerRequest { id: SegmentId { rendition: 0, msn } });
        }
    }

    /// Viewer `v`'s player got segment `msn` (already checked against the CDN's copy).
    pub(crate) fn delivered(&mut self, v: usize, msn: u64) {
        let now = self.queue.now();
        let Some(changed) = self.viewers[v].player.on_deliver(now, msn) else { return };
        let index = usize::try_from(msn.saturating_sub(self.first_msn)).unwrap_or(usize::MAX);
        if index < self.played.len() {
            self.played[index] = true;
        } else if index < 1 << 24 {
            self.played.resize(index + 1, false);
            self.played[index] = true;
        }
        if let Some(at) = self.viewers[v].player.empty_at() {
            self.queue.push(at, Event::Empty(v));
        }
        if changed {
            self.report_playback(v);
        }
        self.try_request(v);
    }

    /// A viewer fetches segment `msn` from the CDN to seed it.
    pub(crate) fn count_seed(&mut self, msn: u64) {
        let index = usize::try_from(msn.saturating_sub(self.first_msn)).unwrap_or(usize::MAX);
        if index >= 1 << 24 {
            return;
        }
        if index >= self.seeds.len() {
            self.seeds.resize(index + 1, 0);
        }
        self.seeds[index] = self.seeds[index].saturating_add(1);
    }

    /// Whether viewer `v` is still watching.
    pub(crate) fn present(&self, v: usize) -> bool {
        self.viewers[v].sched.is_some()
    }

    /// Feeds `input` to viewer `v`'s scheduler now and carries out what it asks for.
    pub(crate) fn input(&mut self, v: usize, input: Input) {
        let now = to_ms(self.queue.now());
        let Some(sched) = self.viewers[v].sched.as_mut() else { return };
        sched.handle_input(now, input);
        self.drain(v);
    }

    /// Carries out every output of viewer `v`'s scheduler, then arms its timer.
    pub(crate) fn drain(&mut self, v: usize) {
        while let Some(output) = self.viewers[v].sched.as_mut().and_then(Scheduler::poll_output) {
            self.perform(v, output);
        }
        let now_ms = to_ms(self.queue.now());
        let viewer = &mut self.viewers[v];
        let Some(sched) = viewer.sched.as_ref() else { return };
        let timer = sched.poll_timeout();
        if timer == viewer.armed {
            return;
        }
        viewer.armed = timer;
        if let Some(at) = timer {
            if at <= now_ms {
                self.tally.timer_spins += 1;
            }
            self.queue.push(from_ms(at.max(now_ms + 1)), Event::Wake(v, at));
        }
    }

    /// A CDN time to first byte, in µs.
    pub(crate) fn ttfb(&mut self) -> Micros {
        (self.config.cdn_ttfb_ms.sample(&mut self.rng) * 1e3) as Micros
    }

    /// The stream bitrate, in bytes/s.
    fn stream_bytes_per_s(&self) -> f64 {
        self.config.bitrate_bps as f64 / 8.0
    }

    /// Time to the next departure of the churn process (exponential gaps), in µs.
    fn churn_gap(&mut self) -> Micros {
        let per_us = self.config.churn_per_min * f64::from(self.config.peers) / 60e6;
        let u: f64 = self.population.random();
        (-(1.0 - u).ln() / per_us).ceil().min(1e15) as Micros
    }
}
