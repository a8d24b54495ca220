//! Signalling: relays SDP offers/answers and ICE candidates between peers.
