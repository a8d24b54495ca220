//! What the DVR and VOD views serve besides the live window: the recorded multivariant
//! playlists, and the rendered timeshift playlists, shared by every request until their log
//! changes.
//!
//! A multivariant playlist accepted while DVR is on is recorded for its stream and kept while
//! the stream is (after the encoder deletes it, and, restored from the archive, after a restart),
//! so that `/dvr/{content}/master.m3u8` and `/vod/{content}/master.m3u8` keep answering as long
//! as the media playlists they list do.
//!
//! Rendering a 48 h DVR playlist takes tens of milliseconds; it changes once per target duration
//! while every player polls it. [`Store::dvr_render`] therefore only decides, under the store's
//! lock, which rendering a request gets ([`RenderKey`]) and hands out one shared cell per
//! rendering with, when that cell is still empty, a [`Snapshot`] to fill it from: the caller
//! renders outside the lock, once for all concurrent requests. A slot is replaced when its key
//! changes and dropped by the next sweep once its log changed.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::Store;
use crate::dvr::{RenderKey, Snapshot, View};
use crate::path::ObjectPath;

/// Most multivariant playlists recorded per stream (more are served live only).
pub const MAX_MASTERS_PER_STREAM: usize = 8;

/// A recorded multivariant playlist to persist in the archive ([`Store::take_master_updates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingMaster {
    /// The content id.
    pub content: String,
    /// The playlist's path below the content.
    pub path: String,
    /// The playlist as accepted.
    pub bytes: Bytes,
}

/// The bytes of one rendering, set once by whichever request renders it first (`None`: nothing
/// to list).
pub type RenderCell = Arc<OnceCell<Option<Bytes>>>;

/// A DVR or VOD playlist to serve ([`Store::dvr_render`]).
#[derive(Debug)]
pub struct DvrRender {
    /// Shared by every request for the same rendering.
    pub cell: RenderCell,
    /// What to render into `cell`, when it was empty under the lock.
    pub snapshot: Option<Snapshot>,
}

/// The current rendering of one (media playlist, view).
#[derive(Debug)]
pub(super) struct RenderSlot {
    pub(super) key: RenderKey,
    /// The archive's lost-segment generation the rendering marks gaps for.
    lost_generation: u64,
    cell: RenderCell,
}

impl Store {
    /// Records the multivariant playlist `body` accepted at `path` (with DVR on, and while fewer
    /// than [`MAX_MASTERS_PER_STREAM`] are recorded for its stream).
    pub(super) fn record_master(&mut self, path: &ObjectPath, body: &Bytes) {
        if self.limits.dvr_window_ms == 0 {
            return;
        }
        let Some(stream) = self.streams.get_mut(&path.content) else { return };
        if !stream.masters.contains_key(&path.path) && stream.masters.len() >= MAX_MASTERS_PER_STREAM {
            return;
        }
        stream.masters.insert(path.path.clone(), body.clone());
        if self.limits.archived {
            let pending = PendingMaster { content: path.content.clone(), path: path.path.clone(), bytes: body.clone() };
            self.master_updates.push(pending);
        }
    }

    /// The multivariant playlists recorded since the last call (only with an archive): the caller
    /// persists them.
    pub fn take_master_updates(&mut self) -> Vec<PendingMaster> {
        std::mem::take(&mut self.master_updates)
    }

    /// The recorded multivariant playlist at `path`, live or not.
    pub fn recorded_master(&self, path: &ObjectPath) -> Option<Bytes> {
        self.streams.get(&path.content)?.masters.get(&path.path).cloned()
    }

    /// Installs `bytes`, a multivariant playlist read back from the archive, for `path` when its
    /// stream is held (restore the logs first) and has room; returns whether it was.
    pub fn restore_master(&mut self, path: &ObjectPath, bytes: Bytes) -> bool {
        let Some(stream) = self.streams.get_mut(&path.content) else { return false };
        let fits = stream.masters.contains_key(&path.path) || stream.masters.len() < MAX_MASTERS_PER_STREAM;
        if fits {
            stream.masters.entry(path.path.clone()).or_insert(bytes);
        }
        fits
    }

    /// The DVR or VOD playlist of the media playlist at `path` as [`Store::dvr_playlist`] renders
    /// it, to render outside the lock: `None` when there is nothing to serve. `lost_generation`
    /// is the archive's [`crate::archive::Archive::lost_generation`] (0 without an archive).
    pub fn dvr_render(
        &mut self,
        now_ms: u64,
        path: &ObjectPath,
        view: View,
        lost_generation: u64,
    ) -> Option<DvrRender> {
        let (archived, window_ms) = (self.limits.archived, self.limits.dvr_window_ms);
        let stream = self.streams.get_mut(&path.content)?;
        let log = stream.dvr.get(&path.path)?;
        let start = if archived {
            log.start_within(now_ms, window_ms)
        } else {
            let objects = &stream.objects;
            log.start_served(|p| objects.get(p).is_some_and(|e| e.live(now_ms)))
        };
        let key = log.prepare(now_ms, view, start)?;
        let slot_id = (path.path.clone(), view);
        let cell = match stream.renders.get(&slot_id) {
            Some(slot) if slot.key == key && slot.lost_generation == lost_generation => Arc::clone(&slot.cell),
            _ => {
                let cell = RenderCell::default();
                stream.renders.insert(slot_id, RenderSlot { key, lost_generation, cell: Arc::clone(&cell) });
                cell
            }
        };
        let snapshot = (!cell.initialized()).then(|| log.snapshot(&key));
        Some(DvrRender { cell, snapshot })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Limits;

    fn limits(archived: bool) -> Limits {
        Limits { max_streams: 2, max_objects_per_stream: 64, max_total_bytes: 1 << 20, dvr_window_ms: 60_000, archived }
    }

    fn p(path: &str) -> ObjectPath {
        ObjectPath::new("live", path).unwrap()
    }

    fn ts() -> Bytes {
        Bytes::from_static(b"media")
    }

    fn media(first: u64, n: u64) -> Bytes {
        let mut s = format!("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
        for i in first..first + n {
            s.push_str(&format!("#EXTINF:2.000000,\nseg_{i}.ts\n"));
        }
        Bytes::from(s)
    }

    const MASTER: &str = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nv/index.m3u8\n";

    #[test]
    fn renders_once_per_change_and_snapshots_outside_the_lock() {
        let mut s = Store::new(limits(false));
        for i in 0..3 {
            s.put(i * 2000, &p(&format!("v/seg_{i}.ts")), ts()).unwrap();
        }
        s.put(4000, &p("v/index.m3u8"), media(0, 3)).unwrap();
        let playlist = p("v/index.m3u8");
        let first = s.dvr_render(5000, &playlist, View::Dvr, 0).unwrap();
        let snapshot = first.snapshot.expect("nothing rendered yet");
        // The log changes while the snapshot is being rendered.
        s.put(5000, &p("v/seg_3.ts"), ts()).unwrap();
        s.put(5000, &p("v/index.m3u8"), media(1, 3)).unwrap();
        let text = snapshot.render(|_| false).unwrap();
        assert!(text.contains("seg_2.ts") && !text.contains("seg_3.ts"), "{text}");
        let direct = s.dvr_playlist(5000, &playlist, View::Dvr, |_| false).unwrap();

        let second = s.dvr_render(5000, &playlist, View::Dvr, 0).unwrap();
        assert!(!Arc::ptr_eq(&first.cell, &second.cell), "a new rendering after the change");
        let rendered = second.snapshot.unwrap().render(|_| false).map(Bytes::from);
        assert_eq!(rendered.as_ref(), Some(&direct));
        second.cell.set(rendered).unwrap();
        let third = s.dvr_render(5000, &playlist, View::Dvr, 0).unwrap();
        assert!(Arc::ptr_eq(&second.cell, &third.cell) && third.snapshot.is_none(), "served from the cell");
        let other_lost = s.dvr_render(5000, &playlist, View::Dvr, 1).unwrap();
        assert!(other_lost.snapshot.is_some(), "the lost segments changed");
        assert!(s.dvr_render(5000, &playlist, View::Vod, 0).is_none(), "no VOD while live");
        assert!(s.dvr_render(5000, &p("w/index.m3u8"), View::Dvr, 0).is_none());
    }

    #[test]
    fn masters_are_recorded_kept_after_a_delete_and_bounded() {
        let mut s = Store::new(limits(true));
        s.put(0, &p("v/seg_0.ts"), ts()).unwrap();
        s.put(0, &p("v/index.m3u8"), media(0, 1)).unwrap();
        s.put(0, &p("master.m3u8"), Bytes::from_static(MASTER.as_bytes())).unwrap();
        let pending = s.take_master_updates();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].path.as_str(), pending[0].bytes.as_ref()), ("master.m3u8", MASTER.as_bytes()));
        s.delete(1000, &p("master.m3u8")).unwrap();
        assert!(s.get(1000, &p("master.m3u8")).is_none());
        assert_eq!(s.recorded_master(&p("master.m3u8")).as_deref(), Some(MASTER.as_bytes()));
        for i in 0..MAX_MASTERS_PER_STREAM + 2 {
            s.put(1000, &p(&format!("m{i}.m3u8")), Bytes::from_static(MASTER.as_bytes())).unwrap();
        }
        assert_eq!(s.take_master_updates().len(), MAX_MASTERS_PER_STREAM - 1);
        assert!(!s.restore_master(&p("other.m3u8"), Bytes::new()), "full");
        assert!(!s.restore_master(&ObjectPath::new("gone", "master.m3u8").unwrap(), Bytes::new()));
        // The stream goes (and its masters with it) once its log left the window.
        for i in 0..MAX_MASTERS_PER_STREAM + 2 {
            s.delete(2000, &p(&format!("m{i}.m3u8"))).ok();
        }
        s.delete(2000, &p("v/index.m3u8")).unwrap();
        s.sweep(200_000);
        assert!(s.recorded_master(&p("master.m3u8")).is_none());
    }
}
