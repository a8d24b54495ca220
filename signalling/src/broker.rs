//! The Redis side of a signalling cluster: the peer directory and the per-node channels.
//!
//! - Directory: `swarmcast:sig:peer:<peerId>` → node id, `SET … EX peer_ttl_s`, written when a
//!   peer connects, refreshed for every local peer each `peer_ttl_s / 3`, deleted (only if it
//!   still names this node) when the peer leaves.
//! - Channels: `swarmcast:sig:node:<node>`, one per node, carrying [`Envelope`]s as JSON.
//!
//! A relay to a peer on another node is one round trip: a Lua script looks the recipient's node up
//! and publishes to its channel, returning the number of subscribers that got it (0 when the node
//! is gone) or -1 when no node holds the peer.

use std::time::Duration;

use protocol::PeerId;
use redis::aio::{ConnectionManager, PubSub};
use serde::{Deserialize, Serialize};

use crate::links::Kind;

/// Largest envelope a node accepts from the broker, in bytes: one largest signal plus its
/// addressing.
pub(crate) const MAX_ENVELOPE_BYTES: usize = protocol::signal::MAX_MESSAGE_BYTES + 4096;

/// Directory refreshes sent per pipeline, in commands (about 0.1 ms of Redis time each).
const REFRESH_CHUNK: usize = 256;

const PEER_KEY: &str = "swarmcast:sig:peer:";
const NODE_CHANNEL: &str = "swarmcast:sig:node:";

/// Looks up KEYS[1]'s node and publishes ARGV[1] on its channel (prefix ARGV[2]).
const ROUTE_SCRIPT: &str = "local n = redis.call('GET', KEYS[1]) \
     if not n then return -1 end \
     return redis.call('PUBLISH', ARGV[2] .. n, ARGV[1])";

/// Deletes KEYS[1] only while it still names node ARGV[1].
const RELEASE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     return redis.call('DEL', KEYS[1]) end return 0";

/// What nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum Envelope {
    /// A signal from `from` (connected to `node`, within customer/content) for `to`. `text` is
    /// the encoded [`protocol::signal::ServerMessage::Relay`] the recipient gets.
    Relay { node: String, from: PeerId, to: PeerId, customer: String, content: String, kind: Kind, text: String },
    /// Tell the local peer `to` that its signal to `about` was not delivered, and why.
    Undeliverable { to: PeerId, about: PeerId, reason: String },
    /// `peer` connected to another node: close its connection here (replaced).
    Evict { peer: PeerId },
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

    /// Records `peer` on this node; returns the other node that held it before, if any.
    pub(crate) async fn claim(&self, peer: &PeerId) -> Result<Option<String>, BrokerError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(peer_key(peer)).arg(&self.node).arg("EX").arg(self.peer_ttl_s).arg("GET");
        let old: Option<String> = self.query(&cmd).await?;
        Ok(old.filter(|n| *n != self.node))
    }

    /// Removes `peer` from the directory if it still names this node.
    pub(crate) async fn release(&self, peer: &PeerId) -> Result<(), BrokerError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(RELEASE_SCRIPT).arg(1).arg(peer_key(peer)).arg(&self.node);
        self.query::<i64>(&cmd).await.map(drop)
    }

    /// Re-registers `peers` on this node for another `peer_ttl_s`, in pipelines of
    /// [`REFRESH_CHUNK`] commands one after the other: relays share this multiplexed connection
    /// and get their replies in order, so one pipeline for 17,000 peers would hold this node's
    /// cross-node relays back until all 17,000 replies are in (tens of milliseconds).
    pub(crate) async fn refresh(&self, peers: &[PeerId]) -> Result<(), BrokerError> {
        for chunk in peers.chunks(REFRESH_CHUNK) {
            let mut pipe = redis::pipe();
            for peer in chunk {
                pipe.cmd("SET").arg(peer_key(peer)).arg(&self.node).arg("EX").arg(self.peer_ttl_s).ignore();
            }
            let mut conn = self.conn.clone();
            tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn))
                .await
                .map_err(|_| BrokerError::Timeout)??;
        }
        Ok(())
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
        assert_eq!(Envelope::decode(b"{nope"), None);
        assert_eq!(Envelope::decode(&vec![b' '; MAX_ENVELOPE_BYTES + 1]), None);
    }
}
