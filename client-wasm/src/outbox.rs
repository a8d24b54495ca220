//! What waits to be sent to one peer, and the uplink meter fed by all of them.
//!
//! Messages go into the data channel while its `bufferedAmount` is below a high-water mark; the
//! rest wait here (`bufferedamountlow` resumes sending). Control messages (announcements,
//! requests, refusals) are queued ahead of segment data, so a busy uplink does not delay what
//! steers the swarm, and the chunks of a request the peer cancelled are dropped unsent.

use std::collections::VecDeque;

use protocol::SegmentId;
use protocol::peer::{chunk_request, is_chunk};
use wasm_bindgen::JsValue;
use web_sys::RtcDataChannel;

/// Above this many bytes buffered in the channel, messages wait in our queue.
const HIGH_WATER_BYTES: u32 = 1024 * 1024;
/// `bufferedamountlow` fires when the channel's buffer falls to this many bytes.
pub(crate) const LOW_WATER_BYTES: u32 = 256 * 1024;
/// Most bytes waiting in our queue for one peer; beyond it the peer is too slow and is dropped.
const MAX_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// The uplink counts as backlogged (so its drain measures its speed) above this many bytes
/// buffered in all channels and queues.
const BACKLOG_BYTES: f64 = 64.0 * 1024.0;

/// The messages waiting for one data channel.
#[derive(Default)]
pub(crate) struct Outbox {
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
}

impl Outbox {
    /// Queues `bytes` (control messages ahead of segment data); false when the queue overflows
    /// (the peer cannot keep up and should be dropped).
    pub(crate) fn push(&mut self, bytes: Vec<u8>) -> bool {
        self.queued_bytes += bytes.len();
        let at = if is_chunk(&bytes) {
            self.queue.len()
        } else {
            self.queue.iter().position(|m| is_chunk(m)).unwrap_or(self.queue.len())
        };
        self.queue.insert(at, bytes);
        self.queued_bytes <= MAX_QUEUED_BYTES
    }

    /// Sends queued messages into `dc` while its buffer is below the high-water mark; returns
    /// how many bytes went in.
    pub(crate) fn flush(&mut self, dc: &RtcDataChannel) -> Result<usize, JsValue> {
        let mut sent = 0;
        while dc.buffered_amount() <= HIGH_WATER_BYTES {
            let Some(msg) = self.queue.pop_front() else { break };
            self.queued_bytes -= msg.len();
            sent += msg.len();
            dc.send_with_u8_array(&msg)?;
        }
        Ok(sent)
    }

    /// Bytes waiting: here and in `dc`'s buffer.
    pub(crate) fn backlog(&self, dc: Option<&RtcDataChannel>) -> f64 {
        self.queued_bytes as f64 + f64::from(dc.map_or(0, RtcDataChannel::buffered_amount))
    }

    /// Drops the queued chunks that answer request `request_id` for `id`.
    pub(crate) fn purge(&mut self, id: SegmentId, request_id: u32) {
        self.queue.retain(|m| chunk_request(m) != Some((id, request_id)));
        self.queued_bytes = self.queue.iter().map(Vec::len).sum();
    }
}

/// Measures the uplink from how fast the channels' buffers drain.
#[derive(Default)]
pub(crate) struct UplinkMeter {
    /// The last sample: when (ms) and how many bytes were buffered then.
    last: Option<(f64, f64)>,
    /// Bytes handed to data channels since the last sample.
    sent: f64,
}

impl UplinkMeter {
    /// Counts `bytes` handed to a data channel.
    pub(crate) fn sent(&mut self, bytes: usize) {
        self.sent += bytes as f64;
    }

    /// Takes a sample at `now_ms` with `backlog` bytes waiting in all channels and queues.
    /// Returns the throughput in bytes/s (0 when not measured this time: it counts only when
    /// the uplink was backlogged at both samples, else it would measure our demand, not its
    /// capacity) and the backlog in bytes.
    pub(crate) fn sample(&mut self, now_ms: f64, backlog: f64) -> (u64, u64) {
        let sent = std::mem::take(&mut self.sent);
        let rate = match self.last.replace((now_ms, backlog)) {
            Some((at, before)) if before >= BACKLOG_BYTES && backlog >= BACKLOG_BYTES && now_ms > at => {
                (before + sent - backlog).max(0.0) * 1_000.0 / (now_ms - at)
            }
            _ => 0.0,
        };
        // Saturating float-to-int casts of non-negative values.
        (rate as u64, backlog as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uplink_is_measured_only_while_backlogged() {
        let mut m = UplinkMeter::default();
        assert_eq!(m.sample(0.0, 100_000.0), (0, 100_000));
        m.sent(200_000);
        // 100 kB + 200 kB went in, 80 kB remain: 220 kB left in 500 ms.
        assert_eq!(m.sample(500.0, 80_000.0), (440_000, 80_000));
        assert_eq!(m.sample(1_000.0, 0.0).0, 0, "ran dry: says nothing of the capacity");
    }
}
