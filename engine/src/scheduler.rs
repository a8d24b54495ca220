//! The decision: for each segment the engine needs, get it from a peer, from the CDN, or wait.
//!
//! See the crate documentation for why the rules are what they are.

use protocol::peer::Message;
use protocol::{PeerId, SegmentId};
use rand::Rng;

use crate::segments::{Fetch, Segment};
use crate::{CdnReason, Engine, Millis, Output, rank};

/// A peer transfer is judged on its speed only after this long, in ms.
pub(crate) const MIN_JUDGE_MS: u64 = 300;

/// What to do about a segment that is needed and not being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Fetch it from the CDN now.
    Http,
    /// Ask a peer that holds it, or is receiving it and relays.
    Peer,
    /// Wait (for a peer to announce it) until the given time, or for news.
    Wait(Option<Millis>),
}

impl Engine {
    /// Acts on every needed segment: starts fetches, and gives up on peers that stall or that
    /// would make us miss a deadline.
    pub(crate) fn schedule(&mut self, now: Millis) {
        let active_tail = |s: &Segment| s.tail.as_ref().is_some_and(|t| t.active);
        for id in self.store.ids(|s| s.needed() || matches!(s.fetch, Fetch::Peer { .. }) || active_tail(s)) {
            self.check_tail(now, id);
            self.check_peer_fetch(now, id);
            let Some(seg) = self.store.get(id) else { continue };
            if seg.fetch != Fetch::Idle || !seg.needed() {
                continue;
            }
            let mut plan = self.plan(now, id, seg);
            if matches!(plan, Plan::Wait(_)) && !seg.uploads.is_empty() {
                // Peers that wait on our relay are better off elsewhere while we have no
                // source; and without them, we may ask whom they were getting it from.
                self.drop_uploads(id);
                let Some(seg) = self.store.get(id) else { continue };
                plan = self.plan(now, id, seg);
            }
            let Some(seg) = self.store.get(id) else { continue };
            match plan {
                Plan::Http => {
                    let reason = self.why_http(now, id, seg);
                    if seg.complete {
                        // Complete but unverified at its deadline: the CDN's copy it is.
                        if let Some(seg) = self.store.get_mut(id) {
                            seg.discard();
                        }
                    }
                    self.start_http(now, id, reason);
                }
                Plan::Peer => self.start_peer(now, id),
                Plan::Wait(_) => {}
            }
        }
    }

    /// The rules, for a needed segment with no fetch under way (crate doc, "Decision rules").
    pub(crate) fn plan(&self, now: Millis, id: SegmentId, seg: &Segment) -> Plan {
        let http = if seg.listed { Plan::Http } else { Plan::Wait(None) };
        if seg.complete {
            // Waits for its digest until due.
            let due = self.due(seg);
            return if due.is_some_and(|d| now >= d) { http } else { Plan::Wait(due) };
        }
        let holder = !self.sources(now, id, seg, true).is_empty();
        if let Some(due) = self.startup_due(seg) {
            // A joiner's first segment: from peers until the startup wait ends (`startup.rs`).
            if now >= due {
                return http;
            }
            if holder || !self.sources(now, id, seg, false).is_empty() {
                return Plan::Peer;
            }
            let retry = seg.busy.values().copied().filter(|at| *at > now).min();
            return Plan::Wait(Some(retry.map_or(due, |r| r.min(due))));
        }
        if seg.wanted && !self.playback.playing() {
            // Startup: what the viewer waits for comes from the fastest sure source.
            return if holder { Plan::Peer } else { http };
        }
        let due = self.due(seg);
        if due.is_some_and(|d| now >= d) {
            return http;
        }
        if holder || !self.sources(now, id, seg, false).is_empty() {
            return Plan::Peer;
        }
        if seg.tail.as_ref().is_some_and(|t| t.active) {
            // The tail's sender takes the head too once the tail is in, unless it is due first.
            return Plan::Wait(due);
        }
        if self.peers.someone_fetching(id) || !seg.busy.is_empty() {
            // Its holders are busy or failed us: one may have room soon, others will relay it
            // soon, or it is due.
            let retry = seg.busy.values().copied().filter(|at| *at > now).min();
            return Plan::Wait([due, retry].into_iter().flatten().min());
        }
        if seg.listed
            && let Some(since) = seg.seed_since
        {
            let turn = self.seed_turn(id, seg, since);
            if now >= turn {
                return Plan::Http;
            }
            return Plan::Wait(Some(due.map_or(turn, |d| d.min(turn))));
        }
        if seg.wanted && seg.listed {
            // An old segment nobody around holds: wait for peers still connecting while it is
            // not due, else the CDN.
            if self.peers.dialling() && due.is_some() {
                return Plan::Wait(due);
            }
            return Plan::Http;
        }
        Plan::Wait(due)
    }

    /// Why `plan` sends `seg` to the CDN, for the counters in [`crate::Stats`].
    pub(crate) fn why_http(&self, now: Millis, id: SegmentId, seg: &Segment) -> CdnReason {
        if seg.complete {
            return CdnReason::Other;
        }
        if seg.wanted && !self.playback.playing() {
            let alone = self.peers.connected().next().is_none();
            return if alone { CdnReason::StartupAlone } else { CdnReason::Startup };
        }
        if self.due(seg).is_some_and(|d| now >= d) {
            return if seg.peer_cut {
                CdnReason::Churn
            } else if seg.peer_gave_up {
                CdnReason::Retry
            } else if !seg.busy.is_empty() || self.peers.someone_announced(id) {
                CdnReason::DeadlineBusy
            } else {
                CdnReason::DeadlineAlone
            };
        }
        if seg.seed_since.is_some() { CdnReason::Seed } else { CdnReason::Other }
    }

    /// When the engine next needs to look at `seg` again, if a timer (not news) can change things.
    pub(crate) fn segment_timer(&self, now: Millis, id: SegmentId, seg: &Segment) -> Option<Millis> {
        let fetch = self.fetch_timer(now, id, seg);
        [fetch, self.tail_timer(seg)].into_iter().flatten().min()
    }

    /// [`Engine::segment_timer`] for the main fetch.
    fn fetch_timer(&self, now: Millis, id: SegmentId, seg: &Segment) -> Option<Millis> {
        match &seg.fetch {
            Fetch::Http => None,
            Fetch::Peer { last_chunk, .. } => {
                let idle = last_chunk.saturating_add(self.config.p2p_idle_timeout_ms);
                // While the transfer runs, its projected end is checked every `MIN_JUDGE_MS`.
                Some(self.due(seg).map_or(idle, |d| idle.min(d).min(now.saturating_add(MIN_JUDGE_MS))))
            }
            Fetch::Idle if seg.needed() => match self.plan(now, id, seg) {
                Plan::Wait(at) => at,
                // Acted on by the last `schedule`; only reachable if state changed after it.
                Plan::Http | Plan::Peer => Some(now),
            },
            Fetch::Idle => None,
        }
    }

    /// When the segment starting at `seg.info.start_ms` plays, minus the safety margin: the time
    /// by which it must be complete. `None` while not playing.
    pub(crate) fn deadline(&self, seg: &Segment) -> Option<Millis> {
        let playback = self.playback.deadline(seg.info.start_ms, self.config.deadline_margin_ms);
        playback.or_else(|| self.startup_deadline(seg))
    }

    /// The last moment to start fetching the missing bytes of `seg` from the CDN and still
    /// meet its deadline (measured HTTP time for those bytes).
    pub(crate) fn due(&self, seg: &Segment) -> Option<Millis> {
        if let Some(due) = self.startup_due(seg) {
            return Some(due);
        }
        let missing = self.size_of(seg).saturating_sub(seg.data.len() as u64);
        let deadline = self.deadline(seg)?;
        Some(deadline.saturating_sub(self.http.time_ms(missing)))
    }

    /// When this peer's turn comes to fetch a new live segment from the CDN, if nobody has
    /// announced it by then: at once for the top-ranked peer, `seed_grace_ms` later per rank
    /// for the others ([`Engine::seed_grace`]: longer in a full mesh, where the designated
    /// seeder polls), so that the next in line takes over from a seeder that is missing.
    /// A peer that announces nothing (it does not upload, or its uplink is slower than the
    /// stream) cannot tell the others it fetches: it waits one more segment duration (every
    /// playlist reload of the others has seen the segment by then), so that it seeds only if
    /// nobody else does. So does a peer whose uplink cannot carry two copies per segment: it
    /// ranks itself last, but its neighbours do not know its uplink and rank it by the hash, so
    /// for the segments where it tops the hash nobody else fetches at once; seeding `rank ×
    /// seed_grace_ms` after its own sight it became, with 6 s segments, the only and too slow
    /// source of segments that every neighbour then fetched from the CDN at its deadline
    /// (simulator, 10 seeds: +0.001 to +0.006 of offload at N = 4 … 16, never less).
    /// The wait is for a better seeder, so a peer that can pass one copy on and whose
    /// neighbours announce nothing (they are silent, or there are none) does not wait: nobody
    /// else can seed for them. In a pair of a 0.6 and a 4.3 Mbit/s uplink on a 2.5 Mbit/s
    /// stream, both waited and both fetched 40 % of the segments (simulator, N = 2, 1,800 s).
    pub(crate) fn seed_turn(&self, id: SegmentId, seg: &Segment, since: Millis) -> Millis {
        let rank = u64::from(self.seed_rank(id));
        // Silent peers (no upload, or below one copy) and those below two copies alike.
        let alone = || !self.uplink_below(1) && self.peers.seeders(id.rendition).next().is_none();
        let wait = if self.may_seed() || alone() { 0 } else { seg.info.duration_ms };
        let grace = self.seed_grace(self.now, id, seg.info.duration_ms);
        since.saturating_add(wait).saturating_add(grace.saturating_mul(rank))
    }

    /// Our seeding rank for `id` among the connected peers of its rendition, ordered by what
    /// each announced (`rank::Seeder`: at the live edge first, then the copies of the stream
    /// its uplink carries) and then by the hash. A
    /// peer that does not upload, or whose uplink cannot carry two copies, goes last: its copy
    /// would help few.
    pub(crate) fn seed_rank(&self, id: SegmentId) -> u32 {
        let others = self.peers.seeders(id.rendition);
        if !self.may_seed() {
            return u32::try_from(others.count()).unwrap_or(u32::MAX);
        }
        rank::rank((&self.local, self.announced), others, id)
    }

    /// Peers to ask for `id`: holders of the whole segment (`complete`), or else peers that
    /// receive it now and relay. Peers that failed us for it (absent, stalled, too slow for its
    /// deadline) and peers that get it from us are left out.
    fn sources(&self, now: Millis, id: SegmentId, seg: &Segment, complete: bool) -> Vec<&PeerId> {
        let mut exclude = seg.failed_peers.clone();
        exclude.extend(seg.uploads.iter().map(|u| u.peer.clone()));
        exclude.extend(seg.busy.iter().filter(|(_, at)| **at > now).map(|(p, _)| p.clone()));
        // The tail's sender would drop the tail to answer a second request.
        exclude.extend(seg.tail.iter().filter(|t| t.active).map(|t| t.peer.clone()));
        if complete {
            return self.peers.holders(id, &exclude);
        }
        // Receivers that said bytes arrive (and hold more than we do) go first.
        let receivers = self.peers.receivers(id, &exclude);
        let held = seg.data.len() as u64;
        let ahead: Vec<&PeerId> = receivers.iter().copied().filter(|p| self.peers.progress(p, id) > held).collect();
        if ahead.is_empty() { receivers } else { ahead }
    }

    /// Gives up on a peer download that stalls, or that would miss the deadline when the CDN
    /// would not; the bytes received so far are kept and the next fetch resumes from them.
    fn check_peer_fetch(&mut self, now: Millis, id: SegmentId) {
        let Some(seg) = self.store.get(id) else { return };
        let Fetch::Peer { last_chunk, .. } = &seg.fetch else { return };
        let due = self.due(seg);
        let late = due.is_some_and(|d| now >= d);
        let idle = now >= last_chunk.saturating_add(self.config.p2p_idle_timeout_ms);
        // A transfer that will miss the deadline gets help from a second peer first.
        if !late && !idle && self.try_split(now, id) {
            return;
        }
        let Some(seg) = self.store.get(id) else { return };
        let Fetch::Peer { peer, request_id, .. } = &seg.fetch else { return };
        let slow = self.too_slow(now, seg);
        if !late && !idle && !slow {
            return;
        }
        let (peer, request_id) = (peer.clone(), *request_id);
        let (started, from) = seg.fetch_started;
        let got = (seg.data.len() as u64).saturating_sub(from);
        self.send(&peer, &Message::Cancel { id, request_id });
        if slow {
            self.peers.record_rate(&peer, got, now.saturating_sub(started));
        }
        if let Some(seg) = self.store.get_mut(id) {
            seg.fetch = Fetch::Idle;
            seg.peer_gave_up = true;
            if slow {
                seg.failed_peers.insert(peer);
            } else if idle {
                // A relay may wait on its own source: tried again later, not dropped for good.
                seg.busy.insert(peer, now.saturating_add(self.config.p2p_idle_timeout_ms));
            }
        }
    }

    /// Whether the peer transfer of `seg` will end after the deadline at its current speed,
    /// while the CDN could still make it.
    fn too_slow(&self, now: Millis, seg: &Segment) -> bool {
        let (Some(deadline), Some(remaining)) = (self.deadline(seg), seg.remaining()) else { return false };
        // Judged from the first byte on: a relaying peer may wait for its own source first.
        let (Some(first), (_, from)) = (seg.first_byte, seg.fetch_started) else { return false };
        let elapsed = now.saturating_sub(first);
        if elapsed < MIN_JUDGE_MS || remaining == 0 {
            return false;
        }
        let got = (seg.data.len() as u64).saturating_sub(from);
        let rate = got as f64 / elapsed as f64;
        let eta = now as f64 + remaining as f64 / rate.max(1e-6);
        eta > deadline as f64 && now.saturating_add(self.http.time_ms(remaining)) < deadline
    }

    /// Starts (or resumes, from the bytes held) the CDN fetch of `id`, counted under `reason`.
    pub(crate) fn start_http(&mut self, now: Millis, id: SegmentId, reason: CdnReason) {
        // An HTTP `Range` has one start: the CDN takes everything from the prefix on.
        self.drop_tail(id);
        let Some(seg) = self.store.get(id) else { return };
        let predicted = self.http.time_ms(self.size_of(seg).saturating_sub(seg.data.len() as u64));
        let Some(seg) = self.store.get_mut(id) else { return };
        if !seg.listed {
            return;
        }
        seg.http_predicted_ms = predicted;
        seg.http_reason = reason;
        seg.fetch = Fetch::Http;
        let range_start = seg.data.len() as u64;
        seg.fetch_started = (now, range_start);
        seg.first_byte = None;
        self.outputs.push_back(Output::FetchHttp { id, url: seg.info.url.clone(), range_start });
        self.stats.cdn_fetches_by_reason[reason.index()] += 1;
        match reason {
            CdnReason::Seed => self.stats.cdn_seed_fetches += 1,
            CdnReason::DeadlineBusy | CdnReason::DeadlineAlone | CdnReason::Retry | CdnReason::Churn => {
                self.stats.cdn_deadline_fetches += 1;
            }
            CdnReason::StartupAlone | CdnReason::Startup | CdnReason::Other => self.stats.cdn_other_fetches += 1,
        }
    }

    /// Asks a peer for `id`, from the bytes held on: a holder of the whole segment if any, else a
    /// peer that relays it, chosen at random weighted by how fast each sent to us before.
    fn start_peer(&mut self, now: Millis, id: SegmentId) {
        let Some(seg) = self.store.get(id) else { return };
        let mut candidates = self.sources(now, id, seg, true);
        if candidates.is_empty() {
            candidates = self.sources(now, id, seg, false);
        }
        let candidates: Vec<PeerId> = candidates.into_iter().cloned().collect();
        let (offset, end) = (seg.data.len() as u64, seg.head_end());
        let Some(peer) = self.pick_peer(candidates) else { return };
        let request_id = self.next_request_id();
        if let Some(seg) = self.store.get_mut(id) {
            seg.fetch = Fetch::Peer { peer: peer.clone(), request_id, last_chunk: now };
            seg.fetch_started = (now, offset);
            seg.first_byte = None;
        }
        // Our deadline travels along, so the peer can refuse what it cannot deliver in time.
        let deadline_ms = self.deadline_ms(now, id);
        self.send(&peer, &Message::Request { id, request_id, offset, end, deadline_ms });
    }

    /// Time left until the deadline of `id`, in ms from `now` (at least 1), for a request.
    pub(crate) fn deadline_ms(&self, now: Millis, id: SegmentId) -> Option<u32> {
        let deadline = self.store.get(id).and_then(|seg| self.deadline(seg))?;
        Some(u32::try_from(deadline.saturating_sub(now).max(1)).unwrap_or(u32::MAX))
    }

    /// One of `candidates`, at random weighted by how fast each sent to us before.
    pub(crate) fn pick_peer(&mut self, mut candidates: Vec<PeerId>) -> Option<PeerId> {
        if candidates.is_empty() {
            return None;
        }
        let weights: Vec<f64> = candidates.iter().map(|p| self.peers.rate(p).unwrap_or(f64::NAN)).collect();
        // Untried peers weigh as much as the best measured one, so they get tried.
        let best = weights.iter().copied().filter(|w| w.is_finite()).fold(1.0, f64::max);
        let weights: Vec<f64> = weights.iter().map(|w| if w.is_finite() { w.max(best * 0.1) } else { best }).collect();
        let total: f64 = weights.iter().sum();
        let mut pick = self.rng.random::<f64>() * total;
        let mut chosen = candidates.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                chosen = i;
                break;
            }
            pick -= w;
        }
        Some(candidates.swap_remove(chosen))
    }
}
