//! Identifiers in the field's vocabulary: peers, swarms, segments (ARCHITECTURE.md §4).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Error for a malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A peerId was not 1–[`PeerId::MAX_LEN`] characters of `[A-Za-z0-9_-]`.
    #[error("invalid peerId: must be 1-{} characters of [A-Za-z0-9_-]", PeerId::MAX_LEN)]
    InvalidPeerId,
}

/// A peer's identity, issued by the tracker at `init` and bound to the signalling token.
///
/// Shape: 1–32 characters of `[A-Za-z0-9_-]` (the tracker issues 16). Checked when parsed or
/// deserialized, so a `PeerId` in hand is always well-formed.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerId(String);

impl PeerId {
    /// Longest accepted peerId, in characters.
    pub const MAX_LEN: usize = 32;

    /// Returns the peerId as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PeerId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        let valid = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(IdError::InvalidPeerId);
        }
        Ok(Self(s.to_owned()))
    }
}

impl TryFrom<String> for PeerId {
    type Error = IdError;

    fn try_from(s: String) -> Result<Self, IdError> {
        s.parse()
    }
}

impl From<PeerId> for String {
    fn from(id: PeerId) -> String {
        id.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.0)
    }
}

/// A swarm: the viewers of one rendition of one content of one customer (ARCHITECTURE.md §4).
///
/// Not derived from URLs, so tokens in URLs and multiple CDNs do not split swarms.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SwarmId {
    /// Customer id, as configured in the distributor.
    pub customer: String,
    /// Content id (one live stream), as configured in the distributor.
    pub content: String,
    /// Rendition: the variant's index in the multivariant playlist.
    pub rendition: u32,
}

/// A segment within a content: its rendition and media sequence number (RFC 8216 §4.3.3.2).
///
/// The content is implied by the connection (peers only connect within one content), so on the
/// wire a segment is just these two numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SegmentId {
    /// Rendition: the variant's index in the multivariant playlist.
    pub rendition: u32,
    /// Media sequence number of the segment (RFC 8216 §4.3.3.2).
    pub msn: u64,
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}/{}", self.rendition, self.msn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_accepts_only_safe_characters() {
        assert!("abc-DEF_123".parse::<PeerId>().is_ok());
        assert_eq!("".parse::<PeerId>(), Err(IdError::InvalidPeerId));
        assert_eq!("a b".parse::<PeerId>(), Err(IdError::InvalidPeerId));
        assert_eq!("x".repeat(33).parse::<PeerId>(), Err(IdError::InvalidPeerId));
    }

    #[test]
    fn peer_id_is_checked_when_deserialized() {
        assert!(serde_json::from_str::<PeerId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<PeerId>("\"no/slash\"").is_err());
    }
}
