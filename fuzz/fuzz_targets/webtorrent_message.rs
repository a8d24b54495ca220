//! Decodes arbitrary bytes as a WebTorrent tracker frame (what `/announce` reads from a client,
//! decoded in place as the tracker does): it must never panic, every bound must hold, and what the tracker sends on for a decoded frame (the
//! relayed offers and answer) must encode to JSON whose ids decode back to the same 20 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::webtorrent::{
    self, AnswerOut, Id20, MAX_FRAME_BYTES, MAX_OFFERS, MAX_SCRAPE_HASHES, OfferOut, Request, ScrapeFile,
};

/// Reads field `key` of an encoded message back as an id.
fn id_field(json: &str, key: &str) -> Id20 {
    let value: serde_json::Value = serde_json::from_str(json).expect("an encoded message is JSON");
    serde_json::from_value(value[key].clone()).expect("an encoded id decodes")
}

fuzz_target!(|data: &[u8]| {
    let mut frame = data.to_vec();
    let Ok(request) = webtorrent::Decoder::default().decode(&mut frame) else { return };
    assert!(data.len() <= MAX_FRAME_BYTES);
    assert!(std::str::from_utf8(data).is_ok(), "decoded a frame that is not UTF-8");
    match request {
        Request::Scrape(hashes) => {
            assert!(hashes.len() <= MAX_SCRAPE_HASHES);
            let files: Vec<_> =
                hashes.iter().map(|h| (*h, ScrapeFile { complete: 1, incomplete: 2, downloaded: 0 })).collect();
            let json = webtorrent::scrape_response(&files);
            let value: serde_json::Value = serde_json::from_str(&json).expect("a scrape answer is JSON");
            for hash in &hashes {
                let key = webtorrent::to_json(hash);
                let key: String = serde_json::from_str(&key).expect("an id encodes as a JSON string");
                assert!(value["files"].get(&key).is_some(), "scrape answer lacks {hash:?}");
            }
        }
        Request::Announce(announce) => {
            assert!(announce.offers.len() <= MAX_OFFERS);
            for offer in &announce.offers {
                let out = OfferOut {
                    action: "announce",
                    info_hash: announce.info_hash,
                    peer_id: announce.peer_id,
                    offer: &offer.offer,
                    offer_id: offer.offer_id,
                };
                let json = webtorrent::to_json(&out);
                assert_eq!(id_field(&json, "info_hash"), announce.info_hash);
                assert_eq!(id_field(&json, "peer_id"), announce.peer_id);
                assert_eq!(id_field(&json, "offer_id"), offer.offer_id);
            }
            if let Some(answer) = &announce.answer {
                let out = AnswerOut {
                    action: "announce",
                    info_hash: announce.info_hash,
                    peer_id: announce.peer_id,
                    answer: &answer.answer,
                    offer_id: answer.offer_id,
                };
                let json = webtorrent::to_json(&out);
                assert_eq!(id_field(&json, "offer_id"), answer.offer_id);
                let value: serde_json::Value = serde_json::from_str(&json).expect("an encoded answer is JSON");
                assert_eq!(value["answer"]["sdp"].as_str(), Some(&*answer.answer.sdp));
            }
        }
    }
});
