//! The fill task: one upstream request per fill, and exactly one replacement, resuming with
//! `Range`, when the upstream delivers nothing for `lock_age` (nginx `proxy_cache_lock_age`,
//! with the replacement resuming instead of starting over).

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};

use super::fill::{Fill, FillError, Head, MAX_UPSTREAM_ATTEMPTS};

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
