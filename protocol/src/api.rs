//! JSON bodies of the agent's HTTP calls to the distributor, tracker and analytics
//! (ARCHITECTURE.md §3, steps 2, 3 and 5).
//!
//! Field names are `snake_case` on the wire. Every request type has a size bound
//! ([`MAX_REQUEST_BYTES`]) that servers enforce before parsing.

use serde::{Deserialize, Serialize};

use crate::PeerId;

/// Largest request body any server accepts for these types, in bytes. Servers answer 413 above it.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// Longest customer or content id, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Query of `GET /v1/config` (distributor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigQuery {
    /// Customer id.
    pub customer: String,
    /// Content id (one live stream).
    pub content: String,
    /// Agent library version, e.g. `0.1.0`.
    #[serde(default)]
    pub version: String,
}

/// Answer of `GET /v1/config` (distributor): whether and how this viewer uses P2P.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigResponse {
    /// False when P2P is off for this content or this viewer is outside the rollout: play CDN-only.
    pub p2p_enabled: bool,
    /// Rollout bucket of this session, 0–99; P2P is on when it is below the content's rollout %.
    pub rollout_bucket: u8,
    /// Peering rules set by the content owner.
    pub rules: PeeringRules,
    /// Base URL of the tracker, e.g. `http://127.0.0.1:7001`.
    pub tracker_url: String,
    /// URL of the signalling websocket endpoint, e.g. `ws://127.0.0.1:7002/v1/ws`.
    pub signalling_url: String,
    /// Base URL of analytics.
    pub analytics_url: String,
    /// Session token for the tracker's `init`, opaque to the agent (see [`crate::token`]).
    pub token: String,
    /// CDN access token of this session (see [`crate::access`]); empty when the edges do not
    /// check tokens. The agent appends `__token__=<value>` (percent-encoded) to the multivariant
    /// playlist URL before handing it to hls.js; edges carry it into every playlist URI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cdn_token: String,
    /// Ed25519 public key (hex, 32 bytes) that signs the origin's segment digests
    /// ([`SegmentDigests`]); empty when digests are not signed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub digest_public_key: String,
}

/// Longest ASN allow or deny list in [`PeeringRules`], in entries.
pub const MAX_ASN_RULES: usize = 32;

/// Peering rules a content owner sets per content (distributor config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeeringRules {
    /// Most peers one agent is connected to at once. The agent dials all but a third of them
    /// (at most 4), which it keeps for peers that dial it, so that a joiner finds room in a swarm
    /// where everyone has dialled its share (see the engine's `extra_incoming_peers`).
    pub max_peers: u32,
    /// Whether agents upload to other peers at all (false: download-only).
    pub upload_allowed: bool,
    /// Whether agents on a cellular connection upload.
    pub upload_on_cellular: bool,
    /// When not empty, only viewers in these autonomous systems (AS numbers, RFC 1930) take part
    /// in P2P; the tracker offers no candidates to, and never offers, anyone else. At most
    /// [`MAX_ASN_RULES`] entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub asn_allow: Vec<u32>,
    /// Viewers in these autonomous systems never take part in P2P. At most [`MAX_ASN_RULES`]
    /// entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub asn_deny: Vec<u32>,
}

impl Default for PeeringRules {
    fn default() -> Self {
        Self {
            max_peers: 16,
            upload_allowed: true,
            upload_on_cellular: false,
            asn_allow: Vec::new(),
            asn_deny: Vec::new(),
        }
    }
}

impl PeeringRules {
    /// Whether a viewer in `asn` (`None`: unknown AS) may take part in P2P under these rules.
    /// An unknown AS passes a deny list but not an allow list.
    pub fn asn_permitted(&self, asn: Option<u32>) -> bool {
        match asn {
            Some(asn) => !self.asn_deny.contains(&asn) && (self.asn_allow.is_empty() || self.asn_allow.contains(&asn)),
            None => self.asn_allow.is_empty(),
        }
    }
}

/// Body of `POST /v1/init` (tracker): starts a P2P session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRequest {
    /// Customer id.
    pub customer: String,
    /// Content id.
    pub content: String,
    /// The distributor's session token from [`ConfigResponse::token`].
    pub token: String,
    /// [`crate::PROTOCOL_VERSION`] the agent speaks.
    pub protocol_version: u32,
}

/// Answer of `POST /v1/init` (tracker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitResponse {
    /// The peerId issued to this agent for the whole session.
    pub peer_id: PeerId,
    /// Token binding `peer_id` to this customer and content; sent to signalling and the tracker.
    pub token: String,
    /// [`crate::PROTOCOL_VERSION`] the tracker speaks.
    pub protocol_version: u32,
    /// How often the agent asks for new peers while it has fewer than it wants, in ms.
    pub peers_interval_ms: u64,
    /// Lifetime of `token` from now, in s: the agent renews it (`POST /v1/renew`) before then.
    /// 0 from trackers that do not say.
    #[serde(default)]
    pub token_ttl_s: u64,
}

/// Body of `POST /v1/renew` (tracker): a fresh token for the same peerId, so a session outlives
/// its first token without changing identity (peers know it by its peerId).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewRequest {
    /// The agent's peerId.
    pub peer_id: PeerId,
    /// The session's current token from [`InitResponse::token`] or an earlier renewal; accepted
    /// until a grace period after its expiry.
    pub token: String,
}

/// Answer of `POST /v1/renew` (tracker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewResponse {
    /// The new token, for every later call and signalling connection.
    pub token: String,
    /// Its lifetime from now, in s.
    pub token_ttl_s: u64,
}

/// Body of `POST /v1/track` (tracker): the rendition the agent now plays, which puts it in that swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRequest {
    /// The agent's peerId.
    pub peer_id: PeerId,
    /// Token from [`InitResponse::token`].
    pub token: String,
    /// Rendition (variant index in the multivariant playlist) now played.
    pub rendition: u32,
}

/// Body of `POST /v1/peers` (tracker): asks for candidates in the agent's current swarm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersRequest {
    /// The agent's peerId.
    pub peer_id: PeerId,
    /// Token from [`InitResponse::token`].
    pub token: String,
    /// Rendition now played; also updates the swarm like [`TrackRequest`].
    pub rendition: u32,
    /// Most candidates wanted (the tracker caps it at the content's `max_peers`).
    pub max: u32,
}

/// Longest peer list in a [`PeerReport`], in peers.
pub const MAX_REPORTED_PEERS: usize = 64;

/// What an agent may add to a [`PeersRequest`] about itself, so the tracker ranks candidates
/// better. Every field is optional on the wire; an agent that sends none gets locality ranking
/// only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerReport {
    /// Measured uplink, in kbit/s; peers with more are offered first among equally close ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink_kbps: Option<u32>,
    /// Whether the agent is on a cellular connection (navigator.connection.type).
    pub cellular: bool,
    /// Whether the viewer allows uploading (false: this peer is never offered to others).
    pub upload_allowed: bool,
    /// Peers this agent connected to successfully during the session (at most
    /// [`MAX_REPORTED_PEERS`]); offered again before strangers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connected: Vec<PeerId>,
    /// Peers this agent failed to connect to (at most [`MAX_REPORTED_PEERS`]); offered last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<PeerId>,
}

impl Default for PeerReport {
    fn default() -> Self {
        Self { uplink_kbps: None, cellular: false, upload_allowed: true, connected: Vec::new(), failed: Vec::new() }
    }
}

/// Body of `POST /v1/peers` with the agent's [`PeerReport`]: the same JSON object as a
/// [`PeersRequest`] plus the report's fields, so the tracker accepts both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersRequestWithReport {
    /// The request proper.
    #[serde(flatten)]
    pub request: PeersRequest,
    /// What the agent tells about itself.
    #[serde(flatten)]
    pub report: PeerReport,
}

/// Answer of `POST /v1/peers` (tracker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeersResponse {
    /// Candidates, best first; never the asking peer itself.
    pub peers: Vec<PeerId>,
    /// The tracker's signed introduction of the asking peer to `peers` (see [`crate::intro`]).
    /// The agent sends it to signalling as [`crate::signal::ClientMessage::Introduce`] before
    /// offering to any of them. Empty from trackers that do not introduce.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub intro: String,
    /// Viewers the tracker counts in the asking peer's swarm (content and rendition), the asker
    /// included, counted up to 256. The engine learns from it when every viewer of the swarm is its neighbour
    /// (`engine::Input::SwarmSize`). Absent from trackers that do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swarm_peers: Option<u32>,
}

/// Body of `POST /v1/usage` (analytics): the agent's counters since the session started.
///
/// Counters are cumulative, so a lost report loses nothing and a repeated one changes nothing:
/// analytics keeps, per session, the report with the highest `seq` (idempotent on `(peer_id, seq)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Customer id.
    pub customer: String,
    /// Content id.
    pub content: String,
    /// Session id: the peerId, or a random id when P2P is off.
    pub session: String,
    /// Report number within the session, from 0, increasing.
    pub seq: u64,
    /// Segment bytes received over HTTP from the CDN.
    pub http_bytes: u64,
    /// Segment bytes received from peers.
    pub p2p_down_bytes: u64,
    /// Segment bytes sent to peers.
    pub p2p_up_bytes: u64,
    /// Peers connected at report time.
    pub peers: u32,
    /// Rendition played at report time.
    pub rendition: u32,
    /// Stalls (playback waiting for data) since the session started.
    #[serde(default)]
    pub stalls: u32,
    /// `http_bytes` split by why the agent went to the CDN (absent from older agents: all 0).
    #[serde(default)]
    pub cdn_bytes: CdnBytesByReason,
}

/// A session's CDN segment bytes by why the agent fetched them from the CDN, cumulative, in
/// bytes. The reasons are the engine's (`engine::CdnReason`); their sum is the session's
/// [`UsageReport::http_bytes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CdnBytesByReason {
    /// A joiner's first segments, before any data channel was open (or before the agent ran).
    pub startup_alone: u64,
    /// Before playback started, with channels open but no peer holding the segment.
    pub startup: u64,
    /// The deliberate fetch of a new segment nobody around had (one viewer per segment).
    pub seed: u64,
    /// The deadline came while peers that had the segment were busy.
    pub deadline_busy: u64,
    /// The deadline came and no connected peer had the segment.
    pub deadline_alone: u64,
    /// The deadline came after a peer transfer was given up (slow, stalled, refused, corrupt).
    pub retry: u64,
    /// The deadline came after the sending peer left mid-transfer.
    pub churn: u64,
    /// Everything else (old segments nobody holds, unverified copies, refetches).
    pub other: u64,
}

impl CdnBytesByReason {
    /// The reasons' names, snake_case as serialized, in the order of [`Self::counts`] (and of
    /// the engine's `CdnReason::index`).
    pub const NAMES: [&'static str; 8] =
        ["startup_alone", "startup", "seed", "deadline_busy", "deadline_alone", "retry", "churn", "other"];

    /// Byte counts in [`Self::NAMES`] order.
    #[must_use]
    pub fn counts(&self) -> [u64; 8] {
        [
            self.startup_alone,
            self.startup,
            self.seed,
            self.deadline_busy,
            self.deadline_alone,
            self.retry,
            self.churn,
            self.other,
        ]
    }

    /// From byte counts in [`Self::NAMES`] order.
    #[must_use]
    pub fn from_counts(c: [u64; 8]) -> Self {
        let [startup_alone, startup, seed, deadline_busy, deadline_alone, retry, churn, other] = c;
        Self { startup_alone, startup, seed, deadline_busy, deadline_alone, retry, churn, other }
    }

    /// The reasons' names and byte counts, in [`Self::NAMES`] order.
    #[must_use]
    pub fn by_name(&self) -> [(&'static str, u64); 8] {
        let counts = self.counts();
        std::array::from_fn(|i| (Self::NAMES[i], counts[i]))
    }
}

/// Answer of `GET /v1/summary?content=` (analytics): totals over all sessions of a content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Content id.
    pub content: String,
    /// Sessions that reported within the activity window (viewers now).
    pub viewers: u32,
    /// Sessions ever seen for this content.
    pub sessions: u32,
    /// Sum of [`UsageReport::http_bytes`] over sessions, in bytes.
    pub http_bytes: u64,
    /// Sum of [`UsageReport::p2p_down_bytes`], in bytes.
    pub p2p_down_bytes: u64,
    /// Sum of [`UsageReport::p2p_up_bytes`], in bytes.
    pub p2p_up_bytes: u64,
    /// Offload ratio: p2p_down / (p2p_down + http), 0 when nothing was downloaded.
    pub offload_ratio: f64,
    /// Sum of stalls over sessions.
    pub stalls: u64,
    /// [`Self::http_bytes`] split by why the CDN was used (sum of
    /// [`UsageReport::cdn_bytes`]), in bytes; absent from older analytics, read as zeros.
    #[serde(default)]
    pub cdn_bytes: CdnBytesByReason,
}

/// Body of the distributor's admin `PUT /v1/admin/contents/{customer}/{content}`, and what the
/// distributor stores per content: whether P2P is on, for which share of viewers, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContentSettings {
    /// Whether P2P is on for this content at all (default true).
    pub p2p_enabled: bool,
    /// Share of sessions that get P2P, in percent, 0–100 (default 100).
    pub rollout_percent: u8,
    /// Peering rules handed to the agents.
    pub rules: PeeringRules,
}

impl Default for ContentSettings {
    fn default() -> Self {
        Self { p2p_enabled: true, rollout_percent: 100, rules: PeeringRules::default() }
    }
}

/// Longest digest sidecar accepted by a reader, in bytes.
pub const MAX_DIGESTS_BYTES: usize = 256 * 1024;

/// The origin's digest sidecar of one media playlist (`GET /live/{content}/{name}.json` next to
/// `{name}.m3u8`): the SHA-256 of every listed segment, computed at ingest, each signed with the
/// origin's Ed25519 key, so an agent can check bytes it received from a peer.
///
/// Segment identity is `(content, playlist, msn)`, never a CDN host, so agents on different
/// pathways verify against the same digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDigests {
    /// Format version, 1.
    pub version: u32,
    /// Content id (one live stream).
    pub content: String,
    /// The media playlist's path below the content, e.g. `360p/index.m3u8`.
    pub playlist: String,
    /// One entry per segment the playlist lists, oldest first.
    pub segments: Vec<SegmentDigest>,
}

/// The digest of one segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentDigest {
    /// Media sequence number.
    pub msn: u64,
    /// The segment URI as written in the playlist.
    pub uri: String,
    /// Size, in bytes.
    pub bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// Ed25519 signature (lowercase hex, 64 bytes) of [`SegmentDigest::signed_message`]; empty
    /// when the origin has no signing key.
    #[serde(default)]
    pub signature: String,
}

impl SegmentDigest {
    /// The exact bytes the signature covers:
    /// `swarmcast-digest-v1\n{content}\n{playlist}\n{msn}\n{bytes}\n{sha256}`.
    pub fn signed_message(&self, content: &str, playlist: &str) -> Vec<u8> {
        format!("swarmcast-digest-v1\n{content}\n{playlist}\n{}\n{}\n{}", self.msn, self.bytes, self.sha256)
            .into_bytes()
    }
}

/// An HLS content steering manifest (draft-pantos-hls-rfc8216bis §7.2), as served to hls.js.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SteeringManifest {
    /// Always 1.
    #[serde(rename = "VERSION")]
    pub version: u32,
    /// Seconds until the client reloads the manifest.
    #[serde(rename = "TTL")]
    pub ttl_s: u64,
    /// Where to reload it from (carries the session id).
    #[serde(rename = "RELOAD-URI")]
    pub reload_uri: String,
    /// Pathway ids, most preferred first; every id is declared in the multivariant playlist.
    #[serde(rename = "PATHWAY-PRIORITY")]
    pub pathway_priority: Vec<String>,
}

/// A JSON error body every server returns with a 4xx/5xx status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable reason, e.g. `bad_token`, `unknown_peer`, `too_large`.
    pub error: String,
    /// Human-readable detail.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_report_round_trips_in_snake_case() {
        let r = UsageReport {
            customer: "c".into(),
            content: "live".into(),
            session: "p1".into(),
            seq: 3,
            http_bytes: 10,
            p2p_down_bytes: 20,
            p2p_up_bytes: 5,
            peers: 2,
            rendition: 1,
            stalls: 0,
            cdn_bytes: CdnBytesByReason { seed: 10, ..CdnBytesByReason::default() },
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"seed\":10"));
        assert!(json.contains("\"p2p_down_bytes\":20"));
        assert_eq!(serde_json::from_str::<UsageReport>(&json).unwrap(), r);
    }
}
