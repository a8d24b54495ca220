//! Early playlist reload: the designated seeder of the next segment sees it when it is published.
//!
//! A peer learns of a new segment from its playlist, and the player reloads the playlist once per
//! target duration at a phase of its own: 0 to 1 target duration after the segment's
//! publication. The seeder's delay is everyone's: with 2 s segments and the player 3 segments
//! behind the live edge, a segment must be in every buffer about 2.5 s after its publication, and
//! a seeder that sees it 1.5 s late leaves the relay chain too little time (the neighbours then
//! finish it from the CDN, `CdnReason::Retry`), or a lower-ranked neighbour that saw it first
//! takes its turn and the segment is fetched twice.
//!
//! So the peer that will seed the segment after our newest asks the shell to load the playlist
//! until it lists that segment ([`Output::ReloadPlaylist`]). This is done in a full mesh only:
//! when every viewer the tracker counts in the swarm is a neighbour, every peer computes the same
//! rank and exactly one peer polls. In a partial mesh each neighbourhood has its own top-ranked
//! peer; they would all see the segment at once and all fetch it, whereas staggered playlist
//! phases let the first one's announcement reach the others in time (measured with the simulator:
//! at N = 100 duplicate seeds rose from 0.7 to 2.5 per segment). See `docs/engine.md`.

use protocol::SegmentId;

use crate::{Engine, Millis, Output};

/// The tracker's count of the swarm is trusted this long, in ms. The engine asks the tracker
/// every `peer_request_interval_ms` while it has fewer than `max_peers` peers, so a full mesh of
/// up to `max_peers` viewers keeps it fresh; a larger neighbourhood stops asking, and after this
/// long it no longer counts as a full mesh (the swarm may have grown meanwhile).
pub(crate) const SWARM_COUNT_TTL_MS: Millis = 12_000;

/// The shortest time between a playlist poll's answer and the next poll, in ms.
const MIN_POLL_INTERVAL_MS: Millis = 250;

/// How long a shell carrying out [`Output::ReloadPlaylist`] waits after each answer before it
/// loads the playlist again, in ms: an eighth of the target duration `target_duration_ms` (ms),
/// at least 250 ms. The engine counts on this cadence when it orders the seeding turns
/// (the wait per seeding rank in a full mesh), so every shell polls at it.
#[must_use]
pub fn playlist_poll_interval_ms(target_duration_ms: u64) -> Millis {
    (target_duration_ms / 8).max(MIN_POLL_INTERVAL_MS)
}

/// What a poll's answer and the announcement of the fetch that follows take beyond the poll
/// interval, in ms: two CDN times to first byte and a path latency, with room.
const POLL_SLACK_MS: Millis = 300;

impl Engine {
    /// After a playlist of the played `rendition`: asks for [`Output::ReloadPlaylist`] of the
    /// segment after the newest when we are its designated seeder in a full mesh (once per segment).
    ///
    /// When our own poll just listed the newest segment, we saw it at its publication, so the
    /// next one is about a target duration away: the ask waits until a quarter of a duration
    /// before that, instead of polling through the whole duration (measured: 7.8 polls per 6 s
    /// segment when the best uplink seeds segment after segment).
    pub(crate) fn reload_early(&mut self, now: Millis, rendition: u32) {
        let Some(newest) = self.playlists.newest(rendition) else { return };
        let (newest_id, duration_ms) = (SegmentId { rendition, msn: newest.msn }, newest.duration_ms);
        if self.reload_at.is_some_and(|(id, _)| id.rendition != rendition || id.msn <= newest_id.msn) {
            self.reload_at = None;
        }
        let next = SegmentId { rendition, msn: newest.msn.saturating_add(1) };
        if !self.config.early_reload
            || self.reload_asked.is_some_and(|asked| asked.rendition == rendition && asked.msn >= next.msn)
        {
            return;
        }
        if self.full_mesh(now, rendition) && self.seed_rank(next) == 0 {
            let polled = self.reload_asked == Some(newest_id);
            self.reload_asked = Some(next);
            if polled {
                self.reload_at = Some((next, now.saturating_add(duration_ms.saturating_mul(3) / 4)));
            } else {
                self.outputs.push_back(Output::ReloadPlaylist { rendition, msn: next.msn });
            }
        }
    }

    /// Asks for the poll [`Engine::reload_early`] put off, once its time has come.
    pub(crate) fn reload_due(&mut self, now: Millis) {
        if let Some((id, at)) = self.reload_at
            && at <= now
        {
            self.reload_at = None;
            self.outputs.push_back(Output::ReloadPlaylist { rendition: id.rendition, msn: id.msn });
        }
    }

    /// The wait per seeding rank for a new segment of `duration_ms`, in ms: `seed_grace_ms`,
    /// or, where the designated seeder polls the playlist ([`Engine::reload_early`]), the poll
    /// interval ([`playlist_poll_interval_ms`]) plus [`POLL_SLACK_MS`], whichever is longer. The designated seeder sees a segment up to
    /// one poll interval and a CDN round trip after its publication, and its transfer is
    /// announced one more round trip later; a neighbour whose player reloaded just after the
    /// publication must not take its turn in between. With 6 s segments the interval is 750 ms:
    /// with a 500 ms grace the second in line fetched the segment 2–12 ms before the designated
    /// seeder did, segment after segment (simulator, N = 4, seed 3: 6 duplicate seeds).
    pub(crate) fn seed_grace(&self, now: Millis, id: SegmentId, duration_ms: u64) -> Millis {
        let grace = self.config.seed_grace_ms;
        if !self.config.early_reload || !self.full_mesh(now, id.rendition) {
            return grace;
        }
        grace.max(playlist_poll_interval_ms(duration_ms).saturating_add(POLL_SLACK_MS))
    }

    /// Whether to ask the tracker again only to refresh its count of the swarm: we were a full
    /// mesh by the last count, and it is half its trust time old. (Below `max_peers` the engine
    /// asks every `peer_request_interval_ms` anyway; a full mesh of more viewers would not.)
    pub(crate) fn swarm_count_wanted(&mut self, now: Millis) -> bool {
        let Some(at) = self.meshed_by_count() else { return false };
        let half = SWARM_COUNT_TTL_MS / 2;
        let wanted = self.config.early_reload
            && now.saturating_sub(at) >= half
            && self.swarm_count_asked.is_none_or(|asked| now.saturating_sub(asked) >= half);
        if wanted {
            self.swarm_count_asked = Some(now);
        }
        wanted
    }

    /// When [`Engine::swarm_count_wanted`] may next say yes, while we are a full mesh by the
    /// last count.
    pub(crate) fn swarm_count_timer(&self) -> Option<Millis> {
        let at = self.meshed_by_count().filter(|_| self.config.early_reload)?;
        let half = SWARM_COUNT_TTL_MS / 2;
        let next = at.saturating_add(half).max(self.swarm_count_asked.map_or(0, |asked| asked.saturating_add(half)));
        Some(next.max(self.now.saturating_add(1)))
    }

    /// Whether every other viewer of the swarm (by the tracker's recent count) is connected to
    /// us, and at least one of them plays `rendition`.
    fn full_mesh(&self, now: Millis, rendition: u32) -> bool {
        self.meshed(now) && self.peers.in_rendition(rendition).next().is_some()
    }

    /// Whether every other viewer of the swarm (by the tracker's count, at most
    /// [`SWARM_COUNT_TTL_MS`] old) is connected to us, and there is at least one.
    pub(crate) fn meshed(&self, now: Millis) -> bool {
        let fresh = self.meshed_by_count().is_some_and(|at| now.saturating_sub(at) <= SWARM_COUNT_TTL_MS);
        fresh && self.swarm_peers.is_some_and(|(swarm, _)| swarm >= 2)
    }

    /// When the tracker's last count came, if it says every other viewer of the swarm is
    /// connected to us.
    fn meshed_by_count(&self) -> Option<Millis> {
        let (swarm, at) = self.swarm_peers?;
        // Asked after every input: in a large swarm, fewer peers than the swarm are even known,
        // and the count of the connected ones is not needed.
        let known = u32::try_from(self.peers.known()).unwrap_or(u32::MAX);
        if known.saturating_add(1) < swarm {
            return None;
        }
        let connected = u32::try_from(self.peers.connected().count()).unwrap_or(u32::MAX);
        (connected.saturating_add(1) >= swarm).then_some(at)
    }
}
