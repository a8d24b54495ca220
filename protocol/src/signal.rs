//! Messages on the signalling websocket (ARCHITECTURE.md §3 step 4).
//!
//! The agent opens `GET /v1/ws?peer_id=…&token=…` and keeps it for the whole session. It sends
//! [`ClientMessage`]s as JSON text frames and receives [`ServerMessage`]s. The server relays
//! [`Signal`]s between peers addressed by peerId and never reads the SDP.

use serde::{Deserialize, Serialize};

use crate::PeerId;

/// Largest text frame either side accepts, in bytes (an SDP offer is 1–4 KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Websocket close code (RFC 6455 §7.4.2, private range) sent when a newer connection with the
/// same peerId replaced this one.
pub const CLOSE_REPLACED: u16 = 4000;

/// Websocket close code sent when the server dropped a connection that did not read its messages
/// fast enough (its outgoing queue was full).
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;

/// Websocket close code sent when a connection sent nothing for the server's idle timeout.
pub const CLOSE_IDLE: u16 = 4002;

/// What a peer sends to another through signalling: WebRTC session setup (RFC 8829 JSEP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// An SDP offer.
    Offer {
        /// The SDP text.
        sdp: String,
    },
    /// An SDP answer to an offer.
    Answer {
        /// The SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate (RFC 8838).
    Candidate {
        /// The `candidate:` attribute line.
        candidate: String,
        /// The media stream identification tag it belongs to.
        sdp_mid: Option<String>,
        /// The index of the m-line it belongs to.
        sdp_m_line_index: Option<u16>,
    },
    /// The sender closed its connection to the recipient.
    Bye,
}

/// A frame from an agent to the signalling server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Relay `signal` to the peer `to`.
    Relay {
        /// Recipient peerId.
        to: PeerId,
        /// What to deliver.
        signal: Signal,
    },
    /// Keep-alive; the server answers [`ServerMessage::Pong`].
    Ping,
    /// Hands signalling the tracker's introduction from [`crate::api::PeersResponse::intro`]:
    /// offers to the peers it names are relayed until it expires. No answer on success; an
    /// [`ServerMessage::Error`] `bad_intro` when it does not verify.
    Introduce {
        /// The introduction token ([`crate::intro`]).
        intro: String,
    },
}

/// A frame from the signalling server to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// `signal` from the peer `from`.
    Relay {
        /// Sender peerId, as authenticated by its token.
        from: PeerId,
        /// What it sent.
        signal: Signal,
    },
    /// A message to `to` could not be delivered.
    Undeliverable {
        /// The recipient that was asked for.
        to: PeerId,
        /// Why, e.g. `unknown_peer`.
        reason: String,
    },
    /// Answer to [`ClientMessage::Ping`].
    Pong,
    /// The server refused a frame (malformed, too large, rate-limited); the connection stays open.
    Error {
        /// Machine-readable reason.
        reason: String,
    },
}

impl ClientMessage {
    /// Parses a text frame, bounded by [`MAX_MESSAGE_BYTES`].
    ///
    /// # Errors
    /// [`FrameError::TooLarge`] above the bound, [`FrameError::Malformed`] for anything that is
    /// not a well-formed message.
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        parse_bounded(text)
    }
}

impl ServerMessage {
    /// Parses a text frame, bounded by [`MAX_MESSAGE_BYTES`].
    ///
    /// # Errors
    /// As [`ClientMessage::parse`].
    pub fn parse(text: &str) -> Result<Self, FrameError> {
        parse_bounded(text)
    }
}

fn parse_bounded<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, FrameError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(FrameError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// Why a signalling frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is larger than [`MAX_MESSAGE_BYTES`] (size in bytes).
    #[error("frame of {0} bytes is larger than {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// The frame is not a well-formed message.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_round_trips() {
        let msg = ClientMessage::Relay {
            to: "peer1".parse().unwrap(),
            signal: Signal::Candidate {
                candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
            },
        };
        let text = serde_json::to_string(&msg).unwrap();
        assert_eq!(ClientMessage::parse(&text).unwrap(), msg);
    }

    #[test]
    fn oversize_and_malformed_frames_are_errors() {
        let big = "x".repeat(MAX_MESSAGE_BYTES + 1);
        assert!(matches!(ClientMessage::parse(&big), Err(FrameError::TooLarge(_))));
        assert!(matches!(ClientMessage::parse("{\"type\":\"nope\"}"), Err(FrameError::Malformed(_))));
    }
}
