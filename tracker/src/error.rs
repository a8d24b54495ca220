//! The one error type of every route, rendered as a JSON [`protocol::api::ErrorBody`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::token::TokenError;

/// Why a request failed; each variant maps to one HTTP status and one machine-readable reason.
///
/// Bodies that are too large or malformed are refused before a handler runs, by
/// [`service::JsonBody`] (413 `too_large`, 400 `bad_request`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Unsupported protocol version (400 `bad_request`); upgrade the agent.
    #[error("{0}")]
    BadRequest(String),
    /// The token is malformed, forged or signed with another secret (401 `bad_token`).
    #[error("invalid token")]
    BadToken,
    /// The token expired (401 `token_expired`); get a new one from the distributor and `init` again.
    #[error("token expired")]
    TokenExpired,
    /// The token is valid but not for this peer or content (403 `forbidden`).
    #[error("token does not grant this peer or content")]
    Forbidden,
    /// The tracker holds its maximum number of peers (503 `full`); play CDN-only and retry later.
    #[error("tracker is full")]
    Full,
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => Self::TokenExpired,
            _ => Self::BadToken,
        }
    }
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::BadToken => (StatusCode::UNAUTHORIZED, "bad_token"),
            Self::TokenExpired => (StatusCode::UNAUTHORIZED, "token_expired"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Full => (StatusCode::SERVICE_UNAVAILABLE, "full"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        service::error_response(status, code, &self)
    }
}
