//! Edge mode: a caching reverse proxy (a CDN edge, or the shield in front of the origin).
//!
//! Every `GET`/`HEAD` below `/live/`, `/dvr/` and `/vod/` is answered from the cache or from one
//! shared upstream fetch:
//! - N concurrent requests for an uncached object make exactly one upstream request; all N are
//!   streamed the bytes as they arrive ([`Fill`]). A fill that stalls for `lock_age_ms` is
//!   replaced by exactly one new request that resumes with `Range`.
//! - Segments are immutable and cached until evicted (LRU by bytes). A 404 for a segment is
//!   remembered for `negative_ttl_ms` (a player asking for the next segment too early).
//! - Playlists are fresh for `playlist_fresh_ms` (at most a quarter of their target duration),
//!   then served stale while one request revalidates them, for at most half their target
//!   duration; an upstream failure after that serves the last copy (stale-if-error). The edge
//!   asks its upstream for playlists with `Cache-Control: max-stale=0`, and never answers such a
//!   request with a stale copy, so a chain of edges does not add up staleness.
//! - `X-Cache-Status` carries HIT, MISS, UPDATING or STALE (nginx's `$upstream_cache_status`),
//!   and `edge_*` metrics count them per kind, with the hit ratio and egress bytes per edge.
//! - With an access secret, a valid token ([`protocol::access`]) is required (403 otherwise); a
//!   query token is carried into the URIs of the playlists served.

mod cache;
mod chunks;
mod fill;
mod metrics;
mod rewrite;
mod upstream;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use futures_util::StreamExt;
use protocol::access;
use service::Metrics;

pub use cache::{Cache, Lookup, Stored};
pub use fill::{Fill, FillBody, FillError, Head, MAX_UPSTREAM_ATTEMPTS};
pub use rewrite::encode as encode_token;
pub(crate) use rewrite::map_uri_attribute;

use crate::config::{Config, ConfigError, EdgeConfig};
use crate::path::{ObjectPath, PathError};
use crate::range::{self, RangeRequest};
use metrics::EdgeMetrics;

/// Name of the response header carrying the cache status.
pub const CACHE_STATUS_HEADER: &str = "x-cache-status";

/// Stale window of a playlist without a target duration (a multivariant playlist), in ms.
const DEFAULT_STALE_MS: u64 = 1000;

/// Shared state of an edge; cheap to clone.
#[derive(Clone)]
pub struct Edge {
    inner: Arc<Inner>,
}

struct Inner {
    config: EdgeConfig,
    max_object_bytes: u64,
    client: reqwest::Client,
    tables: Mutex<Tables>,
    started: Instant,
    metrics: EdgeMetrics,
}

struct Tables {
    cache: Cache,
    inflight: HashMap<String, Arc<Fill>>,
}

/// What the request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Playlist,
    Segment,
    Digests,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Self::Playlist => "playlist",
            Self::Segment => "segment",
            Self::Digests => "digests",
        }
    }
}

impl Edge {
    /// Builds the edge from `config` and registers the `edge_*` metrics in `metrics`.
    ///
    /// # Errors
    /// [`ConfigError`] when `config` does not pass [`Config::validate`].
    pub fn new(config: &Config, metrics: &Metrics) -> Result<Self, ConfigError> {
        config.validate()?;
        let edge = config.edge.clone();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(edge.upstream_timeout_ms))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|_| ConfigError::BadUpstream)?;
        let inner = Inner {
            max_object_bytes: config.max_object_bytes,
            client,
            tables: Mutex::new(Tables { cache: Cache::new(edge.cache_max_bytes), inflight: HashMap::new() }),
            started: Instant::now(),
            metrics: EdgeMetrics::register(metrics, &edge.name),
            config: edge,
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // Table operations are single map updates; a panic cannot leave them half-done.
        self.inner.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The edge's routes: `GET`/`HEAD` on `/live/…`, `/dvr/…` and `/vod/…`.
pub fn router(edge: Edge) -> Router {
    Router::new()
        .route("/live/{*path}", get(get_object))
        .route("/dvr/{*path}", get(get_object))
        .route("/vod/{*path}", get(get_object))
        .with_state(edge)
}

async fn get_object(
    State(edge): State<Edge>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let path = uri.path();
    let class = match classify(path) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad_path", &e.to_string()),
    };
    let query_token = match check_access(&edge, path, uri.query(), &headers, peer.map(|Extension(ConnectInfo(a))| a)) {
        Ok(t) => t,
        Err(e) => {
            edge.inner.metrics.denied(reason(&e));
            return error(StatusCode::FORBIDDEN, "forbidden", &e.to_string());
        }
    };
    let no_stale = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|d| d.trim() == "max-stale=0"));
    let (status_label, served) = serve(&edge, path, class, no_stale).await;
    edge.inner.metrics.request(class.label(), status_label);
    let mut response = match served {
        Served::Stored(stored) => from_stored(&edge, &stored, class, &headers, query_token.as_deref()),
        Served::Streaming(fill, head) => from_fill(&edge, fill, head, class, query_token.as_deref()).await,
        Served::Failed(e) => error(StatusCode::BAD_GATEWAY, "upstream", &e.to_string()),
    };
    let h = response.headers_mut();
    h.insert(CACHE_STATUS_HEADER, HeaderValue::from_static(status_label));
    if let Ok(v) = HeaderValue::from_str(&edge.inner.config.name) {
        h.insert("x-served-by", v);
    }
    if method == Method::HEAD {
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    response
}

enum Served {
    Stored(Arc<Stored>),
    Streaming(Arc<Fill>, Head),
    Failed(FillError),
}

/// Finds or fetches `key`; returns the cache status and what to send.
/// With `no_stale`, a stale copy is not served (but a fill is still shared).
async fn serve(edge: &Edge, key: &str, class: Class, no_stale: bool) -> (&'static str, Served) {
    let now = edge.now_ms();
    let (status, fill, fallback) = {
        let mut t = edge.tables();
        match t.cache.lookup(now, key) {
            Lookup::Fresh(s) => return ("HIT", Served::Stored(s)),
            Lookup::Stale(s) if no_stale => join_or_start(edge, &mut t, key, class, Some(s)),
            Lookup::Stale(s) => {
                if !t.inflight.contains_key(key) {
                    start_fill(edge, &mut t, key, class);
                }
                return ("UPDATING", Served::Stored(s));
            }
            Lookup::Expired(s) => join_or_start(edge, &mut t, key, class, Some(s)),
            Lookup::Missing => join_or_start(edge, &mut t, key, class, None),
        }
    };
    match fill.head().await {
        Ok(head) => (status, Served::Streaming(fill, head)),
        Err(e) => match fallback {
            Some(old) => ("STALE", Served::Stored(old)),
            None => (status, Served::Failed(e)),
        },
    }
}

fn join_or_start(
    edge: &Edge,
    t: &mut Tables,
    key: &str,
    class: Class,
    fallback: Option<Arc<Stored>>,
) -> (&'static str, Arc<Fill>, Option<Arc<Stored>>) {
    if let Some(f) = t.inflight.get(key) {
        edge.inner.metrics.coalesced(class.label());
        // Served from the one fill, as nginx logs a request that waited on its cache lock.
        return ("HIT", f.clone(), fallback);
    }
    ("MISS", start_fill(edge, t, key, class), fallback)
}

/// Registers a new fill for `key` and spawns its upstream fetch.
fn start_fill(edge: &Edge, t: &mut Tables, key: &str, class: Class) -> Arc<Fill> {
    let fill = Arc::new(Fill::default());
    t.inflight.insert(key.to_owned(), fill.clone());
    let cfg = &edge.inner.config;
    let up = upstream::Upstream {
        client: edge.inner.client.clone(),
        url: format!("{}{key}", cfg.upstream_url.trim_end_matches('/')),
        lock_age: Duration::from_millis(cfg.lock_age_ms),
        head_timeout: Duration::from_millis(cfg.upstream_timeout_ms),
        max_bytes: edge.inner.max_object_bytes,
        no_stale: class != Class::Segment,
    };
    let (edge, key, task_fill) = (edge.clone(), key.to_owned(), fill.clone());
    tokio::spawn(async move {
        let attempts = upstream::run(&task_fill, &up).await;
        edge.inner.metrics.upstream(class.label(), attempts);
        complete(&edge, &key, class, &task_fill);
    });
    fill
}

/// Moves a finished fill into the cache (200s, and 404s of segments) and out of the in-flight
/// table, in one step so no request sees neither.
fn complete(edge: &Edge, key: &str, class: Class, fill: &Arc<Fill>) {
    let now = edge.now_ms();
    let cfg = &edge.inner.config;
    let stored = match (fill.head_now(), fill.complete_body()) {
        (Some(head), Some(body)) => match (head.status, class) {
            (StatusCode::OK, Class::Segment) => Some(stored(head, body, u64::MAX, u64::MAX)),
            (StatusCode::OK, _) => {
                let half_target = stale_window_ms(&body);
                let fresh = now.saturating_add(cfg.playlist_fresh_ms.min(half_target / 2));
                let stale = fresh.saturating_add(half_target);
                Some(stored(head, body, fresh, stale))
            }
            (StatusCode::NOT_FOUND, Class::Segment) => {
                let until = now.saturating_add(cfg.negative_ttl_ms);
                Some(stored(head, body, until, until))
            }
            _ => None,
        },
        _ => None,
    };
    let mut t = edge.tables();
    if let Some(s) = stored {
        t.cache.insert(key, s);
    }
    if t.inflight.get(key).is_some_and(|f| Arc::ptr_eq(f, fill)) {
        t.inflight.remove(key);
    }
    edge.inner.metrics.cache_bytes(t.cache.bytes());
}

fn stored(head: Head, body: Bytes, fresh_until_ms: u64, stale_until_ms: u64) -> Stored {
    Stored { status: head.status, headers: head.headers, body, fresh_until_ms, stale_until_ms }
}

/// Half the target duration of a media playlist, in ms, or [`DEFAULT_STALE_MS`].
fn stale_window_ms(body: &[u8]) -> u64 {
    let text = std::str::from_utf8(body).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:")?.trim().parse::<u64>().ok())
        .map_or(DEFAULT_STALE_MS, |td| td.saturating_mul(500))
}

fn from_stored(edge: &Edge, stored: &Stored, class: Class, req: &HeaderMap, token: Option<&str>) -> Response {
    let mut headers = stored.headers.clone();
    if let (Some(token), Class::Playlist) = (token, class) {
        let body = rewrite::propagate(&String::from_utf8_lossy(&stored.body), token);
        headers.remove(header::CONTENT_LENGTH);
        edge.inner.metrics.egress(body.len());
        return with_headers((stored.status, body).into_response(), headers);
    }
    let total = stored.body.len() as u64;
    let range = if stored.status == StatusCode::OK {
        range::parse(req.get(header::RANGE).and_then(|v| v.to_str().ok()), total)
    } else {
        RangeRequest::Full
    };
    let response = match range {
        RangeRequest::Full => (stored.status, stored.body.clone()).into_response(),
        RangeRequest::Unsatisfiable => {
            let mut r = error(StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable", "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
        RangeRequest::Partial { start, end } => {
            // range::parse guarantees start <= end < total, and total came from a usize.
            let slice = stored.body.slice(start as usize..=end as usize);
            headers.insert(header::CONTENT_LENGTH, upstream::number(slice.len() as u64));
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{total}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, slice).into_response()
        }
    };
    edge.inner.metrics.egress(response_len(&response));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    with_headers(response, headers)
}

async fn from_fill(edge: &Edge, fill: Arc<Fill>, head: Head, class: Class, token: Option<&str>) -> Response {
    let mut headers = head.headers.clone();
    if let (Some(token), Class::Playlist) = (token, class) {
        // Playlists are small: wait for all of it, then rewrite.
        let body: Vec<Result<Bytes, std::io::Error>> = fill.body(|_, _| {}).collect().await;
        let Ok(chunks) = body.into_iter().collect::<Result<Vec<_>, _>>() else {
            return error(StatusCode::BAD_GATEWAY, "upstream", "upstream broke off");
        };
        let text = String::from_utf8_lossy(&chunks.concat()).into_owned();
        let body = rewrite::propagate(&text, token);
        headers.remove(header::CONTENT_LENGTH);
        edge.inner.metrics.egress(body.len());
        return with_headers((head.status, body).into_response(), headers);
    }
    let mut tally = edge.inner.metrics.body_tally();
    let stream = fill.body(move |n, lag| tally.chunk(n, lag));
    with_headers((head.status, Body::from_stream(stream)).into_response(), headers)
}

fn with_headers(mut response: Response, headers: HeaderMap) -> Response {
    for (name, value) in &headers {
        response.headers_mut().insert(name, value.clone());
    }
    response
}

fn response_len(r: &Response) -> usize {
    r.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0)
}

/// Classifies a request path below `/live/`, `/dvr/` or `/vod/`, validating it like the origin.
fn classify(path: &str) -> Result<Class, PathError> {
    let live = as_live(path).ok_or(PathError::Shape)?;
    if let Some(playlist) = crate::digest::playlist_of(&live) {
        ObjectPath::from_url_path(&playlist)?;
        return Ok(Class::Digests);
    }
    let p = ObjectPath::from_url_path(&live)?;
    Ok(if p.kind.is_playlist() { Class::Playlist } else { Class::Segment })
}

/// The `/live/` form of a `/live/`, `/dvr/` or `/vod/` path (tokens and validation use it).
pub(crate) fn as_live(path: &str) -> Option<String> {
    ["/live/", "/dvr/", "/vod/"].iter().find_map(|p| path.strip_prefix(p)).map(|rest| format!("/live/{rest}"))
}

/// Checks the access token when the edge has a secret; returns the query token to propagate.
fn check_access(
    edge: &Edge,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<Option<String>, access::AccessError> {
    let secret = &edge.inner.config.access_secret;
    if secret.is_empty() {
        return Ok(None);
    }
    let cookie = headers.get(header::COOKIE).and_then(|v| v.to_str().ok());
    let token = access::find(query, cookie).ok_or(access::AccessError::Missing)?;
    let ip = peer.map(|a| a.ip().to_string());
    let live = as_live(path).unwrap_or_default();
    access::verify(secret.as_bytes(), &token, &live, ip.as_deref(), service::unix_now_s())?;
    let from_query = access::find(query, None).is_some();
    Ok(from_query.then(|| rewrite::encode(&token)))
}

fn reason(e: &access::AccessError) -> &'static str {
    match e {
        access::AccessError::Missing => "missing",
        access::AccessError::Expired => "expired",
        access::AccessError::WrongPath => "wrong_path",
        access::AccessError::WrongIp => "wrong_ip",
        access::AccessError::BadSignature => "bad_signature",
        _ => "malformed",
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let mut r = service::error_response(status, code, message);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Serves an edge on `listener` until `shutdown` resolves.
///
/// # Errors
/// `InvalidInput` when `config` is invalid; IO errors from the listener.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    service::run_server(listener, shutdown, |metrics| Edge::new(&config, metrics).map(router)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_paths_like_the_origin() {
        assert_eq!(classify("/live/c/v/index.m3u8"), Ok(Class::Playlist));
        assert_eq!(classify("/dvr/c/v/seg_1.ts"), Ok(Class::Segment));
        assert_eq!(classify("/vod/c/v/index.json"), Ok(Class::Digests));
        assert!(classify("/live/c/../x.ts").is_err());
        assert!(classify("/other/c/x.ts").is_err());
        assert_eq!(stale_window_ms(b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n"), 1000);
        assert_eq!(stale_window_ms(b"#EXTM3U\n"), DEFAULT_STALE_MS);
    }
}
