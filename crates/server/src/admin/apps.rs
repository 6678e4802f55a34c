//! Apps and their releases.

use medgate_store::{App, Release};

use super::*;

/// Register an app and its attestation policy.
#[utoipa::path(post, path = "/apps", tag = "apps", request_body = admin::CreateApp,
    responses((status = 201, description = "The app", body = admin::App), ApiError))]
pub(super) async fn create_app(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: admin::CreateApp = request(&state, &headers, body, MAX_ADMIN_BODY).await?;
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

/// Every registered app.
#[utoipa::path(get, path = "/apps", tag = "apps",
    responses((status = 200, description = "The apps", body = Vec<admin::App>), ApiError))]
pub(super) async fn list_apps(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let apps: Vec<App> = state.store.list_apps().await?;
    Ok(json(StatusCode::OK, &apps))
}

/// One app.
#[utoipa::path(get, path = "/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, description = "The app", body = admin::App), ApiError))]
pub(super) async fn get_app(
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

/// Register a release (a build) of an app.
#[utoipa::path(post, path = "/apps/{app_id}/releases", tag = "apps",
    params(("app_id" = String, Path)), request_body = admin::AddRelease,
    responses((status = 201, description = "The release", body = admin::Release), ApiError))]
pub(super) async fn add_release(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(app_id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let request: admin::AddRelease = request(&state, &headers, body, MAX_ADMIN_BODY).await?;
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

/// An app's releases.
#[utoipa::path(get, path = "/apps/{app_id}/releases", tag = "apps",
    params(("app_id" = String, Path)),
    responses((status = 200, description = "The releases", body = Vec<admin::Release>), ApiError))]
pub(super) async fn list_releases(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    let releases: Vec<Release> = state.store.list_releases(&app_id).await?;
    Ok(json(StatusCode::OK, &releases))
}

/// Revoke a release: installations on it are refused at their next attestation.
#[utoipa::path(post, path = "/apps/{app_id}/releases/{version}/revoke", tag = "apps",
    params(("app_id" = String, Path), ("version" = String, Path)),
    responses((status = 200, description = "Revoked", body = admin::ReleaseRevoked), ApiError))]
pub(super) async fn revoke_release(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path((app_id, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let revoked = revoke(&state, "admin".into(), &app_id, &version).await?;
    Ok(json(
        StatusCode::OK,
        &admin::ReleaseRevoked {
            app_id,
            version,
            revoked: revoked as u64,
        },
    ))
}

/// Revokes every build of a release as `actor` (the admin API, or an operator in the
/// console); how many builds were revoked.
pub(crate) async fn revoke(
    state: &ServerState,
    actor: String,
    app_id: &str,
    version: &str,
) -> Result<usize, ApiError> {
    // The store adds how many releases it revoked (`revoked`).
    let change = change_by(
        state,
        actor,
        "admin.release.revoke",
        app_id,
        serde_json::json!({"version": version}),
    );
    let revoked = state
        .store
        .revoke_release(app_id, version, state.clock.now(), &change.entry)
        .await?;
    change.committed(state);
    Ok(revoked)
}
