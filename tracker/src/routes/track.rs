//! `POST /v1/track`: the peer now plays this rendition, so it belongs to that swarm.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use protocol::SwarmId;
use protocol::api::{MAX_REQUEST_BYTES, TrackRequest};
use service::JsonBody;

use super::{Client, locate, peer_claims};
use crate::{ApiError, AppState};

pub(crate) async fn track(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    JsonBody(req): JsonBody<TrackRequest, MAX_REQUEST_BYTES>,
) -> Result<StatusCode, ApiError> {
    let claims = peer_claims(&state, &req.token, &req.peer_id)?;
    let swarm = SwarmId { customer: claims.customer, content: claims.content, rendition: req.rendition };
    let locality = locate(&state, client, &headers);
    let now = Instant::now();
    state
        .with_registry(|registry| registry.track(now, &req.peer_id, swarm, locality, None))
        .map_err(|_| ApiError::Full)?;
    state.inner.track_requests.inc();
    Ok(StatusCode::NO_CONTENT)
}
