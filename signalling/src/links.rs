//! Pure logic: which peers one connection may signal, and in which order. No IO, no clock.
//!
//! Each connection keeps a small table of the peers it deals with. An entry remembers that the
//! tracker introduced that peer (the agent handed in a [`protocol::intro`] naming it), that an
//! offer went out to it or came in from it, and that an answer passed. The rules, applied on the
//! sender's connection by [`Links::on_send`] and on the recipient's by [`Links::on_receive`], so
//! that they hold when the two connections live on different nodes:
//!
//! - an offer needs a live introduction of the recipient to the sender (when
//!   [`Policy::require_intro`] is on);
//! - an answer needs an outstanding offer from the recipient to the sender, within the offer
//!   lifetime (always; the answer consumes the offer);
//! - candidates and `bye` need an offer or an answer between the two within the lifetime (when
//!   [`Policy::require_intro`] is on).
//!
//! Tables are bounded by [`Policy::max_links`]; expired entries make room.

use std::time::{Duration, Instant};

use protocol::PeerId;
use protocol::signal::Signal;

/// The limits every table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Offers need an introduction; candidates and `bye` need an offer or answer.
    pub(crate) require_intro: bool,
    /// How long an offer waits for its answer, and how long an answered pair may keep exchanging
    /// candidates after its last message.
    pub(crate) offer_ttl: Duration,
    /// Most peers one table holds.
    pub(crate) max_links: usize,
}

/// Which rule a relay broke; `reason()` is the wire and metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// An offer to a peer the tracker did not introduce (or whose introduction expired).
    NotIntroduced,
    /// An answer with no outstanding offer from its recipient.
    NoOffer,
    /// A candidate or `bye` between peers that never exchanged an offer.
    NotLinked,
    /// The table is full of live entries.
    TooManyLinks,
}

impl Refusal {
    /// Machine-readable reason, sent in `undeliverable` and used as the metric label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::NotIntroduced => "not_introduced",
            Self::NoOffer => "no_offer",
            Self::NotLinked => "not_linked",
            Self::TooManyLinks => "too_many_links",
        }
    }
}

/// The kind of a signal, as far as the rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    Offer,
    Answer,
    /// Candidates and `bye`.
    Other,
}

impl From<&Signal> for Kind {
    fn from(signal: &Signal) -> Self {
        match signal {
            Signal::Offer { .. } => Self::Offer,
            Signal::Answer { .. } => Self::Answer,
            Signal::Candidate { .. } | Signal::Bye => Self::Other,
        }
    }
}

/// One connection's table; empty (and allocation-free) until the peer signals anyone.
#[derive(Debug, Default)]
pub(crate) struct Links {
    entries: Vec<Link>,
}

#[derive(Debug)]
struct Link {
    peer: PeerId,
    /// The tracker introduced `peer` to us until then.
    introduced: Option<Instant>,
    /// We offered to `peer`; its answer is accepted until then.
    offered: Option<Instant>,
    /// `peer` offered to us; our answer is accepted until then.
    offer_from: Option<Instant>,
    /// An answer passed; candidates flow until then (refreshed by each).
    linked: Option<Instant>,
}

fn live(until: Option<Instant>, now: Instant) -> bool {
    until.is_some_and(|t| t > now)
}

impl Link {
    fn new(peer: PeerId) -> Self {
        Self { peer, introduced: None, offered: None, offer_from: None, linked: None }
    }

    fn is_live(&self, now: Instant) -> bool {
        [self.introduced, self.offered, self.offer_from, self.linked].into_iter().any(|t| live(t, now))
    }

    fn in_session(&self, now: Instant) -> bool {
        [self.offered, self.offer_from, self.linked].into_iter().any(|t| live(t, now))
    }
}

impl Links {
    /// Records that the tracker introduced `peers` to this connection until `until`; returns how
    /// many found room.
    pub(crate) fn introduce(
        &mut self,
        now: Instant,
        peers: impl IntoIterator<Item = PeerId>,
        until: Instant,
        policy: &Policy,
    ) -> usize {
        let mut added = 0;
        for peer in peers {
            let Some(link) = self.entry(now, &peer, policy) else { break };
            link.introduced = Some(link.introduced.map_or(until, |t| t.max(until)));
            added += 1;
        }
        added
    }

    /// Checks and records a `kind` signal this connection sends to `to`.
    ///
    /// # Errors
    /// The [`Refusal`] when the rules forbid it; the table is unchanged then.
    pub(crate) fn on_send(&mut self, now: Instant, to: &PeerId, kind: Kind, policy: &Policy) -> Result<(), Refusal> {
        let until = now + policy.offer_ttl;
        match kind {
            Kind::Offer => {
                let introduced = self.find(to).is_some_and(|l| live(l.introduced, now));
                if policy.require_intro && !introduced {
                    return Err(Refusal::NotIntroduced);
                }
                self.entry(now, to, policy).ok_or(Refusal::TooManyLinks)?.offered = Some(until);
            }
            Kind::Answer => {
                let link = self.find_mut(to).filter(|l| live(l.offer_from, now)).ok_or(Refusal::NoOffer)?;
                link.offer_from = None;
                link.linked = Some(until);
            }
            Kind::Other => self.touch(now, to, until, policy)?,
        }
        Ok(())
    }

    /// Checks and records a `kind` signal that `from` sends to this connection.
    ///
    /// # Errors
    /// The [`Refusal`] when the rules forbid it; the table is unchanged then.
    pub(crate) fn on_receive(
        &mut self,
        now: Instant,
        from: &PeerId,
        kind: Kind,
        policy: &Policy,
    ) -> Result<(), Refusal> {
        let until = now + policy.offer_ttl;
        match kind {
            Kind::Offer => self.entry(now, from, policy).ok_or(Refusal::TooManyLinks)?.offer_from = Some(until),
            Kind::Answer => {
                let link = self.find_mut(from).filter(|l| live(l.offered, now)).ok_or(Refusal::NoOffer)?;
                link.offered = None;
                link.linked = Some(until);
            }
            Kind::Other => self.touch(now, from, until, policy)?,
        }
        Ok(())
    }

    /// Number of entries held (live or not yet pruned).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// A candidate or `bye` with `peer`: refreshes a live session, or refuses without one when
    /// introductions are required.
    fn touch(&mut self, now: Instant, peer: &PeerId, until: Instant, policy: &Policy) -> Result<(), Refusal> {
        match self.find_mut(peer).filter(|l| l.in_session(now)) {
            Some(link) => {
                if link.linked.is_some() {
                    link.linked = Some(until);
                }
                Ok(())
            }
            None if policy.require_intro => Err(Refusal::NotLinked),
            None => Ok(()),
        }
    }

    fn find(&self, peer: &PeerId) -> Option<&Link> {
        self.entries.iter().find(|l| l.peer == *peer)
    }

    fn find_mut(&mut self, peer: &PeerId) -> Option<&mut Link> {
        self.entries.iter_mut().find(|l| l.peer == *peer)
    }

    /// The entry of `peer`, created if there is room (after dropping expired entries).
    fn entry(&mut self, now: Instant, peer: &PeerId, policy: &Policy) -> Option<&mut Link> {
        if let Some(i) = self.entries.iter().position(|l| l.peer == *peer) {
            return self.entries.get_mut(i);
        }
        if self.entries.len() >= policy.max_links {
            self.entries.retain(|l| l.is_live(now));
            if self.entries.len() >= policy.max_links {
                return None;
            }
        }
        self.entries.push(Link::new(peer.clone()));
        self.entries.last_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(120);

    fn id(s: &str) -> PeerId {
        s.parse().unwrap()
    }

    fn policy(require_intro: bool) -> Policy {
        Policy { require_intro, offer_ttl: TTL, max_links: 4 }
    }

    /// Sends `kind` from the table of "a" to that of "b" the way the server does: sender side,
    /// then recipient side.
    fn relay(a: &mut Links, b: &mut Links, now: Instant, kind: Kind, p: &Policy) -> Result<(), Refusal> {
        a.on_send(now, &id("b"), kind, p)?;
        b.on_receive(now, &id("a"), kind, p)
    }

    /// The same from "b" to "a".
    fn reply(b: &mut Links, a: &mut Links, now: Instant, kind: Kind, p: &Policy) -> Result<(), Refusal> {
        b.on_send(now, &id("a"), kind, p)?;
        a.on_receive(now, &id("b"), kind, p)
    }

    #[test]
    fn offers_need_a_live_introduction_when_required() {
        let t0 = Instant::now();
        let p = policy(true);
        let (mut a, mut b) = (Links::default(), Links::default());
        assert_eq!(relay(&mut a, &mut b, t0, Kind::Offer, &p), Err(Refusal::NotIntroduced));
        assert_eq!(relay(&mut a, &mut b, t0, Kind::Other, &p), Err(Refusal::NotLinked));
        a.introduce(t0, [id("b")], t0 + Duration::from_secs(10), &p);
        assert_eq!(relay(&mut a, &mut b, t0 + Duration::from_secs(11), Kind::Offer, &p), Err(Refusal::NotIntroduced));
        assert_eq!(relay(&mut a, &mut b, t0, Kind::Offer, &p), Ok(()));
        // Without the requirement, anyone may offer.
        let (mut a, mut b) = (Links::default(), Links::default());
        assert_eq!(relay(&mut a, &mut b, t0, Kind::Offer, &policy(false)), Ok(()));
    }

    #[test]
    fn an_answer_needs_an_outstanding_offer_from_its_recipient() {
        let t0 = Instant::now();
        for require_intro in [false, true] {
            let p = policy(require_intro);
            let (mut a, mut b) = (Links::default(), Links::default());
            // "b" answers "a", which never offered: refused on both sides.
            assert_eq!(reply(&mut b, &mut a, t0, Kind::Answer, &p), Err(Refusal::NoOffer));
            assert_eq!(a.on_receive(t0, &id("b"), Kind::Answer, &p), Err(Refusal::NoOffer));
            a.introduce(t0, [id("b")], t0 + TTL, &p);
            relay(&mut a, &mut b, t0, Kind::Offer, &p).unwrap();
            // Too late: the offer expired.
            let late = t0 + TTL + Duration::from_secs(1);
            assert_eq!(reply(&mut b, &mut a, late, Kind::Answer, &p), Err(Refusal::NoOffer));
            relay(&mut a, &mut b, t0, Kind::Offer, &p).unwrap();
            assert_eq!(reply(&mut b, &mut a, t0, Kind::Answer, &p), Ok(()));
            // The answer consumed the offer.
            assert_eq!(reply(&mut b, &mut a, t0, Kind::Answer, &p), Err(Refusal::NoOffer));
            // Candidates flow both ways after it.
            assert_eq!(relay(&mut a, &mut b, t0, Kind::Other, &p), Ok(()));
            assert_eq!(reply(&mut b, &mut a, t0, Kind::Other, &p), Ok(()));
        }
    }

    #[test]
    fn tables_are_bounded_and_expired_entries_make_room() {
        let t0 = Instant::now();
        let p = policy(true);
        let mut a = Links::default();
        let peers = ["p1", "p2", "p3", "p4", "p5"].map(id);
        assert_eq!(a.introduce(t0, peers.clone(), t0 + Duration::from_secs(5), &p), 4);
        assert_eq!(a.on_send(t0, &id("p5"), Kind::Offer, &p), Err(Refusal::NotIntroduced));
        let later = t0 + Duration::from_secs(6);
        assert_eq!(a.introduce(later, [id("p5")], later + TTL, &p), 1);
        assert_eq!(a.len(), 1);
        assert_eq!(a.on_send(later, &id("p5"), Kind::Offer, &p), Ok(()));
    }
}
