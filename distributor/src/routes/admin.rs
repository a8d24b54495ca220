//! `GET`/`PUT /v1/admin/contents/{customer}/{content}`: read and change a content's settings.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use protocol::api::{ContentSettings, MAX_NAME_LEN, MAX_REQUEST_BYTES};
use service::{BodyRejection, JsonBody};

use crate::config::valid_name;
use crate::{ApiError, AppState};

type ContentPath = Result<Path<(String, String)>, PathRejection>;

pub(crate) async fn get_content(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: ContentPath,
) -> Result<Json<ContentSettings>, ApiError> {
    authorize(&state, &headers)?;
    let (customer, content) = names(path)?;
    // A poisoned lock only means a panic elsewhere while writing a whole value; the table is intact.
    let catalog = state.inner.catalog.read().unwrap_or_else(|e| e.into_inner());
    catalog.get(&customer, &content).cloned().map(Json).ok_or(ApiError::NotFound)
}

pub(crate) async fn put_content(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: ContentPath,
    body: Result<JsonBody<ContentSettings, MAX_REQUEST_BYTES>, BodyRejection>,
) -> Result<Json<ContentSettings>, ApiError> {
    authorize(&state, &headers)?;
    let (customer, content) = names(path)?;
    let JsonBody(settings) = body?;
    if settings.rollout_percent > 100 {
        return Err(ApiError::BadRequest("rollout_percent must be 0-100".into()));
    }
    let max_asns = protocol::api::MAX_ASN_RULES;
    if settings.rules.asn_allow.len() > max_asns || settings.rules.asn_deny.len() > max_asns {
        return Err(ApiError::BadRequest(format!("asn_allow and asn_deny hold at most {max_asns} entries")));
    }
    {
        let mut catalog = state.inner.catalog.write().unwrap_or_else(|e| e.into_inner());
        catalog.put(&customer, &content, settings.clone()).map_err(|_| ApiError::Full)?;
    }
    state.inner.admin_updates.inc();
    tracing::info!(%customer, %content, ?settings, "content settings changed");
    Ok(Json(settings))
}

/// Checks the bearer token; the whole admin API answers 404 when no admin token is configured.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = state.inner.config.admin_token.as_bytes();
    if expected.is_empty() {
        return Err(ApiError::NotFound);
    }
    let given =
        headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !constant_time_eq(given.as_bytes(), expected) {
        return Err(ApiError::Unauthorized);
    }
    Ok(())
}

fn names(path: ContentPath) -> Result<(String, String), ApiError> {
    let Path((customer, content)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if !valid_name(&customer) || !valid_name(&content) {
        return Err(ApiError::BadRequest(format!("customer and content must be 1-{MAX_NAME_LEN} bytes")));
    }
    Ok((customer, content))
}

/// Compares without an early exit on the first differing byte (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
