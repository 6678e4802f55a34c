//! Partner backends (SMART Backend Services): `/v1/admin/partners`,
//! `/v1/admin/partners/{id}/disable` and `/v1/admin/partners/{id}/rotate`.
//!
//! A partner holds no secret: it is a name, where its public keys are (a JWKS URL the control
//! plane fetches, or a JWKS registered here), the SMART scopes it may be granted, its tokens'
//! audience, the addresses it may come from and whether its tokens must be DPoP-bound. Its id
//! is its OAuth `client_id`. Every change is audited; a gateway learns of a disabled partner at
//! its next refresh (at once with `[redis]`).

use medgate_service::client_ip::Cidr;
use medgate_store::{PartnerKeys, PartnerRecord};
use medgate_verify::partner::PartnerJwks;
use medgate_verify::smart_scope::{MAX_SCOPES, SmartScope};

use super::*;
use crate::http_util::{is_public_id, random_hex};
use crate::partners::{PARTNER_ID_PREFIX, check_jwks_url, token_endpoint};

const MAX_ADDRESS_BLOCKS: usize = 32;
const MAX_URL_LEN: usize = 512;

/// Where the partner's keys are: exactly one of the two.
fn keys(source: admin::PartnerKeySource) -> Result<PartnerKeys, ApiError> {
    match (source.jwks_url, source.jwks) {
        (Some(url), None) => {
            check_jwks_url(&url).map_err(|why| ApiError::Malformed(why.into()))?;
            Ok(PartnerKeys::Url(url))
        }
        (None, Some(jwks)) => {
            let text = jwks.to_string();
            PartnerJwks::parse(text.as_bytes())
                .map_err(|error| ApiError::Malformed(format!("jwks: {error}")))?;
            Ok(PartnerKeys::Jwks(text))
        }
        _ => Err(ApiError::Malformed(
            "give the partner's keys as jwks_url or as jwks, not both".into(),
        )),
    }
}

fn checked(request: &admin::CreatePartner) -> Result<(), ApiError> {
    let malformed = |why: &str| Err(ApiError::Malformed(why.into()));
    let name_chars = request.name.chars().count();
    if !(1..=64).contains(&name_chars) || request.name.chars().any(char::is_control) {
        return malformed("a name is 1-64 characters, none of them control characters");
    }
    if request.scopes.is_empty()
        || request.scopes.len() > MAX_SCOPES
        || !request
            .scopes
            .iter()
            .all(|scope| SmartScope::parse(scope).is_some())
    {
        return malformed(
            "scopes are 1-32 SMART backend scopes: system/<Resource or *>.<cruds, read, write or *>",
        );
    }
    if request.audience.as_ref().is_some_and(|audience| {
        audience.len() > MAX_URL_LEN
            || !(audience.starts_with("https://") || audience.starts_with("http://"))
            || audience
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
    }) {
        return malformed("audience is an http(s) URL of at most 512 characters");
    }
    if request.ip_allow.len() > MAX_ADDRESS_BLOCKS
        || request
            .ip_allow
            .iter()
            .any(|block| Cidr::parse(block).is_err())
    {
        return malformed("ip_allow is at most 32 address blocks (CIDR, e.g. 192.0.2.0/24)");
    }
    Ok(())
}

fn shown_keys(keys: &PartnerKeys) -> admin::PartnerKeysShown {
    match keys {
        PartnerKeys::Url(url) => admin::PartnerKeysShown {
            jwks_url: Some(shown_url(url)),
            kids: None,
        },
        PartnerKeys::Jwks(text) => admin::PartnerKeysShown {
            jwks_url: None,
            kids: Some(
                PartnerJwks::parse(text.as_bytes())
                    .map(|keys| keys.kids().map(str::to_string).collect())
                    .unwrap_or_default(),
            ),
        },
    }
}

fn listed(partner: &PartnerRecord) -> admin::Partner {
    admin::Partner {
        id: partner.id.clone(),
        name: partner.name.clone(),
        keys: shown_keys(&partner.keys),
        scopes: partner.scopes.clone(),
        audience: partner.audience.clone(),
        ip_allow: partner.ip_allow.clone(),
        require_dpop: partner.require_dpop,
        created_at: partner.created_at,
        rotated_at: partner.rotated_at,
        disabled_at: partner.disabled_at,
        state: if partner.disabled_at.is_some() {
            admin::PartnerState::Disabled
        } else {
            admin::PartnerState::Active
        },
    }
}

fn shown_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

/// Register a partner backend.
#[utoipa::path(post, path = "/partners", tag = "partners", request_body = admin::CreatePartner,
    responses((status = 201, description = "The partner and its client id", body = admin::PartnerCreated), ApiError))]
pub(super) async fn create_partner(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let request: admin::CreatePartner =
        super::request(&state, &headers, request, MAX_PARTNER_BODY).await?;
    checked(&request)?;
    let keys = keys(request.key_source())?;
    let partner = PartnerRecord {
        id: format!("{PARTNER_ID_PREFIX}{}", random_hex(8)?),
        name: request.name,
        keys,
        scopes: request.scopes,
        audience: request.audience,
        ip_allow: request.ip_allow,
        require_dpop: request.require_dpop,
        created_at: state.clock.now(),
        rotated_at: None,
        disabled_at: None,
    };
    let mut detail = serde_json::to_value(listed(&partner)).map_err(|_| ApiError::Internal)?;
    if let Some(fields) = detail.as_object_mut() {
        fields.retain(|name, _| name != "created_at" && name != "state");
    }
    let change = change(&state, "admin.partner.create", &partner.id, detail);
    state.store.create_partner(&partner, &change.entry).await?;
    change.committed(&state);
    let answer = admin::PartnerCreated {
        client_id: partner.id.clone(),
        token_endpoint: token_endpoint(&state),
        partner: listed(&partner),
    };
    Ok(json(StatusCode::CREATED, &answer))
}

/// Every partner.
#[utoipa::path(get, path = "/partners", tag = "partners",
    responses((status = 200, description = "The partners", body = Vec<admin::Partner>), ApiError))]
pub(super) async fn list_partners(
    _: Admin,
    State(state): State<Arc<ServerState>>,
) -> Result<Response, ApiError> {
    Ok(json(StatusCode::OK, &partners(&state).await?))
}

/// Partner backends as listed (the admin API, the console): their key sources, never a key.
pub(crate) async fn partners(state: &ServerState) -> Result<Vec<admin::Partner>, ApiError> {
    Ok(state.store.partners().await?.iter().map(listed).collect())
}

/// Disable a partner: it gets no more tokens, and gateways refuse its tokens.
#[utoipa::path(post, path = "/partners/{id}/disable", tag = "partners",
    params(("id" = String, Path)),
    responses((status = 200, description = "Disabled", body = admin::PartnerDisabled), ApiError))]
pub(super) async fn disable_partner(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !is_public_id(&id, PARTNER_ID_PREFIX) {
        return Err(ApiError::NotFound("partner"));
    }
    let partner = state
        .store
        .partner(&id)
        .await?
        .ok_or(ApiError::NotFound("partner"))?;
    let change = change(
        &state,
        "admin.partner.disable",
        &id,
        serde_json::json!({"name": partner.name}),
    );
    state
        .store
        .disable_partner(&id, state.clock.now(), &change.entry)
        .await?;
    change.committed(&state);
    Ok(json(
        StatusCode::OK,
        &admin::PartnerDisabled { id, disabled: true },
    ))
}

/// Replace a partner's keys.
#[utoipa::path(post, path = "/partners/{id}/rotate", tag = "partners",
    params(("id" = String, Path)), request_body = admin::PartnerKeySource,
    responses((status = 200, description = "Rotated", body = admin::PartnerRotated), ApiError))]
pub(super) async fn rotate_partner(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    request: Body,
) -> Result<Response, ApiError> {
    if !is_public_id(&id, PARTNER_ID_PREFIX) {
        return Err(ApiError::NotFound("partner"));
    }
    let source: admin::PartnerKeySource =
        super::request(&state, &headers, request, MAX_PARTNER_BODY).await?;
    let keys = keys(source)?;
    let partner = state
        .store
        .partner(&id)
        .await?
        .ok_or(ApiError::NotFound("partner"))?;
    let rotated = PartnerRecord {
        keys: keys.clone(),
        ..partner
    };
    let change = change(
        &state,
        "admin.partner.rotate",
        &id,
        serde_json::json!({"name": rotated.name, "keys": shown_keys(&rotated.keys)}),
    );
    state
        .store
        .rotate_partner_keys(&id, &keys, state.clock.now(), &change.entry)
        .await?;
    change.committed(&state);
    state.partner_keys.forget(&id);
    Ok(json(
        StatusCode::OK,
        &admin::PartnerRotated {
            id,
            rotated: true,
            keys: shown_keys(&rotated.keys),
        },
    ))
}

/// A JWKS of up to 16 RSA keys, with room for the rest of the request.
const MAX_PARTNER_BODY: usize = medgate_verify::partner::MAX_JWKS_LEN + 4 * 1024;
