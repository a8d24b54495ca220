//! HTTP plumbing every JSON API shares: the error body and a bounded JSON body extractor.
//!
//! Every refusal is a JSON object `{"error": <machine-readable code>, "message": <detail>}` with a
//! 4xx/5xx status, built by [`error_response`]. A server keeps its own error enum (which errors
//! exist is its business) and renders each variant through [`error_response`].

use std::fmt::Display;

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The JSON shape of every error answer.
#[derive(Serialize)]
struct ErrorJson<'a> {
    error: &'a str,
    message: String,
}

/// Answers `status` with the JSON body `{"error": code, "message": message}` and logs the refusal
/// at debug level.
pub fn error_response(status: StatusCode, code: &str, message: impl Display) -> Response {
    let message = message.to_string();
    tracing::debug!(%status, code, %message, "request refused");
    (status, Json(ErrorJson { error: code, message })).into_response()
}

/// A JSON request body of at most `LIMIT_BYTES` bytes, whatever its `Content-Type` (so that
/// `navigator.sendBeacon` and simple CORS requests, which cannot send `application/json`, work).
///
/// The body is read through a length limit, so no more than `LIMIT_BYTES` are ever buffered.
/// Refusals are [`BodyRejection`]s: 413 `too_large` above the limit, 400 `bad_request` when the
/// body cannot be read or is not a valid `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonBody<T, const LIMIT_BYTES: usize>(pub T);

impl<T, S, const LIMIT_BYTES: usize> FromRequest<S> for JsonBody<T, LIMIT_BYTES>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = BodyRejection;

    async fn from_request(req: Request, _state: &S) -> Result<Self, BodyRejection> {
        let bytes = match Limited::new(req.into_body(), LIMIT_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => return Err(BodyRejection::TooLarge { limit_bytes: LIMIT_BYTES }),
            Err(e) => return Err(BodyRejection::Malformed(format!("failed to read the request body: {e}"))),
        };
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| BodyRejection::Malformed(format!("malformed JSON body: {e}")))?;
        Ok(Self(value))
    }
}

/// Why a [`JsonBody`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyRejection {
    /// The body is longer than the extractor's limit (413 `too_large`); send less.
    #[error("request body is larger than {limit_bytes} bytes")]
    TooLarge {
        /// The limit that was exceeded, in bytes.
        limit_bytes: usize,
    },
    /// The body could not be read or is not valid JSON of the expected shape (400 `bad_request`);
    /// the text says what is wrong.
    #[error("{0}")]
    Malformed(String),
}

impl BodyRejection {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The machine-readable code of this refusal (the `error` field of the body).
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "bad_request",
        }
    }
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        error_response(self.status(), self.code(), &self)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Echo {
        n: u32,
    }

    async fn echo(JsonBody(echo): JsonBody<Echo, 16>) -> String {
        echo.n.to_string()
    }

    /// Posts `body` with no `Content-Type`; answers the status and the body text.
    async fn post_echo(body: &'static str) -> (StatusCode, String) {
        let app = Router::new().route("/", post(echo));
        let res = app.oneshot(Request::post("/").body(Body::from(body)).unwrap()).await.unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn reads_json_without_a_content_type() {
        assert_eq!(post_echo(r#"{"n":7}"#).await, (StatusCode::OK, "7".into()));
    }

    #[tokio::test]
    async fn oversize_is_413_and_malformed_is_400() {
        let too_large = r#"{"error":"too_large","message":"request body is larger than 16 bytes"}"#;
        assert_eq!(post_echo(r#"{"n":7,"pad":"xxxxxxxx"}"#).await, (StatusCode::PAYLOAD_TOO_LARGE, too_large.into()));
        let (status, body) = post_echo(r#"{"n":"x"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.starts_with(r#"{"error":"bad_request","message":"malformed JSON body: "#), "{body}");
    }

    #[tokio::test]
    async fn error_response_has_the_error_shape() {
        let res = error_response(StatusCode::FORBIDDEN, "forbidden", "not yours");
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        assert_eq!(res.headers()["content-type"], "application/json");
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
        assert_eq!(&bytes[..], br#"{"error":"forbidden","message":"not yours"}"#);
    }
}
