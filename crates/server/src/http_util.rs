//! Small HTTP helpers for the control plane.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::StatusCode;
use http::header::{
    CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http_body_util::Full;
use medgate_proto::wire::{Problem, problem_type};
use medgate_service::body::{BodyError, read_limited};
use medgate_service::problem;
use medgate_service::ratelimit::retry_after_secs;
use medgate_store::StoreError;

use crate::ServerState;
use crate::revocation::RevocationStatus;

pub(crate) fn into_axum(response: http::Response<Full<Bytes>>) -> Response {
    response.map(Body::new)
}

pub(crate) fn problem(
    problem_type: &str,
    title: &str,
    status: u16,
    detail: Option<String>,
) -> Response {
    let mut problem = Problem::new(problem_type, title, status);
    problem.detail = detail;
    into_axum(problem::response(&problem))
}

/// Random bytes as lowercase hex (ids and credential secrets), zeroed after encoding.
pub(crate) fn random_hex(bytes: usize) -> Result<String, ApiError> {
    use ring::rand::SecureRandom;
    let mut buffer = zeroize::Zeroizing::new(vec![0u8; bytes]);
    ring::rand::SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| ApiError::Internal)?;
    Ok(medgate_proto::hex::encode(&buffer))
}

/// Whether `id` is one of medgate's public ids: `prefix` and 16 hex digits (`cred_…`,
/// `ptn_…`), as `random_hex(8)` makes them.
pub(crate) fn is_public_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// SHA-256 of `bytes`, lowercase hex: how the store keeps the admin token, enrolment codes
/// and console sessions.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    medgate_proto::hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    into_axum(problem::json(status, value))
}

/// The `Retry-After` of a 503: the node retries a revocation status list that has not loaded
/// every minute.
const UNAVAILABLE_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Errors of the control plane's handlers, each a problem response.
#[derive(Debug)]
pub(crate) enum ApiError {
    Malformed(String),
    TooLarge(usize),
    UnsupportedMedia(&'static str),
    Unauthorized,
    NotFound(&'static str),
    Conflict(&'static str),
    /// The target is not in a state that allows the request (HTTP 409), e.g. a publication
    /// before the repository exists; the detail says what to do first.
    NotReady(String),
    RateLimited(Duration),
    Unavailable(String),
    /// The body did not arrive within `server.body_read_timeout` (HTTP 408).
    BodyTimeout,
    Internal,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Backend(error) => {
                tracing::error!(%error, "the store refused a request");
                ApiError::Unavailable(RECORDING_FAILED.into())
            }
            other => {
                tracing::error!(error = %other, "request failed on the store");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Malformed(detail) => problem(
                problem_type::MALFORMED_REQUEST,
                "Malformed request",
                400,
                Some(detail),
            ),
            ApiError::BodyTimeout => {
                let mut response = problem(
                    problem_type::MALFORMED_REQUEST,
                    "Request timeout",
                    408,
                    Some("the request body did not arrive in time".into()),
                );
                response
                    .headers_mut()
                    .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
            ApiError::TooLarge(limit) => problem(
                problem_type::PAYLOAD_TOO_LARGE,
                "Payload too large",
                413,
                Some(format!("the body must be at most {limit} bytes")),
            ),
            ApiError::UnsupportedMedia(expected) => problem(
                problem_type::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                415,
                Some(format!("send the body as {expected}")),
            ),
            ApiError::Unauthorized => {
                let mut response = problem(
                    problem_type::UNAUTHORIZED,
                    "Admin token required",
                    401,
                    None,
                );
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer realm="medgate-admin""#),
                );
                response
            }
            ApiError::NotFound(what) => problem(
                problem_type::NOT_FOUND,
                "Not found",
                404,
                Some(format!("{what} not found")),
            ),
            ApiError::Conflict(what) => problem(
                problem_type::CONFLICT,
                "Conflict",
                409,
                Some(format!("{what} already exists")),
            ),
            ApiError::NotReady(detail) => {
                problem(problem_type::CONFLICT, "Conflict", 409, Some(detail))
            }
            ApiError::RateLimited(wait) => {
                let mut response =
                    problem(problem_type::RATE_LIMITED, "Too many requests", 429, None);
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(retry_after_secs(wait)));
                response
            }
            ApiError::Unavailable(detail) => {
                let mut response = problem(
                    problem_type::UNAVAILABLE,
                    "Temporarily unavailable",
                    503,
                    Some(detail),
                );
                response.headers_mut().insert(
                    RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(UNAVAILABLE_RETRY_AFTER)),
                );
                response
            }
            ApiError::Internal => problem(problem_type::INTERNAL, "Internal error", 500, None),
        }
    }
}

/// Whether the request's media type (parameters ignored) is `expected`.
pub(crate) fn content_type_is(headers: &HeaderMap, expected: &str) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// Reads a request body of at most `limit` bytes.
pub(crate) async fn body(
    state: &ServerState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    // A body sent slowly, or never, must not hold the connection.
    let read = read_limited(body, declared, limit);
    match tokio::time::timeout(state.params.body_read_timeout, read).await {
        Err(_) => Err(ApiError::BodyTimeout),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BodyError::TooLarge)) => Err(ApiError::TooLarge(limit)),
        Ok(Err(BodyError::Read)) => Err(ApiError::Malformed(
            "the request body could not be read".into(),
        )),
    }
}

/// Parses a JSON request body into `T`. The reason on failure names the position and category,
/// never the body's own text.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::Malformed(format!(
            "invalid JSON body: {}",
            medgate_proto::redact::json_error(&error)
        ))
    })
}

/// Refuses a client address over its rate limit.
/// Refuses a client over its rate limit. The client is the TCP peer, or, behind a trusted
/// proxy, the address the forwarding headers give (an IPv6 client by its /64).
pub(crate) fn limit_client(
    state: &ServerState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let client = state.params.trusted_proxies.client(peer.ip(), headers);
    state
        .client_limiter
        .check(&medgate_service::client_ip::client_key(client))
        .map_err(ApiError::RateLimited)
}

pub(crate) async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let mut response = Response::new(Body::from(state.metrics.render()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}

pub(crate) async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Ready when the store answers and a configured revocation status list is not older than its
/// maximum age (Android attestations would get 503).
/// The detail of a 503 when a decision or change cannot be recorded.
const RECORDING_FAILED: &str = "decisions cannot be recorded right now; retry shortly";

/// The store refused a write on a decision's path: 503 with Retry-After, and the node is not
/// ready until the audit writer appends again.
pub(crate) fn recording_failed(state: &ServerState) -> ApiError {
    state.audit.store_failed();
    ApiError::Unavailable(RECORDING_FAILED.into())
}

pub(crate) async fn readyz(State(state): State<Arc<ServerState>>) -> Response {
    if !state.audit.recording() {
        return problem(
            problem_type::UNAVAILABLE,
            "Not ready",
            503,
            Some(RECORDING_FAILED.into()),
        );
    }
    if let Err(error) = state.store.ping().await {
        tracing::error!(%error, "store is not reachable");
        return problem(problem_type::UNAVAILABLE, "Store unavailable", 503, None);
    }
    if let RevocationStatus::Expired { .. } = state.revocations.status(state.clock.now()) {
        return problem(
            problem_type::UNAVAILABLE,
            "Not ready",
            503,
            Some("the attestation revocation status list is older than its maximum age".into()),
        );
    }
    json(StatusCode::OK, &serde_json::json!({"status": "ready"}))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("resource")
}
