//! CDN access tokens: what an edge checks before serving a playlist or segment.
//!
//! The scheme follows Akamai's Auth Token 2.0 (EdgeAuth) shape, so operators recognise it:
//!
//! ```text
//! exp=<unix seconds>~acl=<path prefix>*[~ip=<client ip>]~hmac=<hex HMAC-SHA256>
//! ```
//!
//! - The HMAC is computed with the shared edge secret over every field before `~hmac=`, exactly
//!   as written (`exp=…~acl=…[~ip=…]`), and compared in constant time.
//! - `acl` is a path prefix ending in `*`, e.g. `/live/demo/*`: the token is valid for every URL
//!   path that starts with the part before the `*`.
//! - `ip`, when present, must equal the client address the edge sees.
//! - The token travels as the query parameter [`TOKEN_PARAM`] (`?__token__=…`) or a cookie of the
//!   same name. Edges propagate a query token into the URIs of every playlist they serve, so
//!   hls.js, which resolves relative URIs without the query, keeps sending it.
//!
//! The distributor mints one token per session ([`crate::api::ConfigResponse::cdn_token`]); the
//! edges verify it. Nothing here does IO and the clock is an argument.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Name of the query parameter and of the cookie that carry the token.
pub const TOKEN_PARAM: &str = "__token__";

/// Longest token accepted, in bytes.
pub const MAX_ACCESS_TOKEN_LEN: usize = 512;

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Expiry, in seconds since the Unix epoch; the token is refused at and after this second.
    pub expires_at_s: u64,
    /// URL path prefix the token is valid for, without the trailing `*`, e.g. `/live/demo/`.
    pub path_prefix: String,
    /// The only client address allowed to use the token, if bound to one (textual IP).
    pub ip: Option<String>,
}

/// Why an edge refused a token (the edge answers 403 for every variant).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessError {
    /// No token in the query or the cookies.
    #[error("missing access token")]
    Missing,
    /// Not `exp=…~acl=…*[~ip=…]~hmac=…`, or too long.
    #[error("malformed access token")]
    Malformed,
    /// The HMAC does not match: tampered, or minted with another secret.
    #[error("bad access token signature")]
    BadSignature,
    /// `exp` is at or before now.
    #[error("access token expired")]
    Expired,
    /// The request path is outside the token's `acl`.
    #[error("access token does not cover this path")]
    WrongPath,
    /// The token is bound to another client address.
    #[error("access token bound to another client address")]
    WrongIp,
}

/// Mints a token for `grant` with `secret`.
pub fn sign(secret: &[u8], grant: &Grant) -> String {
    let mut fields = format!("exp={}~acl={}*", grant.expires_at_s, grant.path_prefix);
    if let Some(ip) = &grant.ip {
        fields.push_str("~ip=");
        fields.push_str(ip);
    }
    let mac = hex_lower(&mac(secret, fields.as_bytes()));
    format!("{fields}~hmac={mac}")
}

/// Checks `token` for a request of `path` from `client_ip` at `now_s` (seconds since the Unix
/// epoch), and returns the grant.
///
/// # Errors
/// [`AccessError`]: malformed, bad signature, expired, wrong path or wrong address, checked in
/// that order (the signature before any claim, so a forged token learns nothing).
pub fn verify(
    secret: &[u8],
    token: &str,
    path: &str,
    client_ip: Option<&str>,
    now_s: u64,
) -> Result<Grant, AccessError> {
    if token.len() > MAX_ACCESS_TOKEN_LEN {
        return Err(AccessError::Malformed);
    }
    let (fields, mac_hex) = token.rsplit_once("~hmac=").ok_or(AccessError::Malformed)?;
    let given = decode_hex(mac_hex).ok_or(AccessError::Malformed)?;
    let mut check = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| AccessError::Malformed)?;
    check.update(fields.as_bytes());
    check.verify_slice(&given).map_err(|_| AccessError::BadSignature)?;
    let grant = parse_fields(fields)?;
    if grant.expires_at_s <= now_s {
        return Err(AccessError::Expired);
    }
    if !path.starts_with(&grant.path_prefix) || path[grant.path_prefix.len()..].contains("..") {
        return Err(AccessError::WrongPath);
    }
    if let Some(bound) = &grant.ip
        && client_ip != Some(bound.as_str())
    {
        return Err(AccessError::WrongIp);
    }
    Ok(grant)
}

/// Finds the token in a raw query string (`a=1&__token__=…`) or a `Cookie` header value.
pub fn find(query: Option<&str>, cookie: Option<&str>) -> Option<String> {
    let from_query = query
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(TOKEN_PARAM)?.strip_prefix('=').map(percent_decode)));
    from_query.or_else(|| {
        cookie?.split(';').find_map(|kv| kv.trim().strip_prefix(TOKEN_PARAM)?.strip_prefix('=').map(percent_decode))
    })
}

fn parse_fields(fields: &str) -> Result<Grant, AccessError> {
    let mut exp = None;
    let mut acl = None;
    let mut ip = None;
    for field in fields.split('~') {
        let (k, v) = field.split_once('=').ok_or(AccessError::Malformed)?;
        match k {
            "exp" if exp.is_none() => exp = Some(v.parse::<u64>().map_err(|_| AccessError::Malformed)?),
            "acl" if acl.is_none() => acl = Some(v.strip_suffix('*').ok_or(AccessError::Malformed)?.to_owned()),
            "ip" if ip.is_none() => ip = Some(v.to_owned()),
            _ => return Err(AccessError::Malformed),
        }
    }
    let (Some(expires_at_s), Some(path_prefix)) = (exp, acl) else { return Err(AccessError::Malformed) };
    if !path_prefix.starts_with('/') {
        return Err(AccessError::Malformed);
    }
    Ok(Grant { expires_at_s, path_prefix, ip })
}

fn mac(secret: &[u8], body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this never fails.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// Undoes the percent-encoding a browser may apply to `~`, `=`, `*`, `/` and `:` in a query.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"edge-secret";

    fn grant(ip: Option<&str>) -> Grant {
        Grant { expires_at_s: 1000, path_prefix: "/live/demo/".into(), ip: ip.map(str::to_owned) }
    }

    #[test]
    fn valid_token_covers_its_prefix() {
        let t = sign(SECRET, &grant(None));
        assert!(t.starts_with("exp=1000~acl=/live/demo/*~hmac="));
        assert_eq!(verify(SECRET, &t, "/live/demo/360p/seg_1.ts", None, 999), Ok(grant(None)));
    }

    #[test]
    fn expired_wrong_path_tampered_and_missing_are_refused() {
        let t = sign(SECRET, &grant(None));
        assert_eq!(verify(SECRET, &t, "/live/demo/a.ts", None, 1000), Err(AccessError::Expired));
        assert_eq!(verify(SECRET, &t, "/live/other/a.ts", None, 1), Err(AccessError::WrongPath));
        assert_eq!(verify(SECRET, &t, "/live/demo/../other/a.ts", None, 1), Err(AccessError::WrongPath));
        let longer = t.replace("exp=1000", "exp=9000");
        assert_eq!(verify(SECRET, &longer, "/live/demo/a.ts", None, 1), Err(AccessError::BadSignature));
        let wider = t.replace("acl=/live/demo/*", "acl=/*");
        assert_eq!(verify(SECRET, &wider, "/live/other/a.ts", None, 1), Err(AccessError::BadSignature));
        assert_eq!(verify(b"other", &t, "/live/demo/a.ts", None, 1), Err(AccessError::BadSignature));
        for bad in ["", "garbage", "exp=1~hmac=zz", "exp=1~acl=/x~hmac=00"] {
            assert!(verify(SECRET, bad, "/live/demo/a.ts", None, 1).is_err(), "{bad}");
        }
        assert_eq!(find(None, None), None);
        assert_eq!(find(Some("a=1"), Some("b=2")), None);
    }

    #[test]
    fn ip_binding() {
        let t = sign(SECRET, &grant(Some("10.0.0.1")));
        assert!(verify(SECRET, &t, "/live/demo/a.ts", Some("10.0.0.1"), 1).is_ok());
        assert_eq!(verify(SECRET, &t, "/live/demo/a.ts", Some("10.0.0.2"), 1), Err(AccessError::WrongIp));
        assert_eq!(verify(SECRET, &t, "/live/demo/a.ts", None, 1), Err(AccessError::WrongIp));
    }

    #[test]
    fn found_in_query_or_cookie_even_percent_encoded() {
        let t = sign(SECRET, &grant(None));
        let encoded = t.replace('~', "%7E").replace('=', "%3D").replace('*', "%2A").replace('/', "%2F");
        assert_eq!(find(Some(&format!("x=1&__token__={encoded}")), None).as_deref(), Some(t.as_str()));
        assert_eq!(find(None, Some(&format!("a=b; __token__={t}"))).as_deref(), Some(t.as_str()));
    }
}
