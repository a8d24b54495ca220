//! The network between viewers: access links with an uplink and a downlink, and data channels.
//!
//! Each viewer has an uplink and a downlink rate (bytes/s) and a one-way access latency. A data
//! channel message leaves through the sender's uplink one message at a time: in order within a
//! channel (data channels are ordered), and round-robin across the channels that have something
//! to send, which is how separate peer connections, each with its own congestion control,
//! roughly share an uplink. It then crosses the receiver's downlink, which is shared with its
//! HTTP fetches, and arrives one path latency after it has fully crossed both. Bandwidth is
//! spent per message, never per byte.
//!
//! The downlink is modelled as a fluid FIFO: each transfer consumes `size / rate` of it, but a
//! message that trickles in from a slow uplink does not hold it for its whole duration.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use protocol::SegmentId;

use crate::clock::{Micros, transfer_us};

/// One viewer's access link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Endpoint {
    /// Uplink rate, in bytes/s.
    pub up_bytes_per_s: f64,
    /// Downlink rate, in bytes/s.
    pub down_bytes_per_s: f64,
    /// One-way access latency, in µs.
    pub access_latency_us: Micros,
    /// Region, for the inter-region delay and locality matching.
    pub region: u16,
}

/// A message waiting for the sender's uplink.
#[derive(Debug)]
struct Frame {
    to: usize,
    link: u64,
    wire: u64,
    payload: u64,
    bytes: Vec<u8>,
}

#[derive(Debug)]
struct Node {
    endpoint: Endpoint,
    /// Messages waiting, per receiver, with their wire size in all (real bytes).
    queues: Vec<(usize, VecDeque<Frame>, u64)>,
    /// Receivers with messages waiting, in round-robin order.
    ring: VecDeque<usize>,
    /// Whether a message is on the uplink right now.
    busy: bool,
    /// When the downlink has carried everything reserved on it so far.
    down_free: Micros,
    /// Viewers with an open data channel to this one.
    links: Vec<usize>,
    /// Real bytes put on the uplink so far.
    sent: u64,
}

/// A message put on the wire: the shell schedules the uplink's next turn at `tx_end` and the
/// delivery at `arrive`.
#[derive(Debug)]
pub struct Transmit {
    /// When the message has left the sender's uplink.
    pub tx_end: Micros,
    /// When it is delivered to the receiver.
    pub arrive: Micros,
    /// Receiver.
    pub to: usize,
    /// The data channel it travels on (its generation; a closed channel delivers nothing).
    pub link: u64,
    /// Segment payload it carries, in real bytes (0 for control messages).
    pub payload: u64,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Every viewer's access link and every open data channel.
#[derive(Debug)]
pub struct Net {
    nodes: Vec<Node>,
    /// Open channels by unordered pair, with their generation.
    links: PairMap<u64>,
    next_link: u64,
    inter_region_us: Micros,
    /// Messages dropped because their channel closed before they were sent.
    pub dropped: u64,
    /// Whether control messages (no segment payload) pass the segment data waiting in a queue.
    pub control_first: bool,
}

impl Net {
    /// A network with no viewer yet; crossing regions adds `inter_region_us` one way.
    pub fn new(inter_region_us: Micros) -> Self {
        Self {
            nodes: Vec::new(),
            links: PairMap::default(),
            next_link: 0,
            inter_region_us,
            dropped: 0,
            control_first: false,
        }
    }

    /// Adds a viewer; returns its index.
    pub fn add(&mut self, endpoint: Endpoint) -> usize {
        let node = Node {
            endpoint,
            queues: Vec::new(),
            ring: VecDeque::new(),
            busy: false,
            down_free: 0,
            links: Vec::new(),
            sent: 0,
        };
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The access link of viewer `n`.
    pub fn endpoint(&self, n: usize) -> &Endpoint {
        &self.nodes[n].endpoint
    }

    /// One-way delay between `a` and `b`, in µs.
    pub fn latency(&self, a: usize, b: usize) -> Micros {
        let (ea, eb) = (&self.nodes[a].endpoint, &self.nodes[b].endpoint);
        let cross = if ea.region == eb.region { 0 } else { self.inter_region_us };
        ea.access_latency_us + eb.access_latency_us + cross
    }

    /// Opens the channel between `a` and `b`; returns its generation.
    pub fn open(&mut self, a: usize, b: usize) -> u64 {
        self.next_link += 1;
        if self.links.insert(key(a, b), self.next_link).is_none() {
            self.nodes[a].links.push(b);
            self.nodes[b].links.push(a);
        }
        self.next_link
    }

    /// Closes the channel between `a` and `b`, dropping what waits to cross it; returns whether
    /// it was open.
    pub fn close(&mut self, a: usize, b: usize) -> bool {
        if self.links.remove(&key(a, b)).is_none() {
            return false;
        }
        for (from, to) in [(a, b), (b, a)] {
            let node = &mut self.nodes[from];
            node.links.retain(|&n| n != to);
            node.ring.retain(|&n| n != to);
            if let Some(at) = node.queues.iter().position(|(n, ..)| *n == to) {
                self.dropped += node.queues.swap_remove(at).1.len() as u64;
            }
        }
        true
    }

    /// The generation of the open channel between `a` and `b`.
    pub fn link(&self, a: usize, b: usize) -> Option<u64> {
        self.links.get(&key(a, b)).copied()
    }

    /// Viewers with an open channel to `n`.
    pub fn links_of(&self, n: usize) -> &[usize] {
        &self.nodes[n].links
    }

    /// Queues a message from `from` to `to` (`wire` real bytes, of which `payload` are segment
    /// data); returns it as sent if the uplink was idle. Nothing happens on a closed channel.
    pub fn send(
        &mut self,
        now: Micros,
        from: usize,
        to: usize,
        bytes: Vec<u8>,
        wire: u64,
        payload: u64,
    ) -> Option<Transmit> {
        let Some(link) = self.link(from, to) else {
            self.dropped += 1;
            return None;
        };
        let node = &mut self.nodes[from];
        let frame = Frame { to, link, wire, payload, bytes };
        let control_first = self.control_first;
        match node.queues.iter_mut().find(|(n, ..)| *n == to) {
            Some((_, queue, queued)) => {
                // The browser agent lets control messages pass the segment data it still queues.
                let at = if control_first && payload == 0 {
                    queue.iter().position(|f| f.payload > 0).unwrap_or(queue.len())
                } else {
                    queue.len()
                };
                queue.insert(at, frame);
                *queued += wire;
            }
            None => node.queues.push((to, VecDeque::from([frame]), wire)),
        }
        if !node.ring.contains(&to) {
            node.ring.push_back(to);
        }
        if node.busy { None } else { self.start_next(now, from) }
    }

    /// Real bytes of the messages from `from` to `to` still waiting for the uplink.
    pub fn queued(&self, from: usize, to: usize) -> u64 {
        self.nodes[from].queues.iter().find(|(n, ..)| *n == to).map_or(0, |(_, _, queued)| *queued)
    }

    /// Drops the waiting chunks from `from` to `to` that answer request `request_id` for
    /// segment `id`; returns how many.
    pub fn purge(&mut self, from: usize, to: usize, id: SegmentId, request_id: u32) -> u64 {
        let Some((_, queue, queued)) = self.nodes[from].queues.iter_mut().find(|(n, ..)| *n == to) else { return 0 };
        let before = queue.len();
        queue.retain(|f| {
            let answers = chunk_header(&f.bytes).is_some_and(|h| h.0 == id && h.1 == request_id);
            if answers {
                *queued -= f.wire;
            }
            !answers
        });
        (before - queue.len()) as u64
    }

    /// Real bytes `n` has put on its uplink so far, and real bytes waiting for it now.
    pub fn upload_counters(&self, n: usize) -> (u64, u64) {
        let node = &self.nodes[n];
        (node.sent, node.queues.iter().map(|(_, _, queued)| queued).sum())
    }

    /// `from`'s uplink finished its message; returns the next one as sent, if any.
    pub fn sent(&mut self, now: Micros, from: usize) -> Option<Transmit> {
        self.nodes[from].busy = false;
        self.start_next(now, from)
    }

    /// Forgets what `n` still had to send (it left).
    pub fn clear(&mut self, n: usize) {
        let node = &mut self.nodes[n];
        self.dropped += node.queues.iter().map(|(_, q, _)| q.len() as u64).sum::<u64>();
        node.queues.clear();
        node.ring.clear();
    }

    /// Reserves `to`'s downlink for `wire` bytes of an HTTP response that the server sends at
    /// `cap_bytes_per_s`, starting at `now`; returns when the bytes have arrived.
    pub fn receive_http(&mut self, now: Micros, to: usize, wire: u64, cap_bytes_per_s: f64) -> Micros {
        let node = &mut self.nodes[to];
        node.down_free = node.down_free.max(now) + transfer_us(wire, node.endpoint.down_bytes_per_s);
        node.down_free.max(now + transfer_us(wire, cap_bytes_per_s))
    }

    /// Puts the first message of the next receiver in the round on the uplink.
    fn start_next(&mut self, now: Micros, from: usize) -> Option<Transmit> {
        while let Some(frame) = self.next_frame(from) {
            if self.link(from, frame.to) != Some(frame.link) {
                self.dropped += 1;
                continue;
            }
            let tx_end = now + transfer_us(frame.wire, self.nodes[from].endpoint.up_bytes_per_s);
            let latency = self.latency(from, frame.to);
            let rx = &mut self.nodes[frame.to];
            rx.down_free = rx.down_free.max(now) + transfer_us(frame.wire, rx.endpoint.down_bytes_per_s);
            let arrive = tx_end.max(rx.down_free) + latency;
            self.nodes[from].busy = true;
            self.nodes[from].sent += frame.wire;
            let Frame { to, link, payload, bytes, .. } = frame;
            return Some(Transmit { tx_end, arrive, to, link, payload, bytes });
        }
        None
    }

    /// Takes the next message in round-robin order over the receivers with messages waiting.
    fn next_frame(&mut self, from: usize) -> Option<Frame> {
        let node = &mut self.nodes[from];
        while let Some(to) = node.ring.pop_front() {
            let Some(at) = node.queues.iter().position(|(n, ..)| *n == to) else { continue };
            let (_, queue, queued) = &mut node.queues[at];
            let Some(frame) = queue.pop_front() else { continue };
            *queued -= frame.wire;
            if queue.is_empty() {
                node.queues.swap_remove(at);
            } else {
                node.ring.push_back(to);
            }
            return Some(frame);
        }
        None
    }
}

/// Size of a peer message on the wire and the segment payload it carries, both in real bytes:
/// a chunk's data stands for `byte_scale` times as many bytes; headers and control messages are
/// counted as they are.
pub fn wire_size(bytes: &[u8], byte_scale: u64) -> (u64, u64) {
    let len = bytes.len() as u64;
    match chunk_data_len(bytes) {
        Some(data) => (len - data + data * byte_scale, data * byte_scale),
        None => (len, 0),
    }
}

/// Data length of a `Chunk` message, read from its header without copying the data.
fn chunk_data_len(bytes: &[u8]) -> Option<u64> {
    chunk_header(bytes).map(|h| h.2)
}

/// Segment, request id and data length of a `Chunk` message, read from its header (layout from
/// `protocol::peer`: version, type 3, then six LEB128 varints: rendition, msn, request id,
/// offset, total length, data length).
fn chunk_header(bytes: &[u8]) -> Option<(SegmentId, u32, u64)> {
    if bytes.get(1) != Some(&3) {
        return None;
    }
    let mut rest = bytes.get(2..)?;
    let mut fields = [0u64; 6];
    for field in &mut fields {
        let end = rest.iter().position(|b| b & 0x80 == 0)?;
        *field = rest[..=end].iter().rev().fold(0u64, |acc, b| (acc << 7) | u64::from(b & 0x7f));
        rest = &rest[end + 1..];
    }
    let [rendition, msn, request_id, _, _, len] = fields;
    if len != rest.len() as u64 {
        return None;
    }
    let id = SegmentId { rendition: u32::try_from(rendition).ok()?, msn };
    Some((id, u32::try_from(request_id).ok()?, len))
}

/// A map keyed by unordered viewer pairs, with a fast fixed hash (deterministic, and never
/// iterated, so its order cannot leak into a run).
pub(crate) type PairMap<V> = HashMap<u64, V, BuildHasherDefault<PairHasher>>;

/// Multiplicative hash of one u64 key.
#[derive(Debug, Default)]
pub(crate) struct PairHasher(u64);

impl Hasher for PairHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    }
}

/// Unordered pair key.
pub(crate) fn key(a: usize, b: usize) -> u64 {
    let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
    (lo << 32) | hi
}

#[cfg(test)]
mod tests {
    use protocol::peer::Message;

    use super::*;

    fn endpoint(up: f64, down: f64, latency_us: Micros, region: u16) -> Endpoint {
        Endpoint { up_bytes_per_s: up, down_bytes_per_s: down, access_latency_us: latency_us, region }
    }

    fn net() -> (Net, usize, usize) {
        let mut net = Net::new(30_000);
        let a = net.add(endpoint(1e6, 1e7, 10_000, 0));
        let b = net.add(endpoint(1e6, 1e7, 5_000, 1));
        (net, a, b)
    }

    #[test]
    fn latency_adds_both_ends_and_the_region_crossing() {
        let (net, a, b) = net();
        assert_eq!(net.latency(a, b), 45_000);
        assert_eq!(net.latency(a, a), 20_000);
    }

    #[test]
    fn messages_queue_on_the_uplink_in_order() {
        let (mut net, a, b) = net();
        net.open(a, b);
        let first = net.send(0, a, b, vec![1], 100_000, 0).unwrap();
        assert_eq!(first.tx_end, 100_000); // 100 kB at 1 MB/s
        assert_eq!(first.arrive, 100_000 + 45_000);
        assert!(net.send(0, a, b, vec![2], 50_000, 0).is_none(), "the uplink is busy");
        let second = net.sent(first.tx_end, a).unwrap();
        assert_eq!((second.bytes.clone(), second.tx_end), (vec![2], 150_000));
        assert!(second.arrive > first.arrive);
        assert!(net.sent(second.tx_end, a).is_none());
    }

    #[test]
    fn channels_take_turns_on_the_uplink() {
        let mut net = Net::new(0);
        let [a, b, c] = [0, 1, 2].map(|_| net.add(endpoint(1e6, 1e9, 0, 0)));
        net.open(a, b);
        net.open(a, c);
        let mut order = vec![net.send(0, a, b, vec![1], 1_000, 0).unwrap().bytes[0]];
        net.send(0, a, b, vec![2], 1_000, 0);
        net.send(0, a, b, vec![3], 1_000, 0);
        net.send(0, a, c, vec![10], 1_000, 0);
        net.send(0, a, c, vec![11], 1_000, 0);
        let mut t = 1_000;
        while let Some(tx) = net.sent(t, a) {
            order.push(tx.bytes[0]);
            t = tx.tx_end;
        }
        assert_eq!(order, vec![1, 2, 10, 3, 11]);
    }

    #[test]
    fn cancelled_chunks_can_be_purged_from_the_queue() {
        let (mut net, a, b) = net();
        net.open(a, b);
        let id = SegmentId { rendition: 0, msn: 9 };
        let chunk =
            |request_id| Message::Chunk { id, request_id, offset: 0, total_len: 10, data: vec![1; 10] }.encode();
        net.send(0, a, b, chunk(1), 100, 10).unwrap();
        net.send(0, a, b, chunk(1), 100, 10);
        net.send(0, a, b, chunk(2), 100, 10);
        assert_eq!(net.queued(a, b), 200);
        assert_eq!(net.purge(a, b, id, 1), 1, "the one on the wire stays");
        assert_eq!(net.queued(a, b), 100);
        assert_eq!(net.purge(a, b, SegmentId { rendition: 1, msn: 9 }, 2), 0);
    }

    #[test]
    fn a_closed_channel_drops_what_waits_for_it() {
        let (mut net, a, b) = net();
        let gen_ = net.open(a, b);
        let first = net.send(0, a, b, vec![1], 1_000, 0).unwrap();
        assert_eq!(first.link, gen_);
        net.send(0, a, b, vec![2], 1_000, 0);
        assert!(net.close(a, b));
        assert!(!net.close(a, b));
        assert!(net.sent(first.tx_end, a).is_none());
        assert!(net.send(0, a, b, vec![3], 1, 0).is_none());
        assert_eq!(net.dropped, 2);
        assert!(net.links_of(a).is_empty());
    }

    #[test]
    fn http_shares_the_downlink() {
        let (mut net, a, _) = net();
        // 1 MB at a 10 MB/s downlink, server faster: 100 ms; a second one queues behind it.
        assert_eq!(net.receive_http(0, a, 1_000_000, 1e9), 100_000);
        assert_eq!(net.receive_http(0, a, 1_000_000, 1e9), 200_000);
        // A slow server is the limit on an idle downlink.
        assert_eq!(net.receive_http(1_000_000, a, 1_000_000, 1e6), 2_000_000);
    }

    #[test]
    fn chunk_payload_is_scaled_and_control_messages_are_not() {
        let id = SegmentId { rendition: 0, msn: 1 };
        let chunk = Message::Chunk { id, request_id: 1, offset: 0, total_len: 500, data: vec![0; 100] }.encode();
        let header = chunk.len() as u64 - 100;
        assert_eq!(wire_size(&chunk, 64), (header + 6_400, 6_400));
        let have = Message::Have { segments: vec![id], fetching: vec![] }.encode();
        assert_eq!(wire_size(&have, 64), (have.len() as u64, 0));
        let big = SegmentId { rendition: 70_000, msn: 1 << 40 };
        let chunk =
            Message::Chunk { id: big, request_id: u32::MAX, offset: 1 << 20, total_len: 1 << 25, data: vec![7; 300] }
                .encode();
        assert_eq!(wire_size(&chunk, 1), (chunk.len() as u64, 300));
        assert_eq!(wire_size(&chunk[..chunk.len() - 1], 1), (chunk.len() as u64 - 1, 0), "truncated");
    }
}
