//! Relays between signalling nodes through the broker (docs/ARCHITECTURE.md, "Scale-out").
//!
//! A relay whose recipient is not connected to this node is checked against the sender's table
//! here ([`outbound`]), then published to the recipient's node ([`forward`]); that node checks the
//! recipient's table and queues it, or sends `undeliverable` back through this node's channel
//! ([`on_envelope`]). A peer that connects here takes its directory entry over and its older
//! connection on another node is closed as replaced.

use std::time::Instant;

use protocol::PeerId;
use protocol::signal::{CLOSE_REPLACED, ServerMessage};
use redis::aio::PubSub;
use tokio::task::JoinHandle;

use crate::AppState;
use crate::broker::{Broker, Envelope, Routed};
use crate::links::Kind;
use crate::relay::{self, Scope};
use crate::ws;

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

/// Records a newly connected local `peer` in the directory and closes its older connection on
/// another node, if any.
pub(crate) async fn claim(state: &AppState, peer: &PeerId) {
    let Some(broker) = state.inner.broker.as_ref() else { return };
    match broker.claim(peer).await {
        Ok(Some(old_node)) => {
            if let Err(e) = broker.publish(&old_node, &Envelope::Evict { peer: peer.clone() }).await {
                tracing::warn!(error = %e, %peer, "could not evict the older connection");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, %peer, "could not register the peer with the broker"),
    }
}

/// Removes a departed local `peer` from the directory (unless another node took it over).
pub(crate) async fn release(state: &AppState, peer: &PeerId) {
    let Some(broker) = state.inner.broker.as_ref() else { return };
    if let Err(e) = broker.release(peer).await {
        tracing::warn!(error = %e, %peer, "could not unregister the peer from the broker");
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
        Envelope::Evict { peer } => {
            let removed = state.registry().remove(&peer);
            match removed {
                Some(old) => old.close(CLOSE_REPLACED, "replaced by a newer connection"),
                // Its upgrade has not registered yet: close it as soon as it does.
                None => state.note_early_eviction(peer, Instant::now()),
            }
        }
    }
}

/// Starts the node's broker tasks: listening on its channel (resubscribing after a loss) and
/// refreshing its peers in the directory. The caller aborts them at shutdown.
pub(crate) fn start(state: &AppState, broker: Broker, pubsub: PubSub) -> Vec<JoinHandle<()>> {
    let listen = tokio::spawn(listen(state.clone(), broker.clone(), pubsub));
    let refresh_state = state.clone();
    let refresh = tokio::spawn(async move {
        let mut tick = tokio::time::interval(broker.refresh_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let peers: Vec<PeerId> = refresh_state.registry().peers().cloned().collect();
            if let Err(e) = broker.refresh(&peers).await {
                tracing::warn!(error = %e, peers = peers.len(), "could not refresh the peer directory");
            }
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
