//! `GET /v1/config`: the P2P decision, rules, service URLs and token for one session.

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::{Extension, Json};
use protocol::access;
use protocol::api::{ConfigResponse, ContentSettings, MAX_NAME_LEN};
use protocol::token::{self, Claims};
use serde::Deserialize;

use crate::catalog::{p2p_on, rollout_bucket};
use crate::config::valid_name;
use crate::{ApiError, AppState};

/// Query of `GET /v1/config`: [`protocol::api::ConfigQuery`] plus an optional `session` id that,
/// when given, replaces the client address as the rollout key (so one NAT does not share a bucket).
#[derive(Debug, Deserialize)]
pub(crate) struct Params {
    customer: String,
    content: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    session: Option<String>,
}

pub(crate) async fn get_config(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<ConfigResponse>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_params(&params)?;
    let inner = &state.inner;
    let settings = {
        // A poisoned lock only means a panic elsewhere while writing a whole value; the table is intact.
        let catalog = inner.catalog.read().unwrap_or_else(|e| e.into_inner());
        catalog.get(&params.customer, &params.content).cloned()
    };
    let settings = settings.unwrap_or_else(|| ContentSettings {
        p2p_enabled: inner.config.default_p2p_enabled,
        ..ContentSettings::default()
    });
    let who = match (&params.session, peer) {
        (Some(session), _) => session.clone(),
        (None, Some(Extension(ConnectInfo(addr)))) => addr.ip().to_string(),
        (None, None) => String::new(),
    };
    let bucket = rollout_bucket(format!("{who}|{}|{}", params.customer, params.content).as_bytes());
    let p2p_enabled = p2p_on(&settings, bucket);
    let tracker_url = inner.config.tracker_for(&params.customer, &params.content).to_owned();
    let token = if p2p_enabled {
        // The rules ride in the token so the tracker applies them when matching.
        let claims = Claims {
            customer: params.customer,
            content: params.content.clone(),
            peer_id: None,
            expires_at_s: service::unix_now_s().saturating_add(inner.config.token_ttl_s),
            rules: Some(settings.rules.clone()),
        };
        token::sign(inner.config.secret.as_bytes(), &claims)
    } else {
        // No P2P, no way into the tracker.
        String::new()
    };
    let cdn_token = cdn_token(&inner.config, &params.content);
    inner.config_requests.get_or_create(&[("p2p", if p2p_enabled { "on" } else { "off" })]).inc();
    Ok(Json(ConfigResponse {
        p2p_enabled,
        rollout_bucket: bucket,
        rules: settings.rules,
        tracker_url,
        signalling_url: inner.config.signalling_url.clone(),
        analytics_url: inner.config.analytics_url.clone(),
        token,
        cdn_token,
        digest_public_key: inner.config.digest_public_key.clone(),
    }))
}

/// The session's CDN access token: valid for every object of the content (`/live/{content}/*`)
/// for `cdn_token_ttl_s`; empty when no CDN secret is configured.
fn cdn_token(config: &crate::Config, content: &str) -> String {
    if config.cdn_secret.is_empty() {
        return String::new();
    }
    let grant = access::Grant {
        expires_at_s: service::unix_now_s().saturating_add(config.cdn_token_ttl_s),
        path_prefix: format!("/live/{content}/"),
        ip: None,
    };
    access::sign(config.cdn_secret.as_bytes(), &grant)
}

fn check_params(params: &Params) -> Result<(), ApiError> {
    if !valid_name(&params.customer) || !valid_name(&params.content) {
        return Err(ApiError::BadRequest(format!("customer and content must be 1-{MAX_NAME_LEN} bytes")));
    }
    let session_len = params.session.as_ref().map_or(0, String::len);
    if params.version.len() > MAX_NAME_LEN || session_len > MAX_NAME_LEN {
        return Err(ApiError::BadRequest(format!("version and session must be at most {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}
