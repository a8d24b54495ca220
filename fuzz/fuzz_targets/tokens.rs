//! Verifies arbitrary text as a session token, as an introduction and as a CDN access token
//! (and looks for one in it as a query string and a cookie): it must never panic, and nothing but
//! a correctly signed token verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{access, intro, token};

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(claims) = token::verify(SECRET, text, 0) {
        // Only possible when the input is a token signed with SECRET, i.e. exactly what sign makes.
        assert_eq!(token::sign(SECRET, &claims), text);
    }
    if let Ok(introduction) = intro::verify(SECRET, text, 0) {
        assert!(introduction.peers.len() <= intro::MAX_INTRO_PEERS);
        assert_eq!(intro::sign(SECRET, &introduction), text);
    }
    if let Ok(grant) = access::verify(SECRET, text, "/live/demo/seg-1.ts", Some("127.0.0.1"), 0) {
        assert!(text.len() <= access::MAX_ACCESS_TOKEN_LEN);
        assert_eq!(access::sign(SECRET, &grant), text);
    }
    if let Some(found) = access::find(Some(text), Some(text)) {
        assert!(found.len() <= text.len());
    }
});
