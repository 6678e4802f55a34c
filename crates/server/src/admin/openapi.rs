//! The admin API's OpenAPI 3.1 document, served at `GET /v1/admin/openapi.json` (no token:
//! it describes the API, it grants nothing).
//!
//! Its operations come from the handlers' `#[utoipa::path]` as the router registers them, its
//! schemas from [`medgate_proto::admin`]; this module adds what is common to all of them.

use std::collections::BTreeMap;

use axum::routing::get;
use medgate_proto::wire::Problem;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use super::*;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "medgate admin API",
        description = "Apps, releases, platforms, enrolments, installations, keys, secrets, \
            credentials, partners, pins and the audit log of a medgate node. Every change is \
            audited. Errors are RFC 9457 problem documents."
    ),
    servers((url = "/v1/admin")),
    components(schemas(Problem)),
    modifiers(&AdminToken),
    security(("admin_token" = [])),
)]
struct AdminDoc;

/// `Authorization: Bearer <admin token>` on every operation.
struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The admin token `medgate serve` writes to its data directory",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document the handlers' operations are added to.
pub(super) fn base() -> OpenApi {
    <AdminDoc as utoipa::OpenApi>::openapi()
}

/// Every status an [`ApiError`] can answer with, each a problem document.
impl utoipa::IntoResponses for ApiError {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        [
            (400, "Malformed request"),
            (401, "Admin token required"),
            (404, "Not found"),
            (408, "The body did not arrive in time"),
            (409, "Conflict"),
            (413, "Payload too large"),
            (415, "Unsupported media type"),
            (429, "Too many requests"),
            (500, "Internal error"),
            (503, "Unavailable"),
        ]
        .into_iter()
        .map(|(status, description)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let response = ResponseBuilder::new()
                .description(description)
                .content("application/problem+json", content)
                .build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
    }
}

/// `GET /openapi.json`, rendered once.
pub(super) fn serve(document: OpenApi) -> Router<Arc<ServerState>> {
    let rendered = document
        .to_json()
        .map(bytes::Bytes::from)
        .unwrap_or_else(|error| {
            tracing::error!(%error, "the admin API's OpenAPI document does not render");
            bytes::Bytes::new()
        });
    Router::new().route(
        "/openapi.json",
        get(move || {
            let rendered = rendered.clone();
            async move {
                http::Response::builder()
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Body::from(rendered))
                    .unwrap_or_default()
            }
        }),
    )
}
