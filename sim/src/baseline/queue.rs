//! PML's decisions: the queue of segments around the playhead, which source each one gets,
//! and the random HTTP seeding timer (PML `hybrid-loader.ts` `processQueue`,
//! `loadRandomThroughHttp`, `utils/queue.ts`).

use engine::Output;
use protocol::peer::Message;
use rand::Rng;
use rand::seq::SliceRandom;

use super::{Load, P2pml, Via};

/// Failed attempts are forgotten after this long, in ms.
pub(super) const FAILED_CLEAR_MS: u64 = 60_000;
/// Base period of the random HTTP timer, in ms (plus up to this much per connected peer).
const RANDOM_HTTP_MS: u64 = 1_000;

/// Where a segment lies relative to the playhead.
#[derive(Debug, Clone, Copy)]
struct Statuses {
    high_demand: bool,
    http: bool,
    p2p: bool,
}

impl P2pml {
    /// Runs after every input and timer: timers, storage cleanup, the queue, announcements.
    pub(super) fn settle(&mut self) {
        let now = self.now;
        self.peers.expire_dials(now, self.config.connect_timeout_ms);
        if now >= self.next_announce {
            self.next_announce = now + self.config.announce_interval_ms;
            self.outputs.push_back(Output::RequestPeers);
        }
        self.check_stalls();
        if self.last_requested.is_some() {
            match self.next_random_http {
                Some(at) if now >= at => {
                    self.random_http();
                    self.arm_random_http();
                }
                None => self.arm_random_http(),
                Some(_) => {}
            }
        }
        self.process_queue();
        self.announce();
    }

    fn arm_random_http(&mut self) {
        let jitter = self.rng.random::<f64>() * (RANDOM_HTTP_MS * self.peers.count() as u64) as f64;
        self.next_random_http = Some(self.now + RANDOM_HTTP_MS + jitter as u64);
    }

    /// Gives up peer downloads that received nothing for `p2p_idle_timeout_ms`.
    fn check_stalls(&mut self) {
        let timeout = self.config.p2p_idle_timeout_ms;
        let stalled: Vec<_> = self
            .loads
            .iter()
            .filter_map(|(&msn, l)| match &l.via {
                Via::Peer { peer, request_id, last_byte } if self.now >= last_byte + timeout => {
                    Some((msn, peer.clone(), *request_id))
                }
                _ => None,
            })
            .collect();
        for (msn, peer, request_id) in stalled {
            let id = self.id(msn);
            self.outputs.push_back(Output::SendToPeer {
                peer: peer.clone(),
                bytes: Message::Cancel { id, request_id }.encode(),
            });
            self.p2p_failed(msn, &peer, request_id, true);
        }
    }

    /// Live storage: a segment goes once the playhead is a high-demand window past its end.
    pub(super) fn evict(&mut self) {
        let keep_after = self.position_ms.saturating_sub(self.config.high_demand_window_ms);
        self.storage.retain(|_, stored| stored.end_ms >= keep_after);
    }

    /// The segments from the last requested one forward while in a window, with their statuses
    /// (stored ones left out).
    fn queue(&self) -> Vec<(u64, Statuses)> {
        let Some(first) = self.last_requested else { return Vec::new() };
        let mut queue = Vec::new();
        for (i, (&msn, _)) in self.playlist.range(first..).enumerate() {
            let mut statuses = self.statuses(msn);
            let actual = statuses.high_demand || statuses.http || statuses.p2p;
            if !actual && i == 0 {
                // The player asked for a segment a little behind the playhead: keep it, urgent.
                statuses.high_demand = true;
            } else if !actual {
                break;
            }
            if !self.storage.contains_key(&msn) {
                queue.push((msn, statuses));
            }
        }
        queue
    }

    fn statuses(&self, msn: u64) -> Statuses {
        let Some(info) = self.playlist.get(&msn) else {
            return Statuses { high_demand: false, http: false, p2p: false };
        };
        let (start, end) = (info.start_ms as f64, (info.start_ms + info.duration_ms) as f64);
        let position = self.position_ms as f64;
        let within = |window_ms: u64| !(position + window_ms as f64 * self.rate < start || position > end);
        Statuses {
            high_demand: within(self.config.high_demand_window_ms),
            http: within(self.config.http_window_ms),
            p2p: within(self.config.p2p_window_ms) && self.peers.loading_or_loaded_by_someone(msn),
        }
    }

    fn http_count(&self) -> usize {
        self.loads.values().filter(|l| l.via == Via::Http).count()
    }

    fn p2p_count(&self) -> usize {
        self.loads.values().filter(|l| matches!(l.via, Via::Peer { .. })).count()
    }

    /// PML `processRequests` then `processQueue`.
    fn process_queue(&mut self) {
        let queue = self.queue();
        self.process_requests(&queue);
        let (max_http, max_p2p, retries) =
            (self.config.simultaneous_http, self.config.simultaneous_p2p, self.config.http_retries);
        if let Some((msn, true)) = self.engine_request {
            let load = self.loads.get(&msn);
            let startable = load.is_none_or(|l| l.via == Via::Idle && l.http_attempts < retries);
            if startable && self.http_count() < max_http {
                self.start_http(msn);
            }
        }
        for (i, &(msn, statuses)) in queue.iter().enumerate() {
            let via = self.loads.get(&msn).map(|l| (l.via.clone(), l.http_attempts));
            let p2p_loading = matches!(via, Some((Via::Peer { .. }, _)));
            if statuses.high_demand {
                if matches!(via, Some((Via::Http, _))) || via.as_ref().is_some_and(|(_, a)| *a >= retries) {
                    continue;
                }
                if self.http_count() < max_http
                    || (self.abort_last_after(&queue[i + 1..], true) && self.http_count() < max_http)
                {
                    if p2p_loading {
                        self.stop_p2p(msn);
                    }
                    self.start_http(msn);
                    continue;
                }
                if p2p_loading {
                    continue;
                }
                if self.p2p_count() < max_p2p
                    || (self.abort_last_after(&queue[i + 1..], false) && self.p2p_count() < max_p2p)
                {
                    self.start_p2p(msn);
                }
            } else if statuses.p2p {
                if via.as_ref().is_some_and(|(v, _)| *v != Via::Idle) {
                    continue;
                }
                if self.p2p_count() < max_p2p
                    || (self.peers.loaded_by_someone(msn)
                        && self.abort_last_after(&queue[i + 1..], false)
                        && self.p2p_count() < max_p2p)
                {
                    self.start_p2p(msn);
                }
            }
        }
    }

    /// Drops loads that left the queue, fails a player whose segment used up its HTTP retries,
    /// and forgets failed attempts after a minute.
    fn process_requests(&mut self, queue: &[(u64, Statuses)]) {
        let wanted = self.engine_request.map(|(msn, _)| msn);
        let gone: Vec<u64> = self
            .loads
            .keys()
            .copied()
            .filter(|msn| Some(*msn) != wanted && !queue.iter().any(|(m, _)| m == msn))
            .collect();
        for msn in gone {
            self.abort(msn);
        }
        for load in self.loads.values_mut() {
            if load.failed_at.is_some_and(|at| self.now >= at + FAILED_CLEAR_MS) {
                (load.failed_at, load.http_attempts) = (None, 0);
            }
        }
        if let Some(msn) = wanted
            && self.loads.get(&msn).is_some_and(|l| l.via == Via::Idle && l.http_attempts >= self.config.http_retries)
        {
            self.engine_request = None;
            self.outputs.push_back(Output::PlayerFailed { id: self.id(msn) });
        }
    }

    /// Aborts the last HTTP (or P2P) download among `later`, dropping its bytes; returns
    /// whether there was one.
    fn abort_last_after(&mut self, later: &[(u64, Statuses)], http: bool) -> bool {
        let found = later.iter().rev().map(|&(msn, _)| msn).find(|msn| {
            self.loads
                .get(msn)
                .is_some_and(|l| if http { l.via == Via::Http } else { matches!(l.via, Via::Peer { .. }) })
        });
        if let Some(msn) = found {
            self.abort(msn);
        }
        found.is_some()
    }

    /// Stops whatever loads `msn` and forgets it.
    fn abort(&mut self, msn: u64) {
        self.stop_p2p(msn);
        if let Some(load) = self.loads.remove(&msn)
            && load.via == Via::Http
        {
            self.outputs.push_back(Output::AbortHttp { id: self.id(msn) });
        }
    }

    /// Cancels the peer download of `msn`, keeping its bytes for a resume.
    fn stop_p2p(&mut self, msn: u64) {
        let Some(load) = self.loads.get_mut(&msn) else { return };
        let Via::Peer { peer, request_id, .. } = std::mem::replace(&mut load.via, Via::Idle) else { return };
        let id = self.id(msn);
        self.outputs
            .push_back(Output::SendToPeer { peer: peer.clone(), bytes: Message::Cancel { id, request_id }.encode() });
        self.peers.download_done(&peer);
    }

    /// Starts (or resumes from the bytes held) the HTTP download of `msn`.
    fn start_http(&mut self, msn: u64) {
        let Some(url) = self.playlist.get(&msn).map(|s| s.url.clone()) else { return };
        let id = self.id(msn);
        let load = self.loads.entry(msn).or_insert_with(|| Load {
            data: Vec::new(),
            via: Via::Idle,
            http_attempts: 0,
            failed_at: None,
        });
        load.via = Via::Http;
        let range_start = load.data.len() as u64;
        self.outputs.push_back(Output::FetchHttp { id, url, range_start });
    }

    /// Asks a peer that has `msn` loaded for it, if one is idle.
    fn start_p2p(&mut self, msn: u64) {
        let Some(peer) = self.peers.choose(&mut self.rng, msn, self.now) else { return };
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let (request_id, id, now) = (self.next_request_id, self.id(msn), self.now);
        let load = self.loads.entry(msn).or_insert_with(|| Load {
            data: Vec::new(),
            via: Via::Idle,
            http_attempts: 0,
            failed_at: None,
        });
        load.via = Via::Peer { peer: peer.clone(), request_id, last_byte: now };
        let offset = load.data.len() as u64;
        self.outputs.push_back(Output::SendToPeer {
            peer,
            bytes: Message::Request { id, request_id, offset, end: None, deadline_ms: None }.encode(),
        });
    }

    /// PML `loadRandomThroughHttp`: fetch some segments nobody has, so that about one peer in
    /// the swarm fetches each.
    fn random_http(&mut self) {
        let max_http = self.config.simultaneous_http;
        if self.http_count() >= max_http || self.peers.count() == 0 {
            return;
        }
        let retries = self.config.http_retries;
        let candidates: Vec<u64> = self
            .queue()
            .into_iter()
            .filter(|(msn, s)| {
                let load = self.loads.get(msn);
                s.http && !s.p2p && load.is_none_or(|l| l.via == Via::Idle && l.http_attempts < retries)
            })
            .map(|(msn, _)| msn)
            .collect();
        let peers = self.peers.count() + 1;
        let count = candidates.len().min(max_http * peers);
        if count == 0 {
            return;
        }
        let mut order: Vec<usize> = (0..count).collect();
        order.shuffle(&mut self.rng);
        let mut probability = count as f64 / peers as f64;
        for index in order {
            if self.http_count() >= max_http {
                break;
            }
            if probability >= 1.0 || self.rng.random::<f64>() <= probability {
                self.start_http(candidates[index]);
            }
            probability -= 1.0;
            if probability <= 0.0 {
                break;
            }
        }
    }
}
