//! `GET /v1/secrets/{name}`: an operator secret, sealed to one attested installation.
//!
//! Protected like the gateway (the same access token and a fresh DPoP proof for this URL), and
//! then stricter, because the answer is a credential:
//!
//! 1–4. The token, revocation (read from the store now), the proof for `GET` on this URL and
//!    its `jti` ([`crate::dpop_resource::admit`]).
//! 5. The token carries scope `secret:<name>`, and its decision is `allow`: a token granted
//!    with `allow_limited` never gets a secret.
//! 6. The installation attested a key-agreement key (`encryption_key` in its evidence, signed
//!    by its installation key); without one, `409`.
//! 7. The app has the secret; it is opened under the master key and sealed as a compact JWE
//!    (`ECDH-ES+A256KW`, `A256GCM`) to that key, with the secret's name and version in the
//!    protected header. Only the installation's keystore can open it.
//!
//! Every delivery is audited (names and versions, never values); refusals are tallied like
//! the gateway's. The answer is `application/jose` with `Cache-Control: no-store`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::PublicJwk;
use medgate_proto::wire::{Decision, names};
use medgate_service::resource::{Refusal, Why};
use medgate_store::NewAuditEntry;
use medgate_store::seal::secret_label;
use medgate_trust::jwe::{self, Randomness, Recipient};
use serde_json::Map;

use crate::ServerState;
use crate::dpop_resource::{Answer, admit, answer};
use crate::http_util::ApiError;

/// The scope a token needs for secret `name`.
pub(crate) fn scope_for(name: &str) -> String {
    format!("secret:{name}")
}

/// The media type of a compact JWE (RFC 7516 §9.2.1).
const APPLICATION_JOSE: &str = "application/jose";

pub(crate) async fn sealed_secret(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !names::is_secret_name(&name) {
        return ApiError::NotFound("secret").into_response();
    }
    let path = format!("/v1/secrets/{name}");
    answer(
        &state,
        "/v1/secrets/{name}",
        deliver(&state, &name, &path, &headers).await,
    )
}

async fn deliver(
    state: &ServerState,
    name: &str,
    path: &str,
    headers: &HeaderMap,
) -> Result<Response, Answer> {
    let now = state.clock.now();
    // Steps 1–4.
    let admitted = admit(state, headers, &Method::GET, path, now).await?;
    let token = &admitted.token;
    let installation = token.installation_id().to_string();
    let theirs = |refusal: Refusal| Answer::Refused(refusal, Some(installation.clone()));
    // Step 5.
    let scope = scope_for(name);
    if !token.has_scope(&scope) {
        return Err(theirs(Refusal::InsufficientScope(vec![scope])));
    }
    if token.claims().decision != Decision::Allow {
        return Err(theirs(Refusal::InvalidToken(Why::new(
            "limited_token",
            "secrets are delivered only to installations whose attestation was allowed in full",
        ))));
    }
    // Step 6.
    let recipient: PublicJwk = state
        .store
        .installation_keys(&installation)
        .await?
        .and_then(|keys| keys.encryption_jwk)
        .and_then(|json| serde_json::from_str(&json).ok())
        .ok_or(ApiError::Conflict(
            "encryption key (attest with an encryption_key in the evidence first)",
        ))?;
    // Step 7.
    let app_id = token.app_id();
    let record = state
        .store
        .secrets(Some(app_id))
        .await?
        .into_iter()
        .find(|record| record.name == name)
        .ok_or(ApiError::NotFound("secret"))?;
    let value = state
        .sealer
        .open(&secret_label(app_id, name, record.version), &record.sealed)
        .map_err(|error| {
            tracing::error!(%error, "a stored secret does not open");
            ApiError::Internal
        })?;
    let mut header = Map::new();
    header.insert("kid".into(), recipient.thumbprint().as_str().into());
    header.insert("medgate_secret".into(), name.into());
    header.insert("medgate_version".into(), record.version.into());
    let sealed = Randomness::from_os()
        .and_then(|random| {
            jwe::encrypt(Recipient::EcdhEsA256Kw(&recipient), header, &value, random)
        })
        .map_err(|error| {
            // A stored key that is not on the curve: refused at attestation, so not expected.
            tracing::error!(%error, "a secret could not be sealed to the installation's key");
            ApiError::Internal
        })?;
    state.audit.record(NewAuditEntry {
        at: now,
        kind: "secret.delivered".into(),
        actor: format!("installation:{installation}"),
        subject: format!("{app_id}/{name}"),
        detail: serde_json::json!({"version": record.version}),
    });
    let mut response = (StatusCode::OK, sealed).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(APPLICATION_JOSE));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
