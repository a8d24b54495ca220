//! One module per endpoint, and the token check they share.

pub(crate) mod init;
pub(crate) mod peers;
pub(crate) mod track;

use protocol::PeerId;
use protocol::token::{self, Claims};

use crate::{ApiError, AppState};

/// Verifies `token` and that it was issued to `peer` (401 when invalid, 403 for another peer or
/// a token without a peerId).
fn peer_claims(state: &AppState, token: &str, peer: &PeerId) -> Result<Claims, ApiError> {
    let claims = token::verify(state.inner.config.secret.as_bytes(), token, service::unix_now_s())?;
    if claims.peer_id.as_ref() != Some(peer) {
        return Err(ApiError::Forbidden);
    }
    Ok(claims)
}
