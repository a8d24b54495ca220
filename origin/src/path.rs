//! Object addresses: `/live/{content}/{path}` parsed and validated once, before any store access.
//!
//! Only plain names are accepted: every component is made of `[A-Za-z0-9._-]`, is not `.` or
//! `..` and does not start with a dot; percent-encoding is refused outright rather than decoded, so
//! `%2e%2e` can never become `..`. The extension decides the kind of object and its media type.

/// URL prefix of every object the origin stores and serves.
pub const PREFIX: &str = "/live/";

/// Most components below the content id (e.g. `360p/seg_00001.ts` has 2).
pub const MAX_DEPTH: usize = 3;

/// Longest path component (content id included), in bytes.
pub const MAX_COMPONENT_LEN: usize = 128;

/// What an object is, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `.m3u8`: a master or media playlist, validated at ingest and replaced in place.
    Playlist,
    /// `.ts`: an MPEG-TS media segment.
    SegmentTs,
    /// `.m4s` or `.mp4`: a fragmented-MP4 segment or initialization section.
    SegmentMp4,
    /// `.aac`: a packed-audio segment.
    SegmentAac,
}

impl Kind {
    /// The `Content-Type` served for this kind.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::SegmentTs => "video/mp2t",
            Self::SegmentMp4 => "video/mp4",
            Self::SegmentAac => "audio/aac",
        }
    }

    /// Whether this is a playlist (mutable, short cache) rather than a segment (immutable).
    pub fn is_playlist(self) -> bool {
        self == Self::Playlist
    }

    fn from_name(name: &str) -> Option<Self> {
        let (_, ext) = name.rsplit_once('.')?;
        match ext {
            "m3u8" => Some(Self::Playlist),
            "ts" => Some(Self::SegmentTs),
            "m4s" | "mp4" => Some(Self::SegmentMp4),
            "aac" => Some(Self::SegmentAac),
            _ => None,
        }
    }
}

/// A validated object address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectPath {
    /// The content id (one live stream), e.g. `live`.
    pub content: String,
    /// The path below the content, components joined by `/`, e.g. `360p/index.m3u8`.
    pub path: String,
    /// The kind of object, from the extension.
    pub kind: Kind,
}

/// Why a path was refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The URL is not below [`PREFIX`] or has no object path after the content id.
    #[error("expected /live/{{content}}/{{path}}")]
    Shape,
    /// A component is empty, `.`/`..`, starts with a dot, is too long or has a character outside
    /// `[A-Za-z0-9._-]` (percent-encoding included).
    #[error("invalid path component {0:?}: use [A-Za-z0-9._-], at most {MAX_COMPONENT_LEN} bytes, no leading dot")]
    Component(String),
    /// More than [`MAX_DEPTH`] components below the content id.
    #[error("path deeper than {MAX_DEPTH} components")]
    TooDeep,
    /// The extension is not one of `.m3u8`, `.ts`, `.m4s`, `.mp4`, `.aac`.
    #[error("unsupported extension in {0:?}: expected .m3u8, .ts, .m4s, .mp4 or .aac")]
    Extension(String),
}

impl ObjectPath {
    /// Parses the raw (not percent-decoded) URL path of a request, e.g. `/live/live/360p/index.m3u8`.
    ///
    /// # Errors
    /// [`PathError`] when the path does not follow the rules of this module.
    pub fn from_url_path(url_path: &str) -> Result<Self, PathError> {
        let rest = url_path.strip_prefix(PREFIX).ok_or(PathError::Shape)?;
        let (content, path) = rest.split_once('/').ok_or(PathError::Shape)?;
        Self::new(content, path)
    }

    /// Validates `content` and the `/`-separated `path` below it.
    ///
    /// # Errors
    /// [`PathError`] when either does not follow the rules of this module.
    pub fn new(content: &str, path: &str) -> Result<Self, PathError> {
        check_component(content)?;
        if path.is_empty() {
            return Err(PathError::Shape);
        }
        let components: Vec<&str> = path.split('/').collect();
        if components.len() > MAX_DEPTH {
            return Err(PathError::TooDeep);
        }
        for c in &components {
            check_component(c)?;
        }
        let name = components.last().copied().unwrap_or_default();
        let kind = Kind::from_name(name).ok_or_else(|| PathError::Extension(name.to_owned()))?;
        Ok(Self { content: content.to_owned(), path: path.to_owned(), kind })
    }

    /// The directory of this object below the content (`""` at the top), for resolving the
    /// relative URIs of a playlist.
    pub fn dir(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(dir, _)| dir)
    }
}

fn check_component(c: &str) -> Result<(), PathError> {
    let ok = !c.is_empty()
        && c.len() <= MAX_COMPONENT_LEN
        && !c.starts_with('.')
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok { Ok(()) } else { Err(PathError::Component(c.chars().take(MAX_COMPONENT_LEN).collect())) }
}

/// Resolves a URI found in the playlist at `playlist` against the playlist's directory, accepting
/// only plain relative references that stay inside the content (no scheme, no leading `/`, no
/// `..`, no query). Returns the object path of the target.
///
/// # Errors
/// [`PathError`] when the URI is not such a reference or the target is not a valid object path.
pub fn resolve(playlist: &ObjectPath, uri: &str) -> Result<ObjectPath, PathError> {
    let joined = match playlist.dir() {
        "" => uri.to_owned(),
        dir => format!("{dir}/{uri}"),
    };
    // `..`, `:`, `?`, `%` and a leading `/` all fail the component rules.
    ObjectPath::new(&playlist.content, &joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_paths() {
        let p = ObjectPath::from_url_path("/live/live/360p/seg_00001.ts").unwrap();
        assert_eq!((p.content.as_str(), p.path.as_str(), p.kind), ("live", "360p/seg_00001.ts", Kind::SegmentTs));
        assert_eq!(p.dir(), "360p");
        let m = ObjectPath::from_url_path("/live/c-1/master.m3u8").unwrap();
        assert_eq!((m.kind, m.dir()), (Kind::Playlist, ""));
        assert_eq!(ObjectPath::from_url_path("/live/c/a/b/c.m4s").unwrap().kind, Kind::SegmentMp4);
        assert_eq!(ObjectPath::from_url_path("/live/c/a.aac").unwrap().kind.content_type(), "audio/aac");
    }

    #[test]
    fn refuses_traversal_and_odd_names() {
        for bad in [
            "/live/c/../x.ts",
            "/live/c/a/%2e%2e/x.ts",
            "/live/c/%2e%2e/x.ts",
            "/live/../c/x.ts",
            "/live/c/.hidden.ts",
            "/live/c/a//x.ts",
            "/live/c/a b.ts",
            "/live/c/x.ts/",
            "/live/c/x.php",
            "/live/c/x",
            "/live/c/",
            "/live/c",
            "/other/c/x.ts",
            "/live/c/a/b/c/d.ts",
        ] {
            assert!(ObjectPath::from_url_path(bad).is_err(), "{bad}");
        }
        let long = format!("/live/c/{}.ts", "a".repeat(MAX_COMPONENT_LEN));
        assert!(ObjectPath::from_url_path(&long).is_err());
    }

    #[test]
    fn resolves_relative_uris_only() {
        let pl = ObjectPath::new("live", "360p/index.m3u8").unwrap();
        assert_eq!(resolve(&pl, "seg_1.ts").unwrap().path, "360p/seg_1.ts");
        let master = ObjectPath::new("live", "master.m3u8").unwrap();
        assert_eq!(resolve(&master, "360p/index.m3u8").unwrap().path, "360p/index.m3u8");
        for bad in ["../x.ts", "/live/live/x.ts", "http://h/x.ts", "x.ts?token=1", "a/b/c.ts"] {
            assert!(resolve(&pl, bad).is_err(), "{bad}");
        }
    }
}
