//! Pure helpers with no browser in them: option and segment shapes, URLs, report and stats
//! JSON, reconnect backoff. Everything here is unit-tested natively.

use engine::{SegmentInfo, Stats};
use protocol::api::{CdnBytesByReason, UsageReport};
use serde::Deserialize;

/// Longest options or segment-list JSON accepted from the page, in bytes.
pub(crate) const MAX_INPUT_JSON_BYTES: usize = 1024 * 1024;

/// Most segments kept from one playlist (a live window is 3–30 segments; a DVR window more).
pub(crate) const MAX_PLAYLIST_SEGMENTS: usize = 2_000;

/// What the page passes to `new Agent(options)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub(crate) struct AgentOptions {
    /// Customer id, as configured in the distributor.
    pub(crate) customer: String,
    /// Content id (one live stream).
    pub(crate) content: String,
    /// Base URL of the distributor, e.g. `http://127.0.0.1:7000`; empty means CDN-only.
    pub(crate) distributor_url: String,
    /// Whether to try P2P at all; false plays CDN-only (usage is still reported).
    pub(crate) p2p: bool,
    /// Timeout of every control-plane HTTP call (config, init, track, peers, usage), in ms.
    pub(crate) http_timeout_ms: u32,
    /// Period of usage reports to analytics, in ms.
    pub(crate) report_interval_ms: u32,
    /// Logs session events to the browser console.
    pub(crate) debug: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            customer: String::new(),
            content: String::new(),
            distributor_url: String::new(),
            p2p: true,
            http_timeout_ms: 3_000,
            report_interval_ms: 2_000,
            debug: false,
        }
    }
}

/// One segment as the page describes it in `agent.playlist(rendition, segments)`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct JsSegment {
    msn: f64,
    start_ms: f64,
    duration_ms: f64,
    url: String,
    #[serde(default)]
    byte_len: Option<f64>,
}

/// Why the page's input was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InputError {
    /// Larger than [`MAX_INPUT_JSON_BYTES`].
    TooLarge,
    /// Not the expected shape (the serde message).
    Malformed(String),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "input larger than {MAX_INPUT_JSON_BYTES} bytes"),
            Self::Malformed(m) => write!(f, "malformed input: {m}"),
        }
    }
}

/// Parses the options JSON. Missing fields take their defaults.
pub(crate) fn parse_options(json: &str) -> Result<AgentOptions, InputError> {
    parse_bounded(json)
}

/// Parses a segment list JSON (`[{msn, start_ms, duration_ms, url, byte_len?}]`) into the
/// engine's shape, oldest first, keeping the newest [`MAX_PLAYLIST_SEGMENTS`]. Segments with a
/// negative or non-finite number or an empty URL are refused.
pub(crate) fn parse_segments(json: &str) -> Result<Vec<SegmentInfo>, InputError> {
    let raw: Vec<JsSegment> = parse_bounded(json)?;
    let skip = raw.len().saturating_sub(MAX_PLAYLIST_SEGMENTS);
    let mut out = Vec::with_capacity(raw.len() - skip);
    for s in raw.into_iter().skip(skip) {
        let (Some(msn), Some(start_ms), Some(duration_ms)) = (to_u64(s.msn), to_u64(s.start_ms), to_u64(s.duration_ms))
        else {
            return Err(InputError::Malformed(String::from("segment numbers must be whole, 0 or more")));
        };
        if s.url.is_empty() {
            return Err(InputError::Malformed(format!("segment {msn} has no url")));
        }
        let byte_len = s.byte_len.and_then(to_u64);
        out.push(SegmentInfo { msn, start_ms, duration_ms, url: s.url, byte_len });
    }
    out.sort_by_key(|s| s.msn);
    out.dedup_by_key(|s| s.msn);
    Ok(out)
}

/// One CDN pathway as the page describes it in `agent.pathways([...])`.
#[derive(Debug, Deserialize)]
struct JsPathway {
    id: String,
    url: String,
}

/// Parses a pathway list JSON (`[{id, url}]`, priority order; `url` is a variant playlist URL
/// on that pathway) into `(id, base URL)` pairs. Entries whose URL has no path are refused.
pub(crate) fn parse_pathways(json: &str) -> Result<Vec<(String, String)>, InputError> {
    let raw: Vec<JsPathway> = parse_bounded(json)?;
    raw.into_iter()
        .map(|p| match crate::pathways::base_of(&p.url) {
            Some(base) => Ok((p.id, base.to_owned())),
            None => Err(InputError::Malformed(format!("pathway {} has no playlist path", p.id))),
        })
        .collect()
}

/// Converts a JS number to a whole `u64`, rounding down; `None` when negative, NaN or ≥ 2^53.
pub(crate) fn to_u64(x: f64) -> Option<u64> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if !(0.0..=MAX_SAFE).contains(&x) {
        return None;
    }
    // The range check above makes the cast exact for the integer part.
    Some(x as u64)
}

fn parse_bounded<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, InputError> {
    if json.len() > MAX_INPUT_JSON_BYTES {
        return Err(InputError::TooLarge);
    }
    serde_json::from_str(json).map_err(|e| InputError::Malformed(e.to_string()))
}

/// Builds `GET {distributor}/v1/config?customer=&content=&version=` (ARCHITECTURE.md §3 step 2).
pub(crate) fn config_url(distributor: &str, customer: &str, content: &str, version: &str) -> String {
    format!(
        "{}/v1/config?customer={}&content={}&version={}",
        distributor.trim_end_matches('/'),
        encode_component(customer),
        encode_component(content),
        encode_component(version),
    )
}

/// Joins a service base URL and an absolute path, e.g. (`http://t:1/`, `/v1/init`).
pub(crate) fn endpoint(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

/// Appends the signalling credentials to the websocket URL: `{url}?peer_id=..&token=..`.
pub(crate) fn signalling_url(base: &str, peer_id: &str, token: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}peer_id={}&token={}", encode_component(peer_id), encode_component(token))
}

/// When to renew a session token that lives `ttl_s` seconds from now, in ms: at 80 % of its life,
/// not sooner than 10 s. `None` when the tracker did not say (`ttl_s` 0).
pub(crate) fn renewal_delay_ms(ttl_s: u64) -> Option<u32> {
    if ttl_s == 0 {
        return None;
    }
    let ms = ttl_s.saturating_mul(800).max(10_000);
    Some(u32::try_from(ms).unwrap_or(u32::MAX))
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved characters (§2.3).
pub(crate) fn encode_component(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
    out
}

/// Reconnect delay after `attempt` consecutive failures, in ms: 500 ms doubling up to 30 s,
/// scaled by `jitter` in [0, 1) to 50–150 % so that peers do not reconnect in lockstep.
pub(crate) fn backoff_ms(attempt: u32, jitter: f64) -> u32 {
    const BASE_MS: u32 = 500;
    const MAX_MS: u32 = 30_000;
    let base = BASE_MS.saturating_mul(1u32 << attempt.min(16)).min(MAX_MS);
    let scale = 0.5 + jitter.clamp(0.0, 1.0);
    // base ≤ 30 000 and scale ≤ 1.5, so the product fits a u32.
    (f64::from(base) * scale) as u32
}

/// Everything a usage report or `stats()` needs, gathered from the engine and the shell.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Counters {
    /// The engine's counters (zero before it exists).
    pub(crate) engine: Stats,
    /// Bytes the shell fetched over HTTP itself before the engine existed.
    pub(crate) direct_http_bytes: u64,
    /// Rendition the player last asked for.
    pub(crate) rendition: Option<u32>,
    /// Stalls the page reported.
    pub(crate) stalls: u32,
    /// Moving average of HTTP throughput, in bits/s; 0 when unmeasured.
    pub(crate) bandwidth_bps: f64,
    /// Media playlist loads made by the agent for early reloads (`engine::Output::ReloadPlaylist`).
    pub(crate) playlist_polls: u64,
}

impl Counters {
    /// Segment bytes received over HTTP, by the engine and directly.
    pub(crate) fn http_bytes(&self) -> u64 {
        self.engine.http_bytes + self.direct_http_bytes
    }
}

/// Builds the cumulative usage report number `seq` (protocol `UsageReport`).
pub(crate) fn usage_report(options: &AgentOptions, session: &str, seq: u64, c: &Counters) -> UsageReport {
    UsageReport {
        customer: options.customer.clone(),
        content: options.content.clone(),
        session: session.to_owned(),
        seq,
        http_bytes: c.http_bytes(),
        p2p_down_bytes: c.engine.p2p_down_bytes,
        p2p_up_bytes: c.engine.p2p_up_bytes,
        peers: c.engine.peers_connected,
        rendition: c.rendition.unwrap_or(0),
        stalls: c.stalls,
        cdn_bytes: cdn_bytes(c),
    }
}

/// The engine's CDN bytes by reason, with the direct downloads made before the engine existed
/// counted as a joiner's first segments (`startup_alone`); they sum to `http_bytes()`.
fn cdn_bytes(c: &Counters) -> CdnBytesByReason {
    let mut counts = c.engine.cdn_bytes_by_reason;
    counts[engine::CdnReason::StartupAlone.index()] += c.direct_http_bytes;
    CdnBytesByReason::from_counts(counts)
}

/// Serializes the page's view of the counters (`agent.stats()`, camelCase keys): `httpBytes`,
/// `p2pDownBytes`, `p2pUpBytes`, `peers`, `peerId`, `rendition`, `segmentsDelivered`, `stalls`,
/// `bandwidthBps` (bits/s, rounded), `mode` (`starting`, `p2p`, `cdn` or `destroyed`),
/// `playlistPolls`, `uplinkStreams` and `liveEdge` (what the engine last announced as a seeder)
/// and `cdnBytesByReason`.
///
/// Written by hand: every value is an integer, a string or null, and a serde serializer here
/// would cost the wasm module more than this function.
pub(crate) fn stats_json(c: &Counters, peer_id: Option<&str>, mode: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(256);
    // Clamped to [0, 2^53]: a u64 in JSON that JS reads back exactly.
    let bandwidth = to_u64(c.bandwidth_bps.round().min(9_007_199_254_740_991.0)).unwrap_or(0);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{{\"httpBytes\":{},\"p2pDownBytes\":{},\"p2pUpBytes\":{},\"peers\":{},\"peerId\":",
        c.http_bytes(),
        c.engine.p2p_down_bytes,
        c.engine.p2p_up_bytes,
        c.engine.peers_connected,
    );
    push_json_str_or_null(&mut out, peer_id);
    match c.rendition {
        Some(r) => {
            let _ = write!(out, ",\"rendition\":{r}");
        }
        None => out.push_str(",\"rendition\":null"),
    }
    let _ = write!(
        out,
        ",\"segmentsDelivered\":{},\"stalls\":{},\"bandwidthBps\":{bandwidth},\"mode\":",
        c.engine.segments_delivered, c.stalls,
    );
    push_json_str_or_null(&mut out, Some(mode));
    let _ = write!(out, ",\"playlistPolls\":{}", c.playlist_polls);
    let _ = write!(out, ",\"uplinkStreams\":{},\"liveEdge\":{}", c.engine.announced_streams, c.engine.at_live_edge);
    // Why the engine's CDN bytes came from the CDN, by reason (snake_case names).
    out.push_str(",\"cdnBytesByReason\":{");
    for (i, reason) in engine::CdnReason::ALL.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}\"{}\":{}", reason.name(), c.engine.cdn_bytes_by_reason[reason.index()]);
    }
    out.push_str("}}");
    out
}

/// Appends `s` as a JSON string (RFC 8259 §7 escapes), or `null`.
fn push_json_str_or_null(out: &mut String, s: Option<&str>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let Some(s) = s else {
        out.push_str("null");
        return;
    };
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xF)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Folds one HTTP download into the throughput average: `bytes` over `elapsed_ms`.
/// Downloads under 16 KiB or 1 ms say more about latency than throughput and are skipped.
pub(crate) fn update_bandwidth(avg_bps: f64, bytes: u64, elapsed_ms: f64) -> f64 {
    const MIN_BYTES: u64 = 16 * 1024;
    const WEIGHT: f64 = 0.3;
    if bytes < MIN_BYTES || elapsed_ms < 1.0 {
        return avg_bps;
    }
    // u64 → f64 loses precision only above 2^53 bytes.
    let sample = bytes as f64 * 8_000.0 / elapsed_ms;
    if avg_bps <= 0.0 { sample } else { avg_bps * (1.0 - WEIGHT) + sample * WEIGHT }
}

/// Parses the first byte position of a `Content-Range: bytes N-M/T` header (RFC 9110 §14.4).
pub(crate) fn content_range_start(header: &str) -> Option<u64> {
    let rest = header.trim().strip_prefix("bytes")?.trim_start();
    let (first, _) = rest.split_once('-')?;
    first.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_four_fifths_of_their_life() {
        assert_eq!(renewal_delay_ms(0), None);
        assert_eq!(renewal_delay_ms(3_600), Some(2_880_000));
        assert_eq!(renewal_delay_ms(1), Some(10_000));
        assert_eq!(renewal_delay_ms(u64::MAX), Some(u32::MAX));
    }

    #[test]
    fn pathways_become_bases_in_order() {
        let list = parse_pathways(
            r#"[{"id":"cdn-b","url":"http://b/live/x/360p.m3u8?__token__=t"},{"id":"cdn-a","url":"http://a/live/x/360p.m3u8"}]"#,
        )
        .unwrap();
        assert_eq!(
            list,
            vec![("cdn-b".into(), "http://b/live/x/".into()), ("cdn-a".into(), "http://a/live/x/".into())]
        );
        assert!(parse_pathways(r#"[{"id":"a","url":"nopath"}]"#).is_err());
        assert!(parse_pathways(r#"{"id":"a"}"#).is_err());
    }

    #[test]
    fn options_default_missing_fields() {
        let o = parse_options(r#"{"customer":"demo","content":"live","distributor_url":"http://d"}"#).unwrap();
        assert_eq!(o.customer, "demo");
        assert!(o.p2p);
        assert_eq!(o.http_timeout_ms, 3_000);
        assert!(!parse_options(r#"{"p2p":false}"#).unwrap().p2p);
    }

    #[test]
    fn options_reject_garbage_and_oversize() {
        assert!(matches!(parse_options("[1,2"), Err(InputError::Malformed(_))));
        let big = format!("{{\"customer\":\"{}\"}}", "x".repeat(MAX_INPUT_JSON_BYTES));
        assert_eq!(parse_options(&big), Err(InputError::TooLarge));
    }

    #[test]
    fn segments_parse_sort_and_dedup() {
        let json = r#"[{"msn":11,"start_ms":2000.5,"duration_ms":2000,"url":"http://c/11.ts"},
                       {"msn":10,"start_ms":0,"duration_ms":2000,"url":"http://c/10.ts","byte_len":5},
                       {"msn":11,"start_ms":2000,"duration_ms":2000,"url":"http://c/11b.ts"}]"#;
        let segs = parse_segments(json).unwrap();
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[0].msn, 10);
        assert_eq!(segs[0].byte_len, Some(5));
        assert_eq!(segs[1].start_ms, 2000);
    }

    #[test]
    fn segments_with_bad_numbers_or_urls_are_refused() {
        assert!(parse_segments(r#"[{"msn":-1,"start_ms":0,"duration_ms":1,"url":"u"}]"#).is_err());
        assert!(parse_segments(r#"[{"msn":1,"start_ms":0,"duration_ms":1,"url":""}]"#).is_err());
        assert!(parse_segments(r#"[{"msn":1,"start_ms":0,"duration_ms":1}]"#).is_err());
    }

    #[test]
    fn segments_keep_only_the_newest() {
        let list: Vec<String> = (0..MAX_PLAYLIST_SEGMENTS + 5)
            .map(|i| format!(r#"{{"msn":{i},"start_ms":0,"duration_ms":1,"url":"u"}}"#))
            .collect();
        let segs = parse_segments(&format!("[{}]", list.join(","))).unwrap();
        assert_eq!(segs.len(), MAX_PLAYLIST_SEGMENTS);
        assert_eq!(segs[0].msn, 5);
    }

    #[test]
    fn urls_are_built_and_encoded() {
        assert_eq!(
            config_url("http://d:1/", "a b", "live/1", "0.1.0"),
            "http://d:1/v1/config?customer=a%20b&content=live%2F1&version=0.1.0"
        );
        assert_eq!(endpoint("http://t/", "/v1/init"), "http://t/v1/init");
        assert_eq!(signalling_url("ws://s/v1/ws", "p1", "a.b+c"), "ws://s/v1/ws?peer_id=p1&token=a.b%2Bc");
        assert_eq!(signalling_url("ws://s/ws?x=1", "p", "t"), "ws://s/ws?x=1&peer_id=p&token=t");
        assert_eq!(encode_component("é"), "%C3%A9");
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff_ms(0, 0.5), 500);
        assert_eq!(backoff_ms(1, 0.5), 1_000);
        assert_eq!(backoff_ms(20, 0.5), 30_000);
        assert_eq!(backoff_ms(20, 0.999_999), 44_999);
        assert_eq!(backoff_ms(0, 0.0), 250);
    }

    #[test]
    fn usage_report_sums_direct_and_engine_bytes() {
        let mut c = Counters { direct_http_bytes: 7, rendition: Some(2), stalls: 1, ..Counters::default() };
        c.engine.http_bytes = 3;
        c.engine.cdn_bytes_by_reason[engine::CdnReason::Seed.index()] = 2;
        c.engine.cdn_bytes_by_reason[engine::CdnReason::Retry.index()] = 1;
        c.engine.p2p_down_bytes = 10;
        let o = AgentOptions { customer: "c".into(), content: "k".into(), ..AgentOptions::default() };
        let r = usage_report(&o, "s", 4, &c);
        assert_eq!((r.http_bytes, r.p2p_down_bytes, r.seq, r.rendition, r.stalls), (10, 10, 4, 2, 1));
        // Direct downloads count as a joiner's first segments; the reasons sum to http_bytes.
        assert_eq!((r.cdn_bytes.startup_alone, r.cdn_bytes.seed, r.cdn_bytes.retry), (7, 2, 1));
        assert_eq!(r.cdn_bytes.by_name().iter().map(|(_, b)| b).sum::<u64>(), r.http_bytes);
    }

    #[test]
    fn stats_json_is_camel_case() {
        let c = Counters { direct_http_bytes: 5, ..Counters::default() };
        let json = stats_json(&c, Some("p1"), "p2p");
        assert!(json.contains(r#""httpBytes":5"#), "{json}");
        assert!(json.contains(r#""peerId":"p1""#), "{json}");
        assert!(json.contains(r#""p2pDownBytes":0"#), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["rendition"], serde_json::Value::Null);
        assert_eq!(v["cdnBytesByReason"]["seed"], 0);
        assert_eq!(v["cdnBytesByReason"].as_object().unwrap().len(), engine::CdnReason::ALL.len());
        assert_eq!(v["mode"], "p2p");
        assert_eq!(v["playlistPolls"], 0);
        assert_eq!((v["uplinkStreams"].as_u64(), v["liveEdge"].as_bool()), (Some(0), Some(false)));
        let c = Counters { rendition: Some(3), bandwidth_bps: 1_234.6, ..Counters::default() };
        let v: serde_json::Value = serde_json::from_str(&stats_json(&c, None, "a\"b\\c\n")).unwrap();
        assert_eq!((v["rendition"].as_u64(), v["bandwidthBps"].as_u64()), (Some(3), Some(1_235)));
        assert_eq!((v["peerId"].is_null(), v["mode"].as_str()), (true, Some("a\"b\\c\n")));
    }

    #[test]
    fn bandwidth_average_skips_tiny_samples() {
        assert_eq!(update_bandwidth(0.0, 100, 10.0), 0.0);
        let first = update_bandwidth(0.0, 125_000, 1_000.0);
        assert_eq!(first, 1_000_000.0);
        let second = update_bandwidth(first, 250_000, 1_000.0);
        assert!((second - 1_300_000.0).abs() < 1e-6);
    }

    #[test]
    fn content_range_start_parses() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2"), None);
    }

    #[test]
    fn to_u64_refuses_negative_and_nan() {
        assert_eq!(to_u64(3.9), Some(3));
        assert_eq!(to_u64(-0.5), None);
        assert_eq!(to_u64(f64::NAN), None);
        assert_eq!(to_u64(1e300), None);
    }
}
