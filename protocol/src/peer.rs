//! Binary messages between peers over a WebRTC data channel. (Being written.)
