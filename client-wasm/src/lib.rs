//! Browser agent: drives the engine with fetch, WebRTC data channels, WebSocket and timers.
//!
//! This crate only does IO; every decision (which segment from whom, when to fall back to
//! HTTP, whom to connect to) is the engine's. The page talks to one [`Agent`]:
//!
//! ```text
//! const agent = new Agent({ customer, content, distributor_url, p2p: true });
//! agent.start();                                   // config → init → signalling, in the background
//! agent.playlist(level, [{ msn, start_ms, duration_ms, url }, ...]);   // on every playlist load
//! agent.pathways([{ id: 'cdn-a', url: 'https://a.example/live/360p.m3u8' }, ...]); // steering
//! agent.playback(position_ms, rate, buffered_end_ms);                  // ~4×/s
//! const bytes = await agent.load(level, msn);      // Uint8Array of the whole segment
//! ```
//!
//! Until `start()` has reached the tracker, segments are fetched straight over HTTP, so a slow
//! or dead control plane never delays playback. Then the engine takes over: with a tracker
//! peerId and P2P (`mode: "p2p"`), or alone over HTTP (`mode: "cdn"`) when the distributor is
//! unreachable, P2P is off, or `init` failed.
//!
//! Modules: [`driver`] (the engine loop and player requests), [`session`] (distributor,
//! tracker, analytics), [`signalling`] (websocket), [`peer`] (RTCPeerConnection + data
//! channels), [`http`] (fetch), [`downloads`] (segment downloads), [`pathways`] (CDN failover),
//! [`reload`] (early playlist reloads), [`wire`] (pure helpers), [`js`] (clock, timers).
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod digests;
mod downloads;
mod driver;
mod http;
mod js;
mod outbox;
mod pathways;
mod peer;
mod reload;
mod sdp;
mod session;
mod signalling;
mod vec_map;
mod wire;

/// The agent's parsers of network input, for the fuzz targets in `fuzz/`; not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::reload::{PlaylistError, window as media_playlist_window};
}

use engine::Input;
use js_sys::Promise;
use protocol::SegmentId;
use wasm_bindgen::prelude::*;

use crate::driver::{Mode, ShellRef};

/// The Swarmcast agent of one player: hands the player segments from peers or the CDN.
#[wasm_bindgen]
pub struct Agent {
    shell: ShellRef,
}

#[wasm_bindgen]
impl Agent {
    /// Creates an agent from `{ customer, content, distributor_url, p2p?, http_timeout_ms?,
    /// report_interval_ms?, debug? }`. Nothing is fetched before [`Agent::start`].
    ///
    /// # Errors
    /// When `options` is not such an object.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<Agent, JsError> {
        let json = stringify(&options)?;
        let options = wire::parse_options(&json).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Self { shell: driver::Shell::new(options) })
    }

    /// Sets up the P2P session in the background: distributor config, tracker init, signalling.
    /// Resolves to the mode reached, `"p2p"` or `"cdn"`; never rejects. Call once.
    pub fn start(&self) -> Promise {
        let shell = self.shell.clone();
        wasm_bindgen_futures::future_to_promise(async move { Ok(JsValue::from_str(session::start(shell).await)) })
    }

    /// Gives the live window of `rendition` (the level index): an array of
    /// `{ msn, start_ms, duration_ms, url, byte_len? }`, times in ms on the media timeline.
    /// With the media playlist's URL, the origin's digests published beside it are fetched and
    /// checked, and segments from peers are verified against them; and when the engine asks for
    /// an early reload (it seeds the next segment), the agent polls that URL until it lists it.
    ///
    /// # Errors
    /// When `segments` is not such an array (or is over 1 MiB of JSON).
    pub fn playlist(&self, rendition: u32, segments: JsValue, playlist_url: Option<String>) -> Result<(), JsError> {
        let json = stringify(&segments)?;
        let segments = wire::parse_segments(&json).map_err(|e| JsError::new(&e.to_string()))?;
        if let Some(url) = &playlist_url {
            self.shell.borrow_mut().reloads.set_url(rendition, url);
        }
        driver::playlist(&self.shell, rendition, segments);
        if let Some(url) = playlist_url {
            digests::refresh(&self.shell, rendition, &url);
        }
        Ok(())
    }

    /// Gives the CDN pathways of the stream in priority order: an array of `{ id, url }`, the
    /// `PATHWAY-ID` and one variant playlist URL on that pathway, whose directory is the
    /// pathway's base (content steering, draft-pantos-hls-rfc8216bis §4.4.6.6). A segment download that fails on one pathway with
    /// no response or a 5xx resumes at once on the next, and that pathway is avoided for 30 s.
    /// At most 16 pathways are kept.
    ///
    /// # Errors
    /// When `pathways` is not such an array (or is over 64 KiB of JSON).
    pub fn pathways(&self, pathways: JsValue) -> Result<(), JsError> {
        let json = stringify(&pathways)?;
        let list = wire::parse_pathways(&json).map_err(|e| JsError::new(&e.to_string()))?;
        self.shell.borrow_mut().pathways.set(list);
        Ok(())
    }

    /// Tells where playback is: playhead and end of its buffered range in ms on the media
    /// timeline, and the rate (0 when paused).
    pub fn playback(&self, position_ms: f64, rate: f64, buffered_end_ms: f64) {
        let position_ms = wire::to_u64(position_ms).unwrap_or(0);
        let buffered_end_ms = wire::to_u64(buffered_end_ms).unwrap_or(position_ms).max(position_ms);
        let rate = if rate.is_finite() && rate >= 0.0 { rate } else { 0.0 };
        driver::playback(&self.shell, Input::Playback { position_ms, rate, buffered_end_ms });
    }

    /// Asks for segment `msn` of `rendition`. Resolves with its bytes (a fresh `Uint8Array`
    /// the caller owns), rejects when no source has it or on [`Agent::abort`].
    pub fn load(&self, rendition: u32, msn: f64) -> Promise {
        let Some(msn) = wire::to_u64(msn) else {
            return Promise::reject(&http::js_error("bad media sequence number"));
        };
        driver::load(&self.shell, SegmentId { rendition, msn })
    }

    /// Cancels [`Agent::load`] of that segment.
    pub fn abort(&self, rendition: u32, msn: f64) {
        if let Some(msn) = wire::to_u64(msn) {
            driver::abort(&self.shell, SegmentId { rendition, msn });
        }
    }

    /// Counts a playback stall (the page saw `waiting` after playback had started).
    pub fn stall(&self) {
        let mut s = self.shell.borrow_mut();
        s.counters.stalls = s.counters.stalls.saturating_add(1);
    }

    /// Returns `{ httpBytes, p2pDownBytes, p2pUpBytes, peers, peerId, rendition,
    /// segmentsDelivered, stalls, bandwidthBps, mode, playlistPolls, uplinkStreams, liveEdge,
    /// cdnBytesByReason }` (bytes of segment payload since start; `playlistPolls` counts the media
    /// playlist loads the agent made itself for early reloads; `uplinkStreams` and `liveEdge` are
    /// what the engine last announced to peers as a seeder; `cdnBytesByReason` splits the engine's CDN bytes by why they came
    /// from the CDN: `startup_alone`, `startup`, `seed`, `deadline_busy`, `deadline_alone`,
    /// `retry`, `churn`, `other`).
    pub fn stats(&self) -> JsValue {
        let s = self.shell.borrow();
        let counters = s.counters();
        let peer_id = s.session.as_ref().map(|x| x.peer_id.as_str());
        let json = wire::stats_json(&counters, peer_id, s.mode.name());
        js_sys::JSON::parse(&json).unwrap_or(JsValue::NULL)
    }

    /// Sends the final usage report now (with `keepalive`); resolves when it is sent or failed.
    pub fn flush(&self) -> Promise {
        let Some(send) = session::send_report(&self.shell, true) else {
            return Promise::resolve(&JsValue::UNDEFINED);
        };
        wasm_bindgen_futures::future_to_promise(async move {
            send.await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stops everything: downloads, peer connections, signalling, reports. Pending loads reject.
    pub fn destroy(&self) {
        if self.shell.borrow().mode != Mode::Destroyed {
            driver::destroy(&self.shell);
        }
    }
}

fn stringify(value: &JsValue) -> Result<String, JsError> {
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| JsError::new("expected a JSON-serializable value"))
}
