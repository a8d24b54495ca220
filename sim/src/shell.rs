//! The IO shell of every viewer: carries out what its scheduler asks for on the virtual CDN,
//! network and tracker, and feeds back what happened, as the browser agent would.

use engine::{CdnReason, Input, Output};
use protocol::peer::Message;
use protocol::{PeerId, SegmentId};

use crate::clock::{Micros, from_ms};
use crate::net::{Transmit, key as pair, wire_size};
use crate::scheduler::Scheduler;
use crate::swarm::{Event, Swarm};

impl<S: Scheduler, F: FnMut(PeerId) -> S> Swarm<'_, S, F> {
    /// Carries out one output of viewer `v`'s scheduler.
    pub(crate) fn perform(&mut self, v: usize, output: Output) {
        let now = self.queue.now();
        match output {
            Output::FetchHttp { id, range_start, .. } => {
                self.tally.cdn_requests += 1;
                let seeding = self.viewers[v].sched.as_ref().and_then(|s| s.fetch_reason(id)) == Some(CdnReason::Seed);
                if seeding {
                    self.count_seed(id.msn);
                }
                self.next_fetch += 1;
                let fetch = self.next_fetch;
                let http = &mut self.viewers[v].http;
                match http.iter_mut().find(|(i, _)| *i == id) {
                    Some(entry) => entry.1 = fetch,
                    None => http.push((id, fetch)),
                }
                let at = now + self.ttfb();
                self.queue.push(at, Event::HttpNext { v, id, fetch, offset: range_start });
            }
            Output::AbortHttp { id } => self.viewers[v].http.retain(|(i, _)| *i != id),
            Output::SendToPeer { peer, bytes } => {
                let Some(to) = self.index(&peer) else { return };
                let (wire, payload) = wire_size(&bytes, self.config.byte_scale);
                if let Some(tx) = self.net.send(now, v, to, bytes, wire, payload) {
                    self.transmit(v, tx);
                }
                if self.net.queued(v, to) > self.config.max_queued_bytes {
                    // The shell gives up on a peer that cannot keep up: both ends see it close.
                    self.tally.overflow_drops += 1;
                    if self.net.link(v, to).is_some() {
                        self.close(v, to);
                        let peer = self.viewers[to].id.clone();
                        self.input(v, Input::PeerClosed { peer });
                    }
                }
            }
            Output::Connect { peer } => {
                let Some(to) = self.index(&peer).filter(|&to| to != v) else { return };
                if self.net.link(v, to).is_none() && self.dialling.insert(pair(v, to), ()).is_none() {
                    let delay = (self.config.connect_ms.sample(&mut self.rng) * 1e3) as Micros;
                    self.queue.push(now + delay, Event::Open(v, to));
                }
            }
            Output::Disconnect { peer } => {
                let Some(to) = self.index(&peer) else { return };
                self.dialling.remove(&pair(v, to));
                self.close(v, to);
            }
            Output::RequestPeers => {
                let peers = self.tracker.candidates(&mut self.rng, v);
                let swarm = u32::try_from(self.tracker.present().len()).unwrap_or(u32::MAX);
                let at = now + from_ms(self.config.tracker_rtt_ms);
                self.queue.push(at, Event::Peers { v, peers, swarm });
            }
            Output::ReloadPlaylist { msn, .. } => {
                // Polled for at most one target duration + 1 s, as the browser agent does.
                let until = now + from_ms(self.config.segment_duration_ms + 1_000);
                let at = now + self.ttfb();
                self.queue.push(at, Event::Poll { v, msn, until });
            }
            Output::Deliver { id, bytes } => {
                if self.cdn.body(id.msn).is_some_and(|body| body != bytes.as_slice()) {
                    self.tally.corrupt_segments += 1;
                }
                self.delivered(v, id.msn);
            }
            Output::PlayerFailed { id } => {
                self.viewers[v].player.on_failed(now, id.msn);
                self.queue.push(now + from_ms(self.config.player_retry_ms), Event::Retry(v));
            }
        }
    }

    /// Starts the next piece of HTTP response `fetch` for segment `id`, from simulated byte
    /// `offset`, after the CDN's time to first byte (or right after the previous piece).
    pub(crate) fn http_next(&mut self, v: usize, id: SegmentId, fetch: u64, offset: u64) {
        if !self.current(v, id, fetch) {
            return;
        }
        let Some(size) = self.cdn.body(id.msn).map(|b| b.len() as u64) else {
            self.end_fetch(v, id);
            self.input(v, Input::HttpFailed { id, status: Some(404) });
            return;
        };
        if offset >= size {
            self.end_fetch(v, id);
            self.input(v, Input::HttpDone { id, total_len: size });
            return;
        }
        let scale = self.config.byte_scale;
        let len = (size - offset).min(self.config.http_chunk_bytes.div_ceil(scale));
        let at = self.net.receive_http(self.queue.now(), v, len * scale, self.config.cdn_bytes_per_s);
        self.queue.push(at, Event::HttpData { v, id, fetch, offset, len });
    }

    /// A piece of an HTTP response arrived: the scheduler gets it, then the next piece or the end.
    pub(crate) fn http_data(&mut self, v: usize, id: SegmentId, fetch: u64, offset: u64, len: u64) {
        let scale = self.config.byte_scale;
        if !self.current(v, id, fetch) {
            // Aborted while these bytes were on the way.
            self.tally.wasted_http_bytes += len * scale;
            return;
        }
        let Some(body) = self.cdn.body(id.msn) else {
            self.end_fetch(v, id);
            self.input(v, Input::HttpFailed { id, status: None });
            return;
        };
        let size = body.len() as u64;
        // offset + len <= size: http_next cut the piece from this very body.
        let bytes = body[offset as usize..(offset + len) as usize].to_vec();
        let before = self.kept(v).0;
        self.input(v, Input::HttpChunk { id, offset, bytes });
        let kept = self.kept(v).0.saturating_sub(before);
        self.tally.wasted_http_bytes += (len - kept.min(len)) * scale;
        if !self.current(v, id, fetch) {
            return;
        }
        if offset + len >= size {
            self.end_fetch(v, id);
            self.input(v, Input::HttpDone { id, total_len: size });
        } else {
            self.http_next(v, id, fetch, offset + len);
        }
    }

    /// Queues the uplink's next turn and the message's delivery.
    pub(crate) fn transmit(&mut self, from: usize, tx: Transmit) {
        self.queue.push(tx.tx_end, Event::TxDone(from));
        let Transmit { arrive, to, link, payload, bytes, .. } = tx;
        self.queue.push(arrive, Event::Message { to, from, link, payload, bytes });
    }

    /// A data channel message arrives, unless its channel closed meanwhile.
    pub(crate) fn message(&mut self, to: usize, from: usize, link: u64, payload: u64, bytes: Vec<u8>) {
        if self.net.link(from, to) != Some(link) || !self.present(to) {
            self.net.dropped += 1;
            return;
        }
        if self.config.purge_cancelled_uploads && bytes.get(1) == Some(&5) {
            // Byte 1 is the type; 5 is `Cancel` (protocol::peer encoding).
            if let Ok(Message::Cancel { id, request_id }) = Message::decode(&bytes) {
                self.tally.purged_messages += self.net.purge(to, from, id, request_id);
            }
        }
        let before = self.kept(to).1;
        let peer = self.viewers[from].id.clone();
        self.input(to, Input::PeerMessage { peer, bytes });
        let kept = self.kept(to).1.saturating_sub(before) * self.config.byte_scale;
        self.tally.wasted_p2p_bytes += payload - kept.min(payload);
    }

    /// A dialled channel opens, if both ends are still there (otherwise the dialler's own
    /// connect timeout notices, as with a real ICE failure).
    pub(crate) fn open(&mut self, a: usize, b: usize) {
        if self.dialling.remove(&pair(a, b)).is_none() || !self.present(a) || !self.present(b) {
            return;
        }
        let link = self.net.open(a, b);
        let (id_a, id_b) = (self.viewers[a].id.clone(), self.viewers[b].id.clone());
        self.input(a, Input::PeerConnected { peer: id_b });
        if self.net.link(a, b) == Some(link) {
            self.input(b, Input::PeerConnected { peer: id_a });
        }
    }

    /// `a` closes its channel to `b`; `b` learns it one path latency later.
    pub(crate) fn close(&mut self, a: usize, b: usize) {
        if self.net.close(a, b) {
            let at = self.queue.now() + self.net.latency(a, b);
            self.queue.push(at, Event::Closed { v: b, peer: a });
        }
    }

    /// Whether `fetch` is still viewer `v`'s fetch of `id`.
    fn current(&self, v: usize, id: SegmentId, fetch: u64) -> bool {
        self.present(v) && self.viewers[v].http.contains(&(id, fetch))
    }

    fn end_fetch(&mut self, v: usize, id: SegmentId) {
        self.viewers[v].http.retain(|(i, _)| *i != id);
    }

    /// Simulated bytes viewer `v`'s scheduler kept so far: (from HTTP, from peers).
    fn kept(&self, v: usize) -> (u64, u64) {
        self.viewers[v].sched.as_ref().map_or((0, 0), |s| {
            let stats = s.stats();
            (stats.http_bytes, stats.p2p_down_bytes)
        })
    }

    /// The viewer behind a simulated peerId (`s<hex>p<index>`).
    fn index(&self, peer: &PeerId) -> Option<usize> {
        let (_, index) = peer.as_str().rsplit_once('p')?;
        index.parse().ok().filter(|&v| v < self.viewers.len())
    }
}
