//! The pins of the over-the-air pin set, the managed roots, and their publication:
//! `/v1/admin/pins`, `/v1/admin/trust` and `/v1/admin/trust/roots`. Root signing happens
//! offline (`medgate trust`), never here.

use medgate_store::PinRecord;
use medgate_trust::pins::{HostPattern, Pin};

use super::*;
use crate::trust::{self, TrustError};

fn pattern(text: &str) -> Result<String, ApiError> {
    HostPattern::parse(text)
        .map(|pattern| pattern.to_string())
        .map_err(|error| ApiError::Malformed(error.to_string()))
}

fn pin(text: &str) -> Result<String, ApiError> {
    Pin::parse(text)
        .map(|pin| pin.to_string())
        .map_err(|error| ApiError::Malformed(error.to_string()))
}

/// Pin a key for a host pattern (published with the next `POST /trust/publish`).
#[utoipa::path(post, path = "/pins", tag = "trust", request_body = admin::AddPin,
    responses((status = 201, description = "The pin", body = admin::Pin), ApiError))]
pub(super) async fn add_pin(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: admin::AddPin = super::request(&state, &headers, request, MAX_ADMIN_BODY).await?;
    let record = PinRecord {
        pattern: pattern(&request.host)?,
        pin: pin(&request.spki_sha256)?,
        created_at: state.clock.now(),
    };
    let change = change(
        &state,
        "admin.pin.add",
        &record.pattern,
        serde_json::json!({"spki_sha256": record.pin}),
    );
    state.store.add_pin(&record, &change.entry).await?;
    change.committed(&state);
    Ok(json(StatusCode::CREATED, &record))
}

/// Remove one pin of a host pattern, or all of them.
#[utoipa::path(delete, path = "/pins", tag = "trust", params(admin::RemovePins),
    responses((status = 200, description = "Removed", body = admin::PinsRemoved), ApiError))]
pub(super) async fn remove_pins(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<admin::RemovePins>,
) -> Result<Response, ApiError> {
    let host = pattern(&query.host)?;
    let one = query.spki_sha256.as_deref().map(pin).transpose()?;
    let change = change(
        &state,
        "admin.pin.remove",
        &host,
        serde_json::json!({"spki_sha256": one}),
    );
    let removed = state
        .store
        .remove_pins(&host, one.as_deref(), &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::PinsRemoved {
            host,
            removed: removed as u64,
        },
    ))
}

/// Every pin.
#[utoipa::path(get, path = "/pins", tag = "trust",
    responses((status = 200, description = "The pins", body = Vec<admin::Pin>), ApiError))]
pub(super) async fn list_pins(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let pins: Vec<admin::Pin> = state.store.pins().await?;
    Ok(json(StatusCode::OK, &pins))
}

/// The largest managed roots body (the PEM, its hosts and JSON around them).
const MAX_ROOTS_BODY: usize = medgate_trust::roots::MAX_ROOTS_BYTES + 64 * 1024;

fn roots_error(error: TrustError) -> ApiError {
    match error {
        TrustError::Roots(error) => ApiError::Malformed(error.to_string()),
        TrustError::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "managed roots could not be stored");
            ApiError::Internal
        }
    }
}

/// Sets the managed roots the next publication carries (`roots.pem`): the only roots the SDK
/// trusts for `hosts`.
#[utoipa::path(put, path = "/trust/roots", tag = "trust", request_body = admin::SetRoots,
    responses((status = 200, description = "Set", body = admin::RootsSet), ApiError))]
pub(super) async fn set_roots(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: admin::SetRoots =
        super::request(&state, &headers, request, MAX_ROOTS_BODY).await?;
    let hosts = request
        .hosts
        .iter()
        .map(|host| pattern(host))
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = medgate_trust::roots::ManagedRoots::parse(request.pem.as_bytes(), &hosts)
        .map_err(|error| ApiError::Malformed(error.to_string()))?;
    let certificates = parsed.certificates().len();
    let change = change(
        &state,
        "admin.trust.roots.set",
        "roots.pem",
        serde_json::json!({"hosts": hosts, "certificates": certificates}),
    );
    trust::set_managed_roots(
        &*state.store,
        Some((&request.pem, &hosts)),
        state.clock.now(),
        &change.entry,
    )
    .await
    .map_err(roots_error)?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::RootsSet {
            hosts,
            certificates: certificates as u64,
            published: false,
        },
    ))
}

/// Clears the managed roots: the next publication has no `roots.pem`.
#[utoipa::path(delete, path = "/trust/roots", tag = "trust",
    responses((status = 200, description = "Cleared", body = admin::RootsCleared), ApiError))]
pub(super) async fn clear_roots(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let change = change(
        &state,
        "admin.trust.roots.clear",
        "roots.pem",
        serde_json::json!({}),
    );
    trust::set_managed_roots(&*state.store, None, state.clock.now(), &change.entry)
        .await
        .map_err(roots_error)?;
    change.committed(&state);
    Ok(json(StatusCode::OK, &admin::RootsCleared { cleared: true }))
}

/// Signs a new release of the pins (targets, snapshot, timestamp) with the online keys.
#[utoipa::path(post, path = "/trust/publish", tag = "trust",
    responses((status = 200, description = "Published", body = admin::Published), ApiError))]
pub(super) async fn publish(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let change = change(
        &state,
        "admin.trust.publish",
        "targets",
        serde_json::json!({}),
    );
    let version = trust::publish(
        &*state.store,
        &state.sealer,
        state.clock.now(),
        Some(&change.entry),
    )
    .await
    .map_err(|error| match error {
        TrustError::NotInitialised | TrustError::NoBackupPin(_) => {
            ApiError::NotReady(error.to_string())
        }
        TrustError::Store(error) => error.into(),
        other => {
            tracing::error!(error = %other, "TUF publication failed");
            ApiError::Internal
        }
    })?;
    change.committed(&state);
    *state.trust.write() = Arc::new(trust::TrustFiles::load(&*state.store).await?);
    Ok(json(
        StatusCode::OK,
        &admin::Published {
            targets_version: version,
        },
    ))
}

/// Each role's latest version and expiry.
#[utoipa::path(get, path = "/trust", tag = "trust",
    responses((status = 200, description = "Each role's latest version", body = admin::TrustStatus), ApiError))]
pub(super) async fn status(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &trust_status(&state).await?))
}

/// Each TUF role's latest version and expiry, and the managed roots' hosts.
pub(crate) async fn trust_status(state: &ServerState) -> Result<admin::TrustStatus, ApiError> {
    let role = |name: &'static str| {
        let store = &state.store;
        async move {
            let latest = store.trust_metadata(name, None).await?;
            Ok::<_, ApiError>(latest.map(|file| admin::RoleStatus {
                version: file.version,
                expires_at: file.expires_at,
            }))
        }
    };
    let managed = trust::managed_roots(&*state.store)
        .await
        .map_err(roots_error)?;
    let status = admin::TrustStatus {
        root: role("root").await?,
        timestamp: role("timestamp").await?,
        snapshot: role("snapshot").await?,
        targets: role("targets").await?,
        managed_roots: managed.map(|(_, hosts)| admin::ManagedRootsStatus { hosts }),
    };
    Ok(status)
}
