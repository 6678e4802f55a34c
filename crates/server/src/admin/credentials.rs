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

/// The kinds of credential, and what each is for (the scopes are the operator's choice).
const KINDS: [&str; 2] = ["follower", "uploader"];
const MAX_SCOPES: usize = 16;
/// At most ten years: a credential is meant to expire.
const MAX_EXPIRES_IN_SECS: i64 = 10 * 366 * 24 * 3600;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateCredential {
    kind: String,
    name: String,
    scopes: Vec<String>,
    /// Seconds from now; none: until revoked.
    expires_in_secs: Option<i64>,
}

fn checked(request: &CreateCredential) -> Result<(), ApiError> {
    let malformed = |why: &str| Err(ApiError::Malformed(why.into()));
    if !KINDS.contains(&request.kind.as_str()) {
        return malformed("kind is follower or uploader");
    }
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

fn listed(credential: &CredentialRecord, now: UnixTime) -> serde_json::Value {
    let state = match (credential.revoked_at, credential.expires_at) {
        (Some(_), _) => "revoked",
        (None, Some(expires)) if now >= expires => "expired",
        _ => "active",
    };
    serde_json::json!({
        "id": credential.id,
        "app_id": credential.app_id,
        "kind": credential.kind,
        "name": credential.name,
        "scopes": credential.scopes,
        "created_at": credential.created_at,
        "expires_at": credential.expires_at,
        "revoked_at": credential.revoked_at,
        "state": state,
    })
}

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
    let request: CreateCredential =
        parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
    checked(&request)?;
    // `<kind>-<32 hex>`: Nightscout's access-token shape, 128 random bits.
    let secret = Zeroizing::new(format!("{}-{}", request.kind, random_hex(16)?));
    let (digest, sha1_digest) = digests(&secret);
    let now = state.clock.now();
    let credential = CredentialRecord {
        id: format!("cred_{}", random_hex(8)?),
        app_id,
        kind: request.kind,
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
    let mut answer = listed(&credential, now);
    answer["secret"] = serde_json::Value::String(secret.to_string());
    answer["share_link"] = serde_json::Value::String(format!(
        "{}/?token={}",
        state.params.audience.trim_end_matches('/'),
        secret.as_str()
    ));
    Ok(json(StatusCode::CREATED, &answer))
}

pub(super) async fn list_credentials(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    if !names::is_app_id(&app_id) {
        return Err(ApiError::NotFound("app"));
    }
    let now = state.clock.now();
    let credentials: Vec<_> = state
        .store
        .credentials(Some(&app_id))
        .await?
        .iter()
        .map(|credential| listed(credential, now))
        .collect();
    Ok(json(StatusCode::OK, &credentials))
}

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
        &serde_json::json!({"id": id, "app_id": credential.app_id, "revoked": true}),
    ))
}
