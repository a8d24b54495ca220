//! `POST /v1/renew`: a session gets a fresh token for the peerId it already has.
//!
//! Tokens live `token_ttl_s` (an hour by default) while a viewer may watch for many hours; peers
//! know each other by peerId, so a session keeps its peerId and only its token changes. A token
//! is renewable until [`RENEW_GRACE_S`] after its expiry, which covers an agent whose timers were
//! throttled (a background tab) when renewal was due. Later, the agent must `init` again.

use axum::Json;
use axum::extract::State;
use protocol::api::{MAX_REQUEST_BYTES, RenewRequest, RenewResponse};
use protocol::token::{self, Claims};
use service::JsonBody;

use crate::{ApiError, AppState};

/// How long after its expiry a token can still be renewed, in s.
pub(crate) const RENEW_GRACE_S: u64 = 600;

pub(crate) async fn renew(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<RenewRequest, MAX_REQUEST_BYTES>,
) -> Result<Json<RenewResponse>, ApiError> {
    let config = &state.inner.config;
    let now_s = service::unix_now_s();
    let claims = token::verify_for_renewal(config.secret.as_bytes(), &req.token, now_s, RENEW_GRACE_S)?;
    if claims.peer_id.as_ref() != Some(&req.peer_id) {
        // A distributor token (no peerId) or another peer's: renewal never mints an identity.
        return Err(ApiError::Forbidden);
    }
    state.inner.renewals.inc();
    let claims = Claims { expires_at_s: now_s.saturating_add(config.token_ttl_s), ..claims };
    Ok(Json(RenewResponse { token: token::sign(config.secret.as_bytes(), &claims), token_ttl_s: config.token_ttl_s }))
}
