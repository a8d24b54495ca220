//! `POST /v1/usage` (ingest) and `GET /v1/summary` (totals of one content).

use std::time::Instant;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use protocol::api::{MAX_NAME_LEN, MAX_REQUEST_BYTES, Summary, UsageReport};
use serde::Deserialize;
use service::JsonBody;

use crate::usage::Ingested;
use crate::{ApiError, AppState};

pub(crate) async fn usage(
    State(state): State<AppState>,
    JsonBody(report): JsonBody<UsageReport, MAX_REQUEST_BYTES>,
) -> Result<StatusCode, ApiError> {
    for (field, value) in [("customer", &report.customer), ("content", &report.content), ("session", &report.session)] {
        if value.is_empty() || value.len() > MAX_NAME_LEN {
            return Err(ApiError::BadRequest(format!("{field} must be 1-{MAX_NAME_LEN} bytes")));
        }
    }
    let now = Instant::now();
    let ingested = state.with_store(|store| store.ingest(now, &report)).map_err(|_| ApiError::Full)?;
    state.record(ingested);
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /v1/summary`.
#[derive(Debug, Deserialize)]
pub(crate) struct SummaryQuery {
    content: String,
}

pub(crate) async fn summary(
    State(state): State<AppState>,
    query: Result<Query<SummaryQuery>, QueryRejection>,
) -> Result<Json<Summary>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if query.content.is_empty() || query.content.len() > MAX_NAME_LEN {
        return Err(ApiError::BadRequest(format!("content must be 1-{MAX_NAME_LEN} bytes")));
    }
    let now = Instant::now();
    Ok(Json(state.with_store(|store| store.summary(now, &query.content))))
}

impl AppState {
    /// Updates the report, session and byte metrics after an ingest.
    fn record(&self, ingested: Ingested) {
        let inner = &self.inner;
        let Ingested::Accepted { delta, .. } = ingested else {
            inner.reports.get_or_create(&[("outcome", "stale")]).inc();
            return;
        };
        inner.reports.get_or_create(&[("outcome", "accepted")]).inc();
        inner.bytes.get_or_create(&[("kind", "http")]).inc_by(delta.http_bytes);
        inner.bytes.get_or_create(&[("kind", "p2p_down")]).inc_by(delta.p2p_down_bytes);
        inner.bytes.get_or_create(&[("kind", "p2p_up")]).inc_by(delta.p2p_up_bytes);
        for (reason, bytes) in protocol::api::CdnBytesByReason::NAMES.into_iter().zip(delta.cdn_bytes) {
            if bytes > 0 {
                inner.cdn_bytes.get_or_create(&[("reason", reason)]).inc_by(bytes);
            }
        }
    }
}
