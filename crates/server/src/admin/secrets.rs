//! Operator secrets: `/v1/admin/apps/{app_id}/secrets[/{name}]`.
//!
//! A value arrives base64 in the body, is sealed under the master key at once (its label names
//! the app, the secret and the version) and is never answered, logged or audited: listings and
//! audit entries carry names and versions only. The gateway picks up a change at its next
//! refresh (at once with `[redis]`), like a revocation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use medgate_store::SecretRecord;
use medgate_store::seal::secret_label;
use zeroize::Zeroizing;

use super::*;

/// The largest secret value: an API key or a token, not a file.
const MAX_SECRET_BYTES: usize = 8 * 1024;

fn checked_name(name: &str) -> Result<(), ApiError> {
    if names::is_secret_name(name) {
        Ok(())
    } else {
        Err(ApiError::Malformed(
            "a secret name is 1-64 characters of a-z 0-9 _ -".into(),
        ))
    }
}

fn checked_app(app_id: &str) -> Result<(), ApiError> {
    if names::is_app_id(app_id) {
        Ok(())
    } else {
        Err(ApiError::NotFound("app"))
    }
}

/// The value, decoded; the error never repeats it.
fn value(text: &str) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let value = Zeroizing::new(
        STANDARD
            .decode(text.trim())
            .map_err(|_| ApiError::Malformed("value must be standard base64".into()))?,
    );
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::Malformed(format!(
            "a secret is 1 to {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(value)
}

fn seal(
    state: &ServerState,
    app_id: &str,
    name: &str,
    version: i64,
    value: &[u8],
) -> Result<Vec<u8>, ApiError> {
    state
        .sealer
        .seal(&secret_label(app_id, name, version), value)
        .map_err(|_| ApiError::Internal)
}

/// Store a new secret (version 1), sealed.
#[utoipa::path(post, path = "/apps/{app_id}/secrets", tag = "secrets",
    params(("app_id" = String, Path)), request_body = admin::SetSecret,
    responses((status = 201, description = "Stored", body = admin::SecretVersion), ApiError))]
pub(super) async fn set_secret(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    checked_app(&app_id)?;
    let request: admin::SetSecret =
        super::request(&state, &headers, request, MAX_ADMIN_BODY).await?;
    checked_name(&request.name)?;
    let value = value(&request.value)?;
    let now = state.clock.now();
    let secret = SecretRecord {
        sealed: seal(&state, &app_id, &request.name, 1, &value)?,
        app_id,
        name: request.name,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let change = change(
        &state,
        "admin.secret.set",
        &secret.app_id,
        serde_json::json!({"name": secret.name, "version": 1}),
    );
    state.store.create_secret(&secret, &change.entry).await?;
    change.committed(&state);
    Ok(json(
        StatusCode::CREATED,
        &admin::SecretVersion {
            app_id: secret.app_id,
            name: secret.name,
            version: 1,
        },
    ))
}

/// Replace a secret's value with a new version.
#[utoipa::path(put, path = "/apps/{app_id}/secrets/{name}", tag = "secrets",
    params(("app_id" = String, Path),
        ("name" = String, Path, pattern = "^[a-z0-9_-]{1,64}$")), request_body = admin::RotateSecret,
    responses((status = 200, description = "Rotated", body = admin::SecretVersion), ApiError))]
pub(super) async fn rotate_secret(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path((app_id, name)): Path<(String, String)>,
    request: Body,
) -> Result<Response, ApiError> {
    checked_app(&app_id)?;
    checked_name(&name)?;
    let request: admin::RotateSecret =
        super::request(&state, &headers, request, MAX_ADMIN_BODY).await?;
    let value = value(&request.value)?;
    let current = state
        .store
        .secrets(Some(&app_id))
        .await?
        .into_iter()
        .find(|secret| secret.name == name)
        .ok_or(ApiError::NotFound("secret"))?;
    let version = current.version + 1;
    let sealed = seal(&state, &app_id, &name, version, &value)?;
    let change = change(
        &state,
        "admin.secret.rotate",
        &app_id,
        serde_json::json!({"name": name, "version": version}),
    );
    // A rotation that raced another one is refused (409), not applied over it.
    state
        .store
        .rotate_secret(
            &app_id,
            &name,
            current.version,
            &sealed,
            state.clock.now(),
            &change.entry,
        )
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::SecretVersion {
            app_id,
            name,
            version,
        },
    ))
}

/// Delete a secret and every version of it.
#[utoipa::path(delete, path = "/apps/{app_id}/secrets/{name}", tag = "secrets",
    params(("app_id" = String, Path),
        ("name" = String, Path, pattern = "^[a-z0-9_-]{1,64}$")),
    responses((status = 200, description = "Deleted", body = admin::SecretDeleted), ApiError))]
pub(super) async fn delete_secret(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path((app_id, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    checked_app(&app_id)?;
    checked_name(&name)?;
    let change = change(
        &state,
        "admin.secret.delete",
        &app_id,
        serde_json::json!({"name": name}),
    );
    state
        .store
        .delete_secret(&app_id, &name, &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::SecretDeleted {
            app_id,
            name,
            deleted: true,
        },
    ))
}

/// Names, versions and times, and who uses each: the gateway routes that inject it (as this
/// node is configured), and whether installations may fetch it sealed. Never a value.
#[utoipa::path(get, path = "/apps/{app_id}/secrets", tag = "secrets",
    params(("app_id" = String, Path)),
    responses((status = 200, description = "The secrets, never their values", body = Vec<admin::Secret>), ApiError))]
pub(super) async fn list_secrets(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    checked_app(&app_id)?;
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ApiError::NotFound("app"))?;
    Ok(json(StatusCode::OK, &app_secrets(&state, &app).await?))
}

/// An app's secrets as listed (the admin API, the console): never a value.
pub(crate) async fn app_secrets(
    state: &ServerState,
    app: &admin::App,
) -> Result<Vec<admin::Secret>, ApiError> {
    let secrets = state
        .store
        .secrets(Some(&app.id))
        .await?
        .into_iter()
        .map(|secret| {
            let injected_by_routes = state
                .params
                .secret_routes
                .iter()
                .filter(|(_, name)| *name == secret.name)
                .map(|(route, _)| route.clone())
                .collect();
            admin::Secret {
                // Whether the app's policy grants `secret:<name>`: then its installations
                // that attest an encryption key with a full allow fetch it, sealed.
                sealed_to_installations: app
                    .policy
                    .scopes
                    .contains(&crate::secrets::scope_for(&secret.name)),
                name: secret.name,
                version: secret.version,
                created_at: secret.created_at,
                updated_at: secret.updated_at,
                injected_by_routes,
            }
        })
        .collect();
    Ok(secrets)
}
