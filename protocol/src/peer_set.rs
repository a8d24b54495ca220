//! `Have` segment sets as bitfields relative to a base msn (see the parent module's encoding).

use super::{MAX_HAVE_GAP, MAX_HAVE_SEGMENTS, PeerMessageError, Reader, put_varint};
use crate::SegmentId;

/// Encodes `ids` as bitfield groups (see the module documentation).
pub(super) fn put_segment_set(out: &mut Vec<u8>, ids: &[SegmentId]) {
    let mut ids = ids.to_vec();
    ids.sort_unstable_by_key(|id| (id.rendition, id.msn));
    ids.dedup();
    // Groups as (rendition, base, last) over the sorted ids.
    let mut groups: Vec<(u32, u64, u64)> = Vec::new();
    for id in &ids {
        match groups.last_mut() {
            Some((r, _, last)) if *r == id.rendition && id.msn - *last - 1 <= MAX_HAVE_GAP => *last = id.msn,
            _ => groups.push((id.rendition, id.msn, id.msn)),
        }
    }
    put_varint(out, groups.len() as u64);
    let mut rest = ids.as_slice();
    for (rendition, base, last) in groups {
        let span = last - base + 1;
        put_varint(out, u64::from(rendition));
        put_varint(out, base);
        put_varint(out, span);
        // `span` is at most MAX_HAVE_SEGMENTS × (MAX_HAVE_GAP + 1) for lists within bounds;
        // larger lists are the sender's bug and still encode.
        let mut bitmap = vec![0u8; usize::try_from(span.div_ceil(8)).unwrap_or(usize::MAX)];
        while let Some((first, tail)) = rest.split_first() {
            if first.rendition != rendition || first.msn > last {
                break;
            }
            let bit = first.msn - base;
            bitmap[(bit / 8) as usize] |= 1 << (bit % 8);
            rest = tail;
        }
        out.extend_from_slice(&bitmap);
    }
}

impl Reader<'_> {
    /// Decodes a bitfield segment set, checking that it is in canonical form and bounded.
    pub(super) fn segment_set(&mut self) -> Result<Vec<SegmentId>, PeerMessageError> {
        let groups = self.varint()?;
        if groups > MAX_HAVE_SEGMENTS as u64 {
            return Err(PeerMessageError::TooManySegments(groups));
        }
        let mut ids: Vec<SegmentId> = Vec::new();
        for _ in 0..groups {
            let rendition = self.u32()?;
            let base = self.varint()?;
            let span = self.varint()?;
            let last = span.checked_sub(1).and_then(|s| base.checked_add(s)).ok_or(PeerMessageError::BadBitfield)?;
            if let Some(prev) = ids.last()
                && (prev.rendition, prev.msn) >= (rendition, base)
            {
                return Err(PeerMessageError::BadBitfield);
            }
            if let Some(prev) = ids.last().filter(|p| p.rendition == rendition)
                && base - prev.msn - 1 <= MAX_HAVE_GAP
            {
                return Err(PeerMessageError::BadBitfield);
            }
            // The bitmap must be in the message: bounds `span` before anything is allocated.
            let len = span.div_ceil(8);
            if len > self.rest.len() as u64 {
                return Err(PeerMessageError::Truncated);
            }
            // `len` is at most the remaining message length, so it fits in usize.
            let bitmap = self.take(len as usize)?;
            let mut gap = 0u64;
            for bit in 0..span {
                // `bit / 8 < len`, within the bitmap.
                if bitmap[(bit / 8) as usize] & (1 << (bit % 8)) == 0 {
                    gap += 1;
                    if gap > MAX_HAVE_GAP || bit == 0 || bit == span - 1 {
                        return Err(PeerMessageError::BadBitfield);
                    }
                    continue;
                }
                gap = 0;
                if ids.len() == MAX_HAVE_SEGMENTS {
                    return Err(PeerMessageError::TooManySegments(MAX_HAVE_SEGMENTS as u64 + 1));
                }
                ids.push(SegmentId { rendition, msn: base + bit });
            }
            let used = span % 8;
            if used != 0 && bitmap.last().is_some_and(|b| b >> used != 0) {
                return Err(PeerMessageError::BadBitfield);
            }
            debug_assert_eq!(ids.last().map(|id| id.msn), Some(last));
        }
        Ok(ids)
    }
}
