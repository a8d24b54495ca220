//! Browser agent: drives the engine with fetch, WebRTC data channels, WebSocket and timers.
