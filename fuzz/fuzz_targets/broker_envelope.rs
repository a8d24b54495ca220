//! Decodes arbitrary bytes as a payload from the signalling cluster's broker channel: it must
//! never panic, and whatever decodes must encode and decode back to the same envelope.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    signalling::testing::check_broker_payload(data);
});
