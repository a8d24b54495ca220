//! One upstream fetch shared by every request for the same key, streamed to all of them as the
//! bytes arrive (the Pingora "streaming partial write" model, not nginx's 500 ms lock polling).
//!
//! A [`Fill`] is a growing list of chunks plus a version counter on a `watch` channel. The fill
//! task appends chunks and bumps the counter; each reader copies the chunks it has not sent yet
//! and sleeps on the channel until the next bump. A reader that joins late first gets everything
//! already received. When the upstream delivers nothing for `lock_age`, the task drops that
//! connection and makes exactly one new request, with `Range: bytes=<received>-`, appending to the
//! same list, so readers see a pause and never a restart (nginx `proxy_cache_lock_age`, with the
//! replacement resuming instead of starting over).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::watch;

/// Upstream requests one fill may make: the first and one replacement of a stalled one.
pub const MAX_UPSTREAM_ATTEMPTS: u32 = 2;

/// The upstream response head, as readers need it.
#[derive(Debug, Clone)]
pub struct Head {
    /// Upstream status (200 and 404 are cached).
    pub status: StatusCode,
    /// `Content-Type`, `Cache-Control` and `Content-Length` of the full object, when sent.
    pub headers: HeaderMap,
}

/// Why a fill failed; readers turn it into 502 (before the head) or an aborted body (after).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FillError {
    /// Could not connect, or the upstream sent no head in time.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// The upstream stalled or broke off and the replacement did too.
    #[error("upstream stalled after {0} bytes")]
    Stalled(u64),
    /// The object grew past the cache's largest object.
    #[error("object larger than {0} bytes")]
    TooLarge(u64),
}

#[derive(Debug, Default)]
struct State {
    head: Option<Head>,
    chunks: Vec<Bytes>,
    len: u64,
    done: Option<Result<(), FillError>>,
    /// When the first body byte arrived from upstream.
    first_chunk_at: Option<Instant>,
}

/// A shared in-flight fetch; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Fill {
    state: Mutex<State>,
    progress: watch::Sender<u64>,
}

impl Default for Fill {
    fn default() -> Self {
        Self { state: Mutex::new(State::default()), progress: watch::Sender::new(0) }
    }
}

impl Fill {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave a half-written chunk list (pushes are
        // single operations), so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.progress.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Publishes the response head.
    pub fn set_head(&self, head: Head) {
        self.lock().head = Some(head);
        self.bump();
    }

    /// Appends a chunk of the body.
    pub fn push(&self, chunk: Bytes) {
        {
            let mut s = self.lock();
            s.len += chunk.len() as u64;
            s.chunks.push(chunk);
            s.first_chunk_at.get_or_insert_with(Instant::now);
        }
        self.bump();
    }

    /// Ends the fill.
    pub fn finish(&self, result: Result<(), FillError>) {
        self.lock().done = Some(result);
        self.bump();
    }

    /// Bytes of body received so far.
    pub fn received(&self) -> u64 {
        self.lock().len
    }

    /// The head, once known.
    pub fn head_now(&self) -> Option<Head> {
        self.lock().head.clone()
    }

    /// The whole body, if the fill completed.
    pub fn complete_body(&self) -> Option<Bytes> {
        let s = self.lock();
        if !matches!(s.done, Some(Ok(()))) {
            return None;
        }
        let mut out = BytesMut::with_capacity(usize::try_from(s.len).unwrap_or(0));
        for c in &s.chunks {
            out.extend_from_slice(c);
        }
        Some(out.freeze())
    }

    /// Waits for the head, or the error that ended the fill before it.
    pub async fn head(&self) -> Result<Head, FillError> {
        let mut rx = self.progress.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let s = self.lock();
                if let Some(h) = &s.head {
                    return Ok(h.clone());
                }
                if let Some(Err(e)) = &s.done {
                    return Err(e.clone());
                }
                if s.done.is_some() {
                    return Err(FillError::Unreachable("no response".into()));
                }
            }
            if rx.changed().await.is_err() {
                return Err(FillError::Unreachable("fill dropped".into()));
            }
        }
    }

    /// The body as a stream of chunks, from the first byte, following the fill as it grows.
    /// `on_chunk(len, lag)` is called for each chunk handed out (egress accounting), with, for the
    /// first one, how long after its arrival from upstream it was handed to this reader.
    pub fn body(
        self: Arc<Self>,
        on_chunk: impl Fn(usize, Option<Duration>) + Send + 'static,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let rx = self.progress.subscribe();
        futures_util::stream::unfold((self, rx, 0_usize, on_chunk), |(fill, mut rx, next, on_chunk)| async move {
            if next == usize::MAX {
                return None;
            }
            loop {
                rx.borrow_and_update();
                let step = {
                    let s = fill.lock();
                    if next < s.chunks.len() {
                        // Hand out everything available at once: fewer, larger writes under load.
                        let ready: Vec<Bytes> = s.chunks[next..].to_vec();
                        let lag = (next == 0).then(|| s.first_chunk_at.map(|t| t.elapsed())).flatten();
                        Some(Ok((ready, s.chunks.len(), lag)))
                    } else {
                        match &s.done {
                            Some(Ok(())) => return None,
                            Some(Err(e)) => Some(Err(std::io::Error::other(e.to_string()))),
                            None => None,
                        }
                    }
                };
                match step {
                    Some(Ok((ready, upto, lag))) => {
                        let chunk = concat(ready);
                        on_chunk(chunk.len(), lag);
                        return Some((Ok(chunk), (fill, rx, upto, on_chunk)));
                    }
                    Some(Err(e)) => return Some((Err(e), (fill, rx, usize::MAX, on_chunk))),
                    None => {
                        if rx.changed().await.is_err() {
                            return None;
                        }
                    }
                }
            }
        })
    }
}

fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in chunks {
        out.extend_from_slice(&c);
    }
    out.freeze()
}

/// What the fill task needs to reach the upstream.
#[derive(Debug, Clone)]
pub(super) struct Upstream {
    /// HTTP client (connection pool shared by all fills).
    pub client: reqwest::Client,
    /// Full URL of the object.
    pub url: String,
    /// No byte for this long replaces the request (at most once).
    pub lock_age: Duration,
    /// Connect-and-head timeout of each request.
    pub head_timeout: Duration,
    /// Largest object accepted, in bytes.
    pub max_bytes: u64,
    /// Ask the upstream not to answer with a stale copy (playlists).
    pub no_stale: bool,
}

/// Runs the upstream fetch of `fill` to completion; returns how many upstream requests it made.
pub(super) async fn run(fill: &Fill, up: &Upstream) -> u32 {
    let mut attempts = 0;
    let result = loop {
        attempts += 1;
        match attempt(fill, up).await {
            Ok(()) => break Ok(()),
            Err(e) if attempts >= MAX_UPSTREAM_ATTEMPTS => break Err(e),
            Err(e @ FillError::TooLarge(_)) => break Err(e),
            Err(e) => tracing::debug!(url = %up.url, error = %e, "upstream stalled; replacing the fetch once"),
        }
    };
    if let Err(e) = &result {
        tracing::warn!(url = %up.url, error = %e, attempts, "fill failed");
    }
    fill.finish(result);
    attempts
}

/// One upstream request, resuming at the bytes already received.
async fn attempt(fill: &Fill, up: &Upstream) -> Result<(), FillError> {
    let offset = fill.received();
    let resuming = fill.head_now().is_some();
    let mut req = up.client.get(&up.url);
    if up.no_stale {
        req = req.header(header::CACHE_CONTROL, "max-stale=0");
    }
    if resuming {
        req = req.header(header::RANGE, format!("bytes={offset}-"));
    }
    let head_wait = if resuming { up.lock_age } else { up.head_timeout.max(up.lock_age) };
    let mut resp = match tokio::time::timeout(head_wait, req.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(FillError::Unreachable(e.to_string())),
        Err(_) => return Err(FillError::Unreachable(format!("no response head in {} ms", head_wait.as_millis()))),
    };
    let mut skip = 0_u64;
    if resuming {
        let start = resp
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok()?.strip_prefix("bytes ")?.split('-').next()?.parse::<u64>().ok());
        match (resp.status(), start) {
            (StatusCode::PARTIAL_CONTENT, Some(s)) if s == offset => {}
            (StatusCode::OK, _) => skip = offset,
            (status, _) => return Err(FillError::Unreachable(format!("resume answered {status}"))),
        }
    } else {
        fill.set_head(Head { status: resp.status(), headers: keep_headers(resp.headers()) });
    }
    loop {
        let chunk = match tokio::time::timeout(up.lock_age, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(_)) | Err(_) => return Err(FillError::Stalled(fill.received())),
        };
        let chunk = if skip > 0 {
            let n = skip.min(chunk.len() as u64);
            skip -= n;
            chunk.slice(usize::try_from(n).unwrap_or(chunk.len())..)
        } else {
            chunk
        };
        if chunk.is_empty() {
            continue;
        }
        if fill.received() + chunk.len() as u64 > up.max_bytes {
            return Err(FillError::TooLarge(up.max_bytes));
        }
        fill.push(chunk);
    }
}

/// The upstream headers an edge passes on.
fn keep_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::CONTENT_LENGTH] {
        if let Some(v) = from.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out
}

/// A header value from a number (always valid).
pub(super) fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn late_and_early_readers_get_every_byte() {
        let fill = Arc::new(Fill::default());
        let early = tokio::spawn(fill.clone().body(|_, _| {}).map(|c| c.unwrap().to_vec()).concat());
        fill.set_head(Head { status: StatusCode::OK, headers: HeaderMap::new() });
        fill.push(Bytes::from_static(b"ab"));
        let late = tokio::spawn(fill.clone().body(|_, _| {}).map(|c| c.unwrap().to_vec()).concat());
        fill.push(Bytes::from_static(b"cd"));
        fill.finish(Ok(()));
        assert_eq!(early.await.unwrap(), b"abcd");
        assert_eq!(late.await.unwrap(), b"abcd");
        assert_eq!(fill.complete_body().unwrap(), Bytes::from_static(b"abcd"));
        assert_eq!(fill.head().await.unwrap().status, StatusCode::OK);
    }

    #[tokio::test]
    async fn failures_reach_waiting_readers() {
        let fill = Arc::new(Fill::default());
        let waiting = tokio::spawn({
            let f = fill.clone();
            async move { f.head().await }
        });
        fill.finish(Err(FillError::Unreachable("x".into())));
        assert!(waiting.await.unwrap().is_err());
        assert!(fill.complete_body().is_none());
    }
}
