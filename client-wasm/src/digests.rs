//! The origin's segment digests: fetched next to each media playlist (`{name}.json` beside
//! `{name}.m3u8`, `protocol::api::SegmentDigests`), each entry's Ed25519 signature checked
//! against the key the distributor published, then given to the engine, which checks every
//! segment assembled from peers against them.

use ed25519_dalek::{Signature, VerifyingKey};
use protocol::api::SegmentDigests;

use crate::driver::ShellRef;
use crate::{http, js};

/// What the agent needs to check digests: the origin's key and the content id.
pub(crate) struct DigestKey {
    key: VerifyingKey,
    content: String,
}

impl DigestKey {
    /// The key from the distributor's hex `digest_public_key`; `None` when absent or malformed
    /// (digests are then not used: peers' segments are checked by length only).
    pub(crate) fn parse(hex_key: &str, content: &str) -> Option<Self> {
        let bytes: [u8; 32] = hex::decode(hex_key).ok()?.try_into().ok()?;
        Some(Self { key: VerifyingKey::from_bytes(&bytes).ok()?, content: content.to_owned() })
    }

    /// The `(msn, sha256)` pairs of `sidecar` whose signature checks, for the media playlist at
    /// `playlist_url`; a sidecar for another content or playlist yields nothing.
    pub(crate) fn verified(&self, sidecar: &SegmentDigests, playlist_url: &str) -> Vec<(u64, [u8; 32])> {
        let path = playlist_url.split(['?', '#']).next().unwrap_or_default();
        if sidecar.content != self.content || !path.ends_with(&format!("/{}", sidecar.playlist)) {
            return Vec::new();
        }
        let check = |d: &protocol::api::SegmentDigest| -> Option<(u64, [u8; 32])> {
            let digest: [u8; 32] = hex::decode(&d.sha256).ok()?.try_into().ok()?;
            let signature: [u8; 64] = hex::decode(&d.signature).ok()?.try_into().ok()?;
            let message = d.signed_message(&sidecar.content, &sidecar.playlist);
            self.key.verify_strict(&message, &Signature::from_bytes(&signature)).ok()?;
            Some((d.msn, digest))
        };
        sidecar.segments.iter().filter_map(check).collect()
    }
}

/// The sidecar's URL for the media playlist at `playlist_url` (`….m3u8[?query]` → `….json[?query]`).
pub(crate) fn sidecar_url(playlist_url: &str) -> Option<String> {
    let (path, rest) = match playlist_url.find(['?', '#']) {
        Some(at) => playlist_url.split_at(at),
        None => (playlist_url, ""),
    };
    Some(format!("{}.json{rest}", path.strip_suffix(".m3u8")?))
}

/// Fetches and checks the digests of `rendition` from beside `playlist_url`, then gives them
/// to the engine. Does nothing without a key; failures only mean no digests this time.
pub(crate) fn refresh(shell: &ShellRef, rendition: u32, playlist_url: &str) {
    let timeout = {
        let s = shell.borrow();
        if s.digest_key.is_none() || s.engine.is_none() {
            return;
        }
        s.options.http_timeout_ms
    };
    let Some(url) = sidecar_url(playlist_url) else { return };
    let playlist_url = playlist_url.to_owned();
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let sidecar = http::get_json::<SegmentDigests>(&url, timeout).await;
        let Some(shell) = weak.upgrade() else { return };
        let Ok(sidecar) = sidecar else { return };
        let digests = {
            let s = shell.borrow();
            let Some(key) = s.digest_key.as_ref() else { return };
            key.verified(&sidecar, &playlist_url)
        };
        if digests.is_empty() {
            return;
        }
        {
            let mut s = shell.borrow_mut();
            let Some(engine) = s.engine.as_mut() else { return };
            engine.handle_digests(js::now_ms(), rendition, digests);
        }
        crate::driver::drive_now(&shell);
    });
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};
    use protocol::api::SegmentDigest;

    use super::*;

    fn signed(key: &SigningKey, content: &str, playlist: &str, msn: u64, sha: [u8; 32]) -> SegmentDigest {
        let mut d = SegmentDigest {
            msn,
            uri: format!("{msn}.ts"),
            bytes: 10,
            sha256: hex::encode(sha),
            signature: String::new(),
        };
        d.signature = hex::encode(key.sign(&d.signed_message(content, playlist)).to_bytes());
        d
    }

    #[test]
    fn only_entries_signed_by_the_origin_for_this_playlist_count() {
        let origin = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let key = DigestKey::parse(&hex::encode(origin.verifying_key().to_bytes()), "live").unwrap();
        let mut forged = signed(&other, "live", "360p/index.m3u8", 3, [3; 32]);
        forged.uri = "3.ts".into();
        let sidecar = SegmentDigests {
            version: 1,
            content: "live".into(),
            playlist: "360p/index.m3u8".into(),
            segments: vec![signed(&origin, "live", "360p/index.m3u8", 2, [2; 32]), forged],
        };

        let url = "http://cdn/live/live/360p/index.m3u8?token=x";
        assert_eq!(key.verified(&sidecar, url), vec![(2, [2; 32])]);
        assert!(key.verified(&sidecar, "http://cdn/live/live/720p/index.m3u8").is_empty(), "another playlist");
        let other_content = DigestKey::parse(&hex::encode(origin.verifying_key().to_bytes()), "vod").unwrap();
        assert!(other_content.verified(&sidecar, url).is_empty());
        assert!(DigestKey::parse("zz", "live").is_none());
    }

    #[test]
    fn the_sidecar_sits_beside_the_playlist() {
        assert_eq!(sidecar_url("http://o/live/c/v/index.m3u8").as_deref(), Some("http://o/live/c/v/index.json"));
        assert_eq!(sidecar_url("http://o/a.m3u8?t=1").as_deref(), Some("http://o/a.json?t=1"));
        assert_eq!(sidecar_url("http://o/a.mpd"), None);
    }
}
