//! Pure logic: what to do with a frame, who may reach whom, and how fast. No IO, no clock.
//!
//! The websocket shell (`ws` module) owns the sockets and queues; it asks this module what each
//! text frame means ([`on_text`]), where a relay goes ([`Registry::route`]) and whether the sender
//! is within its rate ([`TokenBucket`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

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

/// A connection's place among all connections of its peerId across a cluster: the epoch the
/// broker's directory gave it when it claimed the peerId (strictly increasing, see
/// `broker::Broker::claim`); the connection with the highest epoch is the one that stays.
pub(crate) type Epoch = u64;

/// How long an eviction that found no local connection is remembered (its connection's upgrade
/// may still be in flight); an upgrade that has not registered within this never will.
const EARLY_EVICTION_MEMORY: Duration = Duration::from_secs(60);
/// Most such evictions remembered at once (each is a peerId, an epoch and an instant).
const MAX_EARLY_EVICTIONS: usize = 100_000;

/// Connected peers by peerId, each with its scope and a handle `S` to reach its connection.
#[derive(Debug)]
pub(crate) struct Registry<S> {
    conns: HashMap<PeerId, Conn<S>>,
    next_id: ConnId,
    /// Evictions that found no connection here: peerId → (the evicting epoch, when it came).
    early_evictions: HashMap<PeerId, (Epoch, Instant)>,
}

#[derive(Debug)]
struct Conn<S> {
    id: ConnId,
    scope: Scope,
    handle: S,
    links: Links,
    /// `None` on a single node, or when the broker did not answer the claim.
    epoch: Option<Epoch>,
}

/// What [`Registry::register`] did with a new connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registered<S> {
    /// Registered; the caller closes the connection it replaced, if any, as replaced.
    Replaced(Option<S>),
    /// Not registered, because a newer connection of the peerId exists (here, or on another node
    /// whose eviction came first); the caller closes this one as replaced.
    Refused(S),
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
        Self { conns: HashMap::new(), next_id: 0, early_evictions: HashMap::new() }
    }

    /// Registers a connection of `peer` with its claim's `epoch`, at `now`; returns its id and
    /// what to close. The newest connection wins whatever the order of registrations and
    /// evictions: a connection with an epoch is refused when the registered one or an earlier
    /// eviction has a higher epoch. Without epochs, the later registration wins.
    pub(crate) fn register(
        &mut self,
        now: Instant,
        peer: PeerId,
        scope: Scope,
        handle: S,
        epoch: Option<Epoch>,
    ) -> (ConnId, Registered<S>) {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(mine) = epoch {
            let evicted = self
                .early_evictions
                .remove(&peer)
                .filter(|(by, at)| *by > mine && now.saturating_duration_since(*at) < EARLY_EVICTION_MEMORY);
            let newer_here = self.conns.get(&peer).and_then(|c| c.epoch).is_some_and(|theirs| theirs > mine);
            if evicted.is_some() || newer_here {
                return (id, Registered::Refused(handle));
            }
        }
        let old = self.conns.insert(peer, Conn { id, scope, handle, links: Links::default(), epoch });
        (id, Registered::Replaced(old.map(|c| c.handle)))
    }

    /// Removes `peer` if its registered connection is still `id`; returns whether it did.
    pub(crate) fn unregister(&mut self, peer: &PeerId, id: ConnId) -> bool {
        if self.conns.get(peer).is_some_and(|c| c.id == id) {
            self.conns.remove(peer);
            return true;
        }
        false
    }

    /// A connection of `peer` with `epoch` exists elsewhere: removes the connection here if it is
    /// older (or has no epoch) and returns its handle to close. When no connection is here, the
    /// eviction is remembered for a registration still in flight (see [`Registry::register`]).
    pub(crate) fn evict(&mut self, now: Instant, peer: &PeerId, epoch: Epoch) -> Option<S> {
        match self.conns.get(peer) {
            Some(conn) if conn.epoch.is_none_or(|mine| mine < epoch) => self.remove(peer),
            Some(_) => None,
            None => {
                self.early_evictions.retain(|_, (_, at)| now.saturating_duration_since(*at) < EARLY_EVICTION_MEMORY);
                let known = self.early_evictions.get(peer).map(|(by, _)| *by);
                if known.is_some() || self.early_evictions.len() < MAX_EARLY_EVICTIONS {
                    self.early_evictions.insert(peer.clone(), (known.unwrap_or(0).max(epoch), now));
                }
                None
            }
        }
    }

    /// The local connections as (peerId, connection id, epoch), for the directory refresh.
    pub(crate) fn claims(&self) -> Vec<(PeerId, ConnId, Option<Epoch>)> {
        self.conns.iter().map(|(peer, c)| (peer.clone(), c.id, c.epoch)).collect()
    }

    /// The epoch of `peer`'s connection `id` while it is registered.
    pub(crate) fn epoch_of(&self, peer: &PeerId, id: ConnId) -> Option<Epoch> {
        self.conns.get(peer).filter(|c| c.id == id).and_then(|c| c.epoch)
    }

    /// The epoch of `peer`'s connection `id` (a late claim); false when that connection is gone.
    pub(crate) fn set_epoch(&mut self, peer: &PeerId, id: ConnId, epoch: Epoch) -> bool {
        match self.conns.get_mut(peer).filter(|c| c.id == id) {
            Some(conn) => {
                conn.epoch = Some(epoch);
                true
            }
            None => false,
        }
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
        reg.register(Instant::now(), id("a"), scope("live"), 1, None);
        reg.register(Instant::now(), id("b"), scope("live"), 2, None);
        reg.register(Instant::now(), id("c"), scope("other"), 3, None);
        assert_eq!(reg.route(&scope("live"), &id("b")), Some(&2));
        assert_eq!(reg.route(&scope("live"), &id("c")), None);
        assert_eq!(reg.route(&scope("live"), &id("zz")), None);
        let customer = Scope { customer: "other".into(), content: "live".into() };
        assert_eq!(reg.route(&customer, &id("a")), None);
    }

    #[test]
    fn a_new_connection_replaces_the_old_and_the_old_cannot_unregister_it() {
        let mut reg = Registry::new();
        let (first, none) = reg.register(Instant::now(), id("a"), scope("live"), "first", None);
        assert_eq!(none, Registered::Replaced(None));
        let (second, old) = reg.register(Instant::now(), id("a"), scope("live"), "second", None);
        assert_eq!(old, Registered::Replaced(Some("first")));
        assert!(!reg.unregister(&id("a"), first));
        assert_eq!(reg.route(&scope("live"), &id("a")), Some(&"second"));
        assert!(reg.unregister(&id("a"), second));
        assert_eq!(reg.route(&scope("live"), &id("a")), None);
        reg.register(Instant::now(), id("b"), scope("live"), "b", None);
        assert_eq!(reg.remove(&id("b")), Some("b"));
    }

    #[test]
    fn the_highest_epoch_wins_whatever_the_order_of_registrations_and_evictions() {
        let now = Instant::now();
        let mut reg = Registry::new();
        // Two connections of "a" register here in the opposite order of their claims.
        assert_eq!(reg.register(now, id("a"), scope("live"), "new", Some(6)).1, Registered::Replaced(None));
        assert_eq!(reg.register(now, id("a"), scope("live"), "old", Some(5)).1, Registered::Refused("old"));
        assert_eq!(reg.route(&scope("live"), &id("a")), Some(&"new"));
        // An eviction by an older connection elsewhere (arriving late) leaves it; a newer one closes it.
        assert_eq!(reg.evict(now, &id("a"), 4), None);
        assert_eq!(reg.evict(now, &id("a"), 6), None);
        assert_eq!(reg.evict(now, &id("a"), 7), Some("new"));
        assert_eq!(reg.route(&scope("live"), &id("a")), None);
        // An eviction that comes before its connection registers refuses that connection only if
        // it is older; a newer registration is not affected.
        assert_eq!(reg.evict(now, &id("b"), 10), None);
        assert_eq!(reg.register(now, id("b"), scope("live"), "b9", Some(9)).1, Registered::Refused("b9"));
        assert_eq!(reg.evict(now, &id("b"), 10), None);
        assert_eq!(reg.register(now, id("b"), scope("live"), "b11", Some(11)).1, Registered::Replaced(None));
        // ... and is forgotten after a minute.
        assert_eq!(reg.evict(now, &id("c"), 10), None);
        let later = now + EARLY_EVICTION_MEMORY;
        assert_eq!(reg.register(later, id("c"), scope("live"), "c9", Some(9)).1, Registered::Replaced(None));
        // Without epochs (one node, or a failed claim) the later registration wins, and any
        // eviction closes it.
        assert_eq!(reg.register(now, id("d"), scope("live"), "d1", None).1, Registered::Replaced(None));
        assert_eq!(reg.register(now, id("d"), scope("live"), "d2", None).1, Registered::Replaced(Some("d1")));
        let d2 = reg.claims().into_iter().find(|(p, ..)| *p == id("d")).unwrap().1;
        assert_eq!(reg.epoch_of(&id("d"), d2), None);
        assert!(reg.set_epoch(&id("d"), d2, 3));
        assert_eq!(reg.epoch_of(&id("d"), d2), Some(3));
        assert_eq!(reg.evict(now, &id("d"), 4), Some("d2"));
        assert!(!reg.set_epoch(&id("d"), d2, 5));
    }

    #[test]
    fn relays_check_both_connections_and_never_loop_back() {
        let now = Instant::now();
        let policy = Policy { require_intro: true, offer_ttl: Duration::from_secs(120), max_links: 8 };
        let mut reg = Registry::new();
        reg.register(Instant::now(), id("a"), scope("live"), 1, None);
        reg.register(Instant::now(), id("b"), scope("live"), 2, None);
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
