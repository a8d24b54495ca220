//! `POST /v1/init`: a new session gets its peerId and a token bound to it.

use axum::Json;
use axum::extract::State;
use protocol::api::{InitRequest, InitResponse, MAX_REQUEST_BYTES};
use protocol::token::{self, Claims};
use protocol::{PROTOCOL_VERSION, PeerId};
use rand::Rng;
use rand::distr::Alphanumeric;
use service::JsonBody;

use crate::{ApiError, AppState};

/// Length of an issued peerId, in characters (62^16 ≈ 4.7e28 values, so collisions are negligible).
const PEER_ID_LEN: usize = 16;

pub(crate) async fn init(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<InitRequest, MAX_REQUEST_BYTES>,
) -> Result<Json<InitResponse>, ApiError> {
    if req.protocol_version != PROTOCOL_VERSION {
        return Err(ApiError::BadRequest(format!(
            "protocol version {} is not supported; this tracker speaks {PROTOCOL_VERSION}",
            req.protocol_version
        )));
    }
    let config = &state.inner.config;
    let now_s = service::unix_now_s();
    let claims = token::verify(config.secret.as_bytes(), &req.token, now_s)?;
    if claims.customer != req.customer || claims.content != req.content {
        return Err(ApiError::Forbidden);
    }
    if state.with_registry(|registry| registry.is_full()) {
        return Err(ApiError::Full);
    }
    if let Some(rules) = claims.rules {
        state.set_rules(&claims.customer, &claims.content, rules);
    }
    let peer_id = new_peer_id();
    let claims = Claims {
        customer: claims.customer,
        content: claims.content,
        peer_id: Some(peer_id.clone()),
        expires_at_s: now_s.saturating_add(config.token_ttl_s),
        rules: None,
    };
    let token = token::sign(config.secret.as_bytes(), &claims);
    state.inner.inits.inc();
    Ok(Json(InitResponse {
        peer_id,
        token,
        protocol_version: PROTOCOL_VERSION,
        peers_interval_ms: config.peers_interval_ms,
        token_ttl_s: config.token_ttl_s,
    }))
}

fn new_peer_id() -> PeerId {
    let id: String = rand::rng().sample_iter(&Alphanumeric).take(PEER_ID_LEN).map(char::from).collect();
    // 16 ASCII alphanumerics are always a valid peerId (1-32 of [A-Za-z0-9_-]).
    id.parse().expect("16 alphanumeric characters form a valid peerId")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_are_16_chars_and_distinct() {
        let a = new_peer_id();
        assert_eq!(a.as_str().len(), PEER_ID_LEN);
        assert_ne!(a, new_peer_id());
    }
}
