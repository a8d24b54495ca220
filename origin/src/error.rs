//! The one error type of the origin's routes, rendered as a JSON [`ErrorBody`].

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use protocol::api::ErrorBody;

use crate::path::PathError;
use crate::store::StoreError;

/// Why a request failed; each variant maps to one HTTP status and one machine-readable reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No `Authorization: Bearer` header on an ingest request (401 `unauthorized`).
    #[error("missing Authorization: Bearer token")]
    Unauthorized,
    /// A bearer token that is not the ingest token (403 `forbidden`).
    #[error("wrong ingest token")]
    Forbidden,
    /// The URL path is not a valid object path (400 `bad_path`).
    #[error(transparent)]
    BadPath(#[from] PathError),
    /// The body could not be read (400 `bad_body`).
    #[error("could not read the request body: {0}")]
    BadBody(String),
    /// The body is larger than the configured maximum, in bytes (413 `too_large`).
    #[error("object larger than {0} bytes")]
    TooLarge(u64),
    /// The store refused the object: 422 for playlists, 409 for a published segment, 404 for a
    /// missing object, 507 when full.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such object (404 `not_found`).
    #[error("not found")]
    NotFound,
    /// The `Range` starts past the end of the object of this length, in bytes (416).
    #[error("range not satisfiable for an object of {0} bytes")]
    RangeNotSatisfiable(u64),
}

impl ApiError {
    /// The HTTP status and the machine-readable reason (also the rejection metric label).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BadPath(_) => (StatusCode::BAD_REQUEST, "bad_path"),
            Self::BadBody(_) => (StatusCode::BAD_REQUEST, "bad_body"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::Store(StoreError::Playlist(e)) => (StatusCode::UNPROCESSABLE_ENTITY, e.code()),
            Self::Store(StoreError::Immutable(_)) => (StatusCode::CONFLICT, "segment_immutable"),
            Self::Store(StoreError::NotFound) | Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::Store(StoreError::TooManyStreams) => (StatusCode::INSUFFICIENT_STORAGE, "too_many_streams"),
            Self::Store(StoreError::StreamFull) => (StatusCode::INSUFFICIENT_STORAGE, "stream_full"),
            Self::Store(StoreError::StoreFull) => (StatusCode::INSUFFICIENT_STORAGE, "store_full"),
            Self::RangeNotSatisfiable(_) => (StatusCode::RANGE_NOT_SATISFIABLE, "range_not_satisfiable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        tracing::debug!(%status, error = %self, "request refused");
        let body = ErrorBody { error: code.to_owned(), message: self.to_string() };
        let mut res = (status, Json(body)).into_response();
        // Errors describe a moment of a live stream: caches must not keep them.
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Self::RangeNotSatisfiable(len) = self
            && let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}"))
        {
            res.headers_mut().insert(header::CONTENT_RANGE, v);
        }
        res
    }
}
