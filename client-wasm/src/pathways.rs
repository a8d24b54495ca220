//! CDN pathways: where else a segment can be fetched when its CDN fails.
//!
//! With HLS content steering (draft-pantos-hls-rfc8216bis §4.4.6.6 and §7) the multivariant
//! playlist lists every variant once per pathway, and a variant's segments have the same path
//! on every CDN. The page hands the agent each pathway's base URL (the directory of its variant
//! playlists) in the steering manifest's `PATHWAY-PRIORITY` order. A segment URL under one base
//! maps to the same remainder under another.
//!
//! When a download fails for a reason the CDN is to blame for (no response, 5xx), its pathway
//! goes into a penalty box for [`PENALTY_MS`] and the download resumes at once on the first
//! pathway not penalized. While a pathway is penalized, new downloads of URLs under it go
//! straight to that other pathway: the player keeps handing us the failed CDN's URLs until its
//! own playlist reload fails and it switches pathway, which takes seconds.

/// How long a failed pathway is avoided, in ms. hls.js keeps a pathway it penalized for 300 s;
/// a shorter box lets the agent come back once the steering server lists it first again.
pub(crate) const PENALTY_MS: f64 = 30_000.0;

/// Most pathways kept; more are ignored (a multivariant playlist has a handful).
pub(crate) const MAX_PATHWAYS: usize = 16;

/// Longest base URL kept, in bytes.
const MAX_BASE_LEN: usize = 2048;

/// One CDN pathway: its `PATHWAY-ID`, its base URL, and until when it is avoided.
#[derive(Debug, Clone)]
struct Pathway {
    id: String,
    base: String,
    penalized_until_ms: f64,
}

/// The pathways in priority order, with their penalty boxes. Times are the page's
/// `performance.now()` in ms.
#[derive(Debug, Default)]
pub(crate) struct Pathways {
    list: Vec<Pathway>,
}

impl Pathways {
    /// Replaces the list with `(pathway id, base URL)` pairs in priority order. Penalties of
    /// pathways that stay are kept; entries with an empty or over-long base are skipped.
    pub(crate) fn set(&mut self, pathways: Vec<(String, String)>) {
        let old = std::mem::take(&mut self.list);
        for (id, base) in pathways.into_iter().take(MAX_PATHWAYS) {
            if base.is_empty() || base.len() > MAX_BASE_LEN || self.list.iter().any(|p| p.id == id) {
                continue;
            }
            let penalized_until_ms = old.iter().find(|p| p.id == id).map_or(0.0, |p| p.penalized_until_ms);
            self.list.push(Pathway { id, base, penalized_until_ms });
        }
    }

    /// Where to fetch `url` now: under a penalized pathway it moves to the first healthy one;
    /// otherwise (or when every pathway is penalized) it stays as it is.
    pub(crate) fn route(&self, url: &str, now_ms: f64) -> String {
        match self.pathway_of(url) {
            Some(i) if self.list[i].penalized_until_ms > now_ms => {
                self.healthy(now_ms).map_or_else(|| url.to_owned(), |to| self.rebase(url, i, to))
            }
            _ => url.to_owned(),
        }
    }

    /// A download of `url` failed because of its CDN: its pathway is penalized, and the URL on
    /// the first pathway not penalized is returned (`None` when `url` is under no known pathway
    /// or none is left).
    pub(crate) fn fail_over(&mut self, url: &str, now_ms: f64) -> Option<String> {
        let from = self.pathway_of(url)?;
        self.list[from].penalized_until_ms = now_ms + PENALTY_MS;
        let to = self.healthy(now_ms)?;
        Some(self.rebase(url, from, to))
    }

    /// Index of the pathway whose base is the longest prefix of `url`.
    fn pathway_of(&self, url: &str) -> Option<usize> {
        self.list
            .iter()
            .enumerate()
            .filter(|(_, p)| url.starts_with(&p.base))
            .max_by_key(|(_, p)| p.base.len())
            .map(|(i, _)| i)
    }

    fn healthy(&self, now_ms: f64) -> Option<usize> {
        self.list.iter().position(|p| p.penalized_until_ms <= now_ms)
    }

    fn rebase(&self, url: &str, from: usize, to: usize) -> String {
        // `from` was found by `url.starts_with(base)`, so the slice is in bounds.
        format!("{}{}", self.list[to].base, &url[self.list[from].base.len()..])
    }
}

/// Whether a failed download is the CDN's fault, so that another pathway may do better: no
/// response (connection refused or reset, timeout) or a 5xx. A 4xx is about the request (a
/// segment not yet published, an expired token) and would fail on every CDN alike.
pub(crate) fn is_cdn_failure(status: Option<u16>) -> bool {
    status.is_none_or(|s| s >= 500)
}

/// The base URL of a variant playlist URL: everything up to and including the last `/` of its
/// path (query and fragment dropped). `None` for a URL without a path.
pub(crate) fn base_of(playlist_url: &str) -> Option<&str> {
    let end = playlist_url.find(['?', '#']).unwrap_or(playlist_url.len());
    let path_start = playlist_url.find("://").map_or(0, |i| i + 3);
    let slash = playlist_url[path_start..end].rfind('/')? + path_start;
    Some(&playlist_url[..=slash])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Pathways {
        let mut p = Pathways::default();
        p.set(vec![
            ("cdn-a".into(), "http://a.test:8081/live/demo/".into()),
            ("cdn-b".into(), "http://b.test:8082/live/demo/".into()),
        ]);
        p
    }

    const SEG_A: &str = "http://a.test:8081/live/demo/360p_12.ts?__token__=t1";
    const SEG_B: &str = "http://b.test:8082/live/demo/360p_12.ts?__token__=t1";

    #[test]
    fn a_failed_pathway_moves_the_download_to_the_next_with_the_same_path_and_query() {
        let mut p = two();
        assert_eq!(p.fail_over(SEG_A, 1_000.0).as_deref(), Some(SEG_B));
    }

    #[test]
    fn new_downloads_avoid_a_penalized_pathway_until_its_penalty_ends() {
        let mut p = two();
        assert_eq!(p.route(SEG_A, 0.0), SEG_A);
        p.fail_over(SEG_A, 1_000.0);
        assert_eq!(p.route(SEG_A, 1_001.0), SEG_B);
        assert_eq!(p.route(SEG_B, 1_001.0), SEG_B);
        assert_eq!(p.route(SEG_A, 1_000.0 + PENALTY_MS), SEG_A);
    }

    #[test]
    fn when_every_pathway_failed_there_is_nowhere_to_go_and_urls_stay() {
        let mut p = two();
        p.fail_over(SEG_A, 0.0);
        assert_eq!(p.fail_over(SEG_B, 1.0), None);
        assert_eq!(p.route(SEG_A, 2.0), SEG_A);
    }

    #[test]
    fn urls_under_no_pathway_are_left_alone() {
        let mut p = two();
        let other = "http://c.test/x.ts";
        assert_eq!(p.fail_over(other, 0.0), None);
        assert_eq!(p.route(other, 0.0), other);
        assert_eq!(p.route(SEG_A, 1.0), SEG_A, "an unknown URL's failure penalizes nothing");
    }

    #[test]
    fn a_new_priority_order_keeps_penalties() {
        let mut p = two();
        p.fail_over(SEG_A, 0.0);
        p.set(vec![
            ("cdn-b".into(), "http://b.test:8082/live/demo/".into()),
            ("cdn-a".into(), "http://a.test:8081/live/demo/".into()),
        ]);
        assert_eq!(p.route(SEG_A, 10.0), SEG_B);
        assert_eq!(p.route(SEG_B, 10.0), SEG_B);
    }

    #[test]
    fn the_longest_matching_base_wins() {
        let mut p = Pathways::default();
        p.set(vec![
            ("x".into(), "http://h/".into()),
            ("y".into(), "http://h/live/".into()),
            ("z".into(), "http://z/".into()),
        ]);
        // Under y, not x: y is penalized and x, first in priority, takes over.
        assert_eq!(p.fail_over("http://h/live/s.ts", 0.0).as_deref(), Some("http://h/s.ts"));
        assert_eq!(p.route("http://h/live/s.ts", 1.0), "http://h/s.ts");
        assert_eq!(p.fail_over("http://h/s.ts", 1.0).as_deref(), Some("http://z/s.ts"));
    }

    #[test]
    fn only_cdn_faults_fail_over() {
        assert!(is_cdn_failure(None));
        assert!(is_cdn_failure(Some(502)));
        assert!(!is_cdn_failure(Some(404)));
        assert!(!is_cdn_failure(Some(403)));
    }

    #[test]
    fn base_is_the_playlist_directory() {
        assert_eq!(base_of("http://a:1/live/demo/360p.m3u8?__token__=x/y"), Some("http://a:1/live/demo/"));
        assert_eq!(base_of("https://a/x.m3u8#f"), Some("https://a/"));
        assert_eq!(base_of("https://a"), None);
    }

    #[test]
    fn duplicate_and_empty_entries_are_skipped() {
        let mut p = Pathways::default();
        p.set(vec![("a".into(), String::new()), ("b".into(), "http://b/".into()), ("b".into(), "http://c/".into())]);
        assert_eq!(p.list.len(), 1);
    }
}
