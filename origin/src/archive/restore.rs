//! Rebuilding the DVR logs from their log objects when the origin starts.
//!
//! The whole prefix is listed once; log objects ([`crate::dvr::persist`]) last modified before
//! the timeshift window are left to retention, the others are grouped by playlist, read
//! [`READ_CONCURRENCY`] at a time in log order and applied with [`DvrLog::apply`], which trims
//! to the window. Everything is bounded: at most `max_streams` streams of
//! [`MAX_LOGS_PER_STREAM`] logs, the newest [`MAX_DVR_SEGMENTS`] objects of each, objects of at
//! most [`MAX_LOG_OBJECT_BYTES`]; what does not fit, does not parse or cannot be read is skipped
//! and counted (`origin_archive_rebuilt{result}` and the [`RebuildReport`]), never fatal. The
//! archived multivariant playlists of the contents that have a rebuilt log are read back too
//! (see `master`; at most [`super::MAX_MASTERS`], each validated again).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;

use super::master::{self, ListedMaster, RebuiltMaster};
use super::{Archive, ArchiveError};
use crate::dvr::persist::{self, LOG_DIR_SUFFIX, LogObjectError, MAX_LOG_OBJECT_BYTES};
use crate::dvr::{Clock, DvrLog, MAX_DVR_SEGMENTS};
use crate::path::ObjectPath;

/// Most logs (media playlists) rebuilt per stream.
pub const MAX_LOGS_PER_STREAM: usize = 64;

/// Log objects read at once.
pub const READ_CONCURRENCY: usize = 32;

/// One rebuilt log.
#[derive(Debug, Clone)]
pub struct RebuiltLog {
    /// The content id.
    pub content: String,
    /// The media playlist's path below the content.
    pub path: String,
    /// The log, trimmed to the window, on the store clock.
    pub log: DvrLog,
}

/// What a rebuild restores.
#[derive(Debug, Clone, Default)]
pub struct Rebuilt {
    /// The logs with at least one segment inside the window.
    pub logs: Vec<RebuiltLog>,
    /// The multivariant playlists of their contents.
    pub masters: Vec<RebuiltMaster>,
}

/// What a rebuild found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// Logs rebuilt with at least one segment.
    pub logs: usize,
    /// Segments they list.
    pub entries: usize,
    /// Log objects read and applied.
    pub objects: usize,
    /// Multivariant playlists read back.
    pub masters: usize,
    /// Log objects (and multivariant playlists) that do not parse (name or content).
    pub malformed: usize,
    /// Log objects larger than [`MAX_LOG_OBJECT_BYTES`] (multivariant playlists larger than
    /// [`crate::playlist::MAX_PLAYLIST_BYTES`]).
    pub oversized: usize,
    /// Log objects last modified before the window (not read; retention deletes them).
    pub expired: usize,
    /// Log objects beyond the bounds, or that could not be read.
    pub skipped: usize,
    /// Missing stretches inside a log (marked `EXT-X-DISCONTINUITY`).
    pub gaps: usize,
    /// How long the rebuild took.
    pub elapsed: Duration,
}

/// A listed log object.
struct Listed {
    location: Path,
    size: u64,
}

impl Archive {
    /// Rebuilds every DVR log that has log objects inside the timeshift window `window_ms` as of
    /// `clock` (see the module docs), and the multivariant playlists of their contents; at most
    /// `max_streams` streams.
    ///
    /// # Errors
    /// [`ArchiveError::Store`] when listing fails; unreadable objects are skipped.
    pub async fn rebuild(
        &self,
        clock: Clock,
        window_ms: u64,
        max_streams: usize,
    ) -> Result<(Rebuilt, RebuildReport), ArchiveError> {
        let started = Instant::now();
        let mut report = RebuildReport::default();
        let cutoff_ms = clock.unix_now_ms.saturating_sub(window_ms);
        let s = &self.shared;
        let mut found: HashMap<(String, String), BTreeMap<u64, Listed>> = HashMap::new();
        let mut contents: HashSet<String> = HashSet::new();
        let mut masters = Vec::new();
        let mut listing = s.store.list(Some(&s.prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let Some(parts) = meta.location.prefix_match(&s.prefix) else { continue };
            let parts: Vec<String> = parts.map(|p| p.as_ref().to_owned()).collect();
            if let Some((content, path)) = master::split_master_key(&parts) {
                // Kept by retention while their content has logs, whatever their age.
                let content = content.to_owned();
                masters.push(ListedMaster { content, path, location: meta.location, size: meta.size });
                continue;
            }
            let Some(((content, playlist), name)) = split_log_key(&parts) else { continue };
            if u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0) < cutoff_ms {
                report.expired += 1;
                continue;
            }
            let Some(seq) = persist::parse_object_name(name) else {
                report.malformed += 1;
                continue;
            };
            let id = (content.to_owned(), playlist);
            if !found.contains_key(&id) {
                let new_stream = !contents.contains(content);
                let logs_here = found.keys().filter(|(c, _)| c == content).count();
                if (new_stream && contents.len() >= max_streams) || logs_here >= MAX_LOGS_PER_STREAM {
                    report.skipped += 1;
                    continue;
                }
                contents.insert(content.to_owned());
            }
            let objects = found.entry(id).or_default();
            objects.insert(seq, Listed { location: meta.location, size: meta.size });
            // Every object holds at least one entry (or ends the log): the newest suffice.
            if objects.len() > MAX_DVR_SEGMENTS + 1 {
                objects.pop_first();
                report.skipped += 1;
            }
        }
        let mut rebuilt = Vec::new();
        for ((content, playlist), objects) in found {
            let Ok(path) = ObjectPath::new(&content, &playlist) else {
                report.malformed += objects.len();
                continue;
            };
            if !path.kind.is_playlist() {
                report.malformed += objects.len();
                continue;
            }
            let log = self.rebuild_one(&path, objects, clock, window_ms, &mut report).await;
            if !log.is_empty() {
                report.logs += 1;
                report.entries += log.len();
                rebuilt.push(RebuiltLog { content, path: playlist, log });
            }
        }
        let with_logs: HashSet<&str> = rebuilt.iter().map(|l| l.content.as_str()).collect();
        let masters = self.read_masters(masters, |c| with_logs.contains(c), &mut report).await;
        report.elapsed = started.elapsed();
        let m = &s.metrics.rebuilt;
        for (result, n) in [
            ("ok", report.objects + report.masters),
            ("malformed", report.malformed),
            ("oversized", report.oversized),
            ("expired", report.expired),
            ("skipped", report.skipped),
        ] {
            m.get_or_create(&[("result", result)]).inc_by(n as u64);
        }
        Ok((Rebuilt { logs: rebuilt, masters }, report))
    }

    async fn rebuild_one(
        &self,
        playlist: &ObjectPath,
        objects: BTreeMap<u64, Listed>,
        clock: Clock,
        window_ms: u64,
        report: &mut RebuildReport,
    ) -> DvrLog {
        let store = &self.shared.store;
        let mut reads = futures_util::stream::iter(objects)
            .map(|(seq, listed)| async move {
                if listed.size > MAX_LOG_OBJECT_BYTES {
                    return (listed.location, Err(Some(LogObjectError::Oversized)));
                }
                let bytes = match store.get(&listed.location).await {
                    Ok(got) => got.bytes().await,
                    Err(e) => Err(e),
                };
                let decoded = match bytes {
                    Ok(bytes) => persist::decode(playlist, seq, &bytes, clock).map_err(Some),
                    Err(e) => {
                        tracing::warn!(location = %listed.location, error = %e, "DVR rebuild: read failed");
                        Err(None)
                    }
                };
                (listed.location, decoded)
            })
            .buffered(READ_CONCURRENCY);
        let mut log = DvrLog::default();
        while let Some((location, decoded)) = reads.next().await {
            match decoded {
                Ok(object) => {
                    report.objects += 1;
                    report.gaps += usize::from(log.apply(object, clock.store_now_ms, window_ms));
                }
                Err(Some(LogObjectError::Oversized)) => {
                    tracing::warn!(location = %location, "DVR rebuild: log object too large, skipped");
                    report.oversized += 1;
                }
                Err(Some(e)) => {
                    tracing::warn!(location = %location, error = %e, "DVR rebuild: log object skipped");
                    report.malformed += 1;
                }
                Err(None) => report.skipped += 1,
            }
        }
        log
    }
}

/// `((content, playlist path), file name)` when `parts` (below the prefix) name a log object:
/// `{content}/…/{name}.m3u8.dvr/{file}.m3u8`.
pub(super) fn split_log_key(parts: &[String]) -> Option<((&str, String), &str)> {
    let [content, dirs @ .., dir, name] = parts else { return None };
    let last = dir.strip_suffix(LOG_DIR_SUFFIX).filter(|d| d.ends_with(".m3u8"))?;
    if !name.ends_with(".m3u8") {
        return None;
    }
    let mut playlist: Vec<&str> = dirs.iter().map(String::as_str).collect();
    playlist.push(last);
    Some(((content.as_str(), playlist.join("/")), name.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(key: &str) -> Vec<String> {
        key.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn finds_log_keys_among_segments() {
        let k = parts("live/v/index.m3u8.dvr/00000000000000000001.m3u8");
        assert_eq!(split_log_key(&k), Some((("live", "v/index.m3u8".to_owned()), "00000000000000000001.m3u8")));
        let top = parts("live/index.m3u8.dvr/x.m3u8");
        assert_eq!(split_log_key(&top), Some((("live", "index.m3u8".to_owned()), "x.m3u8")));
        for other in ["live/v/seg_1.ts", "live/v/index.m3u8.dvr/seg.ts", "live/v.dvr/1.m3u8", "x.m3u8.dvr/1.m3u8"] {
            assert_eq!(split_log_key(&parts(other)), None, "{other}");
        }
    }
}
