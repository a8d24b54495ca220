//! `fetch`: JSON calls to the control plane, media playlists as text, and segment downloads
//! streamed chunk by chunk.

use js_sys::{Reflect, Uint8Array};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, AbortSignal, Headers, ReadableStreamDefaultReader, RequestCache, RequestInit, Response,
};

use crate::wire;

/// Largest JSON answer read from a control-plane server, in bytes.
const MAX_JSON_RESPONSE_BYTES: usize = 256 * 1024;

/// Largest segment downloaded, in bytes; a bigger body fails the download.
pub(crate) const MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Longest a segment download may take, in ms: far beyond any live segment's usefulness, it
/// only keeps a hung connection from holding a download slot forever.
const SEGMENT_TIMEOUT_MS: u32 = 30_000;

/// Why a control-plane call failed. Every failure means "carry on CDN-only for that part".
#[derive(Debug)]
pub(crate) enum HttpError {
    /// No response: network error, CORS refusal, or the timeout fired.
    Network,
    /// The server answered with this non-2xx status.
    Status(u16),
    /// The body was too large or not the expected JSON.
    Body,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Network => f.write_str("network error or timeout"),
            Self::Status(s) => write!(f, "HTTP status {s}"),
            Self::Body => f.write_str("bad response body"),
        }
    }
}

/// `GET url` and parse the JSON answer, giving up after `timeout_ms`.
pub(crate) async fn get_json<T: DeserializeOwned>(url: &str, timeout_ms: u32) -> Result<T, HttpError> {
    let response = send("GET", url, None, timeout_ms, false).await?;
    read_json(&response).await
}

/// `POST url` with `body` as JSON and parse the JSON answer, giving up after `timeout_ms`.
pub(crate) async fn post_json<B: Serialize, T: DeserializeOwned>(
    url: &str,
    body: &B,
    timeout_ms: u32,
) -> Result<T, HttpError> {
    let body = serde_json::to_string(body).map_err(|_| HttpError::Body)?;
    let response = send("POST", url, Some(&body), timeout_ms, false).await?;
    read_json(&response).await
}

/// `POST url` with `body` as JSON, ignoring the answer's body. With `keepalive` the request
/// outlives the page (for the last report on `pagehide`).
pub(crate) async fn post(url: &str, body: &impl Serialize, timeout_ms: u32, keepalive: bool) -> Result<(), HttpError> {
    let body = serde_json::to_string(body).map_err(|_| HttpError::Body)?;
    send("POST", url, Some(&body), timeout_ms, keepalive).await.map(drop)
}

/// `GET url` as text, bypassing the browser's HTTP cache (`cache: "no-store"`, so a reload sees
/// the server's newest copy), giving up after `timeout_ms`. A body over `max_bytes` is
/// [`HttpError::Body`].
pub(crate) async fn get_text(url: &str, timeout_ms: u32, max_bytes: usize) -> Result<String, HttpError> {
    let init = request_init("GET", None, timeout_ms)?;
    init.set_cache(RequestCache::NoStore);
    let response = fetch(url, &init).await?;
    // Refused before reading when the server says it is too large; checked again once read.
    let declared = response.headers().get("content-length").ok().flatten().and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_bytes as u64) {
        return Err(HttpError::Body);
    }
    read_text(&response, max_bytes).await
}

async fn send(
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout_ms: u32,
    keepalive: bool,
) -> Result<Response, HttpError> {
    let init = request_init(method, body, timeout_ms)?;
    if keepalive {
        // Not in web-sys' RequestInit; the property is standard (Fetch §5.3).
        let _ = Reflect::set(&init, &JsValue::from_str("keepalive"), &JsValue::TRUE);
    }
    fetch(url, &init).await
}

/// A request with `method`, a JSON `body` if any, aborted after `timeout_ms`.
fn request_init(method: &str, body: Option<&str>, timeout_ms: u32) -> Result<RequestInit, HttpError> {
    let init = RequestInit::new();
    init.set_method(method);
    init.set_signal(Some(&AbortSignal::timeout_with_u32(timeout_ms)));
    if let Some(body) = body {
        init.set_body(&JsValue::from_str(body));
        let headers = Headers::new().map_err(|_| HttpError::Network)?;
        headers.set("content-type", "application/json").map_err(|_| HttpError::Network)?;
        init.set_headers(&headers);
    }
    Ok(init)
}

/// Sends the request; a non-2xx answer is [`HttpError::Status`].
async fn fetch(url: &str, init: &RequestInit) -> Result<Response, HttpError> {
    let window = web_sys::window().ok_or(HttpError::Network)?;
    let response = JsFuture::from(window.fetch_with_str_and_init(url, init)).await.map_err(|_| HttpError::Network)?;
    let response: Response = response.dyn_into().map_err(|_| HttpError::Network)?;
    if !response.ok() {
        return Err(HttpError::Status(response.status()));
    }
    Ok(response)
}

async fn read_json<T: DeserializeOwned>(response: &Response) -> Result<T, HttpError> {
    let text = read_text(response, MAX_JSON_RESPONSE_BYTES).await?;
    serde_json::from_str(&text).map_err(|_| HttpError::Body)
}

/// The body as text; over `max_bytes` (UTF-8) is [`HttpError::Body`].
async fn read_text(response: &Response, max_bytes: usize) -> Result<String, HttpError> {
    let text = response.text().map_err(|_| HttpError::Body)?;
    let text = JsFuture::from(text).await.map_err(|_| HttpError::Network)?;
    let text = text.as_string().ok_or(HttpError::Body)?;
    if text.len() > max_bytes {
        return Err(HttpError::Body);
    }
    Ok(text)
}

/// What a segment download reports, in order: chunks, then exactly one of `Done` or `Failed`.
#[derive(Debug)]
pub(crate) enum FetchEvent {
    /// The response arrived (status 2xx); the body follows.
    Started,
    /// Body bytes at `offset` within the segment.
    Chunk {
        /// Offset of `bytes` within the segment.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The body ended; the segment is `total_len` bytes long.
    Done {
        /// Full length of the segment, in bytes.
        total_len: u64,
    },
    /// The download failed: network error, abort, bad range, too large, or `status`.
    Failed {
        /// HTTP status, when the server answered with an error.
        status: Option<u16>,
    },
}

/// Starts downloading `url` from byte `range_start` (with `Range: bytes=N-` when not 0).
/// `sink` gets every [`FetchEvent`]; when it returns false the download stops quietly (the
/// caller lost interest). Returns the controller that aborts it; `None` outside a window.
pub(crate) fn fetch_segment(
    url: &str,
    range_start: u64,
    mut sink: impl FnMut(FetchEvent) -> bool + 'static,
) -> Option<AbortController> {
    let window = web_sys::window()?;
    let controller = AbortController::new().ok()?;
    let init = RequestInit::new();
    init.set_signal(Some(&with_timeout(&controller.signal(), SEGMENT_TIMEOUT_MS)));
    if range_start > 0 {
        let headers = Headers::new().ok()?;
        headers.set("range", &format!("bytes={range_start}-")).ok()?;
        init.set_headers(&headers);
    }
    let promise = window.fetch_with_str_and_init(url, &init);
    wasm_bindgen_futures::spawn_local(async move {
        let event = match stream_body(promise, range_start, &mut sink).await {
            Ok(Some(total_len)) => FetchEvent::Done { total_len },
            Ok(None) => return,
            Err(status) => FetchEvent::Failed { status },
        };
        sink(event);
    });
    Some(controller)
}

/// `signal` that also aborts after `timeout_ms`, where `AbortSignal.any` exists (Chromium 116+,
/// Firefox 124+, Safari 17.4+); just `signal` elsewhere.
fn with_timeout(signal: &AbortSignal, timeout_ms: u32) -> AbortSignal {
    let has_any = Reflect::get(&js_sys::global(), &JsValue::from_str("AbortSignal"))
        .and_then(|class| Reflect::has(&class, &JsValue::from_str("any")))
        .unwrap_or(false);
    if !has_any {
        return signal.clone();
    }
    let both = js_sys::Array::of2(signal, &AbortSignal::timeout_with_u32(timeout_ms));
    AbortSignal::any(&both)
}

/// Reads the body into `sink`. `Ok(Some(len))` at the end, `Ok(None)` when the sink stopped it.
async fn stream_body(
    promise: js_sys::Promise,
    range_start: u64,
    sink: &mut impl FnMut(FetchEvent) -> bool,
) -> Result<Option<u64>, Option<u16>> {
    let response: Response = JsFuture::from(promise).await.map_err(|_| None)?.dyn_into().map_err(|_| None)?;
    let status = response.status();
    if !response.ok() {
        return Err(Some(status));
    }
    // A 200 to a range request is the whole segment: skip what we already have.
    let mut skip = if range_start > 0 && status == 200 { range_start } else { 0 };
    if status == 206 {
        // Cross-origin, the header is visible only if the CDN exposes it; when visible it must
        // start where we asked.
        let header = response.headers().get("content-range").ok().flatten();
        if header.is_some_and(|h| wire::content_range_start(&h) != Some(range_start)) {
            return Err(Some(status));
        }
    }
    if !sink(FetchEvent::Started) {
        return Ok(None);
    }
    let mut offset = range_start;
    let Some(body) = response.body() else { return Ok(Some(offset)) };
    let reader: ReadableStreamDefaultReader = body.get_reader().unchecked_into();
    loop {
        let result = JsFuture::from(reader.read()).await.map_err(|_| None)?;
        if Reflect::get(&result, &JsValue::from_str("done")).ok().and_then(|d| d.as_bool()) != Some(false) {
            return Ok(Some(offset));
        }
        let value = Reflect::get(&result, &JsValue::from_str("value")).map_err(|_| None)?;
        let chunk: Uint8Array = value.dyn_into().map_err(|_| None)?;
        let mut bytes = chunk.to_vec();
        if skip > 0 {
            // `cut` ≤ bytes.len(), so the drain range is in bounds.
            let cut = usize::try_from(skip).unwrap_or(usize::MAX).min(bytes.len());
            bytes.drain(..cut);
            skip -= cut as u64;
        }
        if bytes.is_empty() {
            continue;
        }
        let len = bytes.len() as u64;
        if offset + len > MAX_SEGMENT_BYTES {
            let _ = reader.cancel();
            return Err(None);
        }
        if !sink(FetchEvent::Chunk { offset, bytes }) {
            let _ = reader.cancel();
            return Ok(None);
        }
        offset += len;
    }
}

/// Turns bytes into a fresh `Uint8Array` the page may own (and transfer) alone.
pub(crate) fn to_uint8_array(bytes: &[u8]) -> Uint8Array {
    Uint8Array::from(bytes)
}

/// Makes a JS `Error` with `msg`, for rejecting promises.
pub(crate) fn js_error(msg: &str) -> JsValue {
    js_sys::Error::new(msg).into()
}
