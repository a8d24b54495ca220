//! One upstream fetch shared by every request for the same key, streamed to all of them as the
//! bytes arrive (the Pingora "streaming partial write" model, not nginx's 500 ms lock polling).
//!
//! A [`Fill`] is the response head, a growing list of chunks ([`super::chunks`]) and the wakers
//! of the requests waiting on it. The fill task ([`super::upstream`]) appends a chunk and wakes
//! every waiting reader at once; each reader then hands the chunks it has not sent yet to its
//! connection, one clone of the shared `Bytes` each (no copy, no allocation, no lock), and waits
//! again. A reader that joins late first gets everything already received. A replacement of a
//! stalled upstream request appends to the same list, so readers see a pause and never a restart.
//!
//! Response heads do not wait for the body: a request that joins a fill is answered with the
//! upstream's head as soon as it is known, and its body follows the fill.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use futures_util::task::AtomicWaker;

use super::chunks::{Chunks, Cursor};

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
    /// Body bytes received.
    len: u64,
    /// One per reader (and per request waiting for the head); woken on every change. Entries
    /// whose reader is gone are dropped at the next change.
    waiters: Vec<Arc<AtomicWaker>>,
}

/// A shared in-flight fetch; cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct Fill {
    state: Mutex<State>,
    chunks: Chunks,
    /// When the first body byte arrived from upstream.
    first_chunk_at: OnceLock<Instant>,
    /// How the fill ended; set after the last chunk was pushed.
    done: OnceLock<Result<(), FillError>>,
}

impl Fill {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under this lock is a single assignment or push, so a poisoned lock is
        // still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A waker slot that every change of this fill wakes.
    fn waiter(&self) -> Arc<AtomicWaker> {
        let waiter = Arc::new(AtomicWaker::new());
        self.lock().waiters.push(waiter.clone());
        waiter
    }

    /// Wakes every waiting reader (after the change it announces is visible to them).
    fn wake_all(&self) {
        let mut s = self.lock();
        s.waiters.retain(|w| {
            w.wake();
            Arc::strong_count(w) > 1
        });
    }

    /// Publishes the response head.
    pub fn set_head(&self, head: Head) {
        self.lock().head = Some(head);
        self.wake_all();
    }

    /// Appends a chunk of the body.
    pub fn push(&self, chunk: Bytes) {
        self.first_chunk_at.get_or_init(Instant::now);
        self.lock().len += chunk.len() as u64;
        self.chunks.push(chunk);
        self.wake_all();
    }

    /// Ends the fill; only the first call counts.
    pub fn finish(&self, result: Result<(), FillError>) {
        let _ = self.done.set(result);
        self.wake_all();
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
        if !matches!(self.done.get(), Some(Ok(()))) {
            return None;
        }
        let mut cursor = self.chunks.cursor();
        let first = cursor.next_chunk().unwrap_or_default();
        let Some(second) = cursor.next_chunk() else { return Some(first) };
        let mut out = BytesMut::with_capacity(usize::try_from(self.received()).unwrap_or(0));
        out.extend_from_slice(&first);
        out.extend_from_slice(&second);
        while let Some(c) = cursor.next_chunk() {
            out.extend_from_slice(&c);
        }
        Some(out.freeze())
    }

    /// Waits for the head, or the error that ended the fill before it.
    pub async fn head(&self) -> Result<Head, FillError> {
        let check = || {
            if let Some(h) = &self.lock().head {
                return Some(Ok(h.clone()));
            }
            match self.done.get()? {
                Err(e) => Some(Err(e.clone())),
                Ok(()) => Some(Err(FillError::Unreachable("no response".into()))),
            }
        };
        if let Some(ready) = check() {
            return ready;
        }
        let waiter = self.waiter();
        std::future::poll_fn(|cx| {
            waiter.register(cx.waker());
            check().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// The body as a stream of chunks, from the first byte, following the fill as it grows.
    /// `on_chunk(len, lag)` is called for each chunk handed out (egress accounting), with, for the
    /// first one, how long after its arrival from upstream it was handed to this reader.
    ///
    /// Each chunk is handed out as received, a clone of the shared `Bytes`; the HTTP connection
    /// queues consecutive chunks into one vectored write.
    pub fn body<F>(self: Arc<Self>, on_chunk: F) -> FillBody<F>
    where
        F: FnMut(usize, Option<Duration>) + Send + Unpin + 'static,
    {
        let waiter = self.waiter();
        let cursor = self.chunks.cursor();
        FillBody { fill: self, cursor, waiter, ended: false, on_chunk }
    }
}

/// A reader of a [`Fill`]'s body; see [`Fill::body`].
#[derive(Debug)]
pub struct FillBody<F> {
    fill: Arc<Fill>,
    cursor: Cursor,
    waiter: Arc<AtomicWaker>,
    ended: bool,
    on_chunk: F,
}

impl<F> FillBody<F>
where
    F: FnMut(usize, Option<Duration>),
{
    /// The next item if there is one now: a chunk, the end, or the fill's error.
    fn step(&mut self) -> Option<Option<Result<Bytes, std::io::Error>>> {
        let first = self.cursor.position() == 0;
        let chunk = match self.cursor.next_chunk() {
            Some(chunk) => chunk,
            None => {
                let done = self.fill.done.get()?;
                // Every chunk was pushed before `done` was set: look once more.
                match self.cursor.next_chunk() {
                    Some(chunk) => chunk,
                    None => {
                        self.ended = true;
                        return Some(done.as_ref().err().map(|e| Err(std::io::Error::other(e.to_string()))));
                    }
                }
            }
        };
        let lag = if first { self.fill.first_chunk_at.get().map(Instant::elapsed) } else { None };
        (self.on_chunk)(chunk.len(), lag);
        Some(Some(Ok(chunk)))
    }
}

impl<F> Stream for FillBody<F>
where
    F: FnMut(usize, Option<Duration>) + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if let Some(item) = this.step() {
            return Poll::Ready(item);
        }
        // Register, then look again: a chunk pushed in between is seen now or wakes us.
        this.waiter.register(cx.waker());
        this.step().map_or(Poll::Pending, Poll::Ready)
    }
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
        let reading = tokio::spawn(fill.clone().body(|_, _| {}).collect::<Vec<_>>());
        tokio::task::yield_now().await;
        fill.finish(Err(FillError::Unreachable("x".into())));
        assert!(waiting.await.unwrap().is_err());
        let read = reading.await.unwrap();
        assert_eq!(read.len(), 1);
        assert!(read[0].is_err());
        assert!(fill.complete_body().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_readers_on_two_workers_see_every_chunk_once() {
        let fill = Arc::new(Fill::default());
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let readers: Vec<_> = (0..200)
            .map(|_| {
                let counted = counted.clone();
                let body = fill.clone().body(move |n, _| {
                    counted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                });
                tokio::spawn(body.map(|c| c.unwrap().to_vec()).concat())
            })
            .collect();
        let mut expected = Vec::new();
        for i in 0..100_u8 {
            let chunk = vec![i; usize::from(i) + 1];
            expected.extend_from_slice(&chunk);
            fill.push(Bytes::from(chunk));
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
        fill.finish(Ok(()));
        for r in readers {
            assert_eq!(r.await.unwrap(), expected);
        }
        assert_eq!(counted.load(std::sync::atomic::Ordering::Relaxed), 200 * expected.len() as u64);
        fill.wake_all();
        assert_eq!(fill.lock().waiters.len(), 0, "finished readers are forgotten");
    }
}
