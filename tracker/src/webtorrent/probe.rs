//! Filling the WebTorrent swarms as aquatic_ws_load_test does, to measure the state kept per
//! (peer, swarm).

use protocol::webtorrent::{Announce, Event, Id20, OfferIn, Sdp};
use rand::{Rng, SeedableRng};

use super::Joined;
use super::swarms::{ConnId, Limits, Outbox, Swarms};

/// WebTorrent swarms filled by synthetic clients (see `tests/webtorrent_state.rs`); dropping
/// it frees the state.
pub struct WebTorrentProbe {
    _swarms: Swarms,
    _joined: Vec<Joined>,
}

/// Takes every message and drops it: only the swarms' own state is measured.
struct Discard;

impl Outbox for Discard {
    fn has_room(&self, _conn: ConnId) -> bool {
        true
    }

    fn push(&mut self, _conn: ConnId, _text: String) {}
}

impl WebTorrentProbe {
    /// `connections` clients, each announcing once (with `offers` offers, as the load tester's
    /// 10) in `swarms_each` distinct swarms out of `swarms`, under the default limits with every
    /// offer kept (as the benchmark configures it).
    pub fn fill(connections: usize, swarms_each: usize, swarms: usize, offers: usize) -> Self {
        let limits = Limits {
            max_offers: offers,
            offer_ttl_s: 120,
            peer_ttl_s: 180,
            interval_s: 120,
            max_pending_offers: 100_000,
        };
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let mut state = Swarms::new(limits, 1);
        let mut joined = Vec::with_capacity(connections);
        let sdp = Sdp { kind: "offer".into(), sdp: "abcdefg-abcdefg-abcdefg-abcdefg-abcdefg-abcdefg".into() };
        for conn in 0..connections {
            let peer_id = Id20(rng.random());
            let mut mine = Joined::default();
            let first = rng.random_range(0..swarms.max(1));
            for k in 0..swarms_each {
                let mut info_hash = [0u8; 20];
                info_hash[..8].copy_from_slice(&((first + k) % swarms.max(1)).to_le_bytes());
                let offers =
                    (0..offers).map(|_| OfferIn { offer: sdp.clone(), offer_id: Id20(rng.random()) }).collect();
                let announce = Announce {
                    info_hash: Id20(info_hash),
                    peer_id,
                    event: Event::Started,
                    seeder: false,
                    numwant: None,
                    offers,
                    answer: None,
                };
                state.announce(0, conn as ConnId, &announce, &mut Discard);
                mine.insert((Id20(info_hash), peer_id));
            }
            joined.push(mine);
        }
        Self { _swarms: state, _joined: joined }
    }
}
