//! Credentials for apps that cannot attest: `/v1/admin/apps/{app_id}/credentials` and
//! `/v1/admin/credentials/{id}/revoke`.
//!
//! The secret is made here, answered once (with the share link a Nightscout follower opens)
//! and never stored, logged or audited: the store keeps its digests
//! (`medgate_verify::credential::digests`), listings and audit entries the id, kind, name and
//! scopes. A gateway accepts a credential only on routes with `credentials = true`, for the
//! scopes it holds; it learns of a new or revoked one at its next refresh (at once with
//! `[redis]`).

use crate::http_util::{is_public_id, random_hex};
use medgate_store::CredentialRecord;
use medgate_verify::UnixTime;
use medgate_verify::credential::digests;
use zeroize::Zeroizing;

use super::*;

const MAX_SCOPES: usize = 16;
/// At most ten years: a credential is meant to expire.
const MAX_EXPIRES_IN_SECS: i64 = 10 * 366 * 24 * 3600;

fn checked(request: &admin::CreateCredential) -> Result<(), ApiError> {
    let malformed = |why: &str| Err(ApiError::Malformed(why.into()));
    let name_chars = request.name.chars().count();
    if !(1..=64).contains(&name_chars) || request.name.chars().any(char::is_control) {
        return malformed("a name is 1-64 characters, none of them control characters");
    }
    if request.scopes.is_empty()
        || request.scopes.len() > MAX_SCOPES
        || !request.scopes.iter().all(|s| names::is_scope(s))
    {
        return malformed("scopes are 1-16 scope tokens");
    }
    if request
        .expires_in_secs
        .is_some_and(|secs| !(60..=MAX_EXPIRES_IN_SECS).contains(&secs))
    {
        return malformed("expires_in_secs is 60 seconds to ten years");
    }
    Ok(())
}

fn listed(credential: &CredentialRecord, now: UnixTime) -> Result<admin::Credential, ApiError> {
    let state = match (credential.revoked_at, credential.expires_at) {
        (Some(_), _) => admin::CredentialState::Revoked,
        (None, Some(expires)) if now >= expires => admin::CredentialState::Expired,
        _ => admin::CredentialState::Active,
    };
    let kind = admin::CredentialKind::from_name(&credential.kind).ok_or_else(|| {
        tracing::error!("a stored credential has a kind this version does not know");
        ApiError::Internal
    })?;
    Ok(admin::Credential {
        id: credential.id.clone(),
        app_id: credential.app_id.clone(),
        kind,
        name: credential.name.clone(),
        scopes: credential.scopes.clone(),
        created_at: credential.created_at,
        expires_at: credential.expires_at,
        revoked_at: credential.revoked_at,
        state,
    })
}

/// Create a credential; its secret is answered this once.
#[utoipa::path(post, path = "/apps/{app_id}/credentials", tag = "credentials",
    params(("app_id" = String, Path)), request_body = admin::CreateCredential,
    responses((status = 201, description = "The credential and its secret", body = admin::CredentialCreated), ApiError))]
pub(super) async fn create_credential(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    if !names::is_app_id(&app_id) {
        return Err(ApiError::NotFound("app"));
    }
    let request: admin::CreateCredential =
        super::request(&state, &headers, request, MAX_ADMIN_BODY).await?;
    checked(&request)?;
    // `<kind>-<32 hex>`: Nightscout's access-token shape, 128 random bits.
    let secret = Zeroizing::new(format!("{}-{}", request.kind.as_str(), random_hex(16)?));
    let (digest, sha1_digest) = digests(&secret);
    let now = state.clock.now();
    let credential = CredentialRecord {
        id: format!("cred_{}", random_hex(8)?),
        app_id,
        kind: request.kind.as_str().to_string(),
        name: request.name,
        scopes: request.scopes,
        digest,
        sha1_digest,
        created_at: now,
        expires_at: request.expires_in_secs.map(|secs| now.plus(secs)),
        revoked_at: None,
    };
    let change = change(
        &state,
        "admin.credential.create",
        &credential.app_id,
        serde_json::json!({
            "id": credential.id,
            "kind": credential.kind,
            "name": credential.name,
            "scopes": credential.scopes,
            "expires_at": credential.expires_at,
        }),
    );
    state
        .store
        .create_credential(&credential, &change.entry)
        .await?;
    change.committed(&state);
    let answer = admin::CredentialCreated {
        credential: listed(&credential, now)?,
        secret: secret.to_string(),
        share_link: format!(
            "{}/?token={}",
            state.params.audience.trim_end_matches('/'),
            secret.as_str()
        ),
    };
    Ok(json(StatusCode::CREATED, &answer))
}

/// An app's credentials, never their secrets.
#[utoipa::path(get, path = "/apps/{app_id}/credentials", tag = "credentials",
    params(("app_id" = String, Path)),
    responses((status = 200, description = "The credentials", body = Vec<admin::Credential>), ApiError))]
pub(super) async fn list_credentials(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    if !names::is_app_id(&app_id) {
        return Err(ApiError::NotFound("app"));
    }
    Ok(json(
        StatusCode::OK,
        &app_credentials(&state, &app_id).await?,
    ))
}

/// An app's credentials as listed (the admin API, the console): never a secret.
pub(crate) async fn app_credentials(
    state: &ServerState,
    app_id: &str,
) -> Result<Vec<admin::Credential>, ApiError> {
    let now = state.clock.now();
    state
        .store
        .credentials(Some(app_id))
        .await?
        .iter()
        .map(|credential| listed(credential, now))
        .collect()
}

/// Revoke a credential: gateways refuse it at their next refresh.
#[utoipa::path(post, path = "/credentials/{id}/revoke", tag = "credentials",
    params(("id" = String, Path)),
    responses((status = 200, description = "Revoked", body = admin::CredentialRevoked), ApiError))]
pub(super) async fn revoke_credential(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !is_public_id(&id, "cred_") {
        return Err(ApiError::NotFound("credential"));
    }
    let credential = state
        .store
        .credentials(None)
        .await?
        .into_iter()
        .find(|credential| credential.id == id)
        .ok_or(ApiError::NotFound("credential"))?;
    let change = change(
        &state,
        "admin.credential.revoke",
        &credential.app_id,
        serde_json::json!({"id": id, "kind": credential.kind, "name": credential.name}),
    );
    state
        .store
        .revoke_credential(&id, state.clock.now(), &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::CredentialRevoked {
            id,
            app_id: credential.app_id,
            revoked: true,
        },
    ))
}
