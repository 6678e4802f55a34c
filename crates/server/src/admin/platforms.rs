//! What an app accepts from each attestation platform, and its Play Integrity keys.

use crate::platforms::{PLAY_KEYS_SECRET, PlayKeysDocument};

use super::*;

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

/// Accept a platform for an app, under a policy whose fields depend on the platform.
#[utoipa::path(put, path = "/apps/{app_id}/platforms/{platform}", tag = "platforms",
    params(("app_id" = String, Path),
        ("platform" = String, Path, pattern = "^(apple-app-attest|android-key-attestation|play-integrity)$")),
    request_body(content = Object, description = "The platform's policy"),
    responses((status = 200, description = "The policy, normalised", body = admin::PlatformPolicy), ApiError))]
pub(super) async fn set_platform(
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
        &admin::PlatformPolicy {
            app_id,
            platform,
            policy,
        },
    ))
}

/// An app's policy for one platform.
#[utoipa::path(get, path = "/apps/{app_id}/platforms/{platform}", tag = "platforms",
    params(("app_id" = String, Path),
        ("platform" = String, Path, pattern = "^(apple-app-attest|android-key-attestation|play-integrity)$")),
    responses((status = 200, description = "The policy", body = admin::PlatformPolicy), ApiError))]
pub(super) async fn get_platform(
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
        &admin::PlatformPolicy {
            app_id,
            platform,
            policy,
        },
    ))
}

/// Everything an app accepts: SDK evidence and each platform.
#[utoipa::path(get, path = "/apps/{app_id}/platforms", tag = "platforms",
    params(("app_id" = String, Path)),
    responses((status = 200, description = "The app's platforms", body = admin::Platforms), ApiError))]
pub(super) async fn list_platforms(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let app = state
        .store
        .get_app(&app_id)
        .await?
        .ok_or(ApiError::NotFound("app"))?;
    let platforms = state
        .store
        .platform_policies(&app_id)
        .await?
        .into_iter()
        .collect();
    let play_integrity_keys_configured = state
        .store
        .app_secret(&app_id, PLAY_KEYS_SECRET)
        .await?
        .is_some();
    Ok(json(
        StatusCode::OK,
        &admin::Platforms {
            app_id,
            sdk: admin::SdkSettings {
                evidence: app.policy.sdk_evidence,
                require_coverage: app.policy.require_coverage,
            },
            platforms,
            play_integrity_keys_configured,
        },
    ))
}

/// Store an app's Play Integrity keys (sealed; never shown again).
#[utoipa::path(put, path = "/apps/{app_id}/play-integrity-keys", tag = "platforms",
    params(("app_id" = String, Path)), request_body = admin::PlayIntegrityKeys,
    responses((status = 200, description = "Stored", body = admin::PlayIntegrityKeysSet), ApiError))]
pub(super) async fn set_play_keys(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let keys: PlayKeysDocument = request(&state, &headers, body, MAX_ADMIN_BODY).await?;
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
        &admin::PlayIntegrityKeysSet {
            app_id,
            play_integrity_keys_configured: true,
        },
    ))
}
