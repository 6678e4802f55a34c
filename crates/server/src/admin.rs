//! The admin API, under `/v1/admin`, behind `Authorization: Bearer <admin token>`.
//!
//! The server knows only the SHA-256 of the admin token (kept in the store's `meta`), and
//! compares in constant time. Every change is written to the audit log before it is answered.
//!
//! Request and response bodies are the types of [`medgate_proto::admin`], shared with the CLI.
//! Each handler declares its operation (`#[utoipa::path]`) and is registered with it, so the
//! OpenAPI document served at `/v1/admin/openapi.json` lists exactly the routes that exist.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, State};
use axum::response::Response;
use http::StatusCode;
use http::header::{AUTHORIZATION, HeaderMap};
use http::request::Parts;
use medgate_proto::admin;
use medgate_proto::wire::names;
use medgate_store::NewAuditEntry;
use medgate_verify::UnixTime;
use ring::digest;
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ServerState;
use crate::http_util::{ApiError, body, json, parse_json};

pub(crate) use apps::revoke as revoke_release;
pub(crate) use credentials::app_credentials;
pub(crate) use installations::revoke as revoke_installation;
pub(crate) use keys::signing_keys;
pub(crate) use partners::partners;
pub(crate) use secrets::app_secrets;
pub(crate) use trust::trust_status;

mod apps;
mod credentials;
mod enrolments;
mod installations;
mod keys;
mod openapi;
mod operators;
mod partners;
mod platforms;
mod secrets;
mod telemetry;
mod trust;

const MAX_ADMIN_BODY: usize = 16 * 1024;

/// The admin routes, and the OpenAPI document that describes them.
pub(crate) fn router() -> Router<Arc<ServerState>> {
    let (router, document) = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(apps::create_app, apps::list_apps))
        .routes(routes!(apps::get_app))
        .routes(routes!(apps::add_release, apps::list_releases))
        .routes(routes!(apps::revoke_release))
        .routes(routes!(installations::list_installations))
        .routes(routes!(installations::revoke_installation))
        .routes(routes!(
            operators::create_operator,
            operators::list_operators
        ))
        .routes(routes!(operators::remove_operator))
        .routes(routes!(keys::list_keys))
        .routes(routes!(keys::rotate_keys))
        .routes(routes!(keys::audit_entries))
        .routes(routes!(telemetry::telemetry))
        .routes(routes!(platforms::list_platforms))
        .routes(routes!(platforms::set_platform, platforms::get_platform))
        .routes(routes!(platforms::set_play_keys))
        .routes(routes!(
            enrolments::create_enrolment,
            enrolments::list_enrolments
        ))
        .routes(routes!(enrolments::revoke_enrolment))
        .routes(routes!(secrets::set_secret, secrets::list_secrets))
        .routes(routes!(secrets::rotate_secret, secrets::delete_secret))
        .routes(routes!(
            credentials::create_credential,
            credentials::list_credentials
        ))
        .routes(routes!(credentials::revoke_credential))
        .routes(routes!(partners::create_partner, partners::list_partners))
        .routes(routes!(partners::disable_partner))
        .routes(routes!(partners::rotate_partner))
        .routes(routes!(
            trust::add_pin,
            trust::list_pins,
            trust::remove_pins
        ))
        .routes(routes!(trust::status))
        .routes(routes!(trust::publish))
        .routes(routes!(trust::set_roots, trust::clear_roots))
        .split_for_parts();
    router.merge(openapi::serve(document))
}

/// SHA-256 of an admin token, lowercase hex: what the store keeps.
pub fn admin_token_hash(token: &str) -> String {
    crate::http_util::sha256_hex(token.as_bytes())
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

/// A path's parameters as `T`. A path that does not parse (bad percent-encoding, say) is a
/// problem response like any other bad input: axum's own rejection is plain text that repeats
/// the input.
pub(crate) struct Path<T>(pub T);

impl<T: serde::de::DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(_) => Err(ApiError::Malformed("the path is malformed".into())),
        }
    }
}

/// Query parameters as `T`; like [`Path`], a malformed query is a problem response.
pub(crate) struct Query<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|_| ApiError::Malformed("the query string is malformed".into()))
    }
}

/// An admin change's audit entry, which the store commits with the change.
struct Change {
    kind: &'static str,
    entry: NewAuditEntry,
}

/// A change made with the admin token (actor `admin`).
fn change(
    state: &ServerState,
    kind: &'static str,
    subject: &str,
    detail: serde_json::Value,
) -> Change {
    change_by(state, "admin".into(), kind, subject, detail)
}

/// A change made by `actor` (`admin`, or `operator:<name>` from the console).
fn change_by(
    state: &ServerState,
    actor: String,
    kind: &'static str,
    subject: &str,
    detail: serde_json::Value,
) -> Change {
    Change {
        kind,
        entry: NewAuditEntry {
            at: state.clock.now(),
            kind: kind.into(),
            actor,
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

/// How many items a page holds: 100 unless asked, 1 to 1000 if asked.
fn page_limit(asked: Option<usize>) -> Result<usize, ApiError> {
    const DEFAULT_PAGE: usize = 100;
    const MAX_PAGE: usize = 1000;
    match asked {
        None => Ok(DEFAULT_PAGE),
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::Malformed("limit is 1 to 1000".into())),
    }
}

/// The body of a request, parsed as `T` (bounded by `limit`).
async fn request<T: serde::de::DeserializeOwned>(
    state: &ServerState,
    headers: &HeaderMap,
    request: Body,
    limit: usize,
) -> Result<T, ApiError> {
    parse_json(&body(state, headers, request, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_token_hashes_round_trip() {
        let hash = admin_token_hash("secret-token");
        assert_eq!(hash.len(), 64);
        let parsed = medgate_proto::hex::sha256(&hash).unwrap();
        assert_eq!(medgate_proto::hex::encode(&parsed), hash);
    }
}
