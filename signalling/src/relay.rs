//! Pure logic: what to do with a frame, who may reach whom, and how fast. No IO, no clock.
//!
//! The websocket shell (`ws` module) owns the sockets and queues; it asks this module what each
//! text frame means ([`on_text`]), where a relay goes ([`Registry::route`]) and whether the sender
//! is within its rate ([`TokenBucket`]).

use std::collections::HashMap;
use std::time::Instant;

use protocol::PeerId;
use protocol::signal::{ClientMessage, FrameError, ServerMessage};

use crate::links::{Kind, Links, Policy, Refusal};

/// The (customer, content) a connection speaks for, from its token; relays never cross it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    pub(crate) customer: String,
    pub(crate) content: String,
}

/// Identifies one connection of a peerId, so a replaced connection cannot unregister its successor.
pub(crate) type ConnId = u64;

/// Connected peers by peerId, each with its scope and a handle `S` to reach its connection.
#[derive(Debug)]
pub(crate) struct Registry<S> {
    conns: HashMap<PeerId, Conn<S>>,
    next_id: ConnId,
}

#[derive(Debug)]
struct Conn<S> {
    id: ConnId,
    scope: Scope,
    handle: S,
    links: Links,
}

/// Why a relay does not reach its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unroutable {
    /// The recipient is not connected here within the sender's scope.
    UnknownPeer,
    /// A rule of [`crate::links`] forbids it.
    Refused(Refusal),
}

impl Unroutable {
    /// Machine-readable reason, sent in `undeliverable` and used as the metric label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::UnknownPeer => "unknown_peer",
            Self::Refused(refusal) => refusal.reason(),
        }
    }
}

impl<S> Registry<S> {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self { conns: HashMap::new(), next_id: 0 }
    }

    /// Registers a connection of `peer`; returns its id and the handle of the connection it
    /// replaces (the caller closes that one).
    pub(crate) fn register(&mut self, peer: PeerId, scope: Scope, handle: S) -> (ConnId, Option<S>) {
        let id = self.next_id;
        self.next_id += 1;
        let old = self.conns.insert(peer, Conn { id, scope, handle, links: Links::default() });
        (id, old.map(|c| c.handle))
    }

    /// Removes `peer` if its registered connection is still `id`; returns whether it did.
    pub(crate) fn unregister(&mut self, peer: &PeerId, id: ConnId) -> bool {
        if self.conns.get(peer).is_some_and(|c| c.id == id) {
            self.conns.remove(peer);
            return true;
        }
        false
    }

    /// Removes `peer` whatever its connection (eviction); returns its handle.
    pub(crate) fn remove(&mut self, peer: &PeerId) -> Option<S> {
        self.conns.remove(peer).map(|c| c.handle)
    }

    /// The handle of `to` if it is connected within `from`'s scope. A peer of another content is
    /// reported like an unknown one, so a sender learns nothing about other contents.
    pub(crate) fn route(&self, from: &Scope, to: &PeerId) -> Option<&S> {
        self.conns.get(to).filter(|c| c.scope == *from).map(|c| &c.handle)
    }

    /// Routes a `kind` signal from `from` (in `scope`) to `to` under the rules of
    /// [`crate::links`], recording it on both connections; returns the recipient's handle.
    ///
    /// # Errors
    /// [`Unroutable`]: the recipient is unknown, or a rule refuses the signal.
    pub(crate) fn relay(
        &mut self,
        now: Instant,
        from: &PeerId,
        scope: &Scope,
        to: &PeerId,
        kind: Kind,
        policy: &Policy,
    ) -> Result<&S, Unroutable> {
        if from == to || self.route(scope, to).is_none() {
            return Err(Unroutable::UnknownPeer);
        }
        self.send_side(now, from, to, kind, policy).map_err(Unroutable::Refused)?;
        self.receive(now, from, scope, to, kind, policy)
    }

    /// Whether `peer` is connected here, in any scope.
    pub(crate) fn is_local(&self, peer: &PeerId) -> bool {
        self.conns.contains_key(peer)
    }

    /// The handle of `peer` whatever its scope (replies addressed to it by another node).
    pub(crate) fn handle(&self, peer: &PeerId) -> Option<&S> {
        self.conns.get(peer).map(|c| &c.handle)
    }

    /// The peers connected here.
    pub(crate) fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.conns.keys()
    }

    /// The sender's half of [`Registry::relay`]: checks and records a `kind` signal from the local
    /// peer `from` to `to`, which may live on another node. A sender that is not (or no longer)
    /// connected here has no table to check.
    ///
    /// # Errors
    /// The [`Refusal`] of the sender's table.
    pub(crate) fn send_side(
        &mut self,
        now: Instant,
        from: &PeerId,
        to: &PeerId,
        kind: Kind,
        policy: &Policy,
    ) -> Result<(), Refusal> {
        match self.conns.get_mut(from) {
            Some(sender) => sender.links.on_send(now, to, kind, policy),
            None => Ok(()),
        }
    }

    /// The recipient's half of [`Registry::relay`]: checks and records a `kind` signal from
    /// `from` (in `scope`, possibly on another node) to the local peer `to`; returns its handle.
    ///
    /// # Errors
    /// [`Unroutable`]: `to` is not here within `scope`, or its table refuses the signal.
    pub(crate) fn receive(
        &mut self,
        now: Instant,
        from: &PeerId,
        scope: &Scope,
        to: &PeerId,
        kind: Kind,
        policy: &Policy,
    ) -> Result<&S, Unroutable> {
        let recipient = self.conns.get_mut(to).filter(|c| c.scope == *scope).ok_or(Unroutable::UnknownPeer)?;
        if from == to {
            return Err(Unroutable::UnknownPeer);
        }
        recipient.links.on_receive(now, from, kind, policy).map_err(Unroutable::Refused)?;
        Ok(&recipient.handle)
    }

    /// Records that the tracker introduced `peers` to `peer` until `until`; returns how many were
    /// recorded (0 when `peer` is not connected).
    pub(crate) fn introduce(
        &mut self,
        now: Instant,
        peer: &PeerId,
        peers: Vec<PeerId>,
        until: Instant,
        policy: &Policy,
    ) -> usize {
        let Some(conn) = self.conns.get_mut(peer) else { return 0 };
        conn.links.introduce(now, peers.into_iter().filter(|p| p != peer), until, policy)
    }
}

/// What the shell does with one text frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send this back to the sender.
    Reply(ServerMessage),
    /// Deliver `message` to `to` (see [`Registry::relay`]); tell the sender if that fails.
    Relay { to: PeerId, kind: Kind, message: ServerMessage },
    /// Verify this introduction token and record it (see [`Registry::introduce`]).
    Introduce(String),
}

/// Interprets a text frame from `from`. Malformed or oversize frames get an
/// [`ServerMessage::Error`] (`malformed` / `too_large`); the connection stays.
pub(crate) fn on_text(from: &PeerId, text: &str) -> Action {
    match ClientMessage::parse(text) {
        Ok(ClientMessage::Relay { to, signal }) => Action::Relay {
            to,
            kind: Kind::from(&signal),
            message: ServerMessage::Relay { from: from.clone(), signal },
        },
        Ok(ClientMessage::Ping) => Action::Reply(ServerMessage::Pong),
        Ok(ClientMessage::Introduce { intro }) => Action::Introduce(intro),
        Err(FrameError::TooLarge(_)) => Action::Reply(error("too_large")),
        Err(_) => Action::Reply(error("malformed")),
    }
}

/// An [`ServerMessage::Error`] with `reason`.
pub(crate) fn error(reason: &str) -> ServerMessage {
    ServerMessage::Error { reason: reason.to_owned() }
}

/// An [`ServerMessage::Undeliverable`] for `to` with `reason`.
pub(crate) fn undeliverable(to: PeerId, reason: &str) -> ServerMessage {
    ServerMessage::Undeliverable { to, reason: reason.to_owned() }
}

/// A token bucket: `burst` messages at once, refilled at `rate_per_s` messages per second.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate_per_s: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub(crate) fn new(now: Instant, rate_per_s: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self { rate_per_s: f64::from(rate_per_s), burst, tokens: burst, last: now }
    }

    /// Takes one token at `now` if there is one; false means the sender is over its rate.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate_per_s).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use protocol::signal::{MAX_MESSAGE_BYTES, Signal};

    use super::*;

    fn id(s: &str) -> PeerId {
        s.parse().unwrap()
    }

    fn scope(content: &str) -> Scope {
        Scope { customer: "acme".into(), content: content.into() }
    }

    #[test]
    fn frames_become_relays_pongs_or_errors() {
        let text = r#"{"type":"relay","to":"b","signal":{"kind":"offer","sdp":"v=0"}}"#;
        let relay = ServerMessage::Relay { from: id("a"), signal: Signal::Offer { sdp: "v=0".into() } };
        assert_eq!(on_text(&id("a"), text), Action::Relay { to: id("b"), kind: Kind::Offer, message: relay });
        let introduce = r#"{"type":"introduce","intro":"x.y"}"#;
        assert_eq!(on_text(&id("a"), introduce), Action::Introduce("x.y".into()));
        assert_eq!(on_text(&id("a"), r#"{"type":"ping"}"#), Action::Reply(ServerMessage::Pong));
        assert_eq!(on_text(&id("a"), "{nope"), Action::Reply(error("malformed")));
        assert_eq!(
            on_text(&id("a"), r#"{"type":"relay","to":"bad id!","signal":{"kind":"bye"}}"#),
            Action::Reply(error("malformed"))
        );
        assert_eq!(on_text(&id("a"), &" ".repeat(MAX_MESSAGE_BYTES + 1)), Action::Reply(error("too_large")));
    }

    #[test]
    fn routes_stay_within_a_scope() {
        let mut reg = Registry::new();
        reg.register(id("a"), scope("live"), 1);
        reg.register(id("b"), scope("live"), 2);
        reg.register(id("c"), scope("other"), 3);
        assert_eq!(reg.route(&scope("live"), &id("b")), Some(&2));
        assert_eq!(reg.route(&scope("live"), &id("c")), None);
        assert_eq!(reg.route(&scope("live"), &id("zz")), None);
        let customer = Scope { customer: "other".into(), content: "live".into() };
        assert_eq!(reg.route(&customer, &id("a")), None);
    }

    #[test]
    fn a_new_connection_replaces_the_old_and_the_old_cannot_unregister_it() {
        let mut reg = Registry::new();
        let (first, none) = reg.register(id("a"), scope("live"), "first");
        assert_eq!(none, None);
        let (second, old) = reg.register(id("a"), scope("live"), "second");
        assert_eq!(old, Some("first"));
        assert!(!reg.unregister(&id("a"), first));
        assert_eq!(reg.route(&scope("live"), &id("a")), Some(&"second"));
        assert!(reg.unregister(&id("a"), second));
        assert_eq!(reg.route(&scope("live"), &id("a")), None);
        reg.register(id("b"), scope("live"), "b");
        assert_eq!(reg.remove(&id("b")), Some("b"));
    }

    #[test]
    fn relays_check_both_connections_and_never_loop_back() {
        let now = Instant::now();
        let policy = Policy { require_intro: true, offer_ttl: Duration::from_secs(120), max_links: 8 };
        let mut reg = Registry::new();
        reg.register(id("a"), scope("live"), 1);
        reg.register(id("b"), scope("live"), 2);
        let relay = |reg: &mut Registry<i32>, from: &str, to: &str, kind| {
            reg.relay(now, &id(from), &scope("live"), &id(to), kind, &policy).copied()
        };
        assert_eq!(relay(&mut reg, "a", "a", Kind::Other), Err(Unroutable::UnknownPeer));
        assert_eq!(relay(&mut reg, "a", "zz", Kind::Offer), Err(Unroutable::UnknownPeer));
        assert_eq!(relay(&mut reg, "a", "b", Kind::Offer), Err(Unroutable::Refused(Refusal::NotIntroduced)));
        assert_eq!(reg.introduce(now, &id("a"), vec![id("a"), id("b")], now + Duration::from_secs(60), &policy), 1);
        assert_eq!(relay(&mut reg, "a", "b", Kind::Offer), Ok(2));
        assert_eq!(relay(&mut reg, "b", "a", Kind::Answer), Ok(1));
        assert_eq!(relay(&mut reg, "b", "a", Kind::Answer), Err(Unroutable::Refused(Refusal::NoOffer)));
        assert_eq!(Unroutable::Refused(Refusal::NoOffer).reason(), "no_offer");
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(t0, 10, 3);
        assert!((0..3).all(|_| bucket.try_take(t0)));
        assert!(!bucket.try_take(t0));
        assert!(bucket.try_take(t0 + Duration::from_millis(100)));
        assert!(!bucket.try_take(t0 + Duration::from_millis(150)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..5).filter(|_| bucket.try_take(later)).count(), 3);
    }
}
