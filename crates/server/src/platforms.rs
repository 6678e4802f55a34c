//! Verification of hardware-platform evidence on the server: the parts that need stored state
//! (an installation's App Attest key and counter, the app's platform policy and Play keys,
//! enrolment codes, the revocation status list). The checks themselves are in the
//! verification core; this module fetches what they need and reports what to store on a grant.
//!
//! 1. The app accepts the platform (SDK evidence unless disabled; a hardware platform only with
//!    a platform policy), else `platform_not_allowed`.
//! 2. The platform statement verifies and commits to SHA-256(challenge ‖ jkt), else
//!    `evidence_invalid` (`attestation_revoked` for a listed certificate).
//! 3. The build identity it proves is registered, enrolled through this platform (while its
//!    policy allows enrolment), or being enrolled with a valid code presented now
//!    (`enrolment_invalid` for a bad code); `crate::platform::identity_standing` decides.
//! 4. `crate::platform::evaluate` turns the facts into an outcome under the policy.

use medgate_proto::b64;
use medgate_proto::wire::Reason;
use medgate_store::seal::app_secret_label;
use medgate_store::{App, AppleKeyRecord, StoreError};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation as android;
use medgate_verify::apple::{self, AttestationExpectations, DecodedAttestation, Environment};
use medgate_verify::evidence::{PlatformEvidence, VerifiedEvidence};
use medgate_verify::platform::{
    self, AndroidPolicy, ApplePolicy, BuildIdentity, OnFailure, PlatformFacts, PlatformOutcome,
    PlayIntegrityPolicy,
};
use medgate_verify::play_integrity::{self, Expectations, PlayIntegrityKeys, RequestBinding};
use serde::de::DeserializeOwned;

use crate::ServerState;
use crate::revocation::RevocationStatus;

/// The `app_secrets` name under which an app's Play Integrity keys are sealed.
pub(crate) const PLAY_KEYS_SECRET: &str = "play-integrity-keys";

/// Why platform evidence did not yield an outcome.
pub(crate) enum PlatformRefusal {
    Rejected {
        reason: Reason,
        detail: Option<String>,
    },
    /// A dependency of the check is missing on our side (HTTP 503).
    Unavailable(String),
    Internal,
}

impl From<StoreError> for PlatformRefusal {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "platform check failed on the store");
        PlatformRefusal::Internal
    }
}

fn rejected(reason: Reason, detail: impl Into<Option<String>>) -> PlatformRefusal {
    PlatformRefusal::Rejected {
        reason,
        detail: detail.into(),
    }
}

fn invalid(detail: impl std::fmt::Display) -> PlatformRefusal {
    rejected(Reason::EvidenceInvalid, Some(detail.to_string()))
}

/// What the platform check proved, and what to store if the attestation is granted.
pub(crate) struct PlatformCheck {
    pub outcome: PlatformOutcome,
    /// The build identity proven (recorded with the installation).
    pub identity: Option<BuildIdentity>,
    /// An enrolment code (by hash) to claim for `identity`.
    pub enrolment: Option<String>,
    /// A newly attested App Attest key.
    pub apple_key: Option<AppleKeyRecord>,
}

impl PlatformCheck {
    fn sdk() -> Self {
        PlatformCheck {
            outcome: PlatformOutcome::sdk(),
            identity: None,
            enrolment: None,
            apple_key: None,
        }
    }
}

/// SHA-256 of an enrolment code, lowercase hex: what the store keeps.
pub(crate) fn enrolment_hash(code: &str) -> String {
    crate::http_util::sha256_hex(code.as_bytes())
}

async fn policy<P: DeserializeOwned>(
    state: &ServerState,
    app: &App,
    platform: &str,
) -> Result<P, PlatformRefusal> {
    // Step 1.
    let Some(document) = state.store.platform_policy(&app.id, platform).await? else {
        return Err(rejected(
            Reason::PlatformNotAllowed,
            format!("the app accepts no {platform} evidence"),
        ));
    };
    serde_json::from_value(document).map_err(|error| {
        tracing::error!(%error, app = %app.id, platform, "stored platform policy does not parse");
        PlatformRefusal::Internal
    })
}

/// Steps 1–4.
pub(crate) async fn check(
    state: &ServerState,
    evidence: &VerifiedEvidence,
    app: &App,
    now: UnixTime,
) -> Result<PlatformCheck, PlatformRefusal> {
    let binding = || {
        evidence
            .platform_binding()
            .ok_or_else(|| invalid("the challenge is not one medgate issued"))
    };
    match evidence.platform_evidence() {
        // How far SDK evidence counts is the app policy's call (`policy::decide`).
        PlatformEvidence::Sdk { .. } => Ok(PlatformCheck::sdk()),
        PlatformEvidence::AppleAttestation {
            key_id,
            object,
            app_id,
        } => {
            let policy: ApplePolicy =
                policy(state, app, medgate_proto::wire::platform::APPLE_APP_ATTEST).await?;
            let binding = binding()?;
            // A new attestation object for an installation that has a key replaces it (the app
            // was reinstalled, or lost the key id with an answer it never read): it is as fresh
            // and as bound to this key as a first one.
            let installation = evidence.installation_id().as_str();
            // Step 2.
            let decoded = DecodedAttestation::decode(object).map_err(invalid)?;
            let candidates: Vec<&str> = match app_id {
                Some(app_id) => vec![app_id.as_str()],
                None => policy.app_ids.iter().map(String::as_str).collect(),
            };
            let apple_app_id = candidates
                .into_iter()
                .find(|candidate| decoded.rp_id_hash_is(candidate))
                .ok_or_else(|| {
                    rejected(
                        Reason::AppIdentityMismatch,
                        "the attestation is for another app id".to_string(),
                    )
                })?;
            let expect = AttestationExpectations {
                app_id: apple_app_id,
                client_data_hash: &binding,
                key_id,
            };
            let verified = apple::verify_attestation(
                &decoded,
                &expect,
                &state.params.attestation.apple_roots,
                now,
            )
            .map_err(invalid)?;
            let facts = PlatformFacts::apple_attestation(&verified, apple_app_id, &policy);
            let apple_key = AppleKeyRecord {
                installation_id: installation.to_string(),
                key_id: verified.key_id().to_vec(),
                app_id: apple_app_id.to_string(),
                public_key: verified.public_key().to_vec(),
                environment: environment_name(verified.environment()).into(),
                counter: 0,
                receipt: verified.receipt().to_vec(),
                created_at: now,
            };
            let official = policy.registered_identities();
            let mut checked = finish(
                state,
                evidence,
                app,
                facts,
                &official,
                policy.allow_enrolment,
                policy.on_failure,
                now,
            )
            .await?;
            checked.apple_key = Some(apple_key);
            Ok(checked)
        }
        PlatformEvidence::AppleAssertion { key_id, assertion } => {
            let policy: ApplePolicy =
                policy(state, app, medgate_proto::wire::platform::APPLE_APP_ATTEST).await?;
            let binding = binding()?;
            let installation = evidence.installation_id().as_str();
            let stored = state
                .store
                .apple_key(installation)
                .await?
                .ok_or_else(|| invalid("no App Attest key is registered for this installation; send an attestation object"))?;
            if stored.key_id != *key_id {
                return Err(invalid(
                    "the key id is not this installation's App Attest key",
                ));
            }
            // Fail closed, before anything is written: a stored environment that is neither
            // name is an edited row.
            let Some(environment) = environment_named(&stored.environment) else {
                tracing::error!(
                    installation = medgate_proto::redact::short(installation),
                    "stored App Attest environment is neither production nor development"
                );
                return Err(PlatformRefusal::Internal);
            };
            // Step 2, with the counter stored by compare-and-set.
            let verified = apple::verify_assertion(
                assertion,
                &stored.public_key,
                &stored.app_id,
                &binding,
                stored.counter,
            )
            .map_err(invalid)?;
            if !state
                .store
                .advance_apple_counter(installation, verified.counter())
                .await?
            {
                return Err(invalid("the assertion counter was already used"));
            }
            let facts =
                PlatformFacts::apple_assertion(&verified, environment, &stored.app_id, &policy);
            let official = policy.registered_identities();
            finish(
                state,
                evidence,
                app,
                facts,
                &official,
                policy.allow_enrolment,
                policy.on_failure,
                now,
            )
            .await
        }
        PlatformEvidence::AndroidKeyAttestation { chain } => {
            let policy: AndroidPolicy = policy(
                state,
                app,
                medgate_proto::wire::platform::ANDROID_KEY_ATTESTATION,
            )
            .await?;
            let binding = binding()?;
            let list = match state.revocations.status(now) {
                RevocationStatus::NotConfigured => None,
                RevocationStatus::Loaded(list) => Some(list),
                RevocationStatus::Unavailable => {
                    return Err(PlatformRefusal::Unavailable(
                        "the attestation revocation status list is not available yet".into(),
                    ));
                }
                RevocationStatus::Expired { .. } => {
                    return Err(PlatformRefusal::Unavailable(
                        "the attestation revocation status list is older than its maximum age"
                            .into(),
                    ));
                }
            };
            // Step 2.
            let verified = android::verify(
                chain,
                &state.params.attestation.android_roots,
                list.as_deref(),
                Some(&binding),
                now,
            )
            .map_err(|error| {
                if error.is_revocation() {
                    rejected(Reason::AttestationRevoked, Some(error.to_string()))
                } else {
                    invalid(error)
                }
            })?;
            let facts =
                PlatformFacts::android(&verified, Some(evidence.installation_key()), &policy, now);
            let official = policy.registered_identities();
            finish(
                state,
                evidence,
                app,
                facts,
                &official,
                policy.allow_enrolment,
                policy.on_failure,
                now,
            )
            .await
        }
        PlatformEvidence::PlayIntegrity { token } => {
            let policy: PlayIntegrityPolicy =
                policy(state, app, medgate_proto::wire::platform::PLAY_INTEGRITY).await?;
            let binding = b64::encode(binding()?);
            let keys = play_keys(state, &app.id).await?;
            // Step 2.
            let verdict = play_integrity::decrypt_and_verify(token, &keys).map_err(invalid)?;
            let request_binding = if verdict.request_details.request_hash.is_some() {
                RequestBinding::RequestHash(&binding)
            } else {
                RequestBinding::Nonce(&binding)
            };
            let expect = Expectations {
                package_name: &policy.package_name,
                request_binding,
                max_age_ms: i64::from(policy.max_age_secs) * 1000,
                max_future_skew_ms: 60_000,
            };
            let checked =
                play_integrity::check_request(&verdict, &expect, now.secs().saturating_mul(1000))
                    .map_err(invalid)?;
            let facts = PlatformFacts::play_integrity(&verdict, checked, &policy);
            let official = policy.registered_identities();
            finish(
                state,
                evidence,
                app,
                facts,
                &official,
                policy.allow_enrolment,
                policy.on_failure,
                now,
            )
            .await
        }
    }
}

/// The environment a stored name stands for, if it is one of [`environment_name`]'s.
fn environment_named(name: &str) -> Option<Environment> {
    [Environment::Production, Environment::Development]
        .into_iter()
        .find(|environment| environment_name(*environment) == name)
}

fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Production => "production",
        Environment::Development => "development",
    }
}

async fn play_keys(
    state: &ServerState,
    app_id: &str,
) -> Result<PlayIntegrityKeys, PlatformRefusal> {
    let sealed = state
        .store
        .app_secret(app_id, PLAY_KEYS_SECRET)
        .await?
        .ok_or_else(|| {
            rejected(
                Reason::PlatformNotAllowed,
                "no Play Integrity response keys are configured for the app".to_string(),
            )
        })?;
    let opened = state
        .sealer
        .open(&app_secret_label(app_id, PLAY_KEYS_SECRET), &sealed)
        .map_err(|error| PlatformRefusal::Unavailable(error.to_string()))?;
    let keys: PlayKeysDocument =
        serde_json::from_slice(&opened).map_err(|_| PlatformRefusal::Internal)?;
    PlayIntegrityKeys::from_console(&keys.decryption_key, &keys.verification_key).map_err(|error| {
        tracing::error!(%error, app = app_id, "stored Play Integrity keys are unusable");
        PlatformRefusal::Internal
    })
}

/// The Play Console strings, as the admin API takes them and as sealed in `app_secrets`.
pub(crate) use medgate_proto::admin::PlayIntegrityKeys as PlayKeysDocument;

/// Steps 3 and 4.
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &ServerState,
    evidence: &VerifiedEvidence,
    app: &App,
    facts: PlatformFacts,
    official: &[BuildIdentity],
    allow_enrolment: bool,
    on_failure: OnFailure,
    now: UnixTime,
) -> Result<PlatformCheck, PlatformRefusal> {
    let proven = facts.identities();
    let enrolment = match evidence.enrolment_code() {
        None => None,
        Some(code) => {
            let hash = enrolment_hash(code);
            let stored = state
                .store
                .enrolment(&hash)
                .await?
                .filter(|enrolment| allow_enrolment && enrolment.app_id == app.id);
            let installation = evidence.installation_id().as_str();
            match stored {
                // This installation spent the code already (its answer may have been lost):
                // it is enrolled, and the code has nothing more to claim.
                Some(enrolment)
                    if enrolment.revoked_at.is_none()
                        && enrolment.installation_id.as_deref() == Some(installation) =>
                {
                    None
                }
                Some(enrolment)
                    if enrolment.used_at.is_none()
                        && enrolment.revoked_at.is_none()
                        && now < enrolment.expires_at =>
                {
                    Some(hash)
                }
                _ => return Err(rejected(Reason::EnrolmentInvalid, None)),
            }
        }
    };
    let enrolled: Vec<BuildIdentity> = state
        .store
        .enrolled_identities(&app.id)
        .await?
        .into_iter()
        .map(BuildIdentity::from_stored)
        .collect();
    let standing = platform::identity_standing(
        proven,
        official,
        &enrolled,
        allow_enrolment,
        enrolment.is_some(),
    );
    let outcome = platform::evaluate(&facts, standing, on_failure);
    Ok(PlatformCheck {
        outcome,
        identity: proven.first().cloned(),
        enrolment,
        apple_key: None,
    })
}
