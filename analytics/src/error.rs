//! The one error type of every route, rendered as a JSON [`ErrorBody`], and the bounded JSON
//! body extractor that produces it.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use protocol::api::{ErrorBody, MAX_REQUEST_BYTES};
use serde::de::DeserializeOwned;

/// Why a request failed; each variant maps to one HTTP status and one machine-readable reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing or malformed parameters or body (400 `bad_request`); the caller must fix its request.
    #[error("{0}")]
    BadRequest(String),
    /// Body above [`MAX_REQUEST_BYTES`] (413 `too_large`).
    #[error("request body is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// The content table is full of contents with live sessions (503 `full`); retry later.
    #[error("too many contents")]
    Full,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Full => (StatusCode::SERVICE_UNAVAILABLE, "full"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        tracing::debug!(%status, error = %self, "request refused");
        let body = ErrorBody { error: code.to_owned(), message: self.to_string() };
        (status, Json(body)).into_response()
    }
}

/// A JSON request body of at most [`MAX_REQUEST_BYTES`], whatever its `Content-Type` (so that
/// `navigator.sendBeacon` and simple CORS requests work). Oversize → 413, malformed → 400.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(ApiError::TooLarge);
        }
        let value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::BadRequest(format!("malformed JSON body: {e}")))?;
        Ok(Self(value))
    }
}
