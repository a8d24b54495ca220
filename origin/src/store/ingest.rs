//! Storing and deleting objects: playlist validation and padding, segment immutability, and the
//! listing bookkeeping that starts and stops grace periods.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::stream::{Entry, Stream};
use super::{ORPHAN_TTL_MS, PutOutcome, Store, StoreError};
use crate::dvr::DvrLog;
use crate::path::ObjectPath;
use crate::playlist::{self, Accepted};
use crate::window;

impl Store {
    /// Stores `body` at `path` (validating playlists first).
    ///
    /// # Errors
    /// [`StoreError`]; on error nothing changed except the expiry sweep.
    pub fn put(&mut self, now_ms: u64, path: &ObjectPath, body: Bytes) -> Result<PutOutcome, StoreError> {
        self.sweep(now_ms);
        if !self.streams.contains_key(&path.content) && self.streams.len() >= self.limits.max_streams {
            return Err(StoreError::TooManyStreams);
        }
        let empty = Stream::default();
        let stream = self.streams.get(&path.content).unwrap_or(&empty);
        let existing = stream.objects.get(&path.path);
        let mut body = body;
        let accepted = if path.kind.is_playlist() {
            let previous = existing.and_then(|e| e.accepted.as_ref());
            let stored = |p: &str| stream.objects.get(p).is_some_and(|e| !e.deleted && e.live(now_ms));
            let accepted = playlist::validate(path, &body, previous, stored)?;
            match (previous, &accepted) {
                (Some(Accepted::Media(prev)), Accepted::Media(new)) => {
                    match window::pad(prev, new, &body, |p| stream.served(now_ms, p)) {
                        Some((padded, republished)) => {
                            body = republished;
                            Some(Accepted::Media(padded))
                        }
                        None => Some(accepted),
                    }
                }
                _ => Some(accepted),
            }
        } else {
            if existing.is_some_and(|e| e.deleted || e.first_listed_ms.is_some() || stream.is_listed(&path.path)) {
                return Err(StoreError::Immutable(path.path.clone()));
            }
            None
        };
        // Objects the new version relies on must survive eviction.
        let mut keep: Vec<&str> = vec![path.path.as_str()];
        if let Some(Accepted::Media(m)) = &accepted {
            keep.extend(m.segments.iter().chain(&m.maps).map(String::as_str));
        }
        let keep: Vec<String> = keep.into_iter().map(str::to_owned).collect();
        let old_len = existing.map_or(0, |e| e.bytes.len() as u64);
        let is_new = existing.is_none();
        let continues = matches!(existing.and_then(|e| e.accepted.as_ref()), Some(Accepted::Media(_)));
        self.make_room(path, is_new, body.len() as u64, old_len, &keep)?;

        let stream = self.streams.entry(path.content.clone()).or_default();
        let grace_before = stream.grace_ms();
        let expires_at_ms = match accepted {
            Some(_) => None,
            None => Some(now_ms.saturating_add(stream.grace_ms().max(ORPHAN_TTL_MS))),
        };
        let sha256 = (!path.kind.is_playlist()).then(|| Sha256::digest(&body).into());
        let dvr_window_ms = self.limits.dvr_window_ms;
        let mut log_update = None;
        if let (Some(Accepted::Media(m)), true) = (&accepted, dvr_window_ms > 0) {
            log_update = stream.dvr.entry(path.path.clone()).or_default().record(now_ms, m, dvr_window_ms, continues);
        }
        let master = matches!(accepted, Some(Accepted::Master)).then(|| body.clone());
        let new_listed: Vec<String> = match &accepted {
            Some(Accepted::Media(m)) => m.segments.iter().chain(&m.maps).cloned().collect(),
            _ => Vec::new(),
        };
        self.total_bytes = self.total_bytes.saturating_sub(old_len).saturating_add(body.len() as u64);
        let entry = Entry {
            bytes: body,
            kind: path.kind,
            accepted,
            deleted: false,
            expires_at_ms,
            sha256,
            first_listed_ms: None,
        };
        let old = stream.objects.insert(path.path.clone(), entry);
        for seg in &new_listed {
            if let Some(e) = stream.objects.get_mut(seg) {
                e.expires_at_ms = None;
                e.first_listed_ms.get_or_insert(now_ms);
            }
        }
        let released_until = now_ms.saturating_add(grace_before.max(stream.grace_ms()));
        stream.release(old.and_then(|o| o.accepted), released_until, self.limits.memory_dvr_ms());
        if let Some(master) = master {
            self.record_master(path, &master);
        }
        self.push_log_update(path, log_update);
        Ok(if is_new { PutOutcome::Created } else { PutOutcome::Replaced })
    }

    /// Deletes `path`: a playlist is dropped at once (its segments start their grace period), a
    /// segment keeps being served for the grace period but can no longer be listed.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when nothing is stored there.
    pub fn delete(&mut self, now_ms: u64, path: &ObjectPath) -> Result<(), StoreError> {
        self.sweep(now_ms);
        let dvr_window_ms = self.limits.memory_dvr_ms();
        let archived = self.limits.archived;
        let stream = self.streams.get_mut(&path.content).ok_or(StoreError::NotFound)?;
        let grace = stream.grace_ms();
        let dvr_until = stream.dvr_expiry(&path.path, dvr_window_ms);
        let entry = stream.objects.get_mut(&path.path).ok_or(StoreError::NotFound)?;
        let ended = if entry.kind.is_playlist() || (grace == 0 && dvr_until.is_none()) {
            let old = stream.objects.remove(&path.path);
            self.total_bytes = self.total_bytes.saturating_sub(old.as_ref().map_or(0, |o| o.bytes.len() as u64));
            let ended = stream.dvr.get_mut(&path.path).and_then(DvrLog::end);
            stream.release(old.and_then(|o| o.accepted), now_ms.saturating_add(grace), dvr_window_ms);
            ended
        } else {
            entry.deleted = true;
            let expires = now_ms.saturating_add(grace);
            let expires = dvr_until.map_or(expires, |d| d.max(expires));
            entry.expires_at_ms = Some(entry.expires_at_ms.map_or(expires, |t| t.min(expires)));
            None
        };
        if stream.is_idle(archived) {
            self.streams.remove(&path.content);
        }
        self.push_log_update(path, ended);
        Ok(())
    }
}
