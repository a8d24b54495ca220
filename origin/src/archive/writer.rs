//! The archive's background tasks: the single writer (segments and log objects, in submission
//! order) and retention.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use tokio::sync::mpsc;

use super::{ArchiveError, MAX_LOST, Shared, key, master, restore, unix_secs};
use crate::dvr::{Clock, LogUpdate, persist};

/// One queued write.
pub(super) enum Job {
    /// A segment, at `{content}/{path}`.
    Segment { content: String, path: String, bytes: Bytes },
    /// A DVR log update of the playlist `{content}/{playlist}`, encoded when written (so that it
    /// marks the segments lost before it).
    Log { content: String, playlist: String, update: LogUpdate, clock: Clock },
    /// A multivariant playlist accepted at `{content}/{path}` (see `master`).
    Master { content: String, path: String, bytes: Bytes },
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Segment { content, path, bytes } => write!(f, "Segment({content}/{path}, {} bytes)", bytes.len()),
            Self::Log { content, playlist, update, .. } => {
                write!(f, "Log({content}/{playlist}, {} entries)", update.entries.len())
            }
            Self::Master { content, path, bytes } => write!(f, "Master({content}/{path}, {} bytes)", bytes.len()),
        }
    }
}

/// The newest [`MAX_LOST`] segments the archive could not store, as `{content}/{path}`.
#[derive(Debug, Default)]
pub(super) struct Lost {
    /// Changes whenever the set does.
    pub(super) generation: u64,
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Lost {
    pub(super) fn insert(&mut self, content: &str, path: &str) {
        let k = format!("{content}/{path}");
        if self.set.insert(k.clone()) {
            self.order.push_back(k);
            self.generation = self.generation.wrapping_add(1);
        }
        while self.order.len() > MAX_LOST {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// A later write of the same segment succeeded.
    fn remove(&mut self, content: &str, path: &str) {
        if self.set.is_empty() {
            return;
        }
        let k = format!("{content}/{path}");
        if self.set.remove(&k) {
            self.order.retain(|o| *o != k);
            self.generation = self.generation.wrapping_add(1);
        }
    }

    pub(super) fn paths_of(&self, content: &str) -> HashSet<String> {
        if self.set.is_empty() {
            return HashSet::new();
        }
        let prefix = format!("{content}/");
        self.set.iter().filter_map(|k| k.strip_prefix(&prefix)).map(str::to_owned).collect()
    }

    fn contains(&self, content: &str, path: &str) -> bool {
        !self.set.is_empty() && self.set.contains(&format!("{content}/{path}"))
    }
}

/// Writes queued jobs in submission order until every handle is dropped.
pub(super) async fn write_loop(shared: Arc<Shared>, mut rx: mpsc::Receiver<Job>) {
    while let Some(job) = rx.recv().await {
        let (location, payload, queued_len, is_segment) = match &job {
            Job::Segment { content, path, bytes } => {
                (key(&shared.prefix, content, path), bytes.clone(), bytes.len() as u64, true)
            }
            Job::Log { content, playlist, update, clock } => {
                let encoded = {
                    let lost = shared.lost_mut();
                    persist::encode(update, *clock, |p| lost.contains(content, p))
                };
                let queued = 160 * update.entries.len() as u64 + 128;
                (
                    key(&shared.prefix, content, &persist::object_key(playlist, update)),
                    Bytes::from(encoded),
                    queued,
                    false,
                )
            }
            Job::Master { content, path, bytes } => {
                let location = key(&shared.prefix, content, &master::master_object(path));
                (location, bytes.clone(), bytes.len() as u64, false)
            }
        };
        let res = shared.store.put(&location, PutPayload::from_bytes(payload)).await;
        let left = shared.queued_bytes.fetch_sub(queued_len, Ordering::AcqRel).saturating_sub(queued_len);
        shared.metrics.queued_bytes.set(i64::try_from(left).unwrap_or(i64::MAX));
        let result = match (&res, &job) {
            (Ok(_), Job::Segment { content, path, .. }) => {
                shared.lost_mut().remove(content, path);
                "ok"
            }
            (Ok(_), Job::Log { .. } | Job::Master { .. }) => "ok",
            (Err(e), Job::Segment { content, path, .. }) => {
                shared.lost_mut().insert(content, path);
                tracing::warn!(key = %location, error = %e, "archive write failed");
                "error"
            }
            (Err(e), Job::Log { .. } | Job::Master { .. }) => {
                tracing::warn!(key = %location, error = %e, "archive write of a DVR log object failed");
                "error"
            }
        };
        let family = if is_segment { &shared.metrics.writes } else { &shared.metrics.log_writes };
        family.get_or_create(&[("result", result)]).inc();
        shared.done_one();
    }
}

impl Shared {
    /// Deletes what is older than `retention` as of `now`, except the multivariant playlists of
    /// contents that still have a log object inside it (see `master`).
    pub(super) async fn purge(&self, now: SystemTime, retention: Duration) -> Result<usize, ArchiveError> {
        let Some(cutoff) = now.checked_sub(retention) else { return Ok(0) };
        let cutoff = unix_secs(cutoff);
        let mut listing = self.store.list(Some(&self.prefix));
        let mut expired = Vec::new();
        // Expired multivariant playlists by content, and contents with a log inside the window.
        let mut masters: Vec<(String, Path)> = Vec::new();
        let mut logged: HashSet<String> = HashSet::new();
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            let old = meta.last_modified.timestamp() < cutoff;
            let parts: Vec<String> = meta
                .location
                .prefix_match(&self.prefix)
                .map(|p| p.map(|x| x.as_ref().to_owned()).collect())
                .unwrap_or_default();
            if let Some((content, _)) = master::split_master_key(&parts) {
                if old {
                    masters.push((content.to_owned(), meta.location));
                }
                continue;
            }
            if !old {
                if let Some(((content, _), _)) = restore::split_log_key(&parts) {
                    logged.insert(content.to_owned());
                }
                continue;
            }
            expired.push(meta.location);
        }
        expired.extend(masters.into_iter().filter(|(c, _)| !logged.contains(c)).map(|(_, location)| location));
        let mut deleted = 0;
        for location in expired {
            match self.store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => tracing::warn!(location = %location, error = %e, "archive retention: delete failed"),
            }
        }
        self.metrics.deleted.inc_by(deleted as u64);
        Ok(deleted)
    }
}

/// Purges expired objects every `retention / 20` (between 1 s and 60 s) while the archive lives.
pub(super) async fn retention_loop(shared: Weak<Shared>, retention: Duration) {
    let every = (retention / 20).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        if let Err(e) = shared.purge(SystemTime::now(), retention).await {
            tracing::warn!(error = %e, "archive retention failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_is_bounded_and_forgets_rewritten_segments() {
        let mut lost = Lost::default();
        lost.insert("c", "v/a.ts");
        lost.insert("c", "v/a.ts");
        lost.insert("d", "v/a.ts");
        assert_eq!(lost.paths_of("c"), HashSet::from(["v/a.ts".to_owned()]));
        assert!(lost.contains("d", "v/a.ts") && !lost.contains("c", "v/b.ts"));
        lost.remove("c", "v/a.ts");
        assert!(lost.paths_of("c").is_empty());
        for i in 0..MAX_LOST + 10 {
            lost.insert("c", &format!("v/{i}.ts"));
        }
        assert_eq!(lost.set.len(), MAX_LOST);
        assert!(!lost.contains("c", "v/0.ts") && lost.contains("c", &format!("v/{}.ts", MAX_LOST + 9)));
    }
}
