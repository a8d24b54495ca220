//! The tracker's configuration: token secret, timers and bounds.

use serde::{Deserialize, Serialize};

/// Tracker configuration (defaults < TOML file < `SWARMCAST_TRACKER_*` env vars).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HMAC key for session tokens, shared with the distributor and signalling. Must not be empty.
    pub secret: String,
    /// Lifetime of the peer tokens minted at `init`, in seconds.
    pub token_ttl_s: u64,
    /// A peer silent (no `track` or `peers` call) for this long leaves its swarm, in seconds.
    pub peer_timeout_s: u64,
    /// Most candidates in one `peers` answer, in peers.
    pub max_peers_per_response: u32,
    /// Most peers tracked at once over all swarms, in peers; new peers get 503 above it.
    pub max_peers_total: usize,
    /// How often agents should ask for peers while they want more (sent at `init`), in ms.
    pub peers_interval_ms: u64,
    /// Path of the operator's IP-range → AS/region table (CSV, see the `locality` module docs);
    /// empty: match on subnets only.
    pub ip_table: String,
    /// Path of a MaxMind-format AS database (`.mmdb`: GeoLite2-ASN, GeoIP2-ISP, DB-IP ASN lite or
    /// GeoIP2-Enterprise), read into memory at start (at most 512 MiB), for the addresses whose
    /// AS number `ip_table` does not give; empty: none.
    pub ip_asn_mmdb: String,
    /// Path of a MaxMind-format place database (`.mmdb`: GeoLite2-City or -Country, GeoIP2-City,
    /// DB-IP city lite, GeoIP2-Enterprise; may be the same file as `ip_asn_mmdb`), for the
    /// addresses whose region `ip_table` does not give. The region is `FR-IDF` (country and first
    /// subdivision), else `FR`, else `continent:EU`, matching `ip_table` regions of the same
    /// name; empty: none.
    pub ip_region_mmdb: String,
    /// Most recently active members of a swarm ranked per `peers` request, in peers; bounds the
    /// cost of one request in huge swarms.
    pub scan_limit: usize,
    /// Lifetime of the introductions returned with candidates (how long signalling relays offers
    /// to them), and of a WebTorrent offer awaiting its answer, in seconds (the latter capped at
    /// 32,767).
    pub offer_ttl_s: u64,
    /// Take the client address from the first `X-Forwarded-For` entry (only behind a proxy that
    /// sets it); otherwise from the TCP peer.
    pub trust_forwarded_for: bool,
    /// Most contents whose peering rules are remembered, in contents.
    pub max_contents: usize,
    /// PEM certificate chain for serving TLS (https/wss) on the tracker's listener; empty: plain.
    pub tls_cert_pem: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) matching `tls_cert_pem`.
    pub tls_key_pem: String,
    /// Re-announce interval told to WebTorrent clients, in seconds.
    pub webtorrent_interval_s: u64,
    /// WebTorrent peers that do not re-announce for this long leave their swarm, in seconds.
    pub webtorrent_peer_ttl_s: u64,
    /// Most offers of one announce relayed to other peers, in offers (aquatic_ws: 10).
    pub webtorrent_max_offers: usize,
    /// Messages queued for one WebTorrent connection; more are dropped (the client is not
    /// reading). aquatic_ws: 16.
    pub webtorrent_queue_messages: usize,
    /// Unanswered offers remembered per (peer, swarm); the oldest is forgotten first, and an
    /// answer to a forgotten offer is refused. Bounds the memory a client flooding offers can
    /// take (aquatic_ws keeps every offer for its lifetime).
    pub webtorrent_max_pending_offers: usize,
    /// A WebTorrent connection that sends nothing for this long is closed, in seconds.
    pub webtorrent_idle_timeout_s: u64,
    /// Most WebTorrent connections at once, in connections; more get 503.
    pub webtorrent_max_connections: usize,
    /// Most swarms one WebTorrent connection may join, in swarms.
    pub webtorrent_max_swarms_per_connection: usize,
    /// Kernel send buffer per TLS connection (`SO_SNDBUF`), in bytes; 0 keeps the OS default.
    /// A small buffer keeps a client that does not read from piling up messages in the kernel:
    /// they wait in (and overflow from) the bounded per-connection queue instead.
    pub tcp_send_buffer_bytes: usize,
    /// Outgoing websocket bytes gathered per connection before they go to TLS and the socket
    /// together (one record and one write for a batch of messages), in bytes; a larger
    /// message is written on its own. The read side keeps fastwebsockets' 8 KiB buffer, grown
    /// to the largest frame read (at most 64 KiB).
    pub ws_write_buffer_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret: String::new(),
            token_ttl_s: 3600,
            peer_timeout_s: 60,
            max_peers_per_response: 20,
            max_peers_total: 1_000_000,
            peers_interval_ms: 5_000,
            ip_table: String::new(),
            ip_asn_mmdb: String::new(),
            ip_region_mmdb: String::new(),
            scan_limit: 512,
            offer_ttl_s: 120,
            trust_forwarded_for: false,
            max_contents: 100_000,
            tls_cert_pem: String::new(),
            tls_key_pem: String::new(),
            webtorrent_interval_s: 120,
            webtorrent_peer_ttl_s: 180,
            webtorrent_max_offers: 10,
            webtorrent_queue_messages: 16,
            webtorrent_max_pending_offers: 256,
            webtorrent_idle_timeout_s: 180,
            webtorrent_max_connections: 100_000,
            webtorrent_max_swarms_per_connection: 16,
            tcp_send_buffer_bytes: 0,
            ws_write_buffer_bytes: 8192,
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `secret` is empty: tokens would be forgeable. Set the distributor's secret.
    #[error("secret must not be empty")]
    EmptySecret,
    /// `token_ttl_s`, `peer_timeout_s` or `offer_ttl_s` is 0.
    #[error("token_ttl_s, peer_timeout_s and offer_ttl_s must be above 0")]
    ZeroDuration,
    /// `max_peers_per_response` is above what one introduction can name.
    #[error("max_peers_per_response must be at most {}", protocol::intro::MAX_INTRO_PEERS)]
    TooManyPeersPerResponse,
    /// A WebTorrent limit or the websocket write buffer is 0.
    #[error("webtorrent limits and ws_write_buffer_bytes must be above 0")]
    WebTorrent,
    /// Only one of `tls_cert_pem` and `tls_key_pem` is set, or they cannot be loaded.
    #[error("tls: {0}")]
    Tls(String),
    /// The IP-range table cannot be read.
    #[error("ip_table: {0}")]
    IpTable(#[from] crate::locality::TableError),
    /// `ip_asn_mmdb` or `ip_region_mmdb` cannot be read or is not a MaxMind DB.
    #[error("{0}")]
    Mmdb(#[from] crate::mmdb::MmdbError),
}

impl Config {
    /// Checks the invariants the server relies on.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        if self.token_ttl_s == 0 || self.peer_timeout_s == 0 || self.offer_ttl_s == 0 {
            return Err(ConfigError::ZeroDuration);
        }
        if self.max_peers_per_response as usize > protocol::intro::MAX_INTRO_PEERS {
            return Err(ConfigError::TooManyPeersPerResponse);
        }
        let zero = [
            self.webtorrent_interval_s as usize,
            self.webtorrent_peer_ttl_s as usize,
            self.webtorrent_max_offers,
            self.webtorrent_queue_messages,
            self.webtorrent_max_pending_offers,
            self.webtorrent_idle_timeout_s as usize,
            self.webtorrent_max_swarms_per_connection,
            self.ws_write_buffer_bytes,
        ]
        .contains(&0);
        if zero {
            return Err(ConfigError::WebTorrent);
        }
        if self.tls_cert_pem.is_empty() != self.tls_key_pem.is_empty() {
            return Err(ConfigError::Tls("set both tls_cert_pem and tls_key_pem, or neither".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_validates() {
        let config = Config { secret: "s".into(), ..Config::default() };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(Config::default().validate(), Err(ConfigError::EmptySecret));
        assert!(serde_json::from_str::<Config>(r#"{"nope":1}"#).is_err());
    }
}
