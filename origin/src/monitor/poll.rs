//! The polling loop of the conformance checker.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use reqwest::Url;
use serde::Serialize;

use super::check::{self, ErrorKind, Snapshot};

/// Most findings kept in a report (counts are always complete).
pub const MAX_FINDINGS: usize = 1000;

/// Sequence numbers remembered per variant for the cross-pathway check.
const REMEMBERED_MSNS: usize = 512;

/// What to monitor and for how long.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Multivariant (or media) playlist URLs.
    pub urls: Vec<String>,
    /// How long to run.
    pub duration: Duration,
    /// Time between two polls of one media playlist, in milliseconds.
    pub poll_ms: u64,
    /// A playlist unchanged for longer than this is stale, in milliseconds; 0 means
    /// 1.5 × its target duration.
    pub stale_ms: u64,
}

/// One problem seen.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Milliseconds since the monitor started.
    pub at_ms: u64,
    /// The kind of problem.
    pub kind: ErrorKind,
    /// `pathway/variant` of the playlist.
    pub variant: String,
    /// What was seen.
    pub detail: String,
}

/// The outcome of a monitoring run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// How long it ran, in milliseconds.
    pub ran_ms: u64,
    /// Media playlists followed (pathway × variant).
    pub variants: usize,
    /// Media playlist fetches made.
    pub polls: u64,
    /// Playlist versions seen change.
    pub updates: u64,
    /// Problems by kind.
    pub errors: BTreeMap<String, u64>,
    /// The first [`MAX_FINDINGS`] problems.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Total problems of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn add(&mut self, started: Instant, kind: ErrorKind, variant: &str, detail: String) {
        *self.errors.entry(format!("{kind:?}")).or_default() += 1;
        if self.findings.len() < MAX_FINDINGS {
            let at_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.findings.push(Finding { at_ms, kind, variant: variant.to_owned(), detail });
        }
    }
}

/// One followed media playlist.
struct Followed {
    /// `pathway/variant`.
    label: String,
    /// The variant's identity across pathways.
    stable: String,
    url: Url,
    last: Option<Snapshot>,
    changed_at: Instant,
    stale_reported: bool,
}

/// Runs the monitor; errors reaching the playlists are findings, not failures.
pub async fn run(config: MonitorConfig) -> Report {
    let started = Instant::now();
    let mut report = Report::default();
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
    let mut followed = Vec::new();
    for url in &config.urls {
        match discover(&client, url).await {
            Ok(mut f) => followed.append(&mut f),
            Err(e) => report.add(started, ErrorKind::ManifestRetrieval, url, e),
        }
    }
    report.variants = followed.len();
    let mut by_msn: HashMap<String, VecDeque<(u64, String, String)>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(config.poll_ms.max(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < config.duration {
        tick.tick().await;
        let fetches = followed.iter().map(|f| fetch(&client, f.url.clone()));
        let bodies = futures_util::future::join_all(fetches).await;
        for (f, body) in followed.iter_mut().zip(bodies) {
            report.polls += 1;
            let snapshot = match body.map(|b| Snapshot::parse(&b).ok_or_else(|| "not a media playlist".to_owned())) {
                Ok(Ok(s)) => s,
                Ok(Err(e)) | Err(e) => {
                    report.add(started, ErrorKind::ManifestRetrieval, &f.label, e);
                    continue;
                }
            };
            observe(&mut report, started, f, snapshot, config.stale_ms, &mut by_msn);
        }
    }
    report.ran_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    report
}

fn observe(
    report: &mut Report,
    started: Instant,
    f: &mut Followed,
    snapshot: Snapshot,
    stale_ms: u64,
    by_msn: &mut HashMap<String, VecDeque<(u64, String, String)>>,
) {
    let now = Instant::now();
    let changed = f.last.as_ref().is_none_or(|l| l.version() != snapshot.version());
    if let Some(prev) = &f.last {
        for (kind, detail) in check::compare(prev, &snapshot) {
            report.add(started, kind, &f.label, detail);
        }
    }
    // The same sequence number must name the same segment on every pathway.
    let seen = by_msn.entry(f.stable.clone()).or_default();
    for (i, (uri, _)) in snapshot.segments.iter().enumerate() {
        let msn = snapshot.media_sequence + i as u64;
        match seen.iter().find(|(m, _, _)| *m == msn) {
            Some((_, other, who)) if other != uri => {
                let detail = format!("media sequence {msn} is {uri} here and {other} on {who}");
                report.add(started, ErrorKind::PlaylistContent, &f.label, detail);
            }
            Some(_) => {}
            None => {
                seen.push_back((msn, uri.clone(), f.label.clone()));
                if seen.len() > REMEMBERED_MSNS {
                    seen.pop_front();
                }
            }
        }
    }
    if changed {
        report.updates += 1;
        f.changed_at = now;
        f.stale_reported = false;
    } else if !snapshot.ended {
        let limit = if stale_ms > 0 { stale_ms } else { snapshot.target_duration_s.saturating_mul(1500) };
        let age = now.duration_since(f.changed_at);
        if age > Duration::from_millis(limit) && !f.stale_reported {
            f.stale_reported = true;
            report.add(started, ErrorKind::StaleManifest, &f.label, format!("unchanged for {} ms", age.as_millis()));
        }
    }
    f.last = Some(snapshot);
}

/// The media playlists a URL leads to.
async fn discover(client: &reqwest::Client, url: &str) -> Result<Vec<Followed>, String> {
    let base = Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
    let body = fetch(client, base.clone()).await?;
    let now = Instant::now();
    let host = base.host_str().unwrap_or("?").to_owned();
    let follow = |label: String, stable: String, url: Url| Followed {
        label,
        stable,
        url,
        last: None,
        changed_at: now,
        stale_reported: false,
    };
    match m3u8_rs::parse_playlist_res(&body).map_err(|_| format!("{url}: not a playlist"))? {
        m3u8_rs::Playlist::MediaPlaylist(_) => {
            Ok(vec![follow(format!("{host}{}", base.path()), base.path().to_owned(), base)])
        }
        m3u8_rs::Playlist::MasterPlaylist(m) => m
            .variants
            .iter()
            .filter(|v| !v.is_i_frame)
            .map(|v| {
                let attr = |k: &str| {
                    v.other_attributes
                        .as_ref()
                        .and_then(|a| a.get(k))
                        .map(|q| q.to_string().trim_matches('"').to_owned())
                };
                let pathway = attr("PATHWAY-ID").unwrap_or_else(|| host.clone());
                let stable =
                    attr("STABLE-VARIANT-ID").unwrap_or_else(|| v.uri.split('?').next().unwrap_or_default().to_owned());
                let url = base.join(&v.uri).map_err(|e| format!("{}: {e}", v.uri))?;
                Ok(follow(format!("{pathway}/{stable}"), stable, url))
            })
            .collect(),
    }
}

async fn fetch(client: &reqwest::Client, url: Url) -> Result<Vec<u8>, String> {
    let resp = client.get(url.clone()).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    Ok(resp.bytes().await.map_err(|e| format!("{url}: {e}"))?.to_vec())
}
