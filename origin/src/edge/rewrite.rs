//! Carrying a query access token into every URI of a playlist the edge serves.
//!
//! hls.js resolves a playlist's relative URIs against the playlist URL without its query, so a
//! token given as `?__token__=…` on the multivariant playlist would be lost on the next request.
//! The edge appends it to each URI line and each `URI="…"` attribute (`EXT-X-MAP`, `EXT-X-MEDIA`,
//! `EXT-X-KEY`) of the playlists it serves. The cached copy stays token-free.

use protocol::access::TOKEN_PARAM;

/// `body` with `__token__=<token>` added to every URI; `token` must already be URL-safe.
pub(super) fn propagate(body: &str, token: &str) -> String {
    let mut out = String::with_capacity(body.len() + 64 * token.len().min(1024));
    for line in body.lines() {
        if line.is_empty() {
            out.push('\n');
            continue;
        }
        if line.starts_with('#') {
            out.push_str(&with_uri_attribute(line, token));
        } else {
            out.push_str(&with_token(line.trim(), token));
        }
        out.push('\n');
    }
    out
}

/// Percent-encodes what a token may contain that a query value must not (`~` and `*` are safe).
pub fn encode(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    for b in token.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*' | b'/' | b':' | b'=') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn with_token(uri: &str, token: &str) -> String {
    if uri.starts_with("data:") {
        return uri.to_owned();
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{TOKEN_PARAM}={token}")
}

fn with_uri_attribute(line: &str, token: &str) -> String {
    map_uri_attribute(line, |uri| with_token(uri, token))
}

/// `line` (a tag) with its `URI="…"` attribute value replaced by `f(value)`, if it has one.
pub(crate) fn map_uri_attribute(line: &str, f: impl Fn(&str) -> String) -> String {
    let Some(start) = line.find("URI=\"").map(|i| i + 5) else { return line.to_owned() };
    let Some(len) = line[start..].find('"') else { return line.to_owned() };
    format!("{}{}{}", &line[..start], f(&line[start..start + len]), &line[start + len..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uri_gets_the_token() {
        let body = "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2,\nseg_1.m4s\n\n#EXTINF:2,\nseg_2.m4s?x=1\n";
        let out = propagate(body, "T");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4?__token__=T\"\n#EXTINF:2,\nseg_1.m4s?__token__=T\n\n#EXTINF:2,\nseg_2.m4s?x=1&__token__=T\n"
        );
        assert_eq!(encode("exp=1~acl=/live/a/*~hmac=ab"), "exp=1~acl=/live/a/*~hmac=ab");
        assert_eq!(encode("a&b c"), "a%26b%20c");
    }
}
