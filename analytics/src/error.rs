//! The one error type of every route, rendered as a JSON [`protocol::api::ErrorBody`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request failed; each variant maps to one HTTP status and one machine-readable reason.
///
/// Bodies that are too large or malformed are refused before a handler runs, by
/// [`service::JsonBody`] (413 `too_large`, 400 `bad_request`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing or malformed query parameters, or ids out of bounds (400 `bad_request`); the
    /// caller must fix its request.
    #[error("{0}")]
    BadRequest(String),
    /// The content table is full of contents with live sessions (503 `full`); retry later.
    #[error("too many contents")]
    Full,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
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
