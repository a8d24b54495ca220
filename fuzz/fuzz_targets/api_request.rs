//! Decodes arbitrary bytes as each JSON request body a server reads (tracker `init`, `renew`,
//! `track` and `peers`, analytics `usage`, distributor admin content settings), bounded like
//! `service::JsonBody`: it must never panic, and whatever decodes must encode and decode back to
//! the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::api::{
    ContentSettings, InitRequest, MAX_REQUEST_BYTES, PeersRequestWithReport, RenewRequest, TrackRequest, UsageReport,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<T>(data) {
        let again = serde_json::to_vec(&value).expect("a decoded body encodes");
        assert_eq!(serde_json::from_slice::<T>(&again).as_ref().ok(), Some(&value));
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_REQUEST_BYTES {
        return;
    }
    round_trip::<InitRequest>(data);
    round_trip::<RenewRequest>(data);
    round_trip::<TrackRequest>(data);
    round_trip::<PeersRequestWithReport>(data);
    round_trip::<UsageReport>(data);
    round_trip::<ContentSettings>(data);
});
