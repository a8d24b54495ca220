//! Parses arbitrary text as signalling frames (both directions): it must never panic, and
//! whatever parses must serialize and parse back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::signal::{ClientMessage, ServerMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(message) = ClientMessage::parse(text) {
        let again = serde_json::to_string(&message).expect("a parsed message serializes");
        assert_eq!(ClientMessage::parse(&again).as_ref(), Ok(&message));
    }
    if let Ok(message) = ServerMessage::parse(text) {
        let again = serde_json::to_string(&message).expect("a parsed message serializes");
        assert_eq!(ServerMessage::parse(&again).as_ref(), Ok(&message));
    }
});
