//! The engine state machine.
//!
//! This first version fetches everything the player asks for over HTTP; the P2P scheduler
//! replaces its body behind the same interface.

use std::collections::{BTreeMap, HashMap, VecDeque};

use protocol::{PeerId, SegmentId};

use crate::{Config, Input, Millis, Output, SegmentInfo, Stats};

/// The P2P engine of one agent (one viewer of one content).
#[derive(Debug)]
pub struct Engine {
    config: Config,
    local: PeerId,
    outputs: VecDeque<Output>,
    segments: HashMap<u32, BTreeMap<u64, SegmentInfo>>,
    downloads: HashMap<SegmentId, Vec<u8>>,
    stats: Stats,
}

impl Engine {
    /// Creates the engine of the peer `local`.
    pub fn new(config: Config, local: PeerId) -> Self {
        Self {
            config,
            local,
            outputs: VecDeque::new(),
            segments: HashMap::new(),
            downloads: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// This peer's id.
    pub fn local(&self) -> &PeerId {
        &self.local
    }

    /// The settings the engine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds one input at time `now`.
    pub fn handle_input(&mut self, _now: Millis, input: Input) {
        match input {
            Input::Playlist { rendition, segments } => {
                let window = self.segments.entry(rendition).or_default();
                for s in segments {
                    window.insert(s.msn, s);
                }
            }
            Input::PlayerRequest { id } => {
                let Some(info) = self.segments.get(&id.rendition).and_then(|w| w.get(&id.msn)) else {
                    self.outputs.push_back(Output::PlayerFailed { id });
                    return;
                };
                self.downloads.insert(id, Vec::new());
                self.outputs.push_back(Output::FetchHttp { id, url: info.url.clone(), range_start: 0 });
            }
            Input::PlayerAbort { id } => {
                if self.downloads.remove(&id).is_some() {
                    self.outputs.push_back(Output::AbortHttp { id });
                }
            }
            Input::HttpChunk { id, bytes, .. } => {
                if let Some(buf) = self.downloads.get_mut(&id) {
                    self.stats.http_bytes += bytes.len() as u64;
                    buf.extend_from_slice(&bytes);
                }
            }
            Input::HttpDone { id, .. } => {
                if let Some(bytes) = self.downloads.remove(&id) {
                    self.stats.segments_delivered += 1;
                    self.outputs.push_back(Output::Deliver { id, bytes });
                }
            }
            Input::HttpFailed { id, .. } => {
                if self.downloads.remove(&id).is_some() {
                    self.outputs.push_back(Output::PlayerFailed { id });
                }
            }
            Input::Playback { .. }
            | Input::PeersDiscovered { .. }
            | Input::PeerConnected { .. }
            | Input::PeerClosed { .. }
            | Input::PeerMessage { .. } => {}
        }
    }

    /// Tells the engine that the time it asked for in [`Engine::poll_timeout`] has come.
    pub fn handle_timeout(&mut self, _now: Millis) {}

    /// Returns the next thing the shell must do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Returns when the engine next wants [`Engine::handle_timeout`], if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Millis> {
        None
    }

    /// Counters since the engine was created.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}
