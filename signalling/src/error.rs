//! Refusals before the websocket upgrade, rendered as a JSON [`protocol::api::ErrorBody`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::token::TokenError;

/// Why an upgrade was refused; each variant maps to one HTTP status and one machine-readable reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing `peer_id`/`token`, a malformed or forged token, or a token for another peerId
    /// (401 `bad_token`).
    #[error("invalid token for this peerId")]
    BadToken,
    /// The token expired (401 `token_expired`); `init` at the tracker again.
    #[error("token expired")]
    TokenExpired,
    /// The server holds its maximum number of connections (503 `full`); retry later.
    #[error("too many connections")]
    Full,
    /// The client's address holds its maximum number of connections (429 `too_many_from_address`).
    #[error("too many connections from this address")]
    PerIpCap,
}

impl ApiError {
    /// The machine-readable reason, also used as the metric label.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::BadToken => "bad_token",
            Self::TokenExpired => "token_expired",
            Self::Full => "full",
            Self::PerIpCap => "too_many_from_address",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadToken | Self::TokenExpired => StatusCode::UNAUTHORIZED,
            Self::Full => StatusCode::SERVICE_UNAVAILABLE,
            Self::PerIpCap => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => Self::TokenExpired,
            _ => Self::BadToken,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        service::error_response(self.status(), self.code(), &self)
    }
}
