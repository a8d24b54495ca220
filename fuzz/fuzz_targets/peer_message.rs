//! Decodes arbitrary bytes as a peer message: it must never panic, and whatever decodes must
//! re-encode to the very same bytes (the encoding is canonical) and decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::peer::{MAX_MESSAGE_BYTES, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let bytes = message.encode();
        assert!(bytes.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(bytes, data, "decoding then encoding must give back the input");
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message));
    }
});
