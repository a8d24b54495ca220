//! The one error type of every route, rendered as a JSON [`protocol::api::ErrorBody`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use service::BodyRejection;

/// Why a request failed; each variant maps to one HTTP status and one machine-readable reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing or malformed parameters or settings (400 `bad_request`); the caller must fix its request.
    #[error("{0}")]
    BadRequest(String),
    /// The body is above [`protocol::api::MAX_REQUEST_BYTES`] (413 `too_large`) or not valid JSON
    /// of the expected shape (400 `bad_request`).
    #[error(transparent)]
    Body(#[from] BodyRejection),
    /// Missing or wrong admin token (401 `unauthorized`).
    #[error("missing or wrong admin token")]
    Unauthorized,
    /// The route or the item does not exist, or the admin API is disabled (404 `not_found`).
    #[error("not found")]
    NotFound,
    /// The content table is full (503 `full`); retry after removing contents or raise the bound.
    #[error("too many contents")]
    Full,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Body(rejection) => (rejection.status(), rejection.code()),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
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

#[cfg(test)]
mod tests {
    use protocol::api::{ErrorBody, MAX_REQUEST_BYTES};

    use super::*;

    /// The bytes of `error`'s response body.
    async fn body_of(error: ApiError) -> Vec<u8> {
        axum::body::to_bytes(error.into_response().into_body(), usize::MAX).await.unwrap().to_vec()
    }

    /// `service` renders errors with its own struct; it must serialize exactly like the wire type.
    #[tokio::test]
    async fn error_answers_serialize_exactly_like_the_protocol_error_body() {
        let expected = |error: &str, message: String| serde_json::to_vec(&ErrorBody { error: error.into(), message });
        let too_large = ApiError::Body(BodyRejection::TooLarge { limit_bytes: MAX_REQUEST_BYTES });
        let too_large_message = format!("request body is larger than {MAX_REQUEST_BYTES} bytes");
        assert_eq!(body_of(too_large).await, expected("too_large", too_large_message).unwrap());
        let unauthorized = expected("unauthorized", "missing or wrong admin token".into()).unwrap();
        assert_eq!(body_of(ApiError::Unauthorized).await, unauthorized);
        let quoted = ApiError::BadRequest("a \"quoted\" é\n".into());
        assert_eq!(body_of(quoted).await, expected("bad_request", "a \"quoted\" é\n".into()).unwrap());
    }
}
