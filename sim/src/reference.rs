//! A reference scheduler without P2P: every segment the player asks for comes from the CDN.
//!
//! It is the "no P2P" row of a comparison (offload 0, one CDN request per viewer and segment)
//! and the smallest example of a [`Scheduler`] other than the engine.

use std::collections::{BTreeMap, VecDeque};

use engine::{Input, Millis, Output, Stats};
use protocol::SegmentId;

use crate::Scheduler;

/// Fetches what the player asks for over HTTP, and nothing else; refuses every peer.
#[derive(Debug, Default)]
pub struct CdnOnly {
    outputs: VecDeque<Output>,
    stats: Stats,
    /// URLs of the last playlist of each rendition, by msn.
    urls: BTreeMap<(u32, u64), String>,
    /// Bytes received so far of each segment being fetched.
    fetching: BTreeMap<SegmentId, Vec<u8>>,
}

impl Scheduler for CdnOnly {
    fn handle_input(&mut self, _now: Millis, input: Input) {
        match input {
            Input::Playlist { rendition, segments } => {
                self.urls.retain(|(r, _), _| *r != rendition);
                self.urls.extend(segments.into_iter().map(|s| ((rendition, s.msn), s.url)));
            }
            Input::PlayerRequest { id } => match self.urls.get(&(id.rendition, id.msn)) {
                Some(url) => {
                    self.fetching.insert(id, Vec::new());
                    self.outputs.push_back(Output::FetchHttp { id, url: url.clone(), range_start: 0 });
                }
                None => self.outputs.push_back(Output::PlayerFailed { id }),
            },
            Input::PlayerAbort { id } => {
                if self.fetching.remove(&id).is_some() {
                    self.outputs.push_back(Output::AbortHttp { id });
                }
            }
            Input::HttpChunk { id, offset, bytes } => {
                if let Some(data) = self.fetching.get_mut(&id).filter(|d| d.len() as u64 == offset) {
                    data.extend_from_slice(&bytes);
                    self.stats.http_bytes += bytes.len() as u64;
                }
            }
            Input::HttpDone { id, total_len } => {
                let Some(bytes) = self.fetching.remove(&id) else { return };
                if bytes.len() as u64 == total_len {
                    self.stats.segments_delivered += 1;
                    self.outputs.push_back(Output::Deliver { id, bytes });
                } else {
                    self.outputs.push_back(Output::PlayerFailed { id });
                }
            }
            Input::HttpFailed { id, .. } => {
                if self.fetching.remove(&id).is_some() {
                    self.outputs.push_back(Output::PlayerFailed { id });
                }
            }
            Input::PeerConnected { peer } => self.outputs.push_back(Output::Disconnect { peer }),
            Input::Playback { .. }
            | Input::PeersDiscovered { .. }
            | Input::SwarmSize { .. }
            | Input::PeerClosed { .. }
            | Input::PeerMessage { .. } => {}
        }
    }

    fn handle_timeout(&mut self, _now: Millis) {}

    fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        None
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use engine::SegmentInfo;

    use super::*;

    #[test]
    fn fetches_what_the_player_asks_for_and_delivers_it_whole() {
        let mut s = CdnOnly::default();
        let id = SegmentId { rendition: 0, msn: 5 };
        let info = SegmentInfo { msn: 5, start_ms: 0, duration_ms: 2_000, url: "u5".into(), byte_len: None };
        s.handle_input(0, Input::Playlist { rendition: 0, segments: vec![info] });
        s.handle_input(0, Input::PlayerRequest { id });
        assert_eq!(s.poll_output(), Some(Output::FetchHttp { id, url: "u5".into(), range_start: 0 }));
        s.handle_input(1, Input::HttpChunk { id, offset: 0, bytes: vec![1, 2] });
        s.handle_input(2, Input::HttpChunk { id, offset: 2, bytes: vec![3] });
        s.handle_input(3, Input::HttpDone { id, total_len: 3 });
        assert_eq!(s.poll_output(), Some(Output::Deliver { id, bytes: vec![1, 2, 3] }));
        assert_eq!(s.stats().http_bytes, 3);
        let unknown = SegmentId { rendition: 0, msn: 9 };
        s.handle_input(4, Input::PlayerRequest { id: unknown });
        assert_eq!(s.poll_output(), Some(Output::PlayerFailed { id: unknown }));
        assert_eq!(s.poll_timeout(), None);
    }
}
