//! The playlists of `/dvr/…` and `/vod/…`: a media playlist's timeshift or VOD rendering, and
//! the multivariant playlist as recorded (live, deleted since, or restored after a restart).
//!
//! A rendering is decided under the store's lock and made outside it, once for every request
//! that asks for it until its log changes ([`crate::store::Store::dvr_render`]); a large one is
//! made on the blocking pool so that it does not hold up a runtime worker.

use bytes::Bytes;

use crate::Origin;
use crate::dvr::{Snapshot, View};
use crate::path::{Kind, ObjectPath};
use crate::store::{DvrRender, Object};

/// Largest rendering (in segments) made on the runtime worker itself; larger ones go to the
/// blocking pool (about 1 ms of work at this size).
const INLINE_RENDER_MAX: usize = 2048;

/// The playlist at `path` as the `view` prefix serves it, `None` when there is none.
pub(crate) async fn playlist(origin: &Origin, path: &ObjectPath, view: View) -> Option<Object> {
    let archive = origin.archive();
    if origin.dvr_render_in_lock() {
        let lost = archive.map(|a| a.lost_paths(&path.content)).unwrap_or_default();
        return origin.with_store_read(|store, now| {
            if store.has_dvr_log(path) {
                store.dvr_playlist(now, path, view, |p| lost.contains(p)).map(as_playlist)
            } else {
                store.get(now, path).or_else(|| store.recorded_master(path).map(as_playlist))
            }
        });
    }
    let generation = archive.map_or(0, crate::archive::Archive::lost_generation);
    let decided = origin.with_store(|store, now| {
        if store.has_dvr_log(path) {
            Ok(store.dvr_render(now, path, view, generation))
        } else {
            // The multivariant playlist (or another playlist without a log), as under /live/,
            // or as recorded once the live one is gone.
            Err(store.get(now, path).or_else(|| store.recorded_master(path).map(as_playlist)))
        }
    });
    let DvrRender { cell, snapshot } = match decided {
        Ok(render) => render?,
        Err(object) => return object,
    };
    let bytes = match snapshot {
        None => cell.get().cloned().flatten(),
        Some(snapshot) => {
            let init = async move {
                origin.metrics().dvr_renders.inc();
                let lost = archive.map(|a| a.lost_paths(&path.content)).unwrap_or_default();
                render(snapshot, move |p| lost.contains(p)).await
            };
            cell.get_or_init(|| init).await.clone()
        }
    };
    bytes.map(as_playlist)
}

/// Renders `snapshot`, on the blocking pool when it is large.
async fn render(snapshot: Snapshot, is_lost: impl Fn(&str) -> bool + Send + 'static) -> Option<Bytes> {
    if snapshot.len() <= INLINE_RENDER_MAX {
        return snapshot.render(is_lost).map(Bytes::from);
    }
    match tokio::task::spawn_blocking(move || snapshot.render(is_lost).map(Bytes::from)).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(error = %e, "DVR playlist rendering failed");
            None
        }
    }
}

fn as_playlist(bytes: Bytes) -> Object {
    Object { bytes, kind: Kind::Playlist, expires_at_ms: None }
}
