//! `POST /v1/peers`: candidates from the peer's swarm, closest first, with the introduction that
//! lets signalling relay the peer's offers to them.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use protocol::SwarmId;
use protocol::api::{MAX_REPORTED_PEERS, MAX_REQUEST_BYTES, PeersRequestWithReport, PeersResponse};
use protocol::intro::{self, Introduction};
use service::JsonBody;

use super::{Client, locate, peer_claims};
use crate::swarm::{History, Profile};
use crate::{ApiError, AppState};

pub(crate) async fn peers(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PeersRequestWithReport, MAX_REQUEST_BYTES>,
) -> Result<Json<PeersResponse>, ApiError> {
    let PeersRequestWithReport { request: req, report } = body;
    let claims = peer_claims(&state, &req.token, &req.peer_id)?;
    if report.connected.len() > MAX_REPORTED_PEERS || report.failed.len() > MAX_REPORTED_PEERS {
        return Err(ApiError::BadRequest(format!("connected and failed list at most {MAX_REPORTED_PEERS} peers")));
    }
    let rules = state.rules_of(&claims.customer, &claims.content);
    let config = &state.inner.config;
    let max = req.max.min(config.max_peers_per_response).min(rules.max_peers) as usize;
    let locality = locate(&state, client, &headers);
    let profile = Profile {
        locality,
        uplink_kbps: report.uplink_kbps.unwrap_or(0),
        cellular: report.cellular,
        upload_allowed: report.upload_allowed,
    };
    let history = History { connected: &report.connected, failed: &report.failed };
    let swarm =
        SwarmId { customer: claims.customer.clone(), content: claims.content.clone(), rendition: req.rendition };
    let now = Instant::now();
    let (peers, swarm_size) = state
        .with_registry(|registry| {
            registry.track(now, &req.peer_id, swarm, locality, Some(profile))?;
            let size = registry.swarm_size(now, &req.peer_id);
            Ok((registry.peers_for(now, &req.peer_id, max, &rules, history), size))
        })
        .map_err(|_: crate::swarm::RegistryFull| ApiError::Full)?;
    let intro = if peers.is_empty() {
        String::new()
    } else {
        let introduction = Introduction {
            customer: claims.customer,
            content: claims.content,
            from: req.peer_id,
            peers: peers.clone(),
            expires_at_s: service::unix_now_s().saturating_add(config.offer_ttl_s),
        };
        intro::sign(config.secret.as_bytes(), &introduction)
    };
    state.inner.peers_requests.inc();
    let swarm_peers = Some(u32::try_from(swarm_size).unwrap_or(u32::MAX));
    Ok(Json(PeersResponse { peers, intro, swarm_peers }))
}
