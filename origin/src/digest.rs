//! The segment digest sidecar: `GET /live/{content}/{name}.json` next to `{name}.m3u8`.
//!
//! The store hashes every segment with SHA-256 when it is uploaded; this module signs each
//! listed segment's digest with the origin's Ed25519 key (message:
//! [`protocol::api::SegmentDigest::signed_message`]) and renders the [`SegmentDigests`] JSON. An
//! agent that got the public key from the distributor checks a peer's bytes against it before
//! handing them to the player.

use ed25519_dalek::{Signer as _, SigningKey};
use protocol::api::{SegmentDigest, SegmentDigests};

use crate::store::ListedDigest;

/// Parses a 64-hex-character Ed25519 seed.
pub fn parse_key(hex_seed: &str) -> Option<SigningKey> {
    let bytes = hex::decode(hex_seed.trim()).ok()?;
    let seed: [u8; 32] = bytes.try_into().ok()?;
    Some(SigningKey::from_bytes(&seed))
}

/// The public half of `hex_seed`, hex-encoded, as the distributor hands it to agents.
pub fn public_key_hex(hex_seed: &str) -> Option<String> {
    parse_key(hex_seed).map(|k| hex::encode(k.verifying_key().to_bytes()))
}

/// The sidecar path for a request path ending in `.json`: the media playlist it describes
/// (`…/index.json` → `…/index.m3u8`).
pub fn playlist_of(url_path: &str) -> Option<String> {
    url_path.strip_suffix(".json").map(|stem| format!("{stem}.m3u8"))
}

/// Renders the sidecar of `playlist` (below `content`), signing each entry with `key` if any.
pub fn render(content: &str, playlist: &str, listed: &[ListedDigest], key: Option<&SigningKey>) -> SegmentDigests {
    let segments = listed
        .iter()
        .map(|d| {
            let mut entry = SegmentDigest {
                msn: d.msn,
                uri: d.uri.clone(),
                bytes: d.bytes,
                sha256: hex::encode(d.sha256),
                signature: String::new(),
            };
            if let Some(key) = key {
                entry.signature = hex::encode(key.sign(&entry.signed_message(content, playlist)).to_bytes());
            }
            entry
        })
        .collect();
    SegmentDigests { version: 1, content: content.to_owned(), playlist: playlist.to_owned(), segments }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

    use super::*;

    #[test]
    fn signatures_verify_with_the_public_key() {
        let seed = "11".repeat(32);
        let key = parse_key(&seed).unwrap();
        let listed = [ListedDigest { msn: 7, uri: "seg_7.ts".into(), bytes: 3, sha256: [9; 32] }];
        let doc = render("live", "360p/index.m3u8", &listed, Some(&key));
        let entry = &doc.segments[0];
        assert_eq!(entry.sha256, "09".repeat(32));
        let public: [u8; 32] = hex::decode(public_key_hex(&seed).unwrap()).unwrap().try_into().unwrap();
        let public = VerifyingKey::from_bytes(&public).unwrap();
        let sig: [u8; 64] = hex::decode(&entry.signature).unwrap().try_into().unwrap();
        let msg = entry.signed_message("live", "360p/index.m3u8");
        assert!(public.verify(&msg, &Signature::from_bytes(&sig)).is_ok());
        // Another playlist or msn does not verify: identity is part of the message.
        assert!(public.verify(&entry.signed_message("live", "720p/index.m3u8"), &Signature::from_bytes(&sig)).is_err());
        assert!(parse_key("zz").is_none() && parse_key(&"1".repeat(62)).is_none());
        assert_eq!(playlist_of("/live/c/v/index.json").as_deref(), Some("/live/c/v/index.m3u8"));
        assert!(render("c", "p", &listed, None).segments[0].signature.is_empty());
    }
}
