//! The control plane's DPoP-protected endpoints (`/v1/secrets/{name}`,
//! `/v1/installations/{id}/jwk`): the gateway's checks on a token and a fresh proof, with
//! revocation read from the store at once instead of a polled feed.
//!
//! [`admit`], in order:
//!
//! 1. `Authorization: DPoP <token>`; the token verifies under the issuer's published keys.
//! 2. The installation and its release are not revoked (read from the store now).
//! 3. The DPoP proof verifies for this method and URL (built from the issuer, never from the
//!    request), with `ath` and the key binding.
//! 4. The proof's `jti` has not been seen (the replay cache, as the gateway's).
//!
//! Each endpoint then checks its own scope. Refusals are the gateway's
//! (`medgate_service::resource`), tallied in the audit log like the gateway's.
//!
//! Replays across control-plane replicas: each replica keeps its own replay cache, so a proof
//! replayed to another replica within its minute gets the same answer for the same
//! installation; every answer here is either sealed to that installation or public.

use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::HeaderMap;
use medgate_service::replay::ReplayError;
use medgate_service::resource::{self, Refusal, Why};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{self, RequestTarget};
use medgate_verify::token::{self, TokenExpectations, VerifiedToken};

use crate::ServerState;
use crate::http_util::{ApiError, into_axum};

/// The algorithms a proof may use (as discovery announces).
const ALGS: &str = "ES256";

/// What an endpoint answers when it does not serve the request.
pub(crate) enum Answer {
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

/// The response for an endpoint's outcome; a refusal is tallied under `route`.
pub(crate) fn answer(
    state: &ServerState,
    route: &str,
    outcome: Result<Response, Answer>,
) -> Response {
    match outcome {
        Ok(response) => response,
        Err(Answer::Refused(refusal, installation)) => {
            state.audit.tally(medgate_service::audit::Refusal {
                kind: refusal.outcome(),
                code: refusal.code(),
                route: Some(route.into()),
                installation,
            });
            into_axum(refusal.response(ALGS))
        }
        Err(Answer::Api(error)) => error.into_response(),
    }
}

/// A request steps 1–4 admitted.
pub(crate) struct Admitted {
    pub token: VerifiedToken,
}

/// Steps 1–4 for a request of `method` on `path` (the control plane's own path).
pub(crate) async fn admit(
    state: &ServerState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    now: UnixTime,
) -> Result<Admitted, Answer> {
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
    let uri = dpop::target_uri(&state.params.issuer, path)
        .map_err(|error| theirs(Refusal::InvalidProof(error.into())))?;
    let target = RequestTarget {
        method: method.as_str(),
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
    Ok(Admitted { token })
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
