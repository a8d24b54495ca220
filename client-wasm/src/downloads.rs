//! Segment downloads over HTTP: for the engine (chunks fed back as inputs) or, before the engine
//! exists, straight for the player. A download that fails because of its CDN resumes at once on
//! the next CDN pathway from the byte where it stopped (see [`crate::pathways`]); the engine and
//! the player see one download.

use engine::Input;
use protocol::SegmentId;
use web_sys::AbortController;

use crate::driver::{ShellRef, feed, settle};
use crate::http::{self, FetchEvent};
use crate::js;
use crate::pathways;

/// One HTTP download in flight.
pub(crate) struct Fetch {
    generation: u64,
    controller: AbortController,
    /// What is being fetched now (after any failover).
    url: String,
    /// First byte asked for in this attempt.
    range_start: u64,
    started_ms: f64,
    /// Bytes received in this attempt.
    received: u64,
    /// The body, for direct downloads (the engine keeps its own).
    body: Option<Vec<u8>>,
}

impl Fetch {
    /// Stops the download.
    pub(crate) fn abort(&self) {
        self.controller.abort();
    }
}

/// Downloads `id` straight for the player, from its URL in the latest playlist.
pub(crate) fn start_direct(shell: &ShellRef, id: SegmentId) {
    let url = {
        let s = shell.borrow();
        s.playlists.get(&id.rendition).and_then(|w| w.iter().find(|seg| seg.msn == id.msn)).map(|seg| seg.url.clone())
    };
    match url {
        Some(url) => start(shell, id, &url, 0, true),
        None => settle(shell, id, Err("segment not in any playlist")),
    }
}

/// Starts an HTTP download of `id` from byte `range_start`, for the engine or (`direct`) straight
/// for the player. A URL under a penalized pathway goes to the healthy one.
pub(crate) fn start(shell: &ShellRef, id: SegmentId, url: &str, range_start: u64, direct: bool) {
    let url = shell.borrow().pathways.route(url, js::now_f64());
    launch(shell, id, url, range_start, direct, direct.then(Vec::new));
}

fn launch(shell: &ShellRef, id: SegmentId, url: String, range_start: u64, direct: bool, body: Option<Vec<u8>>) {
    let (generation, weak) = {
        let mut s = shell.borrow_mut();
        s.next_generation += 1;
        (s.next_generation, s.weak())
    };
    let sink = move |event: FetchEvent| -> bool {
        let Some(shell) = weak.upgrade() else { return false };
        on_event(&shell, id, generation, direct, event)
    };
    let Some(controller) = http::fetch_segment(&url, range_start, sink) else {
        if direct {
            settle(shell, id, Err("fetch unavailable"));
        } else {
            feed(shell, Input::HttpFailed { id, status: None });
        }
        return;
    };
    let fetch = Fetch { generation, controller, url, range_start, started_ms: js::now_f64(), received: 0, body };
    let mut s = shell.borrow_mut();
    let map = if direct { &mut s.direct } else { &mut s.http };
    if let Some(old) = map.insert(id, fetch) {
        old.controller.abort();
    }
}

/// Handles one event of the download `generation` of `id`; false when it is no longer wanted.
fn on_event(shell: &ShellRef, id: SegmentId, generation: u64, direct: bool, event: FetchEvent) -> bool {
    let finished = {
        let mut s = shell.borrow_mut();
        let s = &mut *s;
        let map = if direct { &mut s.direct } else { &mut s.http };
        let Some(fetch) = map.get_mut(&id).filter(|f| f.generation == generation) else { return false };
        match &event {
            FetchEvent::Started => return true,
            FetchEvent::Chunk { bytes, .. } => {
                fetch.received += bytes.len() as u64;
                if let Some(body) = fetch.body.as_mut() {
                    body.extend_from_slice(bytes);
                    s.counters.direct_http_bytes += bytes.len() as u64;
                }
                None
            }
            FetchEvent::Done { .. } | FetchEvent::Failed { .. } => map.remove(&id),
        }
    };
    if let (Some(fetch), FetchEvent::Failed { status }) = (&finished, &event)
        && pathways::is_cdn_failure(*status)
    {
        let next = shell.borrow_mut().pathways.fail_over(&fetch.url, js::now_f64());
        if let Some(url) = next {
            shell
                .borrow()
                .log(&format!("segment {}/{}: {} failed, resuming on {url}", id.rendition, id.msn, fetch.url));
            let Some(fetch) = finished else { return false };
            launch(shell, id, url, fetch.range_start + fetch.received, direct, fetch.body);
            return false;
        }
    }
    if let (Some(fetch), FetchEvent::Done { .. }) = (&finished, &event) {
        let mut s = shell.borrow_mut();
        let elapsed = js::now_f64() - fetch.started_ms;
        s.counters.bandwidth_bps = crate::wire::update_bandwidth(s.counters.bandwidth_bps, fetch.received, elapsed);
    }
    match (direct, event) {
        (true, FetchEvent::Done { .. }) => {
            let body = finished.and_then(|f| f.body).unwrap_or_default();
            settle(shell, id, Ok(&body));
        }
        (true, FetchEvent::Failed { .. }) => settle(shell, id, Err("HTTP download failed")),
        (true, _) => {}
        (false, FetchEvent::Chunk { offset, bytes }) => feed(shell, Input::HttpChunk { id, offset, bytes }),
        (false, FetchEvent::Done { total_len }) => feed(shell, Input::HttpDone { id, total_len }),
        (false, FetchEvent::Failed { status }) => feed(shell, Input::HttpFailed { id, status }),
        (false, FetchEvent::Started) => {}
    }
    true
}
