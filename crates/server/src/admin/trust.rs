//! The pins of the over-the-air pin set and its publication: `/v1/admin/pins` and
//! `/v1/admin/trust`. Root signing happens offline (`medgate trust`), never here.

use medgate_store::PinRecord;
use medgate_trust::pins::{HostPattern, Pin};

use super::*;
use crate::trust::{self, TrustError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPin {
    host: String,
    spki_sha256: String,
}

#[derive(Deserialize)]
pub(super) struct RemovePins {
    host: String,
    spki_sha256: Option<String>,
}

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

pub(super) async fn add_pin(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: AddPin = parse_json(&body(&state, &headers, request, MAX_ADMIN_BODY).await?)?;
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

pub(super) async fn remove_pins(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<RemovePins>,
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
        &serde_json::json!({"host": host, "removed": removed}),
    ))
}

pub(super) async fn list_pins(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &state.store.pins().await?))
}

/// Signs a new release of the pins (targets, snapshot, timestamp) with the online keys.
pub(super) async fn publish(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let change = change(
        &state,
        "admin.trust.publish",
        "pins.json",
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
            ApiError::Malformed(error.to_string())
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
        &serde_json::json!({"targets_version": version}),
    ))
}

/// Each role's latest version and expiry.
pub(super) async fn status(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    let mut roles = serde_json::Map::new();
    for role in ["root", "timestamp", "snapshot", "targets"] {
        let latest = state.store.trust_metadata(role, None).await?;
        roles.insert(
            role.into(),
            latest.map_or(
                serde_json::Value::Null,
                |file| serde_json::json!({"version": file.version, "expires_at": file.expires_at}),
            ),
        );
    }
    Ok(json(StatusCode::OK, &serde_json::Value::Object(roles)))
}
