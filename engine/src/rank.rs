//! The seeding rank: who fetches a new segment from the CDN, agreed without talking.
//!
//! Every peer computes the same score for each (peer, segment) pair from public data alone, so
//! peers that see the same neighbourhood agree on the order without exchanging a message. The
//! top-ranked peer fetches the segment over HTTP at once; the others wait for it, each a little
//! longer the lower its rank, so a missing seeder is replaced by the next one in line.

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

/// The rank of `local` for `id` among `local` and `others`, each with the copies of the stream
/// its uplink carries as it announced them (`protocol::peer::Message::Uplink`): 0 is the
/// designated seeder. Peers that carry more copies go first, the hash orders each tier, and
/// ties (astronomically rare) go to the greater peerId, so every peer breaks them alike.
pub(crate) fn rank<'a>(local: (&PeerId, u8), others: impl IntoIterator<Item = (&'a PeerId, u8)>, id: SegmentId) -> u32 {
    let mine = (local.1, score(local.0, id), local.0);
    let above = others.into_iter().filter(|&(p, streams)| p != local.0 && (streams, score(p, id), p) > mine).count();
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
            let ranks: Vec<u32> = all.iter().map(|p| rank((p, 0), all.iter().map(|o| (o, 0)), id)).collect();
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
            let first = all.iter().position(|p| rank((p, 0), all.iter().map(|o| (o, 0)), id) == 0).unwrap();
            firsts[first] += 1;
        }
        assert!(firsts.iter().all(|&n| n > 60), "{firsts:?}");
    }

    #[test]
    fn peers_whose_uplink_carries_more_copies_seed_first() {
        let all = peers(4);
        for msn in 0..50 {
            let id = SegmentId { rendition: 0, msn };
            let streams = |p: &PeerId| if *p == all[2] { 3 } else { 1 };
            let ranks: Vec<u32> =
                all.iter().map(|p| rank((p, streams(p)), all.iter().map(|o| (o, streams(o))), id)).collect();
            assert_eq!(ranks[2], 0, "msn {msn}: {ranks:?}");
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
