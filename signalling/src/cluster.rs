//! Relays between signalling nodes through the broker (docs/ARCHITECTURE.md, "Scale-out").
//!
//! A relay whose recipient is not connected to this node is checked against the sender's table
//! here ([`outbound`]), then published to the recipient's node ([`forward`]); that node checks the
//! recipient's table and queues it, or sends `undeliverable` back through this node's channel
//! ([`on_envelope`]). A peer that connects here takes its directory entry over under a new epoch
//! and its older connection on another node is closed as replaced: the connection with the
//! highest epoch of a peerId stays, whatever order the claims, registrations and evictions reach
//! each node in (docs/ARCHITECTURE.md, "Peers moving").

use std::time::Instant;

use protocol::PeerId;
use protocol::signal::{CLOSE_REPLACED, ServerMessage};
use redis::aio::PubSub;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::broker::{Broker, DIRECTORY_CHUNK, Envelope, Routed};
use crate::links::Kind;
use crate::relay::{self, Epoch, Scope};
use crate::ws;

/// Most departed peers waiting for their directory entries to be removed, in peers (about 64
/// bytes each). Beyond it a departure is not removed: its entry expires after `peer_ttl_s`.
pub(crate) const RELEASE_QUEUE: usize = 131_072;

/// The queue of departed peers whose directory entries [`drain_releases`] removes.
pub(crate) type Releases = mpsc::Sender<(PeerId, Epoch)>;

/// The envelope for a relay from the local peer `from` to `to` when `to` is not connected here
/// and a broker is configured: `None` when the relay stays local, `Some(Err(reply))` when the
/// sender's table refuses it.
pub(crate) fn outbound(
    state: &AppState,
    from: &PeerId,
    scope: &Scope,
    to: &PeerId,
    kind: Kind,
    message: &ServerMessage,
) -> Option<Result<Envelope, ServerMessage>> {
    let broker = state.inner.broker.as_ref()?;
    let mut registry = state.registry();
    if registry.is_local(to) || from == to {
        return None;
    }
    if let Err(refusal) = registry.send_side(Instant::now(), from, to, kind, &state.inner.policy) {
        state.reject(refusal.reason());
        return Some(Err(relay::undeliverable(to.clone(), refusal.reason())));
    }
    Some(Ok(Envelope::Relay {
        node: broker.node().to_owned(),
        from: from.clone(),
        to: to.clone(),
        customer: scope.customer.clone(),
        content: scope.content.clone(),
        kind,
        text: ws::encode(message).to_string(),
    }))
}

/// Publishes a relay envelope to its recipient's node; returns what to tell the sender when no
/// node holds the recipient (`unknown_peer`) or the broker fails (`broker_unavailable`).
pub(crate) async fn forward(state: &AppState, envelope: Envelope) -> Option<ServerMessage> {
    let (Some(broker), Envelope::Relay { to, .. }) = (state.inner.broker.as_ref(), &envelope) else {
        return None;
    };
    let reason = match broker.route(to, &envelope).await {
        Ok(Routed::Sent) => {
            state.inner.forwarded.inc();
            return None;
        }
        Ok(Routed::NoNode) => "unknown_peer",
        Err(e) => {
            tracing::warn!(error = %e, "cross-node relay failed");
            "broker_unavailable"
        }
    };
    state.reject(reason);
    Some(relay::undeliverable(to.clone(), reason))
}

/// Claims `peer` in the directory for a connection being accepted here and tells the node that
/// held it to close its older connection; returns the new connection's epoch (`None` without a
/// broker, or when the broker failed: the refresh claims it later).
pub(crate) async fn claim(state: &AppState, peer: &PeerId) -> Option<Epoch> {
    let broker = state.inner.broker.as_ref()?;
    match broker.claim(peer, false).await {
        Ok(claim) => {
            if let Some(old_node) = claim.previous {
                evict_on(broker, &old_node, peer, claim.epoch).await;
            }
            Some(claim.epoch)
        }
        Err(e) => {
            tracing::warn!(error = %e, %peer, "could not register the peer with the broker");
            None
        }
    }
}

async fn evict_on(broker: &Broker, node: &str, peer: &PeerId, epoch: Epoch) {
    if let Err(e) = broker.publish(node, &Envelope::Evict { peer: peer.clone(), epoch }).await {
        // The older connection then learns it is stale at its node's next refresh.
        tracing::warn!(error = %e, %peer, "could not evict the older connection");
    }
}

/// Queues the removal of a departed local `peer`'s directory entry, which happens only while
/// the entry still holds `epoch` (no newer connection took the peer over).
pub(crate) fn release(state: &AppState, peer: &PeerId, epoch: Epoch) {
    let Some(releases) = state.inner.releases.as_ref() else { return };
    if releases.try_send((peer.clone(), epoch)).is_err() {
        tracing::debug!(%peer, "release queue full; the directory entry will expire");
    }
}

/// Removes queued departures from the directory, up to [`DIRECTORY_CHUNK`] per script call,
/// until every sender of `queue` is gone (the node has stopped and its connections are closed).
pub(crate) async fn drain_releases(broker: Broker, mut queue: mpsc::Receiver<(PeerId, Epoch)>) {
    let mut batch = Vec::with_capacity(DIRECTORY_CHUNK);
    while queue.recv_many(&mut batch, DIRECTORY_CHUNK).await > 0 {
        if let Err(e) = broker.release(&batch).await {
            tracing::warn!(error = %e, peers = batch.len(), "could not unregister peers from the broker");
        }
        batch.clear();
    }
}

/// Refreshes the directory entries of this node's peers; closes the connections whose peer a
/// newer connection holds (their eviction was lost) and claims, only if no node holds them, the
/// peers whose claim failed (closing those another node holds).
async fn refresh(state: &AppState, broker: &Broker) {
    let claims = state.registry().claims();
    let known: Vec<(PeerId, Epoch)> =
        claims.iter().filter_map(|(peer, _, epoch)| Some((peer.clone(), (*epoch)?))).collect();
    match broker.refresh(&known).await {
        Ok(stale) => {
            for (peer, epoch) in stale {
                close_older(state, &peer, epoch.saturating_add(1));
            }
        }
        Err(e) => tracing::warn!(error = %e, peers = known.len(), "could not refresh the peer directory"),
    }
    for (peer, id, _) in claims.iter().filter(|(_, _, epoch)| epoch.is_none()) {
        match broker.claim(peer, true).await {
            Ok(claim) if claim.epoch == 0 => close_older(state, peer, 1),
            Ok(claim) => {
                if !state.registry().set_epoch(peer, *id, claim.epoch) {
                    release(state, peer, claim.epoch);
                }
            }
            Err(e) => tracing::warn!(error = %e, %peer, "could not register the peer with the broker"),
        }
    }
}

/// Closes the local connection of `peer` if it is older than `epoch` (or has none); when there
/// is none, remembers the eviction for a registration still in flight.
fn close_older(state: &AppState, peer: &PeerId, epoch: Epoch) {
    let evicted = state.registry().evict(Instant::now(), peer, epoch);
    if let Some(old) = evicted {
        old.close(CLOSE_REPLACED, "replaced by a newer connection");
    }
}

/// Handles one payload from this node's channel.
pub(crate) fn on_envelope(state: &AppState, payload: &[u8]) {
    let Some(envelope) = Envelope::decode(payload) else {
        state.reject("bad_envelope");
        return;
    };
    match envelope {
        Envelope::Relay { node, from, to, customer, content, kind, text } => {
            let scope = Scope { customer, content };
            let mut registry = state.registry();
            let outcome = match registry.receive(Instant::now(), &from, &scope, &to, kind, &state.inner.policy) {
                Ok(_) => ws::enqueue(state, &mut registry, &to, text.into()),
                Err(unroutable) => {
                    state.reject(unroutable.reason());
                    Err(unroutable.reason())
                }
            };
            drop(registry);
            if let Err(reason) = outcome {
                let reply = Envelope::Undeliverable { to: from, about: to, reason: reason.to_owned() };
                let Some(broker) = state.inner.broker.clone() else { return };
                tokio::spawn(async move {
                    if let Err(e) = broker.publish(&node, &reply).await {
                        tracing::warn!(error = %e, "could not return undeliverable");
                    }
                });
            }
        }
        Envelope::Undeliverable { to, about, reason } => {
            let text = ws::encode(&relay::undeliverable(about, &reason));
            let mut registry = state.registry();
            if registry.is_local(&to) {
                // A sender that cannot take the reply is dropped like any slow consumer.
                let _ = ws::enqueue(state, &mut registry, &to, text);
            }
        }
        Envelope::Evict { peer, epoch } => close_older(state, &peer, epoch),
    }
}

/// Starts the node's broker tasks: listening on its channel (resubscribing after a loss) and
/// refreshing its peers in the directory. The caller aborts them at shutdown. (Departures are
/// removed by [`drain_releases`], which ends by itself.)
pub(crate) fn start(state: &AppState, broker: Broker, pubsub: PubSub) -> Vec<JoinHandle<()>> {
    let listen = tokio::spawn(listen(state.clone(), broker.clone(), pubsub));
    let refresh_state = state.clone();
    let refresh = tokio::spawn(async move {
        let mut tick = tokio::time::interval(broker.refresh_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            refresh(&refresh_state, &broker).await;
        }
    });
    vec![listen, refresh]
}

async fn listen(state: AppState, broker: Broker, mut pubsub: PubSub) {
    use futures_util::StreamExt;
    loop {
        {
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                on_envelope(&state, message.get_payload_bytes());
            }
        }
        tracing::warn!("broker subscription lost; resubscribing");
        pubsub = loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            match broker.subscribe().await {
                Ok(pubsub) => break pubsub,
                Err(e) => tracing::warn!(error = %e, "resubscribe failed"),
            }
        };
    }
}
