//! `GET /v1/installations/{id}/jwk`: the public key of an installation, so that whoever keeps
//! a signed write (an upstream, a caregiver's backend) can check later that an attested
//! installation made it (`medgate verify-provenance`).
//!
//! 1–4. A DPoP-protected request like the gateway's ([`crate::dpop_resource::admit`]).
//! 5. The token carries scope [`PROVENANCE_SCOPE`], which the admin grants to the apps that
//!    may look keys up (a caregiver's app, a backend's own installation).
//! 6. The installation's key as its grants stored it, `404` for an unknown one.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, HeaderValue};
use http::{HeaderMap, Method, StatusCode};
use medgate_proto::PublicJwk;
use medgate_service::resource::Refusal;

use crate::ServerState;
use crate::dpop_resource::{Answer, admit, answer};
use crate::http_util::{ApiError, json};

/// The scope a token needs to read installations' public keys.
pub const PROVENANCE_SCOPE: &str = "provenance:read";

pub(crate) async fn installation_jwk(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    // An installation id is an RFC 7638 thumbprint: 43 base64url characters.
    if id.len() != 43
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return ApiError::NotFound("installation").into_response();
    }
    let path = format!("/v1/installations/{id}/jwk");
    let outcome = look_up(&state, &id, &path, &headers).await;
    answer(&state, "/v1/installations/{id}/jwk", outcome)
}

async fn look_up(
    state: &ServerState,
    id: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, Answer> {
    let now = state.clock.now();
    // Steps 1–4.
    let admitted = admit(state, headers, &Method::GET, path, now).await?;
    // Step 5.
    if !admitted.token.has_scope(PROVENANCE_SCOPE) {
        return Err(Answer::Refused(
            Refusal::InsufficientScope(vec![PROVENANCE_SCOPE.into()]),
            Some(admitted.token.installation_id().to_string()),
        ));
    }
    // Step 6.
    let jwk: PublicJwk = state
        .store
        .installation_keys(id)
        .await?
        .and_then(|keys| serde_json::from_str(&keys.public_jwk).ok())
        .ok_or(ApiError::NotFound("installation"))?;
    let revoked = state
        .store
        .get_installation(id)
        .await?
        .is_some_and(|installation| installation.revoked_at.is_some());
    let mut response = json(
        StatusCode::OK,
        &serde_json::json!({"installation_id": id, "jwk": jwk, "revoked": revoked}),
    );
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
