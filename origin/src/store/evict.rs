//! Expiry sweeps and capacity eviction (soonest-expiring first, never what a new playlist needs).

use super::{Limits, Store, StoreError};
use crate::path::ObjectPath;

impl Store {
    /// Drops every object whose grace period ended at or before `now_ms`, and empty streams
    /// (with an archive, also what left the timeshift window from the logs).
    pub fn sweep(&mut self, now_ms: u64) {
        let mut freed = 0_u64;
        let Limits { archived, dvr_window_ms, .. } = self.limits;
        self.streams.retain(|_, s| {
            if archived {
                s.dvr.retain(|_, log| {
                    log.trim(now_ms, dvr_window_ms);
                    !log.is_empty()
                });
            }
            // Renderings of logs that changed since are never served again.
            let logs = &s.dvr;
            s.renders.retain(|(path, _), slot| logs.get(path).is_some_and(|l| l.version() == slot.key.version));
            s.objects.retain(|_, e| {
                let keep = e.live(now_ms);
                if !keep {
                    freed += e.bytes.len() as u64;
                }
                keep
            });
            !s.is_idle(archived)
        });
        self.total_bytes = self.total_bytes.saturating_sub(freed);
    }

    /// Evicts soonest-expiring objects (never those in `keep` of `path.content`) until one more
    /// object of `new_len` bytes (replacing `old_len`) fits.
    pub(super) fn make_room(
        &mut self,
        path: &ObjectPath,
        is_new: bool,
        new_len: u64,
        old_len: u64,
        keep: &[String],
    ) -> Result<(), StoreError> {
        let count = |s: &Self| s.streams.get(&path.content).map_or(0, |st| st.objects.len());
        while is_new && count(self) >= self.limits.max_objects_per_stream {
            if !self.evict_one(Some(&path.content), &path.content, keep) {
                return Err(StoreError::StreamFull);
            }
        }
        while self.total_bytes.saturating_sub(old_len).saturating_add(new_len) > self.limits.max_total_bytes {
            if !self.evict_one(None, &path.content, keep) {
                return Err(StoreError::StoreFull);
            }
        }
        Ok(())
    }

    /// Evicts the expiring object with the earliest expiry, within `only` if given. Returns false
    /// when there is none.
    fn evict_one(&mut self, only: Option<&str>, content: &str, keep: &[String]) -> bool {
        let victim = self
            .streams
            .iter()
            .filter(|(c, _)| only.is_none_or(|o| o == c.as_str()))
            .flat_map(|(c, s)| s.objects.iter().map(move |(p, e)| (c, p, e)))
            .filter(|(c, p, _)| !(c.as_str() == content && keep.contains(p)))
            .filter_map(|(c, p, e)| e.expires_at_ms.map(|t| (t, c.clone(), p.clone())))
            .min();
        let Some((_, c, p)) = victim else { return false };
        if let Some(s) = self.streams.get_mut(&c) {
            if let Some(e) = s.objects.remove(&p) {
                self.total_bytes = self.total_bytes.saturating_sub(e.bytes.len() as u64);
            }
            if s.is_idle(self.limits.archived) {
                self.streams.remove(&c);
            }
        }
        true
    }
}
