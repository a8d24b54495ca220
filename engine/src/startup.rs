//! A joiner's first segment: from peers when they can bring it within a bounded wait.
//!
//! Before the first frame, every ms the viewer waits is startup time, and a joiner has no data
//! channel open when its player asks for the first segment (tracker answer, then 0.3–2 s of
//! signalling and ICE). Fetching it from the CDN at once costs one segment of CDN bytes per
//! session: with 6 s segments and 10 % of viewers replaced per minute, about 2 % of all bytes.
//!
//! With [`crate::Config::startup_peer_wait_ms`] = W > 0, the first segment the player asks for
//! (before anything was delivered) gets a startup deadline instead of a playback one: it is
//! *due* at the CDN at `first request + W`. Until then it is asked of a peer as soon as one
//! announces it (held, or being received and relayed), and the usual machinery applies: a
//! refused request is retried, a late transfer is split across two peers, and at the due time
//! whatever is missing comes from the CDN, resuming from the bytes held (`Range`). Startup thus
//! takes at most W plus one CDN fetch. The request carries the time left until the startup
//! deadline (the due time plus the CDN's time for the missing bytes), so a peer that cannot
//! send it in time refuses at once.
//!
//! No wait when the tracker answered with no candidate (nobody to wait for), and none after the
//! first delivery: a stall is not a startup, and its segment comes from the fastest sure source.

use crate::segments::Segment;
use crate::{Engine, Millis};

impl Engine {
    /// When the startup wait for `seg` ends (it is due at the CDN then), if it applies: the
    /// player waits for `seg`, nothing was delivered yet, playback has not started and peers
    /// may still show up.
    pub(crate) fn startup_due(&self, seg: &Segment) -> Option<Millis> {
        let wait = self.config.startup_peer_wait_ms;
        let first = self.stats.segments_delivered == 0 && !self.playback.playing();
        if wait == 0 || !first || !seg.wanted || self.peers.alone() {
            return None;
        }
        Some(self.startup_since?.saturating_add(wait))
    }

    /// The startup deadline of `seg`: its due time plus the CDN's time for its missing bytes.
    pub(crate) fn startup_deadline(&self, seg: &Segment) -> Option<Millis> {
        let due = self.startup_due(seg)?;
        let missing = self.size_of(seg).saturating_sub(seg.data.len() as u64);
        Some(due.saturating_add(self.http.time_ms(missing)))
    }
}
