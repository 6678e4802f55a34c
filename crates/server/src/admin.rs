//! The admin API, under `/v1/admin`, behind `Authorization: Bearer <admin token>`.
//!
//! The server knows only the SHA-256 of the admin token (kept in the store's `meta`), and
//! compares in constant time. Every change is written to the audit log before it is answered.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap};
use http::request::Parts;
use medgate_proto::wire::{SignalKind, names};
use medgate_store::{App, NewAuditEntry, Release};
use medgate_verify::policy::{AppPolicy, default_degrade_on, default_reject_on};
use ring::digest;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::ServerState;
use crate::http_util::{ApiError, body, json, parse_json};
use crate::keyring;
use medgate_store::published_keys as published;

const MAX_ADMIN_BODY: usize = 16 * 1024;

pub(crate) fn router() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/apps", post(create_app).get(list_apps))
        .route("/apps/{app_id}", get(get_app))
        .route(
            "/apps/{app_id}/releases",
            post(add_release).get(list_releases),
        )
        .route(
            "/apps/{app_id}/releases/{version}/revoke",
            post(revoke_release),
        )
        .route("/installations", get(list_installations))
        .route("/installations/{id}/revoke", post(revoke_installation))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/audit", get(audit_entries))
}

pub(crate) fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if !names::is_sha256_hex(hex) {
        return None;
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(hash)
}

/// SHA-256 of an admin token, lowercase hex: what the store keeps.
pub fn admin_token_hash(token: &str) -> String {
    medgate_store::audit::to_hex(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// Proof that the request carries the admin token; handlers take it as an argument.
pub(crate) struct Admin;

impl FromRequestParts<Arc<ServerState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let (Some(token), Some(expected)) = (presented, &state.admin_token_sha256) else {
            return Err(ApiError::Unauthorized);
        };
        let hash = digest::digest(&digest::SHA256, token.as_bytes());
        if bool::from(hash.as_ref().ct_eq(expected.as_slice())) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

async fn audited(
    state: &ServerState,
    kind: &'static str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    state.metrics.admin_change(kind);
    state
        .audit
        .write(NewAuditEntry {
            at: state.clock.now(),
            kind: kind.into(),
            actor: "admin".into(),
            subject: subject.into(),
            detail,
        })
        .await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    app_id: String,
    scopes: Vec<String>,
    #[serde(default)]
    limited_scopes: Vec<String>,
    reject_on: Option<BTreeSet<SignalKind>>,
    degrade_on: Option<BTreeSet<SignalKind>>,
}

impl CreateApp {
    /// Where only one of the two signal lists is given, the other keeps its defaults minus
    /// whatever the given list claims.
    fn policy(self) -> AppPolicy {
        let (reject_on, degrade_on) = match (self.reject_on, self.degrade_on) {
            (Some(reject), Some(degrade)) => (reject, degrade),
            (Some(reject), None) => {
                let degrade = default_degrade_on().difference(&reject).copied().collect();
                (reject, degrade)
            }
            (None, Some(degrade)) => {
                let reject = default_reject_on().difference(&degrade).copied().collect();
                (reject, degrade)
            }
            (None, None) => (default_reject_on(), default_degrade_on()),
        };
        AppPolicy {
            scopes: self.scopes,
            limited_scopes: self.limited_scopes,
            reject_on,
            degrade_on,
        }
    }
}

async fn create_app(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: CreateApp = parse_json(&body(&headers, request, MAX_ADMIN_BODY).await?)?;
    if !names::is_app_id(&request.app_id) {
        return Err(ApiError::Malformed(
            "app_id must be 1-128 characters of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    let app_id = request.app_id.clone();
    let policy = request.policy();
    policy
        .validate()
        .map_err(|error| ApiError::Malformed(error.to_string()))?;
    let app = App {
        id: app_id,
        policy,
        created_at: state.clock.now(),
    };
    state.store.create_app(&app).await?;
    audited(
        &state,
        "admin.app.create",
        &app.id,
        serde_json::json!({"policy": app.policy}),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &app))
}

async fn list_apps(_: Admin, State(state): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &state.store.list_apps().await?))
}

async fn get_app(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ApiError::NotFound("app"))?;
    Ok(json(StatusCode::OK, &app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRelease {
    version: String,
    sdk_binary_sha256: String,
}

async fn add_release(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    let request: AddRelease = parse_json(&body(&headers, request, MAX_ADMIN_BODY).await?)?;
    if !names::is_version(&request.version) {
        return Err(ApiError::Malformed(
            "version must be 1-64 characters of A-Z a-z 0-9 . _ + -".into(),
        ));
    }
    let measurement = request.sdk_binary_sha256.to_ascii_lowercase();
    if !names::is_sha256_hex(&measurement) {
        return Err(ApiError::Malformed(
            "sdk_binary_sha256 must be 64 hex digits".into(),
        ));
    }
    let release = Release {
        app_id,
        version: request.version,
        binary_sha256: measurement,
        created_at: state.clock.now(),
        revoked_at: None,
    };
    state.store.add_release(&release).await?;
    audited(
        &state,
        "admin.release.add",
        &release.app_id,
        serde_json::json!({"version": release.version, "sdk_binary_sha256": release.binary_sha256}),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &release))
}

async fn list_releases(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        StatusCode::OK,
        &state.store.list_releases(&app_id).await?,
    ))
}

async fn revoke_release(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path((app_id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let revoked = state
        .store
        .revoke_release(&app_id, &version, state.clock.now())
        .await?;
    audited(
        &state,
        "admin.release.revoke",
        &app_id,
        serde_json::json!({"version": version, "revoked": revoked}),
    )
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"app_id": app_id, "version": version, "revoked": revoked}),
    ))
}

#[derive(Deserialize)]
struct InstallationQuery {
    app_id: Option<String>,
}

async fn list_installations(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<InstallationQuery>,
) -> Result<Response, ApiError> {
    let installations = state
        .store
        .list_installations(query.app_id.as_deref())
        .await?;
    Ok(json(StatusCode::OK, &installations))
}

async fn revoke_installation(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let changed = state
        .store
        .revoke_installation(&id, state.clock.now())
        .await?;
    audited(
        &state,
        "admin.installation.revoke",
        &id,
        serde_json::json!({"newly_revoked": changed}),
    )
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"installation_id": id, "revoked": true, "newly_revoked": changed}),
    ))
}

async fn list_keys(_: Admin, State(state): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let retention = state.params.key_retention_secs();
    let keys: Vec<_> = state
        .keys
        .read()
        .records()
        .iter()
        .map(|record| {
            serde_json::json!({
                "kid": record.kid,
                "created_at": record.created_at,
                "retired_at": record.retired_at,
                "active": record.retired_at.is_none(),
                "published": record.is_published(now, retention),
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &keys))
}

async fn rotate_keys(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let previous = state.keys.read().active().kid().to_string();
    let server_error = |error: crate::ServerError| {
        tracing::error!(%error, "key rotation failed");
        ApiError::Internal
    };
    let kid = keyring::add_key(&*state.store, &state.sealer, now)
        .await
        .map_err(server_error)?;
    let ring = keyring::KeyRing::load(&*state.store, &state.sealer, now)
        .await
        .map_err(server_error)?;
    let published_kids: Vec<String> =
        published(ring.records(), now, state.params.key_retention_secs())
            .to_jwks()
            .keys
            .iter()
            .map(|entry| entry.kid().to_string())
            .collect();
    *state.keys.write() = ring;
    audited(
        &state,
        "admin.keys.rotate",
        &kid,
        serde_json::json!({"retired": previous}),
    )
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"kid": kid, "retired": previous, "published": published_kids}),
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

async fn audit_entries(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).min(1000);
    let entries = state.store.audit_entries(query.after, limit).await?;
    Ok(json(StatusCode::OK, &entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_hashes_round_trip() {
        let hash = admin_token_hash("secret-token");
        assert_eq!(hash.len(), 64);
        let parsed = parse_hash(&hash).unwrap();
        assert_eq!(medgate_store::audit::to_hex(&parsed), hash);
        assert!(parse_hash("zz").is_none());
    }

    #[test]
    fn one_signal_list_given_keeps_the_other_default_without_overlap() {
        let request = CreateApp {
            app_id: "a".into(),
            scopes: vec!["s".into()],
            limited_scopes: vec![],
            reject_on: Some([SignalKind::Root, SignalKind::Hook].into()),
            degrade_on: None,
        };
        let policy = request.policy();
        assert_eq!(policy.degrade_on, [SignalKind::Emulator].into());
        assert!(policy.validate().is_ok());
    }
}
