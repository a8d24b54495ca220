//! Pure logic of the WebTorrent endpoint: who is in which swarm, where offers go, which answers
//! are legitimate. No IO, no clock: every call takes `now_s` (seconds on the caller's clock).
//!
//! Rules, as aquatic_ws applies them:
//! - a peer_id already bound to another connection in a swarm is ignored (no spoofing);
//! - offers go to up to `max_offers` other peers, a random contiguous run of the swarm;
//! - an answer is relayed only when its recipient has an outstanding offer to the answering
//!   peer with that offer_id, younger than the offer lifetime; otherwise the sender gets an error;
//! - `stopped` removes the peer and gets no response;
//! - an announce that carries an answer gets no announce response either (bittorrent-tracker's
//!   server: "Skip sending update back for 'answer' announce messages – not needed"; aquatic
//!   sends one);
//! - a closed connection's peers leave every swarm at once.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::quality::RandomState;

use indexmap::IndexMap;
use protocol::webtorrent::{
    Announce, AnnounceResponse, AnswerOut, ErrorOut, Event, Id20, OfferOut, ScrapeFile, scrape_response, to_json,
};
use rand::Rng;
use rand::rngs::SmallRng;

/// Identifies one websocket connection.
pub(crate) type ConnId = u64;

/// The limits every swarm applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most offers relayed per announce.
    pub(crate) max_offers: usize,
    /// How long an offer waits for its answer, in seconds.
    pub(crate) offer_ttl_s: u32,
    /// How long a peer stays without re-announcing, in seconds.
    pub(crate) peer_ttl_s: u32,
    /// Re-announce interval told to clients, in seconds.
    pub(crate) interval_s: u64,
    /// Most outstanding offers remembered per peer.
    pub(crate) max_pending_offers: usize,
}

/// Where [`Swarms::announce`] puts the messages it sends.
pub(crate) trait Outbox {
    /// Whether a message for `conn` would be taken now; when not, the message is not even
    /// encoded (and an offer not remembered as pending).
    fn has_room(&self, conn: ConnId) -> bool;
    /// Takes a message for `conn`.
    fn push(&mut self, conn: ConnId, text: String);
}

impl Outbox for Vec<(ConnId, String)> {
    fn has_room(&self, _conn: ConnId) -> bool {
        true
    }

    fn push(&mut self, conn: ConnId, text: String) {
        Vec::push(self, (conn, text));
    }
}

/// What [`Swarms::announce`] did, for the shell's bookkeeping and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Outcome {
    /// The request was ignored (peer_id bound to another connection).
    pub(crate) ignored: bool,
    /// The peer is in the swarm after the request (false after `stopped`).
    pub(crate) member: bool,
    /// Offers relayed.
    pub(crate) offers: usize,
    /// An answer was relayed.
    pub(crate) answered: bool,
    /// An answer was refused (no matching offer).
    pub(crate) answer_refused: bool,
    /// Messages not sent because their recipient's queue was full.
    pub(crate) dropped: usize,
}

#[derive(Debug, Default)]
struct Torrent {
    peers: IndexMap<Id20, Peer, RandomState>,
    seeders: usize,
}

#[derive(Debug)]
struct Peer {
    conn: ConnId,
    seeder: bool,
    until_s: u32,
    /// Offers this peer made that await an answer, each packed in 8 bytes ([`pending_entry`]):
    /// the top 48 bits of a keyed hash of (answering peer, offer id) and the low 16 bits of its
    /// expiry second. Under load this is most of the endpoint's memory (millions of offers,
    /// 44 bytes each unpacked). A false match needs a 48-bit collision under a per-process
    /// random seed (foldhash: fast, not a cryptographic MAC; the worst a forged match does is
    /// relay one answer to an offerer).
    pending: Vec<u64>,
}

/// All swarms of the WebTorrent endpoint.
#[derive(Debug)]
pub(crate) struct Swarms {
    limits: Limits,
    /// Keyed by client-chosen info hashes: a per-process random seed keeps collisions out of
    /// their reach; foldhash instead of SipHash because hashing ids was 3 % of the endpoint's CPU.
    torrents: HashMap<Id20, Torrent, RandomState>,
    peers: usize,
    rng: SmallRng,
    keys: RandomState,
}

const NO_OFFER: &str = "Could not find the offer corresponding to your answer. It may have expired.";

impl Swarms {
    /// Empty swarms under `limits`, with a random source seeded by `seed`.
    pub(crate) fn new(limits: Limits, seed: u64) -> Self {
        Self {
            limits,
            torrents: HashMap::default(),
            peers: 0,
            rng: rand::SeedableRng::seed_from_u64(seed),
            keys: RandomState::default(),
        }
    }

    /// Handles an announce from connection `conn`; pushes every message to send, with its
    /// recipient connection, to `out` (the announce response goes to `conn`).
    pub(crate) fn announce(&mut self, now_s: u32, conn: ConnId, a: &Announce<'_>, out: &mut impl Outbox) -> Outcome {
        let limits = self.limits;
        let mut outcome = Outcome::default();
        let torrent = self.torrents.entry(a.info_hash).or_default();
        // One lookup of the announcing peer; its index stays valid until the peer is removed.
        let index = torrent.peers.get_index_of(&a.peer_id);
        if index.is_some_and(|i| torrent.peers[i].conn != conn) {
            outcome.ignored = true;
            return outcome;
        }
        if a.event == Event::Stopped {
            if let Some((_, peer)) = index.and_then(|i| torrent.peers.swap_remove_index(i)) {
                torrent.seeders -= usize::from(peer.seeder);
                self.peers -= 1;
            }
            if torrent.peers.is_empty() {
                self.torrents.remove(&a.info_hash);
            }
            return outcome;
        }
        let until_s = now_s.saturating_add(limits.peer_ttl_s);
        let me = match index {
            Some(i) => {
                let peer = &mut torrent.peers[i];
                if peer.seeder != a.seeder {
                    if a.seeder {
                        torrent.seeders += 1;
                    } else {
                        torrent.seeders -= 1;
                    }
                }
                peer.seeder = a.seeder;
                peer.until_s = until_s;
                i
            }
            None => {
                let (i, _) =
                    torrent.peers.insert_full(a.peer_id, Peer { conn, seeder: a.seeder, until_s, pending: Vec::new() });
                torrent.seeders += usize::from(a.seeder);
                self.peers += 1;
                i
            }
        };
        outcome.member = true;

        if !a.offers.is_empty() {
            let want = a.offers.len().min(limits.max_offers);
            let targets = pick(&mut self.rng, &torrent.peers, want, &a.peer_id);
            let offer_until = now_s.saturating_add(limits.offer_ttl_s);
            let mut pending: Vec<u64> = Vec::with_capacity(targets.len());
            for (offer, (target_id, target_conn)) in a.offers.iter().zip(targets) {
                if !out.has_room(target_conn) {
                    outcome.dropped += 1;
                    continue;
                }
                let message = OfferOut {
                    action: "announce",
                    info_hash: a.info_hash,
                    peer_id: a.peer_id,
                    offer: &offer.offer,
                    offer_id: offer.offer_id,
                };
                out.push(target_conn, to_json(&message));
                pending.push(pending_entry(self.keys.hash_one((target_id, offer.offer_id)), offer_until));
            }
            outcome.offers = pending.len();
            if let Some((_, me)) = torrent.peers.get_index_mut(me) {
                me.pending.retain(|&p| pending_alive(p, now_s));
                // Exactly sized: a doubling Vec per (peer, swarm) would hold up to twice the
                // memory; one reallocation per announce with offers costs less.
                me.pending.reserve_exact(pending.len());
                me.pending.extend(pending);
                let excess = me.pending.len().saturating_sub(limits.max_pending_offers);
                me.pending.drain(..excess);
            }
        }

        if let Some(answer) = &a.answer {
            let key = self.keys.hash_one((a.peer_id, answer.offer_id));
            let matched = torrent.peers.get_mut(&answer.to_peer_id).and_then(|offerer| {
                let i = offerer.pending.iter().position(|&p| same_key(p, key) && pending_alive(p, now_s))?;
                offerer.pending.swap_remove(i);
                Some(offerer.conn)
            });
            match matched {
                Some(offerer_conn) => {
                    let message = AnswerOut {
                        action: "announce",
                        info_hash: a.info_hash,
                        peer_id: a.peer_id,
                        answer: &answer.answer,
                        offer_id: answer.offer_id,
                    };
                    if out.has_room(offerer_conn) {
                        out.push(offerer_conn, to_json(&message));
                        outcome.answered = true;
                    } else {
                        outcome.dropped += 1;
                    }
                }
                None => {
                    let error =
                        ErrorOut { failure_reason: NO_OFFER, action: Some("announce"), info_hash: Some(a.info_hash) };
                    out.push(conn, to_json(&error));
                    outcome.answer_refused = true;
                }
            }
        }

        if a.answer.is_some() {
            return outcome;
        }
        let response = AnnounceResponse {
            action: "announce",
            info_hash: a.info_hash,
            complete: torrent.seeders,
            incomplete: torrent.peers.len() - torrent.seeders,
            interval: limits.interval_s,
        };
        if out.has_room(conn) {
            out.push(conn, to_json(&response));
        } else {
            outcome.dropped += 1;
        }
        outcome
    }

    /// The scrape answer for `hashes` (which the decoder bounds); an empty list is a full
    /// scrape, which is refused.
    pub(crate) fn scrape(&self, hashes: &[Id20]) -> String {
        if hashes.is_empty() {
            return to_json(&ErrorOut {
                failure_reason: "Full scrapes are not allowed",
                action: Some("scrape"),
                info_hash: None,
            });
        }
        let files: Vec<(Id20, ScrapeFile)> = hashes
            .iter()
            .map(|h| {
                let (complete, incomplete) =
                    self.torrents.get(h).map_or((0, 0), |t| (t.seeders, t.peers.len() - t.seeders));
                (*h, ScrapeFile { complete, incomplete, downloaded: 0 })
            })
            .collect();
        scrape_response(&files)
    }

    /// Removes the peers `conn` announced (`joined`: (info hash, peer id) pairs), when still bound
    /// to it; called when the connection closes.
    pub(crate) fn remove_connection<'a>(&mut self, conn: ConnId, joined: impl IntoIterator<Item = &'a (Id20, Id20)>) {
        for (info_hash, peer_id) in joined {
            let Some(torrent) = self.torrents.get_mut(info_hash) else { continue };
            if torrent.peers.get(peer_id).is_some_and(|p| p.conn == conn)
                && let Some(peer) = torrent.peers.swap_remove(peer_id)
            {
                torrent.seeders -= usize::from(peer.seeder);
                self.peers -= 1;
            }
            if torrent.peers.is_empty() {
                self.torrents.remove(info_hash);
            }
        }
    }

    /// Drops peers that did not re-announce in time and offers past their lifetime.
    pub(crate) fn clean(&mut self, now_s: u32) {
        let mut dropped = 0;
        self.torrents.retain(|_, torrent| {
            torrent.peers.retain(|_, peer| {
                if peer.until_s <= now_s {
                    torrent.seeders -= usize::from(peer.seeder);
                    dropped += 1;
                    return false;
                }
                peer.pending.retain(|&p| pending_alive(p, now_s));
                true
            });
            !torrent.peers.is_empty()
        });
        self.peers -= dropped;
    }

    /// Peers in all swarms.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers
    }

    /// Swarms with at least one peer.
    pub(crate) fn swarm_count(&self) -> usize {
        self.torrents.len()
    }
}

/// Most seconds an offer may wait for its answer: expiries are kept modulo 2^16 s and compared
/// within half of that. Pending offers never get near it: `clean` drops them once expired.
pub(crate) const MAX_OFFER_TTL_S: u32 = i16::MAX as u32;

/// Packs a pending offer: the top 48 bits of `key`, the low 16 bits of `until_s`.
fn pending_entry(key: u64, until_s: u32) -> u64 {
    (key & !0xFFFF) | u64::from(until_s as u16)
}

/// Whether entry `p` is for `key` (top 48 bits).
fn same_key(p: u64, key: u64) -> bool {
    (p ^ key) & !0xFFFF == 0
}

/// Whether entry `p` has not expired at `now_s` (its expiry is at most [`MAX_OFFER_TTL_S`] ahead).
fn pending_alive(p: u64, now_s: u32) -> bool {
    // Truncations to 16 bits on purpose: the difference of two seconds modulo 2^16, read signed.
    (p as u16).wrapping_sub(now_s as u16).cast_signed() > 0
}

/// Up to `want` peers other than `me`: a random contiguous run of the swarm, wrapping around.
fn pick(rng: &mut SmallRng, peers: &IndexMap<Id20, Peer, RandomState>, want: usize, me: &Id20) -> Vec<(Id20, ConnId)> {
    let n = peers.len();
    if n == 0 || want == 0 {
        return Vec::new();
    }
    let start = rng.random_range(0..n);
    (0..n)
        .filter_map(|i| peers.get_index((start + i) % n))
        .filter(|(id, _)| *id != me)
        .take(want)
        .map(|(id, p)| (*id, p.conn))
        .collect()
}

#[cfg(test)]
#[path = "swarms_tests.rs"]
mod tests;
