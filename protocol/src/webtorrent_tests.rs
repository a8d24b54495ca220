//! Frames as bittorrent-tracker 11 clients and aquatic_ws_load_test send them.

use super::*;

fn id(s: &str) -> Id20 {
    let bytes: [u8; 20] = s.as_bytes().try_into().unwrap();
    Id20(bytes)
}

const HASH: &str = "aaaaaaaaaaaaaaaaaaaa";
const PEER: &str = "-PM0203-abcdefghijkl";

#[test]
fn an_announce_with_offers_decodes() {
    let text = format!(
        r#"{{"action":"announce","info_hash":"{HASH}","peer_id":"{PEER}","event":"started","left":5,"uploaded":0,"downloaded":0,"numwant":5,"offers":[{{"offer":{{"type":"offer","sdp":"v=0\r\na=x"}},"offer_id":"bbbbbbbbbbbbbbbbbbbb"}}]}}"#
    );
    let Request::Announce(a) = parse_owned(&text).unwrap() else { panic!("not an announce") };
    assert_eq!(
        (a.info_hash, a.peer_id, a.event, a.seeder, a.numwant),
        (id(HASH), id(PEER), Event::Started, false, Some(5))
    );
    assert_eq!(a.offers.len(), 1);
    assert_eq!(a.offers[0].offer.sdp, "v=0\r\na=x");
    assert_eq!(a.offers[0].offer_id, id("bbbbbbbbbbbbbbbbbbbb"));
    assert!(a.answer.is_none());
}

#[test]
fn an_answer_and_a_bare_update_decode() {
    let text = format!(
        r#"{{"action":"announce","info_hash":"{HASH}","peer_id":"{PEER}","to_peer_id":"cccccccccccccccccccc","offer_id":"bbbbbbbbbbbbbbbbbbbb","answer":{{"type":"answer","sdp":"v=0"}},"left":0,"numwant":0}}"#
    );
    let Request::Announce(a) = parse_owned(&text).unwrap() else { panic!("not an announce") };
    let answer = a.answer.unwrap();
    assert_eq!((answer.to_peer_id, answer.offer_id), (id("cccccccccccccccccccc"), id("bbbbbbbbbbbbbbbbbbbb")));
    assert!(a.seeder);
    let update =
        format!(r#"{{"action":"announce","info_hash":"{HASH}","peer_id":"{PEER}","offers":null,"left":null}}"#);
    let Request::Announce(a) = parse_owned(&update).unwrap() else { panic!("not an announce") };
    assert_eq!((a.event, a.offers.len(), a.seeder), (Event::Update, 0, false));
}

#[test]
fn binary_ids_hold_bytes_up_to_ff_and_round_trip() {
    let binary: String = (0u8..20).map(|b| char::from(b * 12)).collect();
    let text = serde_json::to_string(&serde_json::json!({"action":"scrape","info_hash":[binary, HASH]})).unwrap();
    let Request::Scrape(hashes) = parse_owned(&text).unwrap() else { panic!("not a scrape") };
    let expected: [u8; 20] = std::array::from_fn(|i| i as u8 * 12);
    assert_eq!(hashes, vec![Id20(expected), id(HASH)]);
    let again = to_json(&hashes[0]);
    assert_eq!(serde_json::from_str::<Id20>(&again).unwrap(), hashes[0]);
    assert_eq!(parse_owned(r#"{"action":"scrape"}"#).unwrap(), Request::Scrape(Vec::new()));
}

#[test]
fn every_byte_value_round_trips_and_20_bytes_of_10_characters_do_not_decode() {
    for chunk in (0..=255u8).collect::<Vec<_>>().chunks(20) {
        let mut bytes = [b'x'; 20];
        bytes[..chunk.len()].copy_from_slice(chunk);
        let text = to_json(&Id20(bytes));
        assert_eq!(serde_json::from_str::<Id20>(&text).unwrap(), Id20(bytes), "{text}");
    }
    assert!(serde_json::from_str::<Id20>(&format!("\"{}\"", "é".repeat(10))).is_err());
    assert!(serde_json::from_str::<Id20>(&format!("\"{}\"", "é".repeat(20))).is_ok());
}

#[test]
fn bad_frames_are_errors() {
    let too_long = format!(r#"{{"action":"announce","info_hash":"{HASH}a","peer_id":"{PEER}"}}"#);
    let wide = format!(r#"{{"action":"announce","info_hash":"{}","peer_id":"{PEER}"}}"#, "Ā".repeat(20));
    let no_peer = format!(r#"{{"action":"announce","info_hash":"{HASH}"}}"#);
    let lonely_answer = format!(
        r#"{{"action":"announce","info_hash":"{HASH}","peer_id":"{PEER}","answer":{{"type":"answer","sdp":""}}}}"#
    );
    let offer = r#"{"offer":{"type":"offer","sdp":""},"offer_id":"bbbbbbbbbbbbbbbbbbbb"}"#;
    let many = format!(
        r#"{{"action":"announce","info_hash":"{HASH}","peer_id":"{PEER}","offers":[{}]}}"#,
        vec![offer; MAX_OFFERS + 1].join(",")
    );
    for bad in [&too_long, &wide, &no_peer, &lonely_answer, &many, "{", r#"{"action":"connect"}"#] {
        assert!(matches!(parse_owned(bad), Err(WebTorrentError::Malformed(_))), "{bad}");
    }
    assert!(matches!(parse_owned(&" ".repeat(MAX_FRAME_BYTES + 1)), Err(WebTorrentError::TooLarge(_))));
}

#[test]
fn outgoing_messages_have_the_clients_field_names() {
    let sdp = Sdp { kind: "offer".into(), sdp: "v=0".into() };
    let offer =
        OfferOut { action: "announce", info_hash: id(HASH), peer_id: id(PEER), offer: &sdp, offer_id: id(HASH) };
    assert_eq!(
        to_json(&offer),
        format!(
            r#"{{"action":"announce","info_hash":"{HASH}","peer_id":"{PEER}","offer":{{"type":"offer","sdp":"v=0"}},"offer_id":"{HASH}"}}"#
        )
    );
    let response =
        AnnounceResponse { action: "announce", info_hash: id(HASH), complete: 1, incomplete: 2, interval: 120 };
    assert_eq!(
        to_json(&response),
        format!(r#"{{"action":"announce","info_hash":"{HASH}","complete":1,"incomplete":2,"interval":120}}"#)
    );
    let error = ErrorOut { failure_reason: "nope", action: Some("announce"), info_hash: None };
    assert_eq!(to_json(&error), r#"{"failure reason":"nope","action":"announce"}"#);
    let file = ScrapeFile { complete: 1, incomplete: 0, downloaded: 0 };
    assert_eq!(
        scrape_response(&[(id(HASH), file)]),
        format!(r#"{{"action":"scrape","files":{{"{HASH}":{{"complete":1,"incomplete":0,"downloaded":0}}}}}}"#)
    );
}
