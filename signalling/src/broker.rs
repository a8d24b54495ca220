//! The Redis side of a signalling cluster: the peer directory and the per-node channels.
//!
//! - Directory: `swarmcast:sig:v2:peer:<peerId>`, a hash `{node, epoch}` with `EX peer_ttl_s`,
//!   written when a peer connects ([`Broker::claim`]), refreshed for every local peer each
//!   `peer_ttl_s / 3` while it still holds this connection's epoch, deleted when the peer leaves
//!   while it still holds its epoch. Epochs come from `swarmcast:sig:v2:epoch`: Redis's clock in
//!   microseconds, raised past the last one given, so they only grow, even after Redis restarts
//!   empty, and the connection with the highest epoch of a peerId is the newest.
//! - Channels: `swarmcast:sig:v2:node:<node>`, one per node, carrying [`Envelope`]s as JSON.
//!
//! `v2` is the version of this layout and of [`Envelope`]: nodes of another version use other
//! keys and channels, so they never misread each other (they form separate clusters).
//!
//! A relay to a peer on another node is one round trip: a Lua script looks the recipient's node up
//! and publishes to its channel, returning the number of subscribers that got it (0 when the node
//! is gone) or -1 when no node holds the peer.

use std::time::Duration;

use protocol::PeerId;
use redis::aio::{ConnectionManager, PubSub};
use serde::{Deserialize, Serialize};

use crate::links::Kind;
use crate::relay::Epoch;

/// Largest envelope a node accepts from the broker, in bytes: one largest signal plus its
/// addressing.
pub(crate) const MAX_ENVELOPE_BYTES: usize = protocol::signal::MAX_MESSAGE_BYTES + 4096;

/// Directory entries refreshed or removed per script call, in peers (about 0.1 ms of Redis time
/// per 100), so that relays sharing the connection are not held back behind one long call.
pub(crate) const DIRECTORY_CHUNK: usize = 256;

const PEER_KEY: &str = "swarmcast:sig:v2:peer:";
const NODE_CHANNEL: &str = "swarmcast:sig:v2:node:";
const EPOCH_KEY: &str = "swarmcast:sig:v2:epoch";

/// Gives KEYS[1] (a peer) to node ARGV[1] for ARGV[2] seconds under a new epoch from KEYS[2];
/// returns {epoch, previous node or nil}. With ARGV[3] = "1" only when no other node holds the
/// peer: else returns {0, holder} and changes nothing.
const CLAIM_SCRIPT: &str = "local old = redis.call('HGET', KEYS[1], 'node') \
     if ARGV[3] == '1' and old and old ~= ARGV[1] then return {0, old} end \
     local t = redis.call('TIME') \
     local e = tonumber(t[1]) * 1000000 + tonumber(t[2]) \
     local last = tonumber(redis.call('GET', KEYS[2]) or '0') \
     if e <= last then e = last + 1 end \
     local es = string.format('%d', e) \
     redis.call('SET', KEYS[2], es) \
     redis.call('HSET', KEYS[1], 'node', ARGV[1], 'epoch', es) \
     redis.call('EXPIRE', KEYS[1], ARGV[2]) \
     return {e, old}";

/// Looks up KEYS[1]'s node and publishes ARGV[1] on its channel (prefix ARGV[2]).
const ROUTE_SCRIPT: &str = "local n = redis.call('HGET', KEYS[1], 'node') \
     if not n then return -1 end \
     return redis.call('PUBLISH', ARGV[2] .. n, ARGV[1])";

/// For each peer KEYS[i] held here with epoch ARGV[i + 2]: extends it by ARGV[2] seconds for node
/// ARGV[1] (writing it again when missing), unless a newer epoch holds it; returns the indexes
/// (from 1) of those that a newer epoch holds.
const REFRESH_SCRIPT: &str = "local stale = {} \
     for i, key in ipairs(KEYS) do \
       local mine = ARGV[i + 2] \
       local cur = redis.call('HGET', key, 'epoch') \
       if cur and tonumber(cur) > tonumber(mine) then stale[#stale + 1] = i else \
         if cur ~= mine then redis.call('HSET', key, 'node', ARGV[1], 'epoch', mine) end \
         redis.call('EXPIRE', key, ARGV[2]) end \
     end \
     return stale";

/// Deletes each peer KEYS[i] only while it still holds epoch ARGV[i]; returns how many it deleted.
const RELEASE_SCRIPT: &str = "local n = 0 \
     for i, key in ipairs(KEYS) do \
       if redis.call('HGET', key, 'epoch') == ARGV[i] then n = n + redis.call('DEL', key) end \
     end \
     return n";

/// What nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Envelope {
    /// A signal from `from` (connected to `node`, within customer/content) for `to`. `text` is
    /// the encoded [`protocol::signal::ServerMessage::Relay`] the recipient gets.
    Relay { node: String, from: PeerId, to: PeerId, customer: String, content: String, kind: Kind, text: String },
    /// Tell the local peer `to` that its signal to `about` was not delivered, and why.
    Undeliverable { to: PeerId, about: PeerId, reason: String },
    /// `peer` connected to another node under `epoch`: close its connection here if that one is
    /// older (replaced).
    Evict { peer: PeerId, epoch: Epoch },
}

impl Envelope {
    /// Decodes a broker payload; `None` when oversize or malformed.
    pub(crate) fn decode(payload: &[u8]) -> Option<Self> {
        if payload.len() > MAX_ENVELOPE_BYTES {
            return None;
        }
        serde_json::from_slice(payload).ok()
    }

    /// Encodes for the broker.
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain strings and enums: serializing cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a broker operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker answered with an error or the connection failed.
    #[error("broker: {0}")]
    Redis(#[from] redis::RedisError),
    /// The broker did not answer within the configured timeout.
    #[error("broker did not answer in time")]
    Timeout,
}

/// A peer's directory entry, as [`Broker::claim`] wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// The epoch of this connection; 0 when an `only_if_free` claim found the peer held.
    pub(crate) epoch: Epoch,
    /// The node that held the peer before, when it is another node.
    pub(crate) previous: Option<String>,
}

/// Where a forwarded relay went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Routed {
    /// Published to the recipient's node.
    Sent,
    /// No node holds the recipient, or its node is gone.
    NoNode,
}

/// A node's connection to the broker; cheap to clone.
#[derive(Clone)]
pub(crate) struct Broker {
    node: String,
    client: redis::Client,
    conn: ConnectionManager,
    peer_ttl_s: u64,
    timeout: Duration,
}

impl Broker {
    /// Connects to `url` (`redis://host:port`) as node `node`.
    ///
    /// # Errors
    /// [`BrokerError`] when the URL is invalid or the broker cannot be reached within `timeout`.
    pub(crate) async fn connect(
        url: &str,
        node: String,
        peer_ttl_s: u64,
        timeout: Duration,
    ) -> Result<Self, BrokerError> {
        let client = redis::Client::open(url)?;
        let conn = tokio::time::timeout(timeout, client.get_connection_manager())
            .await
            .map_err(|_| BrokerError::Timeout)??;
        Ok(Self { node, client, conn, peer_ttl_s, timeout })
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// How often local peers are re-registered: a third of their lifetime in the directory.
    pub(crate) fn refresh_every(&self) -> Duration {
        Duration::from_secs((self.peer_ttl_s / 3).max(1))
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BrokerError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| BrokerError::Timeout)?
            .map_err(Into::into)
    }

    /// Gives `peer` to this node under a new epoch, higher than every epoch given before, in one
    /// atomic step that also reads the node that held it. With `only_if_free`, takes it only when
    /// no other node holds it (else the epoch is 0 and nothing changes).
    pub(crate) async fn claim(&self, peer: &PeerId, only_if_free: bool) -> Result<Claim, BrokerError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(CLAIM_SCRIPT)
            .arg(2)
            .arg(peer_key(peer))
            .arg(EPOCH_KEY)
            .arg(&self.node)
            .arg(self.peer_ttl_s)
            .arg(if only_if_free { "1" } else { "0" });
        let (epoch, previous): (Epoch, Option<String>) = self.query(&cmd).await?;
        Ok(Claim { epoch, previous: previous.filter(|n| *n != self.node) })
    }

    /// Removes each `(peer, epoch)` from the directory while it still holds that epoch, one script
    /// call per [`DIRECTORY_CHUNK`] peers.
    pub(crate) async fn release(&self, peers: &[(PeerId, Epoch)]) -> Result<(), BrokerError> {
        for chunk in peers.chunks(DIRECTORY_CHUNK) {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(RELEASE_SCRIPT).arg(chunk.len());
            for (peer, _) in chunk {
                cmd.arg(peer_key(peer));
            }
            for (_, epoch) in chunk {
                cmd.arg(*epoch);
            }
            self.query::<i64>(&cmd).await?;
        }
        Ok(())
    }

    /// Extends the entries of local `peers` (with their epochs) for another `peer_ttl_s`, one
    /// script call per [`DIRECTORY_CHUNK`] peers one after the other: relays share this
    /// multiplexed connection and get their replies in order, so one call for 17,000 peers would
    /// hold this node's cross-node relays back until it is done (tens of milliseconds). Returns
    /// the peers that a newer connection holds (an eviction this node missed): their connections
    /// here are stale.
    pub(crate) async fn refresh(&self, peers: &[(PeerId, Epoch)]) -> Result<Vec<(PeerId, Epoch)>, BrokerError> {
        let mut stale = Vec::new();
        for chunk in peers.chunks(DIRECTORY_CHUNK) {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(REFRESH_SCRIPT).arg(chunk.len());
            for (peer, _) in chunk {
                cmd.arg(peer_key(peer));
            }
            cmd.arg(&self.node).arg(self.peer_ttl_s);
            for (_, epoch) in chunk {
                cmd.arg(*epoch);
            }
            let indexes: Vec<usize> = self.query(&cmd).await?;
            stale.extend(indexes.into_iter().filter_map(|i| chunk.get(i.checked_sub(1)?).cloned()));
        }
        Ok(stale)
    }

    /// Publishes `envelope` to the node that holds `to`.
    pub(crate) async fn route(&self, to: &PeerId, envelope: &Envelope) -> Result<Routed, BrokerError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(ROUTE_SCRIPT).arg(1).arg(peer_key(to)).arg(envelope.encode()).arg(NODE_CHANNEL);
        let receivers: i64 = self.query(&cmd).await?;
        Ok(if receivers > 0 { Routed::Sent } else { Routed::NoNode })
    }

    /// Publishes `envelope` to `node`'s channel.
    pub(crate) async fn publish(&self, node: &str, envelope: &Envelope) -> Result<Routed, BrokerError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(node_channel(node)).arg(envelope.encode());
        let receivers: i64 = self.query(&cmd).await?;
        Ok(if receivers > 0 { Routed::Sent } else { Routed::NoNode })
    }

    /// Subscribes to this node's channel on a connection of its own.
    pub(crate) async fn subscribe(&self) -> Result<PubSub, BrokerError> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(node_channel(&self.node)).await?;
            Ok::<_, BrokerError>(pubsub)
        };
        tokio::time::timeout(self.timeout, subscribe).await.map_err(|_| BrokerError::Timeout)?
    }
}

fn peer_key(peer: &PeerId) -> String {
    format!("{PEER_KEY}{peer}")
}

fn node_channel(node: &str) -> String {
    format!("{NODE_CHANNEL}{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_bad_payloads_are_dropped() {
        let relay = Envelope::Relay {
            node: "n1".into(),
            from: "a".parse().unwrap(),
            to: "b".parse().unwrap(),
            customer: "acme".into(),
            content: "live".into(),
            kind: Kind::Offer,
            text: r#"{"type":"relay"}"#.into(),
        };
        assert_eq!(Envelope::decode(&relay.encode()), Some(relay));
        let evict = Envelope::Evict { peer: "a".parse().unwrap(), epoch: 1_763_700_000_000_001 };
        assert_eq!(Envelope::decode(&evict.encode()), Some(evict));
        // An eviction without its epoch (an older layout) is not acted on.
        assert_eq!(Envelope::decode(br#"{"t":"evict","peer":"a"}"#), None);
        assert_eq!(Envelope::decode(b"{nope"), None);
        assert_eq!(Envelope::decode(&vec![b' '; MAX_ENVELOPE_BYTES + 1]), None);
    }
}
