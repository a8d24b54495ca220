//! Archived multivariant playlists, so that `/dvr/{content}/master.m3u8` (and the VOD one)
//! answer after a restart as the media playlists they list do.
//!
//! The multivariant playlist accepted at `{content}/{path}` is stored, through the writer's
//! queue, at `{content}/{path}.master` ([`MASTER_SUFFIX`]): no ingested object ends so (their
//! names end with their media extension), nor does a log object (`….m3u8.dvr/{seq}.m3u8`).
//!
//! Retention does not age these out with the other objects: an encoder sends its multivariant
//! playlist once when it starts (ffmpeg re-sends it only with `-master_pl_publish_rate`), so its
//! object is usually older than the timeshift window while the stream's logs are still inside
//! it. Rewriting it whenever it gets older than half the window would not do either: after the
//! last playlist update of a stream nothing triggers a rewrite, so the master could expire up to
//! half a window before the logs that need it. Instead a multivariant playlist is deleted by the
//! retention pass that finds no log object of its content inside the window any more (and the
//! playlist itself older than the window), i.e. together with the content's last log object.

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::ObjectStoreExt as _;
use object_store::path::Path;

use super::Archive;
use super::restore::RebuildReport;
use super::writer::Job;
use crate::path::ObjectPath;
use crate::playlist::{self, Accepted, MAX_PLAYLIST_BYTES};

/// Suffix of the key of an archived multivariant playlist.
pub const MASTER_SUFFIX: &str = ".master";

/// Most multivariant playlists read back per rebuild (those of contents with a rebuilt log).
pub const MAX_MASTERS: usize = 4096;

/// A multivariant playlist read back from the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuiltMaster {
    /// The content id.
    pub content: String,
    /// The playlist's path below the content.
    pub path: String,
    /// The playlist as accepted at ingest.
    pub bytes: Bytes,
}

/// A listed archived multivariant playlist.
#[derive(Debug)]
pub(super) struct ListedMaster {
    pub(super) content: String,
    pub(super) path: String,
    pub(super) location: Path,
    pub(super) size: u64,
}

/// Why an archived multivariant playlist was not read.
enum Unread {
    /// Larger than [`MAX_PLAYLIST_BYTES`].
    Oversized,
    /// The store failed.
    Failed,
}

/// The path (below the content) of the archived copy of the multivariant playlist at `path`.
pub(super) fn master_object(path: &str) -> String {
    format!("{path}{MASTER_SUFFIX}")
}

/// `(content, playlist path)` when `parts` (below the prefix) name an archived multivariant
/// playlist: `{content}/…/{name}.m3u8.master`.
pub(super) fn split_master_key(parts: &[String]) -> Option<(&str, String)> {
    let [content, dirs @ .., name] = parts else { return None };
    let last = name.strip_suffix(MASTER_SUFFIX).filter(|n| n.ends_with(".m3u8"))?;
    let mut path: Vec<&str> = dirs.iter().map(String::as_str).collect();
    path.push(last);
    Some((content.as_str(), path.join("/")))
}

impl Archive {
    /// Queues the multivariant playlist `bytes` of `{content}/{path}` without waiting. Returns
    /// false (logged and counted with the log objects) when the queue is full.
    pub fn submit_master(&self, content: &str, path: &str, bytes: Bytes) -> bool {
        let len = bytes.len() as u64;
        let job = Job::Master { content: content.to_owned(), path: path.to_owned(), bytes };
        let sent = self.enqueue(job, len);
        if !sent {
            self.shared.metrics.log_writes.get_or_create(&[("result", "dropped")]).inc();
            tracing::warn!(content, path, "archive queue full: multivariant playlist not archived");
        }
        sent
    }

    /// Reads back the `listed` multivariant playlists whose content is in `keep`; those that
    /// are too large, cannot be read or are not multivariant playlists are skipped and counted.
    pub(super) async fn read_masters(
        &self,
        listed: Vec<ListedMaster>,
        keep: impl Fn(&str) -> bool,
        report: &mut RebuildReport,
    ) -> Vec<RebuiltMaster> {
        let store = &self.shared.store;
        let wanted: Vec<ListedMaster> = listed.into_iter().filter(|m| keep(&m.content)).collect();
        report.skipped += wanted.len().saturating_sub(MAX_MASTERS);
        let mut reads = futures_util::stream::iter(wanted.into_iter().take(MAX_MASTERS))
            .map(|m| async move {
                if m.size > MAX_PLAYLIST_BYTES as u64 {
                    return (m, Err(Unread::Oversized));
                }
                let bytes = match store.get(&m.location).await {
                    Ok(got) => got.bytes().await,
                    Err(e) => Err(e),
                };
                let res = bytes.map_err(|e| {
                    tracing::warn!(location = %m.location, error = %e, "DVR rebuild: read failed");
                    Unread::Failed
                });
                (m, res)
            })
            .buffer_unordered(super::READ_CONCURRENCY);
        let mut out = Vec::new();
        while let Some((m, res)) = reads.next().await {
            let bytes = match res {
                Ok(b) => b,
                Err(Unread::Oversized) => {
                    report.oversized += 1;
                    continue;
                }
                Err(Unread::Failed) => {
                    report.skipped += 1;
                    continue;
                }
            };
            let valid = ObjectPath::new(&m.content, &m.path)
                .ok()
                .and_then(|p| playlist::validate(&p, &bytes, None, |_| true).ok())
                .is_some_and(|a| a == Accepted::Master);
            if !valid {
                tracing::warn!(location = %m.location, "DVR rebuild: not a multivariant playlist, skipped");
                report.malformed += 1;
                continue;
            }
            report.masters += 1;
            out.push(RebuiltMaster { content: m.content, path: m.path, bytes });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(key: &str) -> Vec<String> {
        key.split('/').map(str::to_owned).collect()
    }

    #[test]
    fn finds_master_keys_among_the_rest() {
        assert_eq!(master_object("master.m3u8"), "master.m3u8.master");
        assert_eq!(split_master_key(&parts("live/master.m3u8.master")), Some(("live", "master.m3u8".to_owned())));
        assert_eq!(split_master_key(&parts("live/a/m.m3u8.master")), Some(("live", "a/m.m3u8".to_owned())));
        for other in
            ["live/v/seg_1.ts", "live/v/index.m3u8.dvr/00000000000000000001.m3u8", "live/x.master", "m.m3u8.master"]
        {
            assert_eq!(split_master_key(&parts(other)), None, "{other}");
        }
    }
}
