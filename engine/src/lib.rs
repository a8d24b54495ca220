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
//! The engine's job is to get every segment the player needs before the player needs it,
//! taking as many bytes as possible from peers and as few as possible from the CDN, at the
//! latency the player chose (hls.js `liveSyncDurationCount` 3: a new segment appears about two
//! segment durations before it plays). `docs/engine.md` has the design notes and measurements.
//!
//! **Deadlines, not windows.** Every needed segment has a deadline: when the playhead reaches
//! it (extrapolated from the last playback report) minus `deadline_margin_ms`. It is *due* at
//! the CDN when the deadline minus the measured time an HTTP fetch of its missing bytes takes
//! has come (`estimate.rs`: time to first byte plus twice its deviation, the body at the measured
//! throughput, times a correction that rises at once when a fetch took longer than estimated).
//! Until then it comes from peers; at that moment it goes to the CDN, resuming from the bytes
//! held (`Range`). A peer transfer whose measured speed would end after the deadline while the
//! CDN could still make it is given up early; one that sends nothing for `p2p_idle_timeout_ms`
//! is retried later. Before playback starts startup time is what the viewer sees: a joiner's
//! first segment has a startup deadline instead (`startup.rs`): it comes from peers until
//! `startup_peer_wait_ms` after the player asked, then the CDN fetches what is missing; after
//! that (a stall before the first frame) a requested segment comes from a peer only if one
//! holds it whole, else from the CDN at once.
//!
//! **Seeding: about one CDN fetch per segment, by a peer that can pass it on.** A new segment of
//! the played rendition (newer than our first playlist) is fetched ahead of the player. If a
//! connected peer announced it (held, or being received), it is requested from that peer. If
//! nobody did, a peer of seeding rank `r` fetches it from the CDN `r` graces after it first saw
//! it: `seed_grace_ms`, or in a full mesh, where the top-ranked peer polls the playlist for the
//! segment, that poll's interval plus 300 ms when longer (`reload.rs`). The rank puts first a
//! peer that plays at the live edge (it fetches each new segment on sight whatever the rank
//! says), then orders the connected peers of the rendition
//! by the copies of the stream their measured uplink carries, as each announced it (`Uplink`, 0
//! until measured), then by a fixed hash of (peerId, segment), so neighbours agree on it, the best uplinks seed
//! and the load spreads over segments; peers whose measured uplink cannot carry two copies per
//! segment duration rank last and, like a peer that announces nothing (no upload, or an uplink
//! slower than the stream), wait one more segment duration. Whoever fetches announces it at once, so the others wait
//! for it instead of fetching it too.
//!
//! **The seeder sees the segment when it is published.** The player reloads its playlist once
//! per target duration at a phase of its own, so a peer lists a new segment 0 to 1 target
//! duration after its publication. In a full mesh (the tracker's count of the swarm,
//! [`Input::SwarmSize`], equals our neighbours plus us), the designated seeder of the segment
//! after our newest asks the shell to poll the playlist until it lists it
//! ([`Output::ReloadPlaylist`], `reload.rs`); exactly one peer polls, as every peer computes the
//! same rank. In a partial mesh every neighbourhood's top-ranked peer would then fetch at the
//! same moment, so it is not done there.
//!
//! **Chunk relay.** Announcements (`Have`) list complete segments and segments being received;
//! a peer that receives a segment relays it: a request is answered with the bytes held, and
//! every byte that arrives later is passed on at once (`upload.rs`), so a segment crosses the
//! swarm as a pipeline. `HaveChunk` says bytes are flowing; requesters prefer such relays, and a
//! relay without bytes yet answers `Absent` so the requester asks again shortly instead of
//! waiting on a stuck chain. Peers also learn of new segments from each other's announcements
//! (up to `prefetch_ahead_segments` past their own playlist) and fetch them from those peers
//! before their own playlist lists them.
//!
//! **Two peers per segment.** A peer transfer projected to miss its deadline is split when
//! another peer holds the segment: the running request becomes the head, the other peer sends
//! the tail, which is appended when the prefix reaches it (`split.rs`). Only the prefix
//! is announced and relayed; if a part stalls, the other peer or the CDN takes the rest.
//!
//! **Upload gating.** The shell reports the uplink's measured speed and backlog. A request is
//! served only if the uplink, after what it already owes, delivers it before the requester's
//! deadline (carried in the request) and within `upload_budget_pct` of a segment duration when
//! busy; requesters that do not relay (they announce nothing or proved slow) are served when
//! the uplink is idle or their deadline is near. A refused requester asks again 250 ms later or
//! another peer, so a segment spreads as a tree instead of starving its seeder. A peer whose
//! uplink is slower than the stream announces nothing and serves nobody.
//!
//! **Integrity.** Without digests, CDN bytes are trusted and a peer whose announced size
//! disagrees with the playlist's or an earlier source's is banned and the segment refetched.
//! With the origin's digests ([`Engine::handle_digests`]), a segment holding any peer byte is
//! checked with SHA-256 when complete: a mismatch drops it and refetches it from the CDN; a
//! single peer source is banned at once, and of several, those whose bytes differ from the
//! trusted copy once it is in (`integrity.rs`). Peer bytes are relayed only once checked.
//!
//! **Bounded memory.** Segments that left the live window more than `keep_behind_window`
//! segments ago are forgotten, at most `max_stored_segments` are kept, every per-peer and
//! per-segment list is capped, and peer messages are size-checked by
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
mod reload;
mod scheduler;
mod segments;
mod split;
mod startup;
#[cfg(test)]
mod tests;
mod transfer;
mod upload;

pub use config::Config;
pub use engine::Engine;
pub use io::{CdnReason, Input, Millis, Output, SegmentInfo, Source, Stats};
pub use reload::playlist_poll_interval_ms;
