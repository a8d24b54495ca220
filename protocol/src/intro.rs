//! Introductions: the tracker's signed statement that it offered some peers to a peer.
//!
//! Signalling relays an offer from A to B only when A holds a live introduction, from the tracker,
//! that names B (docs/ARCHITECTURE.md, "Abuse rules"). The tracker and signalling share no state
//! and may run on different machines, so the fact travels with the agent: the tracker returns it
//! in [`crate::api::PeersResponse::intro`], and the agent hands it to signalling in a
//! [`crate::signal::ClientMessage::Introduce`] frame. Same shape and secret as [`crate::token`].

use serde::{Deserialize, Serialize};

use crate::PeerId;
use crate::token::{self, TokenError};

/// Most peers one introduction names, in peers.
pub const MAX_INTRO_PEERS: usize = 64;

/// Longest introduction token accepted, in bytes ([`MAX_INTRO_PEERS`] peerIds of the longest
/// shape fit).
pub const MAX_INTRO_LEN: usize = 4096;

/// What an introduction asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Introduction {
    /// Customer id of the swarm.
    pub customer: String,
    /// Content id of the swarm.
    pub content: String,
    /// The peer the candidates were offered to.
    pub from: PeerId,
    /// The candidates offered, at most [`MAX_INTRO_PEERS`].
    pub peers: Vec<PeerId>,
    /// End of the offer lifetime, in seconds since the Unix epoch.
    pub expires_at_s: u64,
}

/// Signs `intro` with the servers' shared `secret`.
pub fn sign(secret: &[u8], intro: &Introduction) -> String {
    token::sign_json(secret, intro)
}

/// Checks `text` against `secret` at `now_s` (seconds since the Unix epoch).
///
/// # Errors
/// [`TokenError`]: longer than [`MAX_INTRO_LEN`], naming more than [`MAX_INTRO_PEERS`] peers or
/// otherwise malformed, a bad signature, or expired (`expires_at_s <= now_s`).
pub fn verify(secret: &[u8], text: &str, now_s: u64) -> Result<Introduction, TokenError> {
    let intro: Introduction = token::verify_json(secret, text, MAX_INTRO_LEN)?;
    if intro.peers.len() > MAX_INTRO_PEERS {
        return Err(TokenError::Malformed);
    }
    if intro.expires_at_s <= now_s {
        return Err(TokenError::Expired);
    }
    Ok(intro)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intro(peers: usize) -> Introduction {
        Introduction {
            customer: "acme".into(),
            content: "live".into(),
            from: "a".parse().unwrap(),
            peers: (0..peers).map(|i| format!("{i:032}").parse().unwrap()).collect(),
            expires_at_s: 100,
        }
    }

    #[test]
    fn the_largest_introduction_fits_and_verifies() {
        let text = sign(b"k", &intro(MAX_INTRO_PEERS));
        assert!(text.len() <= MAX_INTRO_LEN, "{}", text.len());
        assert_eq!(verify(b"k", &text, 99), Ok(intro(MAX_INTRO_PEERS)));
    }

    #[test]
    fn expired_foreign_and_oversize_introductions_fail() {
        let text = sign(b"k", &intro(2));
        assert_eq!(verify(b"k", &text, 100), Err(TokenError::Expired));
        assert_eq!(verify(b"other", &text, 0), Err(TokenError::BadSignature));
        assert_eq!(verify(b"k", &sign(b"k", &intro(MAX_INTRO_PEERS + 1)), 0), Err(TokenError::Malformed));
        assert_eq!(verify(b"k", &"x".repeat(MAX_INTRO_LEN + 1), 0), Err(TokenError::Malformed));
    }
}
