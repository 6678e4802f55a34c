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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSecret {
    name: String,
    /// Standard base64 of the value.
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateSecret {
    value: String,
}

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

pub(super) async fn set_secret(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    checked_app(&app_id)?;
    let request: SetSecret = parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
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
        &serde_json::json!({"app_id": secret.app_id, "name": secret.name, "version": 1}),
    ))
}

pub(super) async fn rotate_secret(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path((app_id, name)): Path<(String, String)>,
    request: Body,
) -> Result<Response, ApiError> {
    checked_app(&app_id)?;
    checked_name(&name)?;
    let request: RotateSecret =
        parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
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
        &serde_json::json!({"app_id": app_id, "name": name, "version": version}),
    ))
}

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
        &serde_json::json!({"app_id": app_id, "name": name, "deleted": true}),
    ))
}

/// Names, versions and times, and who uses each: the gateway routes that inject it (as this
/// node is configured), and whether installations may fetch it sealed. Never a value.
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
    let secrets: Vec<_> = state
        .store
        .secrets(Some(&app_id))
        .await?
        .into_iter()
        .map(|secret| {
            let injected_by: Vec<&str> = state
                .params
                .secret_routes
                .iter()
                .filter(|(_, name)| *name == secret.name)
                .map(|(route, _)| route.as_str())
                .collect();
            serde_json::json!({
                "name": secret.name,
                "version": secret.version,
                "created_at": secret.created_at,
                "updated_at": secret.updated_at,
                "injected_by_routes": injected_by,
                // Whether the app's policy grants `secret:<name>`: then its installations
                // that attest an encryption key with a full allow fetch it, sealed.
                "sealed_to_installations": app.policy.scopes.contains(&crate::secrets::scope_for(&secret.name)),
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &secrets))
}
