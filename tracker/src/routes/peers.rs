//! `POST /v1/peers`: candidates from the peer's swarm, most recently active first.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use protocol::SwarmId;
use protocol::api::{MAX_REQUEST_BYTES, PeersRequest, PeersResponse};
use service::JsonBody;

use super::peer_claims;
use crate::{ApiError, AppState};

pub(crate) async fn peers(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<PeersRequest, MAX_REQUEST_BYTES>,
) -> Result<Json<PeersResponse>, ApiError> {
    let claims = peer_claims(&state, &req.token, &req.peer_id)?;
    let swarm = SwarmId { customer: claims.customer, content: claims.content, rendition: req.rendition };
    let max = req.max.min(state.inner.config.max_peers_per_response) as usize;
    let now = Instant::now();
    let peers = state
        .with_registry(|registry| {
            registry.track(now, &req.peer_id, swarm)?;
            Ok(registry.peers_for(now, &req.peer_id, max))
        })
        .map_err(|_: crate::swarm::RegistryFull| ApiError::Full)?;
    state.inner.peers_requests.inc();
    Ok(Json(PeersResponse { peers }))
}
