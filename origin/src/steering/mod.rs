//! HLS content steering across CDN pathways (draft-pantos-hls-rfc8216bis §4.4.6.6 and §7).
//!
//! - `GET /steer/{content}/master.m3u8` serves the origin's multivariant playlist with every
//!   variant listed once per pathway (`PATHWAY-ID`, `STABLE-VARIANT-ID`, absolute URL on that
//!   CDN), and an `EXT-X-CONTENT-STEERING` tag whose `SERVER-URI` carries a fresh session id and
//!   whose `PATHWAY-ID` is the currently preferred pathway. A `__token__` query parameter is
//!   carried into every variant URL.
//! - `GET /steer/{content}/steering.json?session=…` returns the steering manifest: `VERSION` 1,
//!   `TTL`, `RELOAD-URI` (same session) and `PATHWAY-PRIORITY` from pathway health.
//! - `GET /steer/health` shows each pathway's health.
//!
//! Health comes from [`probe`]: a synthetic player that fetches the live playlist and newest
//! segment through every pathway every few seconds and marks a pathway bad on errors, stale
//! playlists (unchanged for more than 1.5 × target duration) or slow responses; bad pathways move
//! to the end of the priority list. Variants keep their order and ids on every pathway, so the
//! agent's (rendition, sequence number) identity, and with it the swarm, is the same on all CDNs.

pub mod health;
pub mod probe;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::access::TOKEN_PARAM;
use protocol::api::SteeringManifest;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::Origin;
use crate::path::ObjectPath;
use health::PathwayHealth;

/// Longest session id accepted on the steering endpoint, in bytes.
pub const MAX_SESSION_LEN: usize = 64;

/// One CDN pathway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pathway {
    /// Pathway id in playlists and manifests, `[A-Za-z0-9._-]`, e.g. `cdn-a`.
    pub id: String,
    /// Base URL of the CDN (an edge), e.g. `http://cdn-a.example`; objects are at
    /// `{base_url}/live/{content}/…`.
    pub base_url: String,
}

/// Content steering settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SteeringConfig {
    /// The pathways, in default priority order; empty turns steering off.
    pub pathways: Vec<Pathway>,
    /// `TTL` of the steering manifest, in seconds (default 10: a failed CDN is left within about
    /// one TTL).
    pub ttl_s: u64,
    /// Time between two probes of every pathway, in milliseconds (default 2000).
    pub probe_interval_ms: u64,
    /// A probe request slower than this marks its pathway bad, in milliseconds (default 1500).
    pub probe_slow_ms: u64,
    /// Access-token secret of the edges, to sign the prober's own requests; empty sends none.
    pub access_secret: String,
}

impl Default for SteeringConfig {
    fn default() -> Self {
        Self {
            pathways: Vec::new(),
            ttl_s: 10,
            probe_interval_ms: 2000,
            probe_slow_ms: 1500,
            access_secret: String::new(),
        }
    }
}

impl SteeringConfig {
    /// Checks ids, URLs and timings.
    ///
    /// # Errors
    /// A description of the first problem.
    pub fn validate(&self) -> Result<(), String> {
        for (i, p) in self.pathways.iter().enumerate() {
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 64
                && p.id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !id_ok {
                return Err(format!("pathway id {:?} must be 1-64 of [A-Za-z0-9._-]", p.id));
            }
            if self.pathways[..i].iter().any(|q| q.id == p.id) {
                return Err(format!("pathway id {:?} is listed twice", p.id));
            }
            if !p.base_url.starts_with("http://") && !p.base_url.starts_with("https://") {
                return Err(format!("pathway {:?}: base_url must be an http(s) URL", p.id));
            }
        }
        if self.ttl_s == 0 || self.probe_interval_ms == 0 || self.probe_slow_ms == 0 {
            return Err("ttl_s, probe_interval_ms and probe_slow_ms must be above 0".into());
        }
        Ok(())
    }
}

/// Steering state: the configuration and the pathways' health.
#[derive(Debug)]
pub struct Steering {
    config: SteeringConfig,
    health: Mutex<Vec<PathwayHealth>>,
}

impl Steering {
    /// Steering for `config`, every pathway healthy until probed.
    pub fn new(config: SteeringConfig) -> Arc<Self> {
        let health = config.pathways.iter().map(|p| PathwayHealth::new(&p.id)).collect();
        Arc::new(Self { config, health: Mutex::new(health) })
    }

    /// The configuration.
    pub fn config(&self) -> &SteeringConfig {
        &self.config
    }

    /// A copy of every pathway's health.
    pub fn health(&self) -> Vec<PathwayHealth> {
        self.health.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records a probe outcome for pathway `id`.
    pub fn observe(&self, id: &str, outcome: health::Outcome) {
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = h.iter_mut().find(|p| p.id == id) {
            if p.healthy && outcome != health::Outcome::Ok {
                tracing::warn!(pathway = id, ?outcome, "pathway marked bad");
            }
            p.observe(outcome);
        }
    }

    /// Pathway ids, most preferred first.
    pub fn priority(&self) -> Vec<String> {
        health::priority(&self.health.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Rewrites the multivariant playlist `master` of `content` to list every variant on every
/// pathway, with a content steering tag naming `server_uri` and the pathway `first`.
/// `token`, already URL-safe, is appended to every variant URL.
pub fn steered_master(
    master: &str,
    content: &str,
    pathways: &[Pathway],
    first: &str,
    server_uri: &str,
    token: Option<&str>,
) -> String {
    let mut head = Vec::new();
    let mut media = Vec::new();
    let mut variants: Vec<(&str, &str)> = Vec::new();
    let mut pending: Option<&str> = None;
    for line in master.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(inf) = pending.take() {
            variants.push((inf, line));
        } else if line.starts_with("#EXT-X-STREAM-INF:") {
            pending = Some(line);
        } else if line.starts_with("#EXT-X-MEDIA:") {
            media.push(line);
        } else if line.starts_with('#') && !line.starts_with("#EXT-X-CONTENT-STEERING") {
            head.push(line);
        }
    }
    let url = |p: &Pathway, uri: &str| {
        let base = p.base_url.trim_end_matches('/');
        match token {
            Some(t) => format!("{base}/live/{content}/{uri}?{TOKEN_PARAM}={t}"),
            None => format!("{base}/live/{content}/{uri}"),
        }
    };
    let mut out = String::with_capacity(master.len() * (pathways.len() + 1) + 256);
    for line in head {
        out.push_str(line);
        out.push('\n');
    }
    out.push_str(&format!("#EXT-X-CONTENT-STEERING:SERVER-URI=\"{server_uri}\",PATHWAY-ID=\"{first}\"\n"));
    // Alternative renditions are shared by all pathways and fetched from the first one.
    for line in media {
        out.push_str(&crate::edge::map_uri_attribute(line, |uri| {
            pathways.first().map_or(uri.to_owned(), |p| url(p, uri))
        }));
        out.push('\n');
    }
    for p in pathways {
        for (inf, uri) in &variants {
            out.push_str(&format!(
                "{inf},PATHWAY-ID=\"{}\",STABLE-VARIANT-ID=\"{}\"\n{}\n",
                p.id,
                stable_id(uri),
                url(p, uri)
            ));
        }
    }
    out
}

/// A `STABLE-VARIANT-ID` from a variant URI: its characters outside `[A-Za-z0-9._-]` become `_`.
fn stable_id(uri: &str) -> String {
    uri.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' }).collect()
}

/// Query of the master and manifest requests.
#[derive(Debug, Deserialize)]
pub(crate) struct SteerQuery {
    #[serde(default)]
    session: Option<String>,
    #[serde(default, rename = "__token__")]
    token: Option<String>,
}

/// `GET /steer/{content}/master.m3u8`.
pub(crate) async fn get_master(
    State(origin): State<Origin>,
    Path(content): Path<String>,
    Query(q): Query<SteerQuery>,
) -> Response {
    let Some(steering) = origin.steering() else { return not_found() };
    let Ok(path) = ObjectPath::new(&content, "master.m3u8") else { return not_found() };
    let Some(master) = origin.with_store_read(|s, now| s.get(now, &path)) else { return not_found() };
    let priority = steering.priority();
    let first = priority.first().cloned().unwrap_or_default();
    let session = random_session();
    let server_uri = format!("steering.json?session={session}");
    let token = q.token.as_deref().map(crate::edge::encode_token);
    let text = String::from_utf8_lossy(&master.bytes);
    let body = steered_master(&text, &content, &steering.config.pathways, &first, &server_uri, token.as_deref());
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/vnd.apple.mpegurl"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /steer/{content}/steering.json?session=…`.
pub(crate) async fn get_manifest(
    State(origin): State<Origin>,
    Path(content): Path<String>,
    Query(q): Query<SteerQuery>,
) -> Response {
    let Some(steering) = origin.steering() else { return not_found() };
    let session = q.session.unwrap_or_default();
    let session_ok = session.len() <= MAX_SESSION_LEN
        && session.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !session_ok || ObjectPath::new(&content, "master.m3u8").is_err() {
        return service::error_response(StatusCode::BAD_REQUEST, "bad_request", "bad content or session");
    }
    let manifest = SteeringManifest {
        version: 1,
        ttl_s: steering.config.ttl_s,
        reload_uri: format!("steering.json?session={session}"),
        pathway_priority: steering.priority(),
    };
    let mut r = Json(manifest).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /steer/health`.
pub(crate) async fn get_health(State(origin): State<Origin>) -> Response {
    match origin.steering() {
        Some(s) => Json(s.health()).into_response(),
        None => not_found(),
    }
}

fn not_found() -> Response {
    service::error_response(StatusCode::NOT_FOUND, "not_found", "not found")
}

fn random_session() -> String {
    let mut b = [0_u8; 8];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pathways() -> Vec<Pathway> {
        ["a", "b"]
            .iter()
            .map(|id| Pathway { id: format!("cdn-{id}"), base_url: format!("http://{id}.example/") })
            .collect()
    }

    #[test]
    fn every_variant_on_every_pathway() {
        let master = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n360p/index.m3u8\n\
                      #EXT-X-STREAM-INF:BANDWIDTH=300000\n180p/index.m3u8\n";
        let out = steered_master(master, "live", &pathways(), "cdn-b", "steering.json?session=s1", Some("T"));
        let expected = "#EXTM3U\n#EXT-X-VERSION:3\n\
            #EXT-X-CONTENT-STEERING:SERVER-URI=\"steering.json?session=s1\",PATHWAY-ID=\"cdn-b\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,PATHWAY-ID=\"cdn-a\",STABLE-VARIANT-ID=\"360p_index.m3u8\"\n\
            http://a.example/live/live/360p/index.m3u8?__token__=T\n\
            #EXT-X-STREAM-INF:BANDWIDTH=300000,PATHWAY-ID=\"cdn-a\",STABLE-VARIANT-ID=\"180p_index.m3u8\"\n\
            http://a.example/live/live/180p/index.m3u8?__token__=T\n\
            #EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,PATHWAY-ID=\"cdn-b\",STABLE-VARIANT-ID=\"360p_index.m3u8\"\n\
            http://b.example/live/live/360p/index.m3u8?__token__=T\n\
            #EXT-X-STREAM-INF:BANDWIDTH=300000,PATHWAY-ID=\"cdn-b\",STABLE-VARIANT-ID=\"180p_index.m3u8\"\n\
            http://b.example/live/live/180p/index.m3u8?__token__=T\n";
        assert_eq!(out, expected);
        // m3u8-rs keeps the steering attributes of each variant.
        let m3u8_rs::Playlist::MasterPlaylist(parsed) = m3u8_rs::parse_playlist_res(out.as_bytes()).unwrap() else {
            panic!("master expected")
        };
        assert_eq!(parsed.variants.len(), 4);
        assert!(parsed.variants[3].other_attributes.as_ref().unwrap().contains_key("PATHWAY-ID"));
    }

    #[test]
    fn config_checks_ids_and_urls() {
        let mut c = SteeringConfig { pathways: pathways(), ..SteeringConfig::default() };
        assert_eq!(c.validate(), Ok(()));
        c.pathways[1].id = "cdn-a".into();
        assert!(c.validate().is_err());
        c.pathways[1].id = "cdn b".into();
        assert!(c.validate().is_err());
        c.pathways[1] = Pathway { id: "x".into(), base_url: "ftp://x".into() };
        assert!(c.validate().is_err());
    }
}
