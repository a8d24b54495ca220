//! The built-in prober: a synthetic player that checks every pathway every few seconds.
//!
//! For every stream the origin holds, through each pathway: fetch the multivariant playlist, the
//! first variant's media playlist and its newest segment. A pathway is bad when a request fails
//! or answers non-200, takes longer than `probe_slow_ms`, or when the media playlist has not
//! changed for more than 1.5 × its target duration (a stale CDN), as seen by this prober.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::access::{self, TOKEN_PARAM};
use reqwest::Url;

use super::Steering;
use super::health::Outcome;

/// What the prober remembers of one (pathway, content) media playlist: its version and when it
/// last changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    version: (u64, String),
    changed_at: Instant,
}

/// Probes every pathway for every content `contents()` returns, every `probe_interval_ms`, until
/// dropped (spawn it and abort the task on shutdown).
pub async fn run(steering: Arc<Steering>, contents: impl Fn() -> Vec<String> + Send + 'static) {
    let cfg = steering.config().clone();
    let client =
        match reqwest::Client::builder().timeout(Duration::from_millis(cfg.probe_slow_ms.saturating_mul(2))).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "prober cannot build its HTTP client");
                return;
            }
        };
    let mut seen: HashMap<(String, String), Seen> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.probe_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let contents = contents();
        if contents.is_empty() {
            continue;
        }
        let probes = cfg.pathways.iter().map(|p| {
            let client = client.clone();
            let contents = contents.clone();
            let cfg = cfg.clone();
            let previous: Vec<Option<Seen>> =
                contents.iter().map(|c| seen.get(&(p.id.clone(), c.clone())).cloned()).collect();
            async move {
                let mut outcome = Outcome::Ok;
                let mut versions = Vec::new();
                for (content, prev) in contents.iter().zip(previous) {
                    let token = token_for(&cfg.access_secret, content);
                    let slow = Duration::from_millis(cfg.probe_slow_ms);
                    match probe_one(&client, &p.base_url, content, token.as_deref(), slow, prev).await {
                        Ok(s) => versions.push((content.clone(), s)),
                        Err((why, s)) => {
                            if let Some(s) = s {
                                versions.push((content.clone(), s));
                            }
                            outcome = Outcome::Bad(why);
                        }
                    }
                }
                (p.id.clone(), outcome, versions)
            }
        });
        for (id, outcome, versions) in futures_util::future::join_all(probes).await {
            for (content, s) in versions {
                seen.insert((id.clone(), content), s);
            }
            steering.observe(&id, outcome);
        }
    }
}

fn token_for(secret: &str, content: &str) -> Option<String> {
    if secret.is_empty() {
        return None;
    }
    let grant = access::Grant {
        expires_at_s: service::unix_now_s().saturating_add(600),
        path_prefix: format!("/live/{content}/"),
        ip: None,
    };
    Some(crate::edge::encode_token(&access::sign(secret.as_bytes(), &grant)))
}

type ProbeError = (String, Option<Seen>);

/// One synthetic playback check; on success the playlist version seen.
async fn probe_one(
    client: &reqwest::Client,
    base: &str,
    content: &str,
    token: Option<&str>,
    slow: Duration,
    prev: Option<Seen>,
) -> Result<Seen, ProbeError> {
    let mut master_url = Url::parse(&format!("{}/live/{content}/master.m3u8", base.trim_end_matches('/')))
        .map_err(|e| (e.to_string(), None))?;
    if let Some(t) = token {
        master_url.set_query(Some(&format!("{TOKEN_PARAM}={t}")));
    }
    let master = fetch_text(client, master_url.clone(), slow).await.map_err(|e| (format!("master: {e}"), None))?;
    let variant = first_uri(&master).ok_or_else(|| ("master lists no variant".to_owned(), None))?;
    let mut media_url = master_url.join(variant).map_err(|e| (e.to_string(), None))?;
    if media_url.query().is_none()
        && let Some(t) = token
    {
        media_url.set_query(Some(&format!("{TOKEN_PARAM}={t}")));
    }
    let media =
        fetch_text(client, media_url.clone(), slow).await.map_err(|e| (format!("media playlist: {e}"), None))?;
    let target_s = tag_number(&media, "#EXT-X-TARGETDURATION:").unwrap_or(2);
    let newest = media.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'));
    let version = (tag_number(&media, "#EXT-X-MEDIA-SEQUENCE:").unwrap_or(0), newest.unwrap_or_default().to_owned());
    let now = Instant::now();
    let seen = match prev {
        Some(p) if p.version == version => p,
        _ => Seen { version, changed_at: now },
    };
    let age = now.duration_since(seen.changed_at);
    if age > Duration::from_millis(target_s.saturating_mul(1500)) {
        return Err((format!("stale playlist: unchanged for {} ms", age.as_millis()), Some(seen)));
    }
    let Some(newest) = newest else { return Err(("media playlist lists no segment".into(), Some(seen))) };
    let seg_url = media_url.join(newest).map_err(|e| (e.to_string(), Some(seen.clone())))?;
    let started = Instant::now();
    let seg =
        tokio::time::timeout(slow, async { client.get(seg_url).send().await?.error_for_status()?.bytes().await }).await;
    match seg {
        Ok(Ok(_)) => Ok(seen),
        Ok(Err(e)) => Err((format!("segment: {e}"), Some(seen))),
        Err(_) => Err((format!("segment: slower than {} ms", started.elapsed().as_millis()), Some(seen))),
    }
}

async fn fetch_text(client: &reqwest::Client, url: Url, slow: Duration) -> Result<String, String> {
    let fetch = async { client.get(url).send().await?.error_for_status()?.text().await };
    match tokio::time::timeout(slow, fetch).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("slower than {} ms", slow.as_millis())),
    }
}

fn first_uri(playlist: &str) -> Option<&str> {
    playlist.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#'))
}

fn tag_number(playlist: &str, tag: &str) -> Option<u64> {
    playlist.lines().find_map(|l| l.trim().strip_prefix(tag)?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_playlist_fields() {
        let media = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:41\n#EXTINF:2,\na.ts\n#EXTINF:2,\nb.ts\n";
        assert_eq!(tag_number(media, "#EXT-X-TARGETDURATION:"), Some(2));
        assert_eq!(tag_number(media, "#EXT-X-MEDIA-SEQUENCE:"), Some(41));
        assert_eq!(first_uri(media), Some("a.ts"));
        assert!(token_for("", "live").is_none());
        assert!(token_for("s", "live").unwrap().contains("acl=/live/live/*"));
    }
}
