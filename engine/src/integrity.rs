//! Integrity of segments assembled from peers.
//!
//! The origin publishes the SHA-256 of every segment (signed; the shell checks the signature
//! before passing digests in). Bytes from the CDN are trusted. A segment that holds any byte
//! from a peer is checked against its digest when complete: a match makes it deliverable and
//! relayable; a mismatch throws the bytes away, refetches the segment from the CDN, and bans
//! every peer that contributed bytes to it. Once a rendition has digests, a peer-assembled
//! segment whose digest has not arrived yet waits for it (until its deadline sends it to the
//! CDN). Without digests, a peer segment is trusted once its length matches the expected one.
//!
//! Which sender to ban: a segment with a single peer source bans that peer at once. A segment
//! assembled from several peers (resumed on another peer, or split between two) bans none of
//! them on the spot: the failed copy is kept with the byte range each peer sent, and when a
//! trusted copy arrives (the CDN's, or one that matches the digest) every peer whose range
//! differs from it is banned, and only those. An honest peer that shared a segment with a
//! liar is never banned; the liar is, one refetch later.

use std::collections::BTreeMap;

use protocol::SegmentId;
use sha2::{Digest, Sha256};

use crate::segments::Fetch;
use crate::{CdnReason, Engine, Millis};

/// Most digests remembered per rendition (the oldest go first).
const MAX_DIGESTS_PER_RENDITION: usize = 4096;

/// Digests published by the origin, by rendition and msn.
#[derive(Debug, Default)]
pub(crate) struct Digests {
    by_rendition: BTreeMap<u32, BTreeMap<u64, [u8; 32]>>,
}

impl Digests {
    /// The digest of `id`, when published.
    pub(crate) fn get(&self, id: SegmentId) -> Option<[u8; 32]> {
        self.by_rendition.get(&id.rendition)?.get(&id.msn).copied()
    }

    /// Whether the origin publishes digests for `rendition` (we received at least one).
    pub(crate) fn published(&self, rendition: u32) -> bool {
        self.by_rendition.get(&rendition).is_some_and(|m| !m.is_empty())
    }

    fn insert(&mut self, rendition: u32, msn: u64, digest: [u8; 32]) {
        let map = self.by_rendition.entry(rendition).or_default();
        map.insert(msn, digest);
        while map.len() > MAX_DIGESTS_PER_RENDITION {
            map.pop_first();
        }
    }
}

impl Engine {
    /// Records digests of `rendition` and checks the segments they cover that are complete.
    pub(crate) fn on_digests(&mut self, now: Millis, rendition: u32, digests: Vec<(u64, [u8; 32])>) {
        for (msn, digest) in digests {
            self.digests.insert(rendition, msn, digest);
            let id = SegmentId { rendition, msn };
            if let Some(seg) = self.store.get_mut(id) {
                seg.digest = Some(digest);
                if seg.complete && !seg.verified {
                    self.check_complete(now, id);
                }
            }
        }
    }

    /// A segment's last byte arrived: decides whether its bytes can be trusted (see the module
    /// documentation); on a digest mismatch, bans its peer sources and refetches it.
    pub(crate) fn check_complete(&mut self, now: Millis, id: SegmentId) {
        let published = self.digests.published(id.rendition);
        let Some(seg) = self.store.get_mut(id) else { return };
        if !seg.complete {
            return;
        }
        self.sizes.record(seg.data.len() as u64, seg.info.duration_ms);
        if !seg.from_peers {
            seg.verified = true;
            self.convict(now, id);
            return;
        }
        match seg.digest {
            Some(digest) => {
                if <[u8; 32]>::from(Sha256::digest(&seg.data)) == digest {
                    seg.verified = true;
                    self.convict(now, id);
                    return;
                }
                let mut culprits: Vec<_> = seg.contributors.iter().cloned().collect();
                if culprits.len() > 1 {
                    // Several senders: the trusted copy will tell which one lied.
                    seg.suspect = Some((std::mem::take(&mut seg.data), std::mem::take(&mut seg.spans)));
                    culprits.clear();
                }
                seg.discard();
                seg.fetch = Fetch::Idle;
                self.stats.corrupt_segments += 1;
                for peer in culprits {
                    self.peers.ban(&peer);
                    self.disconnect(now, &peer);
                }
                // Straight to the CDN: the swarm just proved untrustworthy for this segment.
                if self.store.get(id).is_some_and(|s| s.listed && s.needed()) {
                    self.start_http(now, id, CdnReason::Other);
                }
            }
            // Wait for the digest (the deadline sends the segment to the CDN if it is late).
            None if published => {}
            None => seg.verified = true,
        }
    }

    /// `id` now holds trusted bytes: bans every peer whose range of an earlier copy that failed
    /// its digest differs from them.
    fn convict(&mut self, now: Millis, id: SegmentId) {
        let Some(seg) = self.store.get_mut(id) else { return };
        let Some((bad, spans)) = seg.suspect.take() else { return };
        let good = &seg.data;
        let differs = |start: u64, end: u64| {
            let range = usize::try_from(start).ok().zip(usize::try_from(end).ok());
            range.is_none_or(|(s, e)| bad.get(s..e) != good.get(s..e))
        };
        let culprits: Vec<_> = spans.into_iter().filter(|(s, e, _)| differs(*s, *e)).map(|(_, _, p)| p).collect();
        for peer in culprits {
            self.peers.ban(&peer);
            self.disconnect(now, &peer);
        }
    }
}
