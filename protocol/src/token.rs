//! Session tokens: who a request speaks for, signed by the servers' shared secret.
//!
//! Shape: `base64url(claims JSON) "." base64url(HMAC-SHA256(secret, claims JSON))`, no padding.
//! The distributor mints one without a peerId for `init`; the tracker mints one with the issued
//! peerId, which signalling and the tracker check on every call, so a peer cannot speak as another
//! (ARCHITECTURE.md §4). Verification is constant-time in the MAC (`hmac`'s `verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::PeerId;
use crate::api::PeeringRules;

/// Longest token accepted, in bytes (claims with the longest [`PeeringRules`] ASN lists fit).
pub const MAX_TOKEN_LEN: usize = 2048;

/// What a token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Customer id.
    pub customer: String,
    /// Content id.
    pub content: String,
    /// The peerId the bearer speaks as; `None` in the distributor's pre-init token.
    pub peer_id: Option<PeerId>,
    /// Expiry, in seconds since the Unix epoch.
    pub expires_at_s: u64,
    /// The content owner's peering rules, set by the distributor in its pre-init token so the
    /// tracker applies them when matching (absent in older tokens and in the tracker's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<PeeringRules>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not two base64url parts, too long, or claims that do not parse.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not match: tampered, or signed with another secret.
    #[error("bad token signature")]
    BadSignature,
    /// The token expired.
    #[error("token expired")]
    Expired,
}

/// Signs `claims` with `secret`.
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    sign_json(secret, claims)
}

/// Checks `token` against `secret` at `now_s` (seconds since the Unix epoch) and returns its claims.
///
/// # Errors
/// [`TokenError`]: malformed, bad signature, or expired (`expires_at_s <= now_s`).
pub fn verify(secret: &[u8], token: &str, now_s: u64) -> Result<Claims, TokenError> {
    let claims: Claims = verify_json(secret, token, MAX_TOKEN_LEN)?;
    if claims.expires_at_s <= now_s {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Checks `token` like [`verify`] but also accepts it up to `grace_s` seconds after its expiry:
/// for renewing a session whose agent was asleep (a throttled background tab) when it was due.
///
/// # Errors
/// [`TokenError`]: malformed, bad signature, or expired more than `grace_s` ago
/// (`expires_at_s + grace_s <= now_s`).
pub fn verify_for_renewal(secret: &[u8], token: &str, now_s: u64, grace_s: u64) -> Result<Claims, TokenError> {
    let claims: Claims = verify_json(secret, token, MAX_TOKEN_LEN)?;
    if claims.expires_at_s.saturating_add(grace_s) <= now_s {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Signs any serializable `body` in the token shape of this module.
pub(crate) fn sign_json<T: Serialize>(secret: &[u8], body: &T) -> String {
    // Serializing plain strings, integers and lists of them cannot fail.
    let body = serde_json::to_vec(body).unwrap_or_default();
    let mac = mac(secret, &body);
    format!("{}.{}", URL_SAFE_NO_PAD.encode(&body), URL_SAFE_NO_PAD.encode(mac))
}

/// Checks the MAC of a token of at most `max_len` bytes and parses its body; expiry is the
/// caller's business.
pub(crate) fn verify_json<T: for<'de> Deserialize<'de>>(
    secret: &[u8],
    token: &str,
    max_len: usize,
) -> Result<T, TokenError> {
    if token.len() > max_len {
        return Err(TokenError::Malformed);
    }
    let (body, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
    let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| TokenError::Malformed)?;
    let mut check = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| TokenError::Malformed)?;
    check.update(&body);
    check.verify_slice(&sig).map_err(|_| TokenError::BadSignature)?;
    serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)
}

fn mac(secret: &[u8], body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            customer: "acme".into(),
            content: "live".into(),
            peer_id: Some("p1".parse().unwrap()),
            expires_at_s: 1_000,
            rules: None,
        }
    }

    #[test]
    fn signed_token_verifies() {
        let t = sign(b"secret", &claims());
        assert_eq!(verify(b"secret", &t, 999).unwrap(), claims());
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_fail() {
        let t = sign(b"secret", &claims());
        assert_eq!(verify(b"secret", &t, 1_000), Err(TokenError::Expired));
        assert_eq!(verify(b"other", &t, 0), Err(TokenError::BadSignature));
        let mut forged = claims();
        forged.peer_id = Some("p2".parse().unwrap());
        let forged_body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let sig = t.split_once('.').unwrap().1;
        assert_eq!(verify(b"secret", &format!("{forged_body}.{sig}"), 0), Err(TokenError::BadSignature));
        assert_eq!(verify(b"secret", "garbage", 0), Err(TokenError::Malformed));
        assert_eq!(verify(b"secret", &"a".repeat(MAX_TOKEN_LEN + 1), 0), Err(TokenError::Malformed));
    }

    #[test]
    fn renewal_accepts_a_recently_expired_token_only() {
        let t = sign(b"secret", &claims());
        assert_eq!(verify_for_renewal(b"secret", &t, 1_099, 100).unwrap(), claims());
        assert_eq!(verify_for_renewal(b"secret", &t, 1_100, 100), Err(TokenError::Expired));
        assert_eq!(verify_for_renewal(b"other", &t, 0, 100), Err(TokenError::BadSignature));
    }
}
