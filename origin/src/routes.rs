//! `PUT`, `DELETE`, `GET` and `HEAD` on `/live/{content}/{path}`.

use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;

use crate::Origin;
use crate::dvr::View;
use crate::error::ApiError;
use crate::path::ObjectPath;
use crate::range::{self, RangeRequest};
use crate::store::PutOutcome;

/// `PUT /live/{content}/{path}`: stores a segment or a validated playlist (201 new, 204 replaced).
pub(crate) async fn put_object(State(origin): State<Origin>, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let res = put_inner(&origin, &uri, &headers, body).await;
    origin.count_ingest_result(res.as_ref().err());
    match res {
        Ok(PutOutcome::Created) => StatusCode::CREATED.into_response(),
        Ok(PutOutcome::Replaced) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn put_inner(origin: &Origin, uri: &Uri, headers: &HeaderMap, body: Body) -> Result<PutOutcome, ApiError> {
    origin.authorize(headers)?;
    let path = ObjectPath::from_url_path(uri.path())?;
    let limit = origin.config().max_object_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let bytes = read_bounded(body, limit).await?;
    let len = bytes.len() as u64;
    let archived = (!path.kind.is_playlist()).then(|| bytes.clone());
    let outcome = origin.with_store(|store, now| {
        let outcome = store.put(now, &path, bytes)?;
        // Queued for the background writer; ingest never waits on the archive.
        origin.archive_changes(store, now, archived.map(|b| (&path, b)));
        Ok::<_, crate::store::StoreError>(outcome)
    })?;
    let m = origin.metrics();
    m.ingest_bytes.inc_by(len);
    m.ingest_objects.get_or_create(&[("kind", if path.kind.is_playlist() { "playlist" } else { "segment" })]).inc();
    tracing::debug!(content = %path.content, path = %path.path, bytes = len, "ingested");
    Ok(outcome)
}

/// `DELETE /live/{content}/{path}`: removes an object (204); segments stay served for the grace
/// period.
pub(crate) async fn delete_object(State(origin): State<Origin>, uri: Uri, headers: HeaderMap) -> Response {
    let res = delete_inner(&origin, &uri, &headers);
    origin.count_ingest_result(res.as_ref().err());
    match res {
        Ok(()) => {
            origin.metrics().deletes.inc();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

fn delete_inner(origin: &Origin, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    origin.authorize(headers)?;
    let path = ObjectPath::from_url_path(uri.path())?;
    origin.with_store(|store, now| {
        store.delete(now, &path)?;
        origin.archive_changes(store, now, None);
        Ok::<_, crate::store::StoreError>(())
    })?;
    Ok(())
}

/// Which view of the stream a `GET` asks for, from its URL prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// `/live/`: the live window, and the digest sidecars (`.json`).
    Live,
    /// `/dvr/` or `/vod/`: the timeshift or VOD playlists, and the same segments.
    Recorded(View),
}

/// `GET`/`HEAD /live/{content}/{path}`: serves an object with its media type, caching headers and
/// single-range support.
pub(crate) async fn get_object(state: State<Origin>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    get_view(state, method, uri, headers, Prefix::Live).await
}

/// `GET`/`HEAD /dvr/{content}/{path}`: the timeshift playlist of a media playlist; the master
/// playlist and segments as under `/live/`.
pub(crate) async fn get_dvr(state: State<Origin>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    get_view(state, method, uri, headers, Prefix::Recorded(View::Dvr)).await
}

/// `GET`/`HEAD /vod/{content}/{path}`: the VOD playlist of an ended stream (404 while live).
pub(crate) async fn get_vod(state: State<Origin>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    get_view(state, method, uri, headers, Prefix::Recorded(View::Vod)).await
}

async fn get_view(
    State(origin): State<Origin>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    prefix: Prefix,
) -> Response {
    let res = get_inner(&origin, &uri, &headers, prefix).await;
    let (status, len) = match &res {
        Ok((response, len)) => (response.status(), *len as u64),
        Err(e) => (e.status_and_code().0, 0),
    };
    origin.metrics().gets.get_or_create(&[("status", status_label(status))]).inc();
    if method != Method::HEAD {
        origin.metrics().egress_bytes.inc_by(len);
    }
    match res {
        Ok((response, _)) if method == Method::HEAD => {
            // Keep the headers (Content-Length included) and drop the body.
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, Body::empty())
        }
        Ok((response, _)) => response,
        Err(e) => e.into_response(),
    }
}

/// The response for a GET and the number of body bytes it carries.
async fn get_inner(
    origin: &Origin,
    uri: &Uri,
    headers: &HeaderMap,
    prefix: Prefix,
) -> Result<(Response, usize), ApiError> {
    let live_path = crate::edge::as_live(uri.path()).ok_or(ApiError::BadPath(crate::path::PathError::Shape))?;
    if let (Prefix::Live, Some(playlist)) = (prefix, crate::digest::playlist_of(&live_path)) {
        return digests(origin, &playlist);
    }
    let path = ObjectPath::from_url_path(&live_path)?;
    let object = match prefix {
        // A media playlist with a timeshift log is rendered from it; the multivariant playlist
        // is served as recorded.
        Prefix::Recorded(view) if path.kind.is_playlist() => crate::recorded::playlist(origin, &path, view).await,
        _ => origin.with_store_read(|store, now| store.get(now, &path)),
    };
    let object = match (object, prefix, origin.archive()) {
        (Some(object), _, _) => object,
        // A timeshift segment memory no longer holds: read it from the archive.
        (None, Prefix::Recorded(_), Some(archive)) if origin.with_store_read(|s, _| s.archived(&path)) => {
            let bytes = archive.read(&path.content, &path.path).await.map_err(|_| ApiError::NotFound)?;
            let bytes = bytes.ok_or(ApiError::NotFound)?;
            crate::store::Object { bytes, kind: path.kind, expires_at_ms: None }
        }
        (None, _, _) => return Err(ApiError::NotFound),
    };
    let total = object.bytes.len() as u64;
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, body, content_range) = match range::parse(range_header, total) {
        RangeRequest::Full => (StatusCode::OK, object.bytes, None),
        RangeRequest::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable(total)),
        RangeRequest::Partial { start, end } => {
            // parse() guarantees start <= end < total, and total came from a usize.
            let slice = object.bytes.slice(start as usize..=end as usize);
            (StatusCode::PARTIAL_CONTENT, slice, Some(format!("bytes {start}-{end}/{total}")))
        }
    };
    let cfg = origin.config();
    let cache = if object.kind.is_playlist() && prefix == Prefix::Recorded(View::Vod) {
        format!("public, max-age={}", cfg.segment_max_age_s)
    } else if object.kind.is_playlist() {
        format!("public, max-age={}", cfg.playlist_max_age_s)
    } else {
        format!("public, max-age={}, immutable", cfg.segment_max_age_s)
    };
    let len = body.len();
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(object.kind.content_type()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&cache) {
        h.insert(header::CACHE_CONTROL, v);
    }
    if let Some(v) = content_range.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok((response, len))
}

/// The digest sidecar of the media playlist at `playlist` (a `/live/…/{name}.m3u8` URL path).
fn digests(origin: &Origin, playlist: &str) -> Result<(Response, usize), ApiError> {
    let path = ObjectPath::from_url_path(playlist)?;
    let listed = origin.with_store_read(|store, now| store.digests(now, &path)).ok_or(ApiError::NotFound)?;
    let doc = crate::digest::render(&path.content, &path.path, &listed, origin.signing_key());
    let body = serde_json::to_vec(&doc).map_err(|e| ApiError::BadBody(e.to_string()))?;
    let len = body.len();
    let mut response = (StatusCode::OK, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", origin.config().playlist_max_age_s)) {
        h.insert(header::CACHE_CONTROL, v);
    }
    Ok((response, len))
}

fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        206 => "206",
        400 => "400",
        404 => "404",
        416 => "416",
        _ => "other",
    }
}

/// Reads `body` (chunked or not) into memory, refusing it once it exceeds `limit` bytes.
async fn read_bounded(mut body: Body, limit: u64) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ApiError::BadBody(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() as u64 + data.len() as u64 > limit {
                return Err(ApiError::TooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}
