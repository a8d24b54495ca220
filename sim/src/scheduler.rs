//! What the simulator drives: any sans-IO scheduler with the engine's interface.
//!
//! The simulator only talks to a viewer's scheduler through this trait, with the engine's own
//! input and output types, so another algorithm (a baseline to compare against) runs on the very
//! same swarms, links and seeds.

use engine::{CdnReason, Engine, Input, Millis, Output, Stats};
use protocol::SegmentId;

/// A per-viewer P2P scheduler driven by inputs stamped with the time, polled for outputs and
/// for its next timer (the contract of [`engine::Engine`]).
pub trait Scheduler {
    /// Feeds one input at `now` (ms).
    fn handle_input(&mut self, now: Millis, input: Input);
    /// The time asked for by [`Scheduler::poll_timeout`] has come (`now`, ms).
    fn handle_timeout(&mut self, now: Millis);
    /// The next thing to do, if any.
    fn poll_output(&mut self) -> Option<Output>;
    /// When the scheduler next wants [`Scheduler::handle_timeout`], in ms; must be after the
    /// time of the last call.
    fn poll_timeout(&self) -> Option<Millis>;
    /// Byte counters since creation, in the bytes the scheduler saw.
    fn stats(&self) -> Stats;
    /// What the shell measured of the uplink at `now`: throughput while sending (bytes/s, 0 if
    /// not measured yet) and bytes queued for peers and not sent. Ignored by default.
    fn handle_uplink(&mut self, now: Millis, bytes_per_s: u64, queued_bytes: u64) {
        let _ = (now, bytes_per_s, queued_bytes);
    }
    /// Why the CDN fetch of `id` under way was started, when the scheduler says. `None` by default.
    fn fetch_reason(&self, id: SegmentId) -> Option<CdnReason> {
        let _ = id;
        None
    }
}

impl Scheduler for Engine {
    fn handle_input(&mut self, now: Millis, input: Input) {
        Engine::handle_input(self, now, input);
    }

    fn handle_timeout(&mut self, now: Millis) {
        Engine::handle_timeout(self, now);
    }

    fn poll_output(&mut self) -> Option<Output> {
        Engine::poll_output(self)
    }

    fn poll_timeout(&self) -> Option<Millis> {
        Engine::poll_timeout(self)
    }

    fn stats(&self) -> Stats {
        Engine::stats(self).clone()
    }

    fn handle_uplink(&mut self, now: Millis, bytes_per_s: u64, queued_bytes: u64) {
        Engine::handle_uplink(self, now, bytes_per_s, queued_bytes);
    }

    fn fetch_reason(&self, id: SegmentId) -> Option<CdnReason> {
        Engine::fetch_reason(self, id)
    }
}
