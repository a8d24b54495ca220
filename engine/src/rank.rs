//! The seeding rank: who fetches a new segment from the CDN, agreed without talking.
//!
//! Every peer computes the same score for each (peer, segment) pair from public data alone, so
//! peers that see the same neighbourhood agree on the order without exchanging a message. The
//! top-ranked peer fetches the segment over HTTP at once; the others wait for it, each a little
//! longer the lower its rank, so a missing seeder is replaced by the next one in line.

use protocol::peer::Message;
use protocol::{PeerId, SegmentId};

/// FNV-1a, 64-bit: a fixed, platform-independent hash (std's hasher is randomly keyed).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// SplitMix64's finalizer: spreads nearby inputs (consecutive msns) over the whole range.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seeding score of `peer` for segment `id`; higher ranks first.
pub(crate) fn score(peer: &PeerId, id: SegmentId) -> u64 {
    mix(fnv1a(peer.as_str().as_bytes()) ^ mix(id.msn ^ (u64::from(id.rendition) << 48)))
}

/// What a peer announced about itself as a seeder (`protocol::peer::Message::Uplink`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seeder {
    /// Copies of the stream its uplink carries (0 until measured).
    pub(crate) streams: u8,
    /// It plays at the live edge (it fetches every new segment from the CDN on sight anyway)
    /// and may seed: it uploads, and its uplink was not measured below two copies.
    pub(crate) live_edge: bool,
}

impl Seeder {
    /// The seeding class, compared first: a peer at the live edge goes first (ranking anyone
    /// else above it makes that one fetch a second copy), then more copies first.
    fn class(self) -> (bool, u8) {
        (self.live_edge, self.streams)
    }

    /// The `Uplink` message that announces it.
    pub(crate) fn message(self) -> Message {
        Message::Uplink { streams: self.streams, live_edge: self.live_edge }
    }
}

/// The rank of `local` for `id` among `local` and `others`, each with what it announced as a
/// seeder: 0 is the designated seeder. [`Seeder::class`] orders the tiers, the hash orders each
/// tier, and ties (astronomically rare) go to the greater peerId, so every peer breaks them alike.
pub(crate) fn rank<'a>(
    local: (&PeerId, Seeder),
    others: impl IntoIterator<Item = (&'a PeerId, Seeder)>,
    id: SegmentId,
) -> u32 {
    let mine = (local.1.class(), score(local.0, id), local.0);
    let above = others.into_iter().filter(|&(p, s)| p != local.0 && (s.class(), score(p, id), p) > mine).count();
    u32::try_from(above).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(n: usize) -> Vec<PeerId> {
        (0..n).map(|i| format!("peer{i}").parse().unwrap()).collect()
    }

    #[test]
    fn exactly_one_peer_ranks_first_for_every_segment() {
        let all = peers(5);
        for msn in 0..200 {
            let id = SegmentId { rendition: 0, msn };
            let ranks: Vec<u32> = all
                .iter()
                .map(|p| rank((p, Seeder::default()), all.iter().map(|o| (o, Seeder::default())), id))
                .collect();
            let mut sorted = ranks.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4], "msn {msn}: {ranks:?}");
        }
    }

    #[test]
    fn seeding_is_spread_over_peers() {
        let all = peers(3);
        let mut firsts = [0u32; 3];
        for msn in 0..300 {
            let id = SegmentId { rendition: 1, msn };
            let first = all
                .iter()
                .position(|p| rank((p, Seeder::default()), all.iter().map(|o| (o, Seeder::default())), id) == 0)
                .unwrap();
            firsts[first] += 1;
        }
        assert!(firsts.iter().all(|&n| n > 60), "{firsts:?}");
    }

    #[test]
    fn peers_whose_uplink_carries_more_copies_seed_first() {
        let all = peers(4);
        for msn in 0..50 {
            let id = SegmentId { rendition: 0, msn };
            let seeder = |p: &PeerId| Seeder { streams: if *p == all[2] { 3 } else { 1 }, live_edge: false };
            let ranks: Vec<u32> =
                all.iter().map(|p| rank((p, seeder(p)), all.iter().map(|o| (o, seeder(o))), id)).collect();
            assert_eq!(ranks[2], 0, "msn {msn}: {ranks:?}");
        }
    }

    #[test]
    fn a_peer_at_the_live_edge_seeds_first() {
        let all = peers(4);
        // Peer 1 plays at the live edge with `streams` copies (0: not measured); the others
        // carry 6 and do not.
        let ranks = |streams: u8, id: SegmentId| -> Vec<u32> {
            let seeder = |p: &PeerId| {
                if *p == all[1] { Seeder { streams, live_edge: true } } else { Seeder { streams: 6, live_edge: false } }
            };
            all.iter().map(|p| rank((p, seeder(p)), all.iter().map(|o| (o, seeder(o))), id)).collect()
        };
        for msn in 0..50 {
            let id = SegmentId { rendition: 0, msn };
            assert_eq!(ranks(0, id)[1], 0, "msn {msn}");
            assert_eq!(ranks(2, id)[1], 0, "msn {msn}");
        }
    }

    #[test]
    fn score_is_stable_across_builds() {
        // Pinned so that a change of the hash (which would split a mixed-version swarm) is noticed.
        let p: PeerId = "abc".parse().unwrap();
        assert_eq!(score(&p, SegmentId { rendition: 1, msn: 2 }), 0x867f_d226_b474_f6d6);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
