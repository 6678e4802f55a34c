//! The admin API, under `/v1/admin`, behind `Authorization: Bearer <admin token>`.
//!
//! The server knows only the SHA-256 of the admin token (kept in the store's `meta`), and
//! compares in constant time. Every change is written to the audit log before it is answered.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http::request::Parts;
use medgate_proto::wire::{SignalKind, names};
use medgate_store::{App, NewAuditEntry, Release};
use medgate_verify::policy::{AppPolicy, SdkEvidence, default_degrade_on, default_reject_on};
use ring::digest;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::ServerState;
use crate::http_util::{ApiError, body, json, parse_json};
use crate::keyring;
use medgate_store::published_keys as published;

mod credentials;
mod partners;
mod secrets;
mod trust;

const MAX_ADMIN_BODY: usize = 16 * 1024;

pub(crate) fn router() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/apps", post(create_app).get(list_apps))
        .route("/apps/{app_id}", get(get_app))
        .route(
            "/apps/{app_id}/releases",
            post(add_release).get(list_releases),
        )
        .route(
            "/apps/{app_id}/releases/{version}/revoke",
            post(revoke_release),
        )
        .route("/installations", get(list_installations))
        .route("/installations/{id}/revoke", post(revoke_installation))
        .route("/keys", get(list_keys))
        .route("/keys/rotate", post(rotate_keys))
        .route("/audit", get(audit_entries))
        .route("/apps/{app_id}/platforms", get(list_platforms))
        .route(
            "/apps/{app_id}/platforms/{platform}",
            axum::routing::put(set_platform).get(get_platform),
        )
        .route(
            "/apps/{app_id}/play-integrity-keys",
            axum::routing::put(set_play_keys),
        )
        .route(
            "/apps/{app_id}/enrolments",
            post(create_enrolment).get(list_enrolments),
        )
        .route(
            "/apps/{app_id}/enrolments/{code_sha256}/revoke",
            post(revoke_enrolment),
        )
        .route(
            "/apps/{app_id}/secrets",
            post(secrets::set_secret).get(secrets::list_secrets),
        )
        .route(
            "/apps/{app_id}/secrets/{name}",
            axum::routing::put(secrets::rotate_secret).delete(secrets::delete_secret),
        )
        .route(
            "/apps/{app_id}/credentials",
            post(credentials::create_credential).get(credentials::list_credentials),
        )
        .route(
            "/credentials/{id}/revoke",
            post(credentials::revoke_credential),
        )
        .route(
            "/partners",
            post(partners::create_partner).get(partners::list_partners),
        )
        .route("/partners/{id}/disable", post(partners::disable_partner))
        .route("/partners/{id}/rotate", post(partners::rotate_partner))
        .route(
            "/pins",
            post(trust::add_pin)
                .get(trust::list_pins)
                .delete(trust::remove_pins),
        )
        .route("/trust", get(trust::status))
        .route("/trust/publish", post(trust::publish))
        .route(
            "/trust/roots",
            axum::routing::put(trust::set_roots).delete(trust::clear_roots),
        )
}

pub(crate) fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    if !names::is_sha256_hex(hex) {
        return None;
    }
    medgate_proto::hex::decode(hex)?.try_into().ok()
}

/// SHA-256 of an admin token, lowercase hex: what the store keeps.
pub fn admin_token_hash(token: &str) -> String {
    medgate_proto::hex::encode(digest::digest(&digest::SHA256, token.as_bytes()).as_ref())
}

/// Proof that the request carries the admin token; handlers take it as an argument.
pub(crate) struct Admin;

impl FromRequestParts<Arc<ServerState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        let (Some(token), Some(expected)) = (presented, &state.admin_token_sha256) else {
            return Err(ApiError::Unauthorized);
        };
        let hash = digest::digest(&digest::SHA256, token.as_bytes());
        if bool::from(hash.as_ref().ct_eq(expected.as_slice())) {
            Ok(Admin)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// An admin change's audit entry, which the store commits with the change.
struct Change {
    kind: &'static str,
    entry: NewAuditEntry,
}

fn change(
    state: &ServerState,
    kind: &'static str,
    subject: &str,
    detail: serde_json::Value,
) -> Change {
    Change {
        kind,
        entry: NewAuditEntry {
            at: state.clock.now(),
            kind: kind.into(),
            actor: "admin".into(),
            subject: subject.into(),
            detail,
        },
    }
}

impl Change {
    /// Counts the change once the store has committed it, and tells the other replicas
    /// (with `[redis]`) to read the revocation feed and keys now rather than at their next poll.
    fn committed(&self, state: &ServerState) {
        committed(state, self.kind);
    }
}

/// See [`Change::committed`]; for changes whose entry the store builds (key rotation).
fn committed(state: &ServerState, kind: &'static str) {
    state.metrics.admin_change(kind);
    if let Some(shared) = &state.shared {
        shared.announce_soon();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateApp {
    app_id: String,
    scopes: Vec<String>,
    #[serde(default)]
    limited_scopes: Vec<String>,
    reject_on: Option<BTreeSet<SignalKind>>,
    degrade_on: Option<BTreeSet<SignalKind>>,
    /// How far SDK evidence is trusted; `limited` unless said.
    #[serde(default)]
    sdk_evidence: SdkEvidence,
    /// Evidence must carry its detection pass's coverage.
    #[serde(default)]
    require_coverage: bool,
}

impl CreateApp {
    /// Where only one of the two signal lists is given, the other keeps its defaults minus
    /// whatever the given list claims.
    fn policy(self) -> AppPolicy {
        let (reject_on, degrade_on) = match (self.reject_on, self.degrade_on) {
            (Some(reject), Some(degrade)) => (reject, degrade),
            (Some(reject), None) => {
                let degrade = default_degrade_on().difference(&reject).copied().collect();
                (reject, degrade)
            }
            (None, Some(degrade)) => {
                let reject = default_reject_on().difference(&degrade).copied().collect();
                (reject, degrade)
            }
            (None, None) => (default_reject_on(), default_degrade_on()),
        };
        AppPolicy {
            scopes: self.scopes,
            limited_scopes: self.limited_scopes,
            reject_on,
            degrade_on,
            sdk_evidence: self.sdk_evidence,
            require_coverage: self.require_coverage,
        }
    }
}

async fn create_app(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: CreateApp = parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
    if !names::is_app_id(&request.app_id) {
        return Err(ApiError::Malformed(
            "app_id must be 1-128 characters of A-Z a-z 0-9 . _ -".into(),
        ));
    }
    let app_id = request.app_id.clone();
    let policy = request.policy();
    policy
        .validate()
        .map_err(|error| ApiError::Malformed(error.to_string()))?;
    let app = App {
        id: app_id,
        policy,
        created_at: state.clock.now(),
    };
    let change = change(
        &state,
        "admin.app.create",
        &app.id,
        serde_json::json!({"policy": app.policy}),
    );
    state.store.create_app(&app, &change.entry).await?;
    change.committed(&state);
    Ok(json(StatusCode::CREATED, &app))
}

async fn list_apps(_: Admin, State(state): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &state.store.list_apps().await?))
}

async fn get_app(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ApiError::NotFound("app"))?;
    Ok(json(StatusCode::OK, &app))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRelease {
    version: String,
    /// Required for SDK evidence; hardware platforms attest the build by its signer.
    sdk_binary_sha256: Option<String>,
    /// The build's version code (Android `versionCode`): required for Android Key Attestation
    /// and Play Integrity, which attest it.
    version_code: Option<i64>,
}

async fn add_release(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    let request: AddRelease = parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
    if !names::is_version(&request.version) {
        return Err(ApiError::Malformed(
            "version must be 1-64 characters of A-Z a-z 0-9 . _ + -".into(),
        ));
    }
    let measurement = request
        .sdk_binary_sha256
        .map(|hash| hash.to_ascii_lowercase());
    if measurement
        .as_deref()
        .is_some_and(|hash| !names::is_sha256_hex(hash))
    {
        return Err(ApiError::Malformed(
            "sdk_binary_sha256 must be 64 hex digits".into(),
        ));
    }
    if request
        .version_code
        .is_some_and(|code| !(0..=i64::from(i32::MAX)).contains(&code))
    {
        return Err(ApiError::Malformed(
            "version_code must be between 0 and 2147483647".into(),
        ));
    }
    let release = Release {
        app_id,
        version: request.version,
        binary_sha256: measurement,
        version_code: request.version_code,
        created_at: state.clock.now(),
        revoked_at: None,
    };
    let change = change(
        &state,
        "admin.release.add",
        &release.app_id,
        serde_json::json!({
            "version": release.version,
            "sdk_binary_sha256": release.binary_sha256,
            "version_code": release.version_code,
        }),
    );
    state.store.add_release(&release, &change.entry).await?;
    change.committed(&state);
    Ok(json(StatusCode::CREATED, &release))
}

async fn list_releases(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        StatusCode::OK,
        &state.store.list_releases(&app_id).await?,
    ))
}

async fn revoke_release(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path((app_id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    // The store adds how many releases it revoked (`revoked`).
    let change = change(
        &state,
        "admin.release.revoke",
        &app_id,
        serde_json::json!({"version": version}),
    );
    let revoked = state
        .store
        .revoke_release(&app_id, &version, state.clock.now(), &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"app_id": app_id, "version": version, "revoked": revoked}),
    ))
}

#[derive(Deserialize)]
struct InstallationQuery {
    app_id: Option<String>,
    /// The last id of the previous page.
    after: Option<String>,
    limit: Option<usize>,
}

const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// One page of installations in id order; a full page carries `X-Next-After` with the id to
/// ask for the next one.
async fn list_installations(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<InstallationQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let installations = state
        .store
        .list_installations(query.app_id.as_deref(), query.after.as_deref(), limit)
        .await?;
    let mut response = json(StatusCode::OK, &installations);
    if installations.len() == limit
        && let Some(value) = installations
            .last()
            .and_then(|last| HeaderValue::from_str(&last.id).ok())
    {
        response.headers_mut().insert("x-next-after", value);
    }
    Ok(response)
}

async fn revoke_installation(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // The store adds whether it was newly revoked (`newly_revoked`).
    let change = change(
        &state,
        "admin.installation.revoke",
        &id,
        serde_json::json!({}),
    );
    let changed = state
        .store
        .revoke_installation(&id, state.clock.now(), &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"installation_id": id, "revoked": true, "newly_revoked": changed}),
    ))
}

async fn list_keys(_: Admin, State(state): State<Arc<ServerState>>) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let retention = state.params.key_retention_secs();
    let keys: Vec<_> = state
        .keys
        .read()
        .records()
        .iter()
        .map(|record| {
            serde_json::json!({
                "kid": record.kid,
                "created_at": record.created_at,
                "retired_at": record.retired_at,
                "active": record.retired_at.is_none(),
                "published": record.is_published(now, retention),
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &keys))
}

async fn rotate_keys(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let previous = state.keys.read().active().kid().to_string();
    let server_error = |error: crate::ServerError| {
        tracing::error!(%error, "key rotation failed");
        ApiError::Internal
    };
    const ROTATE: &str = "admin.keys.rotate";
    let kid = keyring::add_key(&*state.store, &state.sealer, now, |kid| {
        change(
            &state,
            ROTATE,
            kid,
            serde_json::json!({"retired": previous}),
        )
        .entry
    })
    .await
    .map_err(server_error)?;
    committed(&state, ROTATE);
    let ring = keyring::KeyRing::load(&*state.store, &state.sealer, now)
        .await
        .map_err(server_error)?;
    let published_kids: Vec<String> =
        published(ring.records(), now, state.params.key_retention_secs())
            .to_jwks()
            .keys
            .iter()
            .map(|entry| entry.kid().to_string())
            .collect();
    *state.keys.write() = ring;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"kid": kid, "retired": previous, "published": published_kids}),
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    #[serde(default)]
    after: i64,
    limit: Option<usize>,
}

async fn audit_entries(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).min(1000);
    let entries = state.store.audit_entries(query.after, limit).await?;
    Ok(json(StatusCode::OK, &entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_hashes_round_trip() {
        let hash = admin_token_hash("secret-token");
        assert_eq!(hash.len(), 64);
        let parsed = parse_hash(&hash).unwrap();
        assert_eq!(medgate_proto::hex::encode(&parsed), hash);
        assert!(parse_hash("zz").is_none());
    }

    #[test]
    fn one_signal_list_given_keeps_the_other_default_without_overlap() {
        let request = CreateApp {
            app_id: "a".into(),
            scopes: vec!["s".into()],
            limited_scopes: vec![],
            reject_on: Some([SignalKind::Root, SignalKind::Hook].into()),
            degrade_on: None,
            sdk_evidence: SdkEvidence::Allow,
            require_coverage: false,
        };
        let policy = request.policy();
        assert_eq!(
            policy.degrade_on,
            [SignalKind::Emulator, SignalKind::Mitm].into()
        );
        assert!(policy.validate().is_ok());
    }
}

/// An Android policy names its package; its signing-certificate digests are SHA-256 in hex,
/// stored lowercase.
fn android_signers(package_name: &str, digests: &mut [String]) -> Result<(), ApiError> {
    digests
        .iter_mut()
        .for_each(|digest| *digest = digest.to_ascii_lowercase());
    if package_name.is_empty() || !digests.iter().all(|d| names::is_sha256_hex(d)) {
        return Err(ApiError::Malformed(
            "package_name is required and signing_cert_digests are SHA-256 in hex".into(),
        ));
    }
    Ok(())
}

/// Validates a platform policy document for `platform` and returns it normalised.
fn platform_policy(platform: &str, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    use medgate_verify::platform::{AndroidPolicy, ApplePolicy, PlayIntegrityPolicy};
    let malformed = |detail: String| ApiError::Malformed(detail);
    let normalised = match platform {
        medgate_proto::wire::platform::APPLE_APP_ATTEST => {
            let policy: ApplePolicy = parse_json(body)?;
            if let Some(bad) = policy.app_ids.iter().find(|id| {
                id.split_once('.')
                    .is_none_or(|(team, bundle)| team.is_empty() || bundle.is_empty())
            }) {
                return Err(malformed(format!(
                    "app id {bad:?} must be TEAMID.bundle.id"
                )));
            }
            serde_json::to_value(policy)
        }
        medgate_proto::wire::platform::ANDROID_KEY_ATTESTATION => {
            let mut policy: AndroidPolicy = parse_json(body)?;
            android_signers(&policy.package_name, &mut policy.signing_cert_digests)?;
            serde_json::to_value(policy)
        }
        medgate_proto::wire::platform::PLAY_INTEGRITY => {
            let mut policy: PlayIntegrityPolicy = parse_json(body)?;
            android_signers(&policy.package_name, &mut policy.signing_cert_digests)?;
            serde_json::to_value(policy)
        }
        other => {
            return Err(ApiError::NotFound(if other == "sdk" {
                "platform policy (sdk evidence is set on the app)"
            } else {
                "platform"
            }));
        }
    };
    normalised.map_err(|_| ApiError::Internal)
}

async fn set_platform(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path((app_id, platform)): Path<(String, String)>,
    request: Body,
) -> Result<Response, ApiError> {
    let policy = platform_policy(
        &platform,
        &body(&state, &headers, request, MAX_ADMIN_BODY).await?,
    )?;
    let change = change(
        &state,
        "admin.platform.set",
        &app_id,
        serde_json::json!({"platform": platform, "policy": policy}),
    );
    state
        .store
        .set_platform_policy(
            &app_id,
            &platform,
            &policy,
            state.clock.now(),
            &change.entry,
        )
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"app_id": app_id, "platform": platform, "policy": policy}),
    ))
}

async fn get_platform(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path((app_id, platform)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let policy = state
        .store
        .platform_policy(&app_id, &platform)
        .await?
        .ok_or(ApiError::NotFound("platform policy"))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"app_id": app_id, "platform": platform, "policy": policy}),
    ))
}

async fn list_platforms(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ApiError::NotFound("app"))?;
    let platforms: serde_json::Map<String, serde_json::Value> = state
        .store
        .platform_policies(&app_id)
        .await?
        .into_iter()
        .collect();
    let play_keys = state
        .store
        .app_secret(&app_id, crate::platforms::PLAY_KEYS_SECRET)
        .await?
        .is_some();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "app_id": app_id,
            "sdk": {"evidence": app.policy.sdk_evidence.as_str(),
                "require_coverage": app.policy.require_coverage},
            "platforms": platforms,
            "play_integrity_keys_configured": play_keys,
        }),
    ))
}

async fn set_play_keys(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    use crate::platforms::{PLAY_KEYS_SECRET, PlayKeysDocument};
    let keys: PlayKeysDocument =
        parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
    medgate_verify::play_integrity::PlayIntegrityKeys::from_console(
        &keys.decryption_key,
        &keys.verification_key,
    )
    .map_err(|error| ApiError::Malformed(error.to_string()))?;
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(&keys).map_err(|_| ApiError::Internal)?);
    let label = medgate_store::seal::app_secret_label(&app_id, PLAY_KEYS_SECRET);
    let sealed = state
        .sealer
        .seal(&label, &plain)
        .map_err(|_| ApiError::Internal)?;
    let now = state.clock.now();
    let change = change(
        &state,
        "admin.play_integrity_keys.set",
        &app_id,
        serde_json::json!({}),
    );
    state
        .store
        .set_app_secret(&app_id, PLAY_KEYS_SECRET, &sealed, now, &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"app_id": app_id, "play_integrity_keys_configured": true}),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateEnrolment {
    /// How long the code may be used, in seconds (default 7 days, at most 90).
    ttl_secs: Option<i64>,
}

const DEFAULT_ENROLMENT_TTL: i64 = 7 * 24 * 3600;
const MAX_ENROLMENT_TTL: i64 = 90 * 24 * 3600;

async fn create_enrolment(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    let bytes = body(&state, &headers, request, MAX_ADMIN_BODY).await?;
    let request: CreateEnrolment = if bytes.is_empty() {
        CreateEnrolment::default()
    } else {
        parse_json(&bytes)?
    };
    let ttl = request.ttl_secs.unwrap_or(DEFAULT_ENROLMENT_TTL);
    if !(60..=MAX_ENROLMENT_TTL).contains(&ttl) {
        return Err(ApiError::Malformed(
            "ttl_secs must be between 60 seconds and 90 days".into(),
        ));
    }
    let mut random = [0u8; 18];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| ApiError::Internal)?;
    let code = format!("mge_{}", medgate_proto::b64::encode(random));
    let now = state.clock.now();
    let enrolment = medgate_store::Enrolment {
        code_sha256: crate::platforms::enrolment_hash(&code),
        app_id: app_id.clone(),
        created_at: now,
        expires_at: now.plus(ttl),
        used_at: None,
        installation_id: None,
        identity: None,
        revoked_at: None,
    };
    let change = change(
        &state,
        "admin.enrolment.create",
        &app_id,
        serde_json::json!({"code_sha256": enrolment.code_sha256, "expires_at": enrolment.expires_at}),
    );
    state
        .store
        .create_enrolment(&enrolment, &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "app_id": app_id,
            "code": code,
            "expires_at": medgate_service::clock::rfc3339(enrolment.expires_at),
        }),
    ))
}

/// Revokes an enrolment: its identity is no longer admitted, an unused code can no longer be
/// claimed, and the installation it enrolled is revoked (the gateway refuses it within seconds).
async fn revoke_enrolment(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path((app_id, code_sha256)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    if !names::is_sha256_hex(&code_sha256) {
        return Err(ApiError::Malformed(
            "the enrolment is named by its code's SHA-256, 64 hex digits".into(),
        ));
    }
    let code_sha256 = code_sha256.to_ascii_lowercase();
    let now = state.clock.now();
    // The store revokes the installation the code enrolled in the same unit, and adds
    // `newly_revoked` and `installation_id` to the entry.
    let change = change(
        &state,
        "admin.enrolment.revoke",
        &app_id,
        serde_json::json!({"code_sha256": code_sha256}),
    );
    let medgate_store::EnrolmentRevocation {
        newly_revoked: revoked,
        installation_id: installation,
    } = state
        .store
        .revoke_enrolment(&app_id, &code_sha256, now, &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "app_id": app_id,
            "code_sha256": code_sha256,
            "revoked": true,
            "newly_revoked": revoked,
            "installation_id": installation,
        }),
    ))
}

async fn list_enrolments(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(json(
        StatusCode::OK,
        &state.store.list_enrolments(&app_id).await?,
    ))
}
