//! A peerId stored inline (33 bytes, no heap), for compact swarm state.

use protocol::PeerId;

/// A [`PeerId`] copied into a fixed buffer: its length, then up to [`PeerId::MAX_LEN`] bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PeerKey {
    len: u8,
    bytes: [u8; PeerId::MAX_LEN],
}

impl From<&PeerId> for PeerKey {
    fn from(id: &PeerId) -> Self {
        let s = id.as_str().as_bytes();
        let mut bytes = [0; PeerId::MAX_LEN];
        // A PeerId holds 1..=MAX_LEN bytes, so it fits and its length fits in a u8.
        bytes[..s.len()].copy_from_slice(s);
        Self { len: s.len() as u8, bytes }
    }
}

impl PeerKey {
    /// The peerId text.
    pub(crate) fn as_str(&self) -> &str {
        // Copied from a PeerId, which is ASCII: always valid UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// The peerId back.
    pub(crate) fn to_peer_id(self) -> PeerId {
        // Copied from a valid PeerId, so it parses again.
        self.as_str().parse().expect("a PeerKey holds a valid peerId")
    }
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerKey({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_shortest_and_longest_ids() {
        for s in ["a", &"z".repeat(PeerId::MAX_LEN)] {
            let id: PeerId = s.parse().unwrap();
            assert_eq!(PeerKey::from(&id).to_peer_id(), id);
        }
        assert_eq!(size_of::<PeerKey>(), 33);
    }
}
