//! The distributor's configuration: where the other services are, and the settings per content.

use protocol::api::{ContentSettings, MAX_ASN_RULES, MAX_NAME_LEN, PeeringRules};
use serde::{Deserialize, Serialize};

/// Distributor configuration (defaults < TOML file < `SWARMCAST_DISTRIBUTOR_*` env vars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HMAC key for session tokens, shared with the tracker and signalling. Must not be empty.
    pub secret: String,
    /// Base URL of the tracker handed to agents, e.g. `http://127.0.0.1:7001`, when
    /// `tracker_shards` is empty.
    pub tracker_url: String,
    /// Base URLs of the tracker shards; when not empty, each (customer, content) is handed the
    /// shard a rendezvous hash picks, so all its swarms live on one shard.
    pub tracker_shards: Vec<String>,
    /// URL of the signalling websocket handed to agents, e.g. `ws://127.0.0.1:7002/v1/ws`.
    pub signalling_url: String,
    /// Base URL of analytics handed to agents, e.g. `http://127.0.0.1:7003`.
    pub analytics_url: String,
    /// Settings of the known contents; any other content gets the defaults below.
    pub contents: Vec<ContentConfig>,
    /// Whether P2P is on for a content that is not listed in `contents`.
    pub default_p2p_enabled: bool,
    /// Lifetime of the session tokens minted here, in seconds.
    pub token_ttl_s: u64,
    /// Bearer token of the admin API (`PUT /v1/admin/contents/…`); empty disables that API (404).
    pub admin_token: String,
    /// Most contents held at once (file plus admin API), in entries.
    pub max_contents: usize,
    /// HMAC key shared with the CDN edges for access tokens ([`protocol::access`]); empty means
    /// the edges do not check tokens and none is issued.
    pub cdn_secret: String,
    /// Lifetime of the CDN access tokens, in seconds (default 6 h: a viewing session).
    pub cdn_token_ttl_s: u64,
    /// Ed25519 public key (hex) of the origin's segment digests, handed to agents as is; empty
    /// when digests are not signed.
    pub digest_public_key: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            secret: String::new(),
            tracker_url: "http://127.0.0.1:7001".into(),
            tracker_shards: Vec::new(),
            signalling_url: "ws://127.0.0.1:7002/v1/ws".into(),
            analytics_url: "http://127.0.0.1:7003".into(),
            contents: Vec::new(),
            default_p2p_enabled: true,
            token_ttl_s: 3600,
            admin_token: String::new(),
            max_contents: 10_000,
            cdn_secret: String::new(),
            cdn_token_ttl_s: 6 * 3600,
            digest_public_key: String::new(),
        }
    }
}

/// Settings of one content, as written in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentConfig {
    /// Customer id.
    pub customer: String,
    /// Content id (one live stream).
    pub content: String,
    /// Whether P2P is on for this content (default true).
    #[serde(default = "enabled")]
    pub p2p_enabled: bool,
    /// Share of sessions that get P2P, in percent, 0–100 (default 100).
    #[serde(default = "full_rollout")]
    pub rollout_percent: u8,
    /// Peering rules handed to the agents.
    #[serde(default)]
    pub rules: PeeringRules,
}

fn enabled() -> bool {
    true
}

fn full_rollout() -> u8 {
    100
}

impl ContentConfig {
    /// The stored form of these settings.
    pub fn settings(&self) -> ContentSettings {
        ContentSettings {
            p2p_enabled: self.p2p_enabled,
            rollout_percent: self.rollout_percent,
            rules: self.rules.clone(),
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `secret` is empty: tokens would be forgeable. Set the same secret as the tracker's.
    #[error("secret must not be empty")]
    EmptySecret,
    /// `token_ttl_s` is 0: every token would be born expired.
    #[error("token_ttl_s must be above 0")]
    ZeroTokenTtl,
    /// A customer or content id is empty or longer than [`MAX_NAME_LEN`].
    #[error("content {0:?}: customer and content must be 1-{MAX_NAME_LEN} bytes")]
    BadName(String),
    /// A rollout percentage is above 100.
    #[error("content {0:?}: rollout_percent must be 0-100")]
    BadRollout(String),
    /// An ASN allow or deny list is longer than [`MAX_ASN_RULES`].
    #[error("content {0:?}: asn_allow and asn_deny hold at most {MAX_ASN_RULES} entries")]
    TooManyAsns(String),
    /// More contents than `max_contents`.
    #[error("{0} contents configured, above max_contents")]
    TooManyContents(usize),
}

impl Config {
    /// The tracker URL for (`customer`, `content`): its shard among `tracker_shards`, or
    /// `tracker_url` when there are none.
    pub fn tracker_for(&self, customer: &str, content: &str) -> &str {
        crate::shard::pick(&self.tracker_shards, customer, content).unwrap_or(&self.tracker_url)
    }

    /// Checks the invariants the server relies on.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.secret.is_empty() {
            return Err(ConfigError::EmptySecret);
        }
        if self.token_ttl_s == 0 {
            return Err(ConfigError::ZeroTokenTtl);
        }
        if self.contents.len() > self.max_contents {
            return Err(ConfigError::TooManyContents(self.contents.len()));
        }
        for c in &self.contents {
            let label = format!("{}/{}", c.customer, c.content);
            if !valid_name(&c.customer) || !valid_name(&c.content) {
                return Err(ConfigError::BadName(label));
            }
            if c.rollout_percent > 100 {
                return Err(ConfigError::BadRollout(label));
            }
            if c.rules.asn_allow.len() > MAX_ASN_RULES || c.rules.asn_deny.len() > MAX_ASN_RULES {
                return Err(ConfigError::TooManyAsns(label));
            }
        }
        Ok(())
    }
}

/// Whether `name` is an acceptable customer or content id: 1–[`MAX_NAME_LEN`] bytes.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml_shape() {
        let config = Config { secret: "s".into(), ..Config::default() };
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), config);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn content_fields_default_and_unknown_fields_fail() {
        let c: ContentConfig = serde_json::from_str(r#"{"customer":"a","content":"b"}"#).unwrap();
        assert!(c.p2p_enabled);
        assert_eq!(c.rollout_percent, 100);
        assert!(serde_json::from_str::<ContentConfig>(r#"{"customer":"a","content":"b","x":1}"#).is_err());
    }

    #[test]
    fn contents_load_from_a_toml_file() {
        let path = std::env::temp_dir().join(format!("distributor-config-{}.toml", std::process::id()));
        let toml = "secret = \"s\"\n[[contents]]\ncustomer = \"acme\"\ncontent = \"live\"\nrollout_percent = 25\n[contents.rules]\nmax_peers = 3\n";
        std::fs::write(&path, toml).unwrap();
        let config: Config = service::load_config(Some(&path), "SWARMCAST_DISTRIBUTOR_TEST_").unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(config.contents.len(), 1);
        let settings = config.contents[0].settings();
        assert_eq!((settings.p2p_enabled, settings.rollout_percent, settings.rules.max_peers), (true, 25, 3));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert_eq!(Config::default().validate(), Err(ConfigError::EmptySecret));
        let content = |rollout| ContentConfig {
            customer: "a".into(),
            content: "b".into(),
            p2p_enabled: true,
            rollout_percent: rollout,
            rules: PeeringRules::default(),
        };
        let config = Config { secret: "s".into(), contents: vec![content(101)], ..Config::default() };
        assert_eq!(config.validate(), Err(ConfigError::BadRollout("a/b".into())));
        let config = Config { secret: "s".into(), contents: vec![content(5)], max_contents: 0, ..Config::default() };
        assert_eq!(config.validate(), Err(ConfigError::TooManyContents(1)));
    }
}
