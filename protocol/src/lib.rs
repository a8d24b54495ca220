//! Wire types for every conversation in Swarmcast.
//!
//! Both sides of each conversation use these same types: the browser agent (`client-wasm`),
//! the servers, the simulator and the load generators. Nothing here does IO.
//!
//! | module | conversation | encoding |
//! |---|---|---|
//! | [`api`] | agent ↔ distributor, tracker, analytics (ARCHITECTURE.md §3) | JSON over HTTPS |
//! | [`signal`] | agent ↔ signalling server (SDP offer/answer, ICE candidates) | JSON text frames over a websocket |
//! | [`peer`] | agent ↔ agent over a WebRTC data channel | binary, see [`peer::Message`] |
//! | [`token`] | tokens minted by the tracker, checked by signalling | HMAC-SHA256, base64url |
//! | [`access`] | CDN access tokens minted by the distributor, checked by edges | HMAC-SHA256, EdgeAuth-style text |
//! | [`intro`] | the tracker's introductions, carried by the agent to signalling | HMAC-SHA256, base64url |
//! | [`webtorrent`] | WebTorrent clients (p2p-media-loader) ↔ the tracker's `/announce` websocket | JSON text frames |
//!
//! Every decoder bounds what it reads: see the `MAX_*` constants next to each type.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod access;
pub mod api;
mod ids;
pub mod intro;
pub mod peer;
pub mod signal;
pub mod token;
#[cfg(feature = "webtorrent")]
pub mod webtorrent;

pub use ids::{IdError, PeerId, SegmentId, SwarmId};

/// Version of the agent ↔ server protocol. Bumped on any incompatible change of [`api`] or [`signal`].
pub const PROTOCOL_VERSION: u32 = 1;
