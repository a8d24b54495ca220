//! Sans-IO P2P engine: decides which segment to get from whom and when.
//!
//! One [`Engine`] runs per viewer. It never touches a clock, a socket or the browser: the shell
//! around it (the browser agent, or a simulator) performs every effect and feeds back what
//! happened, stamping each call with the time on its own monotonic clock. So the same inputs
//! always give the same outputs, and a whole swarm can run on a virtual clock in a test.
//!
//! # Run loop
//!
//! ```
//! use swarmcast_engine::{Config, Engine, Input, Output};
//!
//! let mut engine = Engine::new(Config::default(), "me".parse().unwrap());
//! let mut now = 0; // ms on the shell's clock, e.g. performance.now()
//! engine.handle_input(now, Input::PeersDiscovered { peers: vec!["other".parse().unwrap()] });
//! loop {
//!     // 1. Perform everything the engine asks for.
//!     while let Some(output) = engine.poll_output() {
//!         match output {
//!             Output::Connect { peer } => { /* offer through signalling */ }
//!             _ => { /* fetch, send, deliver to the player, … */ }
//!         }
//!     }
//!     // 2. Sleep until the engine's next timer or the next event, whichever comes first,
//!     //    then call `handle_timeout(now)` or `handle_input(now, event)`.
//!     let Some(at) = engine.poll_timeout() else { break };
//!     now = at;
//!     engine.handle_timeout(now);
//! #   if now > 60_000 { break }
//! }
//! ```
//!
//! After every call the engine has settled: outputs are queued and [`Engine::poll_timeout`] is
//! strictly in the future, so a shell that always drains and re-arms one timer never spins.
//!
//! # Decision rules, and why
//!
//! The engine's job is to get every segment the player asks for before the player needs it,
//! taking as many bytes as possible from peers and as few as possible from the CDN.
//!
//! **Peers.** Candidates from the tracker are dialled up to `max_peers`; the tracker is asked
//! again every `peer_request_interval_ms` while there is room. On an open channel we send our
//! `Have` (complete segments, plus the ones we are fetching from the CDN right now), and we
//! broadcast it again whenever it changes, at most once per input, so all changes caused by
//! one event travel as one message. Peers are per content; segment ids carry the rendition, so
//! one connection serves every rendition.
//!
//! **Seeding: one CDN fetch per segment, agreed without talking.** When a new segment appears in
//! the playlist of the rendition being played, every peer ranks itself among the connected peers
//! of that rendition by a fixed hash of (peerId, segment). Peers with the same neighbourhood
//! compute the same order without a message, and the hash spreads the CDN load evenly over
//! segments. The top-ranked peer fetches the segment at once, before its player asks
//! (prefetch), and announces it as `fetching`. The others wait for a `Have`: someone fetching
//! is as good as someone holding it. If nobody announces it, a peer of rank `r` fetches it itself
//! after one playlist reload period plus `r × seed_grace_ms`: the reload period covers a seeder
//! that loads its playlist up to that much later than we do, and the rank-proportional grace
//! makes the next in line take over from a seeder that has gone, one at a time. Segments that
//! were already published when we arrived are not seeded; peers hold them already.
//!
//! **Deadlines: playback never waits for the swarm.** A segment the player asked for is due at
//! `now + (segment start − playhead) / rate − deadline_margin_ms`. Until then, the engine prefers
//! a peer that holds it complete, then waits for one that fetches it. At the deadline, or at once
//! if nobody holds it, fetches it, or will seed it, it goes to the CDN. Before playback starts
//! (no report yet, or rate 0) there is no deadline and startup time is what the viewer sees, so
//! a request is served from a peer only if one holds it complete, else from the CDN at once.
//!
//! **Transfers resume.** Both the CDN and peers send a segment in order, so the bytes held are
//! always a prefix. A peer download is given up when the peer answers `Absent`, closes, or sends
//! nothing for `p2p_idle_timeout_ms`; the next source (another holder, chosen at random with the
//! seeded RNG, or the CDN with a `Range` request) resumes from the received offset.
//!
//! **Integrity.** A peer whose announced size disagrees with the playlist's byte length (or with
//! an earlier source's) has a different segment: its bytes are dropped, the segment is
//! refetched from the CDN from byte 0, and the peer is disconnected.
//!
//! **Upload.** A `Request` for a complete segment is answered at once with the rest of the
//! segment in chunks of at most `max_message_bytes` (the shell paces sending with the data
//! channel's buffered amount); anything else gets `Absent`. A peer that does not upload
//! announces nothing and ranks itself last, so nobody waits for it.
//!
//! **Bounded memory.** Segments that left the live window more than `keep_behind_window`
//! segments ago are forgotten (lagging peers may still want them), and at most
//! `max_stored_segments` are kept in all. Peer messages are size-checked by
//! [`protocol::peer::Message::decode`]; a peer that sends garbage is disconnected.
//!
//! **Determinism.** No clock, no OS randomness (the RNG is seeded with `Config::seed` and the
//! local peerId), and only ordered maps, so iteration order never leaks into decisions.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod engine;
mod estimate;
mod integrity;
mod io;
mod peers;
mod playback;
mod playlist;
mod rank;
mod scheduler;
mod segments;
#[cfg(test)]
mod tests;
mod transfer;
mod upload;

pub use config::Config;
pub use engine::Engine;
pub use io::{Input, Millis, Output, SegmentInfo, Source, Stats};
