//! Scenario tests of the whole engine, one behaviour each, with helpers to build inputs and
//! read outputs.

mod download;
mod integrity;
mod peering;
mod reload;
mod seeding;
mod split;
mod startup;
mod upload;

use std::ops::Range;

use protocol::peer::Message;
use protocol::{PeerId, SegmentId};

use crate::{Config, Engine, Input, Millis, Output, SegmentInfo, rank};

pub(crate) fn pid(name: &str) -> PeerId {
    name.parse().unwrap()
}

pub(crate) fn id(msn: u64) -> SegmentId {
    SegmentId { rendition: 0, msn }
}

pub(crate) fn info(msn: u64) -> SegmentInfo {
    SegmentInfo {
        msn,
        start_ms: msn * 2_000,
        duration_ms: 2_000,
        url: format!("https://cdn.test/r0/{msn}.ts"),
        byte_len: None,
    }
}

/// The media playlist of rendition 0 with segments `msns`.
pub(crate) fn playlist(msns: Range<u64>) -> Input {
    Input::Playlist { rendition: 0, segments: msns.map(info).collect() }
}

/// Deterministic content of segment `msn`.
pub(crate) fn body(msn: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 31 + msn * 7) as u8).collect()
}

pub(crate) fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
}

/// The messages `outputs` sends to `peer`, decoded.
pub(crate) fn sent_to(outputs: &[Output], peer: &PeerId) -> Vec<Message> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::SendToPeer { peer: p, bytes } if p == peer => Some(Message::decode(bytes).unwrap()),
            _ => None,
        })
        .collect()
}

/// The requests among `messages`, as (segment, request id, offset).
pub(crate) fn requests(messages: &[Message]) -> Vec<(SegmentId, u32, u64)> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Request { id, request_id, offset, .. } => Some((*id, *request_id, *offset)),
            _ => None,
        })
        .collect()
}

/// The HTTP fetches among `outputs`, as (segment, range start).
pub(crate) fn fetches(outputs: &[Output]) -> Vec<(SegmentId, u64)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::FetchHttp { id, range_start, .. } => Some((*id, *range_start)),
            _ => None,
        })
        .collect()
}

pub(crate) fn delivered(outputs: &[Output]) -> Vec<(SegmentId, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Deliver { id, bytes } => Some((*id, bytes.clone())),
            _ => None,
        })
        .collect()
}

pub(crate) fn have(complete: &[u64], fetching: &[u64]) -> Vec<u8> {
    Message::Have {
        segments: complete.iter().map(|&m| id(m)).collect(),
        fetching: fetching.iter().map(|&m| id(m)).collect(),
    }
    .encode()
}

pub(crate) fn chunk(msn: u64, request_id: u32, offset: u64, total_len: u64, data: &[u8]) -> Vec<u8> {
    Message::Chunk { id: id(msn), request_id, offset, total_len, data: data.to_vec() }.encode()
}

pub(crate) fn message(peer: &PeerId, bytes: Vec<u8>) -> Input {
    Input::PeerMessage { peer: peer.clone(), bytes }
}

/// An engine for `local` that loaded the playlist of segments 0..5 at time 0 and is connected to
/// `others`, each of which announced it holds segment 0 (so they count in rendition 0's swarm).
pub(crate) fn engine(local: &str, others: &[&str]) -> Engine {
    engine_with(base(), local, others)
}

/// The default settings without the startup wait (`startup.rs` has its own tests): a joiner's
/// first segment comes from the CDN at once unless a peer holds it whole.
pub(crate) fn base() -> Config {
    Config { startup_peer_wait_ms: 0, ..Config::default() }
}

pub(crate) fn engine_with(config: Config, local: &str, others: &[&str]) -> Engine {
    let mut e = Engine::new(config, pid(local));
    e.handle_input(0, playlist(0..5));
    for other in others {
        e.handle_input(0, Input::PeerConnected { peer: pid(other) });
        e.handle_input(0, message(&pid(other), have(&[0], &[])));
    }
    drain(&mut e);
    e
}

/// Feeds the same input to `e` and returns its outputs.
pub(crate) fn feed(e: &mut Engine, now: Millis, input: Input) -> Vec<Output> {
    e.handle_input(now, input);
    drain(e)
}

/// Names among `names` in seeding order for segment `msn` (the first is the seeder).
pub(crate) fn seeding_order<'a>(names: &[&'a str], msn: u64) -> Vec<&'a str> {
    let ids: Vec<PeerId> = names.iter().map(|n| pid(n)).collect();
    let mut order = names.to_vec();
    let quiet = rank::Seeder::default();
    order.sort_by_key(|n| rank::rank((&pid(n), quiet), ids.iter().map(|p| (p, quiet)), id(msn)));
    order
}
