//! `GET /v1/secrets/{name}`: an operator secret, sealed to one attested installation.
//!
//! Protected like the gateway (the same access token and a fresh DPoP proof for this URL), and
//! then stricter, because the answer is a credential:
//!
//! 1. `Authorization: DPoP <token>`; the token verifies under the issuer's published keys.
//! 2. The installation and its release are not revoked, read from the store now (not from a
//!    polled feed: a revocation takes effect at once).
//! 3. The DPoP proof verifies for `GET` on this URL (built from the issuer, never from the
//!    request), with `ath` and the key binding.
//! 4. The proof's `jti` has not been seen (the replay cache, as the gateway's).
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
//!
//! Replays across control-plane replicas: each replica keeps its own replay cache. A proof
//! replayed to another replica within its minute gets the same installation the same secret,
//! sealed to the same key: nothing an eavesdropper without that key can open.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::PublicJwk;
use medgate_proto::wire::{Decision, names};
use medgate_service::replay::ReplayError;
use medgate_service::resource::{self, Refusal, Why};
use medgate_store::NewAuditEntry;
use medgate_store::seal::secret_label;
use medgate_trust::jwe::{self, Randomness, Recipient};
use medgate_verify::dpop::{self, RequestTarget};
use medgate_verify::token::{self, TokenExpectations, VerifiedToken};
use serde_json::Map;

use crate::ServerState;
use crate::http_util::{ApiError, into_axum};

/// The scope a token needs for secret `name`.
pub(crate) fn scope_for(name: &str) -> String {
    format!("secret:{name}")
}

/// The media type of a compact JWE (RFC 7516 §9.2.1).
const APPLICATION_JOSE: &str = "application/jose";

/// What the handler answers besides the sealed secret.
enum Answer {
    /// With the installation, once its token verified.
    Refused(Refusal, Option<String>),
    Api(ApiError),
}

impl From<Refusal> for Answer {
    fn from(refusal: Refusal) -> Self {
        Answer::Refused(refusal, None)
    }
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        Answer::Api(error)
    }
}

impl From<medgate_store::StoreError> for Answer {
    fn from(error: medgate_store::StoreError) -> Self {
        Answer::Api(error.into())
    }
}

pub(crate) async fn sealed_secret(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    match deliver(&state, &name, &headers).await {
        Ok(response) => response,
        Err(Answer::Refused(refusal, installation)) => {
            state.audit.tally(medgate_service::audit::Refusal {
                kind: refusal.outcome(),
                code: refusal.code(),
                route: Some("/v1/secrets/{name}".into()),
                installation,
            });
            into_axum(refusal.response(ALGS))
        }
        Err(Answer::Api(error)) => error.into_response(),
    }
}

/// The algorithms the proof may use (as discovery announces).
const ALGS: &str = "ES256";

async fn deliver(state: &ServerState, name: &str, headers: &HeaderMap) -> Result<Response, Answer> {
    if !names::is_secret_name(name) {
        return Err(ApiError::NotFound("secret").into());
    }
    let now = state.clock.now();
    // Step 1.
    let token_text = resource::access_token(headers)?;
    let keys = medgate_store::published_keys(
        state.keys.read().records(),
        now,
        state.params.key_retention_secs(),
    );
    let expect = TokenExpectations {
        issuer: &state.params.issuer,
        audience: &state.params.audience,
        leeway_secs: 0,
    };
    let token = token::verify(token_text, &keys, &expect, now)
        .map_err(|error| Refusal::InvalidToken(error.into()))?;
    let installation = token.installation_id().to_string();
    let theirs = |refusal: Refusal| Answer::Refused(refusal, Some(installation.clone()));
    // Step 2.
    check_not_revoked(state, &token)
        .await
        .map_err(|answer| match answer {
            Answer::Refused(refusal, _) => theirs(refusal),
            other => other,
        })?;
    // Step 3.
    let proof_text = resource::dpop_proof(headers).map_err(theirs)?;
    let path = format!("/v1/secrets/{name}");
    let uri = dpop::target_uri(&state.params.issuer, &path)
        .map_err(|error| theirs(Refusal::InvalidProof(error.into())))?;
    let target = RequestTarget {
        method: Method::GET.as_str(),
        uri: &uri,
    };
    let bound = dpop::verify_bound(proof_text, &token, target, &state.proof_policy, now)
        .map_err(|error| theirs(Refusal::InvalidProof(error.into())))?;
    // Step 4.
    let acceptable_until = bound
        .proof()
        .iat()
        .plus(state.proof_policy.window.max_age_secs);
    let owner = token.jkt().digest().unwrap_or([0; 32]);
    state
        .replays
        .admit(bound.proof().replay_key(), owner, acceptable_until, now)
        .map_err(|error| {
            theirs(match error {
                ReplayError::Replayed => {
                    Refusal::InvalidProof(Why::new("replayed", "DPoP proof jti was already used"))
                }
                ReplayError::ShareExhausted => {
                    Refusal::RateLimited(std::time::Duration::from_secs(1))
                }
                ReplayError::Full => Refusal::Overloaded,
            })
        })?;
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
        .encryption_key(&installation)
        .await?
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

async fn check_not_revoked(state: &ServerState, token: &VerifiedToken) -> Result<(), Answer> {
    let Some(installation) = state
        .store
        .get_installation(token.installation_id())
        .await?
    else {
        return Err(Refusal::InvalidToken(Why::new(
            "installation_unknown",
            "the token's installation is not known here",
        ))
        .into());
    };
    if installation.revoked_at.is_some() {
        return Err(Refusal::InvalidToken(Why::new(
            "installation_revoked",
            "the installation has been revoked",
        ))
        .into());
    }
    let version = &token.claims().app_version;
    let revoked_release = state
        .store
        .releases(token.app_id(), version)
        .await?
        .iter()
        .any(|release| release.revoked_at.is_some());
    if revoked_release {
        return Err(Refusal::InvalidToken(Why::new(
            "release_revoked",
            "the app release has been revoked",
        ))
        .into());
    }
    Ok(())
}
