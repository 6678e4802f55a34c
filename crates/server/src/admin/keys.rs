//! Token-signing keys and the audit log.

use crate::keyring;
use medgate_store::published_keys as published;

use super::*;

/// The token-signing keys, never their private halves.
#[utoipa::path(get, path = "/keys", tag = "keys",
    responses((status = 200, description = "The keys", body = Vec<admin::SigningKey>), ApiError))]
pub(super) async fn list_keys(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &signing_keys(&state)))
}

/// The token-signing keys as listed (the admin API, the console): never the key itself.
pub(crate) fn signing_keys(state: &ServerState) -> Vec<admin::SigningKey> {
    let now = state.clock.now();
    let retention = state.params.key_retention_secs();
    state
        .keys
        .read()
        .records()
        .iter()
        .map(|record| admin::SigningKey {
            kid: record.kid.clone(),
            created_at: record.created_at,
            retired_at: record.retired_at,
            active: record.retired_at.is_none(),
            published: record.is_published(now, retention),
        })
        .collect()
}

/// Sign new tokens with a new key; the old one stays published until its tokens expire.
#[utoipa::path(post, path = "/keys/rotate", tag = "keys",
    responses((status = 200, description = "Rotated", body = admin::KeysRotated), ApiError))]
pub(super) async fn rotate_keys(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let previous = state.keys.read().active().kid().to_string();
    let server_error = |error: crate::ServerError| {
        tracing::error!(%error, "key rotation failed");
        ApiError::Internal
    };
    const ROTATE: &str = "admin.keys.rotate";
    let kid = keyring::add_key(&*state.store, &state.sealer, now, |kid| {
        change(
            &state,
            ROTATE,
            kid,
            serde_json::json!({"retired": previous}),
        )
        .entry
    })
    .await
    .map_err(server_error)?;
    committed(&state, ROTATE);
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
    Ok(json(
        StatusCode::OK,
        &admin::KeysRotated {
            kid,
            retired: previous,
            published: published_kids,
        },
    ))
}

/// Audit entries after a sequence number, oldest first.
#[utoipa::path(get, path = "/audit", tag = "audit", params(admin::AuditQuery),
    responses((status = 200, description = "The entries", body = Vec<admin::AuditEntry>), ApiError))]
pub(super) async fn audit_entries(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<admin::AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = super::page_limit(query.limit)?;
    let entries: Vec<admin::AuditEntry> = state
        .store
        .audit_entries(query.after, limit)
        .await?
        .iter()
        .map(medgate_store::AuditEntry::to_admin)
        .collect();
    Ok(json(StatusCode::OK, &entries))
}
