//! One-time enrolment codes for self-built apps (Loop, AndroidAPS).

use medgate_store::Enrolment;

use super::*;

const DEFAULT_ENROLMENT_TTL: i64 = 7 * 24 * 3600;
const MAX_ENROLMENT_TTL: i64 = 90 * 24 * 3600;

/// Create a one-time enrolment code, shown this once.
#[utoipa::path(post, path = "/apps/{app_id}/enrolments", tag = "enrolments",
    params(("app_id" = String, Path)),
    request_body(content = Option<admin::CreateEnrolment>, description = "May be empty: a code valid for 7 days"),
    responses((status = 201, description = "The code", body = admin::EnrolmentCreated), ApiError))]
pub(super) async fn create_enrolment(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    let bytes = body(&state, &headers, request, MAX_ADMIN_BODY).await?;
    let request: admin::CreateEnrolment = if bytes.is_empty() {
        admin::CreateEnrolment::default()
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
    let enrolment = Enrolment {
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
        &admin::EnrolmentCreated {
            app_id,
            code,
            expires_at: medgate_service::clock::rfc3339(enrolment.expires_at),
        },
    ))
}

/// Revoke an enrolment: its identity is no longer admitted, an unused code can no longer be
/// claimed, and the installation it enrolled is revoked (the gateway refuses it within seconds).
#[utoipa::path(post, path = "/apps/{app_id}/enrolments/{code_sha256}/revoke", tag = "enrolments",
    params(("app_id" = String, Path),
        ("code_sha256" = String, Path, pattern = "^[0-9a-f]{64}$",
            description = "The code's SHA-256, 64 lowercase hex digits")),
    responses((status = 200, description = "Revoked", body = admin::EnrolmentRevoked), ApiError))]
pub(super) async fn revoke_enrolment(
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
        newly_revoked,
        installation_id,
    } = state
        .store
        .revoke_enrolment(&app_id, &code_sha256, now, &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::EnrolmentRevoked {
            app_id,
            code_sha256,
            revoked: true,
            newly_revoked,
            installation_id,
        },
    ))
}

/// An app's enrolments and what they enrolled.
#[utoipa::path(get, path = "/apps/{app_id}/enrolments", tag = "enrolments",
    params(("app_id" = String, Path)),
    responses((status = 200, description = "The enrolments", body = Vec<admin::Enrolment>), ApiError))]
pub(super) async fn list_enrolments(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let enrolments: Vec<Enrolment> = state.store.list_enrolments(&app_id).await?;
    Ok(json(StatusCode::OK, &enrolments))
}
