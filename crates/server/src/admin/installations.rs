//! Installations: listing and revoking.

use http::header::HeaderValue;
use medgate_store::InstallationFilter;

use super::*;

/// One page of installations in id order; a full page carries `X-Next-After` with the id to
/// ask for the next one.
#[utoipa::path(get, path = "/installations", tag = "installations",
    params(admin::InstallationQuery),
    responses((status = 200, description = "A page of installations",
        body = Vec<admin::Installation>,
        headers(("x-next-after" = String, description = "On a full page: the id to ask for the next one after"))),
        ApiError))]
pub(super) async fn list_installations(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<admin::InstallationQuery>,
) -> Result<Response, ApiError> {
    let limit = super::page_limit(query.limit)?;
    let installations: Vec<admin::Installation> = state
        .store
        .list_installations(
            &InstallationFilter::app(query.app_id.as_deref()),
            query.after.as_deref(),
            limit,
        )
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

/// Revoke an installation: the gateway refuses it within seconds.
#[utoipa::path(post, path = "/installations/{id}/revoke", tag = "installations",
    params(("id" = String, Path)),
    responses((status = 200, description = "Revoked", body = admin::InstallationRevoked), ApiError))]
pub(super) async fn revoke_installation(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let newly_revoked = revoke(&state, "admin".into(), &id).await?;
    Ok(json(
        StatusCode::OK,
        &admin::InstallationRevoked {
            installation_id: id,
            revoked: true,
            newly_revoked,
        },
    ))
}

/// Revokes an installation as `actor` (the admin API, or an operator in the console); whether
/// it was not revoked before.
pub(crate) async fn revoke(state: &ServerState, actor: String, id: &str) -> Result<bool, ApiError> {
    // The store adds whether it was newly revoked (`newly_revoked`).
    let change = change_by(
        state,
        actor,
        "admin.installation.revoke",
        id,
        serde_json::json!({}),
    );
    let newly_revoked = state
        .store
        .revoke_installation(id, state.clock.now(), &change.entry)
        .await?;
    change.committed(state);
    Ok(newly_revoked)
}
