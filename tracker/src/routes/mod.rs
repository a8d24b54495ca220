//! One module per endpoint, and the token and address checks they share.

pub(crate) mod init;
pub(crate) mod peers;
pub(crate) mod renew;
pub(crate) mod track;

use std::net::{IpAddr, SocketAddr};

use axum::Extension;
use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use protocol::PeerId;
use protocol::token::{self, Claims};

use crate::locality::Locality;
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

/// The TCP peer's address as axum's connect info, when the server was started with it.
pub(crate) type Client = Option<Extension<ConnectInfo<SocketAddr>>>;

/// Where the caller is: from the first `X-Forwarded-For` address when the config trusts it,
/// else from the TCP peer; unknown (all zero) without either.
fn locate(state: &AppState, client: Client, headers: &HeaderMap) -> Locality {
    let forwarded = || {
        let value = headers.get("x-forwarded-for")?.to_str().ok()?;
        value.split(',').next()?.trim().parse::<IpAddr>().ok()
    };
    let ip = if state.inner.config.trust_forwarded_for { forwarded() } else { None };
    match ip.or_else(|| client.map(|Extension(ConnectInfo(addr))| addr.ip())) {
        Some(ip) => state.inner.locator.locate(ip),
        None => Locality::default(),
    }
}
