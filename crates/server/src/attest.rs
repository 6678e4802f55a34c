//! `/v1/challenge`, `/v1/attest`, the JWKS and the discovery document.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::StatusCode;
use http::header::{CACHE_CONTROL, HeaderMap, HeaderValue};
use medgate_proto::b64;
use medgate_proto::wire::{
    AttestResponse, ChallengeRequest, ChallengeResponse, Decision, MEDIA_JOSE, Problem, Reason,
    names, problem_type,
};
use medgate_service::clock::rfc3339;
use medgate_service::problem;
use medgate_service::telemetry::Observation;
use medgate_store::{
    AttestationRecord, Challenge, EnrolmentClaim, GrantOutcome, GrantWrites, InstallationKeys,
    NewAuditEntry,
};
use medgate_verify::UnixTime;
use medgate_verify::evidence::{self, VerifiedEvidence};
use medgate_verify::policy::{
    self, ConsumedChallenge, CoverageFinding, FreshChallenge, InstallationCheck, RegisteredRelease,
    ReleaseCheck, Verdict,
};
use medgate_verify::token::{self, IssueParams};
use ring::rand::{SecureRandom, SystemRandom};

use crate::ServerState;
use crate::http_util::{
    ApiError, body, content_type_is, into_axum, json, limit_client, parse_json, recording_failed,
};
use crate::platforms::{self, PlatformRefusal};
use medgate_store::published_keys as published;

/// Largest evidence body (`413` beyond).
pub(crate) const MAX_EVIDENCE: usize = 64 * 1024;
const MAX_CHALLENGE_REQUEST: usize = 4 * 1024;

pub(crate) fn random_b64(bytes: usize) -> Option<String> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buffer).ok()?;
    Some(b64::encode(buffer))
}

pub(crate) async fn challenge(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    limit_client(&state, peer, &headers)?;
    let request: ChallengeRequest =
        parse_json(&body(&state, &headers, request, MAX_CHALLENGE_REQUEST).await?)?;
    if !names::is_app_id(&request.app_id) {
        return Err(ApiError::Malformed(
            "app_id must be 1-128 characters of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    let value = random_b64(32).ok_or(ApiError::Internal)?;
    let now = state.clock.now();
    let challenge = Challenge {
        value,
        app_id: request.app_id,
        created_at: now,
        expires_at: now.plus(state.params.challenge_ttl_secs),
    };
    state
        .store
        .insert_challenge(&challenge)
        .await
        .map_err(|error| match error {
            medgate_store::StoreError::Backend(_) => {
                tracing::error!(%error, "a challenge could not be stored");
                recording_failed(&state)
            }
            other => other.into(),
        })?;
    state.metrics.challenge_issued();
    Ok(json(
        StatusCode::CREATED,
        &ChallengeResponse {
            challenge: challenge.value,
            expires_at: rfc3339(challenge.expires_at),
        },
    ))
}

/// How an attestation ended, short of a token.
enum Refusal {
    /// Broken input: 400.
    Malformed(String),
    /// A verdict: 403 with reason codes.
    Rejected {
        reasons: Vec<Reason>,
        detail: Option<String>,
    },
    /// Something the check depends on is missing on our side: 503.
    Unavailable(String),
    /// The store cannot take the decision: 503, and the node is not ready until it can.
    NotRecorded,
    /// Our fault: 500.
    Internal,
}

impl From<medgate_store::StoreError> for Refusal {
    fn from(error: medgate_store::StoreError) -> Self {
        tracing::error!(%error, "attestation failed on the store");
        match error {
            // The store cannot take the decision now (a full disk, a lock): nothing is granted
            // unrecorded, and the client is told to retry.
            medgate_store::StoreError::Backend(_) => Refusal::NotRecorded,
            _ => Refusal::Internal,
        }
    }
}

pub(crate) async fn attest(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    limit_client(&state, peer, &headers)?;
    if !content_type_is(&headers, MEDIA_JOSE) {
        return Err(ApiError::UnsupportedMedia(MEDIA_JOSE));
    }
    let bytes = body(&state, &headers, request, MAX_EVIDENCE).await?;
    let compact = std::str::from_utf8(&bytes)
        .map_err(|_| ApiError::Malformed("evidence must be a compact JWS (ASCII)".into()))?;
    match attest_evidence(&state, compact.trim()).await {
        Ok(granted) => Ok(json(StatusCode::OK, &granted)),
        Err(Refusal::Malformed(detail)) => Err(ApiError::Malformed(detail)),
        Err(Refusal::Rejected { reasons, detail }) => {
            let mut rejection = Problem::new(
                problem_type::ATTESTATION_REJECTED,
                "Attestation rejected",
                403,
            )
            .with_reasons(reasons);
            rejection.detail = detail;
            Ok(into_axum(problem::response(&rejection)))
        }
        Err(Refusal::Unavailable(detail)) => Err(ApiError::Unavailable(detail)),
        Err(Refusal::NotRecorded) => Err(recording_failed(&state)),
        Err(Refusal::Internal) => Err(ApiError::Internal),
    }
}

/// Counts a decision in the metrics and the telemetry series (by its first reason and, when
/// the evidence verified, its platform).
fn counted(
    state: &ServerState,
    decision: Decision,
    reasons: &[Reason],
    evidence: Option<&VerifiedEvidence>,
) {
    state
        .metrics
        .attestation(decision.as_str(), reasons.iter().map(|r| r.as_str()));
    state.audit.observe(Observation::attestation(
        decision.as_str(),
        reasons.first().map(|reason| reason.as_str()),
        evidence.map(|evidence| evidence.platform().as_str()),
    ));
}

/// A refusal after the evidence verified: recorded against the installation (when it was
/// granted before), counted and audited.
async fn reject(
    state: &ServerState,
    evidence: &VerifiedEvidence,
    record_installation: bool,
    now: UnixTime,
    reasons: Vec<Reason>,
    detail: Option<String>,
    coverage: Option<CoverageFinding>,
) -> Result<AttestResponse, Refusal> {
    if record_installation {
        let record = record(evidence, now, Decision::Reject, &reasons);
        state.store.record_attestation(&record).await?;
    }
    counted(state, Decision::Reject, &reasons, Some(evidence));
    let mut entry = decision_entry(evidence, now, Decision::Reject, &reasons, None);
    if let Some(detail) = &detail {
        entry.detail["error"] = detail.as_str().into();
    }
    if let Some(coverage) = coverage {
        entry.detail["coverage"] = coverage.as_str().into();
    }
    state.audit.write(entry).await?;
    Err(Refusal::Rejected { reasons, detail })
}

/// The attestation, step by step (see `medgate_verify::policy` for the order of reasons and
/// `crate::platforms` for hardware evidence).
async fn attest_evidence(state: &ServerState, compact: &str) -> Result<AttestResponse, Refusal> {
    let now = state.clock.now();
    // Signature, shape and freshness of the evidence.
    let evidence = match evidence::verify(compact, &state.params.evidence_limits, now) {
        Ok(evidence) => evidence,
        Err(error) => {
            let (kind, reasons) = if error.is_malformed() {
                ("attest.malformed", vec![])
            } else {
                ("attest.reject", vec![Reason::EvidenceInvalid])
            };
            counted(state, Decision::Reject, &reasons, None);
            state.audit.record(NewAuditEntry {
                at: now,
                kind: kind.into(),
                actor: "unknown".into(),
                subject: "unknown".into(),
                detail: serde_json::json!({"reasons": reasons, "error": error.to_string()}),
            });
            return Err(if error.is_malformed() {
                Refusal::Malformed(error.to_string())
            } else {
                Refusal::Rejected {
                    reasons,
                    detail: Some(error.to_string()),
                }
            });
        }
    };
    // The challenge: single use, unexpired, issued for this app.
    let consumed = state.store.take_challenge(evidence.challenge()).await?;
    let consumed = consumed.as_ref().map(|challenge| ConsumedChallenge {
        app_id: &challenge.app_id,
        expires_at: challenge.expires_at,
    });
    let fresh = match FreshChallenge::check(consumed, &evidence, now) {
        Ok(fresh) => fresh,
        Err(reason) => {
            counted(state, Decision::Reject, &[reason], Some(&evidence));
            state.audit.record(decision_entry(
                &evidence,
                now,
                Decision::Reject,
                &[reason],
                None,
            ));
            return Err(Refusal::Rejected {
                reasons: vec![reason],
                detail: None,
            });
        }
    };
    // The app, and the installation key's standing.
    let Some(app) = state.store.get_app(evidence.app_id()).await? else {
        return reject(
            state,
            &evidence,
            false,
            now,
            vec![Reason::AppUnknown],
            None,
            None,
        )
        .await;
    };
    let installation = state
        .store
        .get_installation(evidence.installation_id().as_str())
        .await?;
    if installation
        .as_ref()
        .is_some_and(|known| known.app_id != evidence.app_id())
    {
        let detail = "this installation key is registered for another app".to_string();
        return reject(
            state,
            &evidence,
            false,
            now,
            vec![Reason::EvidenceInvalid],
            Some(detail),
            None,
        )
        .await;
    }
    let installation = match installation {
        None => InstallationCheck::New,
        Some(known) if known.revoked_at.is_some() => InstallationCheck::Revoked,
        Some(_) => InstallationCheck::Known,
    };
    // A refusal is recorded against an installation only if it was granted before: keys made
    // up by the thousand and refused leave no rows behind (the audit log has the refusal).
    let known = installation != InstallationCheck::New;
    // The platform's statement.
    let platform = match platforms::check(state, &evidence, &app, now).await {
        Ok(platform) => platform,
        Err(PlatformRefusal::Rejected { reason, detail }) => {
            return reject(state, &evidence, known, now, vec![reason], detail, None).await;
        }
        Err(PlatformRefusal::Unavailable(detail)) => return Err(Refusal::Unavailable(detail)),
        Err(PlatformRefusal::Internal) => return Err(Refusal::Internal),
    };
    // The decision.
    let releases = state
        .store
        .releases(evidence.app_id(), evidence.app_version())
        .await?;
    let registered: Vec<_> = releases
        .iter()
        .map(|release| RegisteredRelease {
            binary_sha256: release.binary_sha256.as_deref(),
            version_code: release.version_code,
            revoked: release.revoked_at.is_some(),
        })
        .collect();
    let coverage = policy::coverage_finding(&evidence, &app.policy);
    let verdict = policy::decide(
        &evidence,
        &fresh,
        Some(&app.policy),
        ReleaseCheck::evaluate(&evidence, &registered, &platform.outcome),
        installation,
        &platform.outcome,
    );
    let grant = match verdict {
        Verdict::Granted(grant) => grant,
        Verdict::Rejected(reasons) => {
            return reject(state, &evidence, known, now, reasons, None, coverage).await;
        }
    };
    // What a grant stores: the installation, a new App Attest key, a claimed enrolment.
    let identity = platform
        .identity
        .as_ref()
        .map(|identity| identity.as_str().to_string());
    let record = AttestationRecord {
        integrity_level: Some(grant.integrity_level()),
        hardware_key: grant.hardware_key(),
        identity: identity.clone(),
        ..record(&evidence, now, grant.decision(), grant.reasons())
    };
    // A token for what was granted (signing is pure: nothing is stored or sent yet).
    let jti = random_b64(16).ok_or(Refusal::Internal)?;
    let key = state.keys.read().active();
    let params = IssueParams {
        issuer: &state.params.issuer,
        audience: &state.params.audience,
        ttl_secs: state.params.token_ttl_secs,
        jti: &jti,
    };
    let issued = token::issue(&grant, &key, &params, now).map_err(|error| {
        tracing::error!(%error, "token signing failed");
        Refusal::Internal
    })?;
    let mut entry = decision_entry(
        &evidence,
        now,
        grant.decision(),
        grant.reasons(),
        Some((&jti, key.kid())),
    );
    entry.detail["integrity_level"] = grant.integrity_level().as_str().into();
    if let Some(coverage) = coverage {
        entry.detail["coverage"] = coverage.as_str().into();
    }
    entry.detail["hardware_key"] = grant.hardware_key().into();
    if let Some(identity) = &identity {
        entry.detail["identity"] = identity.as_str().into();
        entry.detail["enrolled_now"] = platform.enrolment.is_some().into();
    }
    let writes = GrantWrites {
        record,
        apple_key: platform.apple_key.clone(),
        enrolment: platform.enrolment.clone().zip(identity.clone()).map(
            |(code_sha256, identity)| EnrolmentClaim {
                code_sha256,
                identity,
            },
        ),
        keys: serde_json::to_string(evidence.installation_key())
            .ok()
            .map(|public_jwk| InstallationKeys {
                public_jwk,
                encryption_jwk: evidence
                    .encryption_key()
                    .and_then(|jwk| serde_json::to_string(jwk).ok()),
            }),
        audit: entry,
    };
    // All of it commits, with the decision's audit entry, or none: a key or code another
    // attestation took meanwhile leaves no trace of this grant, and the token is not handed
    // out unless its grant was recorded.
    match state.store.record_grant(&writes).await? {
        GrantOutcome::Recorded => {}
        GrantOutcome::AppleKeyTaken => {
            let detail = "this App Attest key is registered to another installation".to_string();
            return reject(
                state,
                &evidence,
                known,
                now,
                vec![Reason::EvidenceInvalid],
                Some(detail),
                None,
            )
            .await;
        }
        GrantOutcome::EnrolmentUnavailable => {
            return reject(
                state,
                &evidence,
                known,
                now,
                vec![Reason::EnrolmentInvalid],
                None,
                None,
            )
            .await;
        }
    }
    counted(state, grant.decision(), grant.reasons(), Some(&evidence));
    tracing::info!(
        installation = medgate_proto::redact::short(grant.installation_id().as_str()),
        app = grant.app_id(),
        decision = grant.decision().as_str(),
        integrity = grant.integrity_level().as_str(),
        "attestation granted"
    );
    let session_key = state
        .session_secret
        .as_ref()
        .zip(evidence.encryption_key())
        .and_then(|(secret, recipient)| seal_session_key(secret, &issued.claims.jti, recipient));
    Ok(AttestResponse {
        session_key,
        access_token: issued.token.into_inner(),
        token_type: "DPoP".into(),
        expires_in: u64::try_from(state.params.token_ttl_secs).unwrap_or(0),
        scope: issued.claims.scope,
        installation_id: grant.installation_id().as_str().to_string(),
        decision: grant.decision(),
        reasons: grant.reasons().to_vec(),
        integrity_level: grant.integrity_level(),
        hardware_key: grant.hardware_key(),
    })
}

fn record(
    evidence: &VerifiedEvidence,
    now: UnixTime,
    decision: Decision,
    reasons: &[Reason],
) -> AttestationRecord {
    AttestationRecord {
        installation_id: evidence.installation_id().as_str().to_string(),
        app_id: evidence.app_id().to_string(),
        platform: evidence.platform().as_str().to_string(),
        app_version: evidence.app_version().to_string(),
        at: now,
        decision,
        reasons: reasons.to_vec(),
        integrity_level: None,
        hardware_key: false,
        identity: None,
    }
}

/// The audit entry for a decision. Signal kinds are recorded; their free-text details are not.
fn decision_entry(
    evidence: &VerifiedEvidence,
    now: UnixTime,
    decision: Decision,
    reasons: &[Reason],
    token: Option<(&str, &str)>,
) -> NewAuditEntry {
    let signals: Vec<&str> = evidence
        .signals()
        .iter()
        .map(|signal| signal.kind.as_str())
        .collect();
    let mut detail = serde_json::json!({
        "decision": decision,
        "reasons": reasons,
        "app_version": evidence.app_version(),
        "platform": evidence.platform().as_str(),
        "signals": signals,
    });
    if let Some((jti, kid)) = token {
        detail["token_jti"] = jti.into();
        detail["token_kid"] = kid.into();
    }
    NewAuditEntry {
        at: now,
        kind: format!("attest.{}", decision.as_str()),
        actor: format!("installation:{}", evidence.installation_id()),
        subject: evidence.app_id().to_string(),
        detail,
    }
}

pub(crate) async fn jwks(State(state): State<Arc<ServerState>>) -> Response {
    let keys = published(
        state.keys.read().records(),
        state.clock.now(),
        state.params.key_retention_secs(),
    );
    let mut response = json(StatusCode::OK, &keys.to_jwks());
    response.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

/// The latest signed checkpoint of the audit chain's head (a compact JWS), for operators and
/// monitors to keep elsewhere; 404 until the node has made one.
pub(crate) async fn checkpoint(State(state): State<Arc<ServerState>>) -> Response {
    let latest = state.checkpoint.read().clone();
    match latest {
        Some(jws) => {
            let mut response = Response::new(Body::from(jws));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(MEDIA_JOSE),
            );
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        None => into_axum(problem::response(&Problem::new(
            medgate_proto::wire::problem_type::NOT_FOUND,
            "No checkpoint yet",
            404,
        ))),
    }
}

pub(crate) async fn discovery(State(state): State<Arc<ServerState>>) -> Response {
    let issuer = state.params.issuer.trim_end_matches('/');
    json(
        StatusCode::OK,
        &serde_json::json!({
            "issuer": state.params.issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "challenge_endpoint": format!("{issuer}/v1/challenge"),
            "attestation_endpoint": format!("{issuer}/v1/attest"),
            "token_endpoint": format!("{issuer}/v1/oauth/token"),
            "access_token_audience": state.params.audience,
            "token_types_supported": ["DPoP"],
            "access_token_signing_alg_values_supported": ["ES256"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "evidence_signing_alg_values_supported": ["ES256"],
            "platforms_supported": medgate_proto::wire::platform::ALL,
            "reason_codes": Reason::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
        }),
    )
}

/// The token's session key (for `session-mac` routes) sealed to the installation's
/// key-agreement key; `None` (and logged) if it cannot be.
fn seal_session_key(
    secret: &medgate_verify::httpsig::SessionSecret,
    jti: &str,
    recipient: &medgate_proto::PublicJwk,
) -> Option<String> {
    use medgate_trust::jwe::{self, Randomness, Recipient};
    let key = secret.session_key(jti)?;
    let mut header = serde_json::Map::new();
    header.insert("medgate_session".into(), jti.into());
    Randomness::from_os()
        .and_then(|random| {
            jwe::encrypt(
                Recipient::EcdhEsA256Kw(recipient),
                header,
                key.as_slice(),
                random,
            )
        })
        .map_err(|error| tracing::error!(%error, "a session key could not be sealed"))
        .ok()
}
