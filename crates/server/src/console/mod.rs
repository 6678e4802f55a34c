//! The console: server-rendered pages for the people who run medgate, on the admin listener
//! under `/console`.
//!
//! - **Who**: named operators (`medgate admin operator add`), each with a role
//!   ([`OperatorRole`]): viewers read, operators and admins also revoke. A sign-in checks the
//!   Argon2id hash ([`password`]) and starts a session: a random 32-byte cookie value
//!   (`__Host-`, `Secure`, `HttpOnly`, `SameSite=Strict`, eight hours) of which the store keeps
//!   only the SHA-256. Every change is audited with `operator:<name>` as its actor.
//! - **Forged requests**: every form carries a CSRF token, an HMAC of the session's cookie value
//!   (so only a page of this session can know it), compared in constant time; a POST whose
//!   `Origin` is not this host, or that the browser marks cross-site, is refused before that.
//!   The sign-in form does the same with a short-lived cookie of its own.
//! - **What a page may do**: a strict Content-Security-Policy (scripts and styles only from
//!   `/console/static`, no inline script or style, no framing) and the other security headers
//!   on every response ([`security_headers`]). htmx (vendored, `static/README.md`) does the
//!   partial updates; every page works without it. Charts are SVG drawn here ([`chart`]).
//! - **What a page shows**: counts from the telemetry series, installations, never a secret or
//!   a token. Text from the store is escaped by the templates (maud).

mod apps;
mod audit;
mod chart;
pub mod input;
mod installations;
mod keys;
mod layout;
mod login;
mod overview;
pub(crate) mod password;
mod versions;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, StatusCode};
use medgate_proto::admin::OperatorRole;
use ring::hmac;
use subtle::ConstantTimeEq;

use crate::ServerState;
use crate::http_util::{ApiError, body, sha256_hex};

/// The session cookie. `__Host-`: only set over a secure origin, for the whole host, never
/// for a domain (browsers count `http://127.0.0.1` and `localhost` as secure).
const SESSION_COOKIE: &str = "__Host-medgate-session";
/// How long a session lasts, signed in or not.
const SESSION_SECS: i64 = 8 * 3600;
/// A form's body: a few short fields.
const MAX_FORM: usize = 4096;

/// The Content-Security-Policy of every console response.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, nested at `/console` on the admin listener.
pub(crate) fn router() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/", get(overview::page))
        .route("/login", get(login::form).post(login::sign_in))
        .route("/logout", post(login::sign_out))
        .route("/installations", get(installations::list))
        .route("/installations/{id}", get(installations::detail))
        .route("/installations/{id}/revoke", post(installations::revoke))
        .route("/apps", get(apps::list))
        .route("/apps/{app_id}", get(apps::detail))
        .route(
            "/apps/{app_id}/releases/{version}/revoke",
            post(apps::revoke_release),
        )
        .route("/versions", get(versions::page))
        .route("/keys", get(keys::page))
        .route("/audit", get(audit::page))
        .route("/audit/verify", get(audit::verify))
        .route("/static/{file}", get(static_file))
        .fallback(|| async { ConsoleError::NotFound })
        .layer(axum::middleware::map_response(security_headers))
}

/// State the console keeps in memory: sign-in attempt limits, the last chain check.
pub(crate) struct ConsoleState {
    login: login::Limits,
    /// The last whole-chain check: one at a time, its answer reused for a minute.
    chain: Reused<audit::Checked>,
    /// The last postmarket figures (a walk of the whole chain too).
    versions: Reused<versions::Figures>,
}

/// The answer of an expensive read (a walk of the whole audit chain), made one at a time and
/// reused while it is fresh: a page asked for by many, or often, walks the chain once.
pub(crate) struct Reused<T>(tokio::sync::Mutex<Option<(std::time::Instant, T)>>);

impl<T> Default for Reused<T> {
    fn default() -> Self {
        Reused(tokio::sync::Mutex::new(None))
    }
}

impl<T: Clone> Reused<T> {
    /// The answer, computed now unless one younger than `fresh_for` is kept, and its age.
    async fn get<F, Fut>(
        &self,
        fresh_for: std::time::Duration,
        compute: F,
    ) -> Result<(T, std::time::Duration), ConsoleError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T, ConsoleError>>,
    {
        let mut kept = self.0.lock().await;
        if let Some((at, value)) = kept.as_ref()
            && at.elapsed() < fresh_for
        {
            return Ok((value.clone(), at.elapsed()));
        }
        let value = compute().await?;
        *kept = Some((std::time::Instant::now(), value.clone()));
        Ok((value, std::time::Duration::ZERO))
    }
}

impl ConsoleState {
    pub(crate) fn new() -> Self {
        ConsoleState {
            login: login::Limits::new(),
            chain: Reused::default(),
            versions: Reused::default(),
        }
    }

    /// Forgets idle limiter state.
    pub(crate) fn trim(&self) {
        self.login.trim();
    }
}

/// The headers every console response carries. The referrer policy is `same-origin`, not
/// `no-referrer`: under `no-referrer` a browser sends `Origin: null` with a form, and the
/// console checks a form's `Origin`.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (
            header::HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
        (
            header::HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), interest-cohort=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The vendored script and the stylesheet, compiled into the binary.
async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, content_type): (&'static str, &'static str) = match file.as_str() {
        "htmx-2.0.11.min.js" => (
            include_str!("static/htmx-2.0.11.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_str!("static/console.css"),
            "text/css; charset=utf-8",
        ),
        _ => return ConsoleError::NotFound.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Why a console request was not served; each is a page (or, to sign in, a redirect).
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No session, or it ended: to the sign-in page.
    SignIn,
    /// Signed in, but the role does not allow it, or the form's token is wrong.
    Forbidden(&'static str),
    NotFound,
    BadRequest(&'static str),
    RateLimited(std::time::Duration),
    /// The store did not answer.
    Unavailable,
    Internal,
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::NotFound(_) => ConsoleError::NotFound,
            ApiError::Malformed(_) | ApiError::Conflict(_) | ApiError::NotReady(_) => {
                ConsoleError::BadRequest("the request cannot be done as asked")
            }
            ApiError::TooLarge(_) => ConsoleError::BadRequest("the form is too large"),
            ApiError::UnsupportedMedia(_) => ConsoleError::BadRequest("send the form as a form"),
            ApiError::BodyTimeout => ConsoleError::BadRequest("the form did not arrive in time"),
            ApiError::Unauthorized => ConsoleError::SignIn,
            ApiError::RateLimited(wait) => ConsoleError::RateLimited(wait),
            ApiError::Unavailable(_) => ConsoleError::Unavailable,
            ApiError::Internal => ConsoleError::Internal,
        }
    }
}

impl From<medgate_store::StoreError> for ConsoleError {
    fn from(error: medgate_store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::SignIn => return see_other("/console/login"),
            ConsoleError::Forbidden(why) => (StatusCode::FORBIDDEN, why),
            ConsoleError::NotFound => (StatusCode::NOT_FOUND, "There is nothing here."),
            ConsoleError::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            ConsoleError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts: wait a minute, then try again.",
            ),
            ConsoleError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The store did not answer; try again shortly.",
            ),
            ConsoleError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Something failed."),
        };
        let mut response = (status, layout::message(status, message)).into_response();
        if let ConsoleError::RateLimited(wait) = self {
            let secs = medgate_service::ratelimit::retry_after_secs(wait);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A redirect after a form (303: the browser follows with GET) to a console path.
fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => ConsoleError::Internal.into_response(),
    }
}

/// A signed-in operator, from the session cookie; handlers that need one take it.
pub(crate) struct SignedIn {
    pub(crate) name: String,
    pub(crate) role: OperatorRole,
    session_sha256: String,
    csrf: String,
}

impl SignedIn {
    /// The actor of this operator's audit entries.
    pub(crate) fn actor(&self) -> String {
        format!("operator:{}", self.name)
    }

    /// The token every form of this session carries.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form without this session's token, or from a role that only reads.
    fn may_change(&self, form: &Form) -> Result<(), ConsoleError> {
        self.check(form)?;
        if self.role.may_change() {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "A viewer cannot change anything; ask an operator.",
            ))
        }
    }

    /// Refuses a form without this session's token.
    fn check(&self, form: &Form) -> Result<(), ConsoleError> {
        let presented = form.get("csrf").unwrap_or_default();
        if bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "The form's token is missing or wrong: reload the page and try again.",
            ))
        }
    }
}

impl SignedIn {
    /// The operator whose live session the request's cookie names, if any.
    async fn find(state: &ServerState, headers: &HeaderMap) -> Result<Option<Self>, ConsoleError> {
        let Some(raw) =
            input::cookie(headers, SESSION_COOKIE).and_then(|value| input::session_value(&value))
        else {
            return Ok(None);
        };
        let session_sha256 = sha256_hex(&raw);
        let found = state
            .store
            .console_session(&session_sha256, state.clock.now())
            .await?;
        Ok(found.map(|(_, operator)| SignedIn {
            name: operator.name,
            role: operator.role,
            session_sha256,
            csrf: csrf_token(&raw),
        }))
    }
}

impl FromRequestParts<Arc<ServerState>> for SignedIn {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, ConsoleError> {
        SignedIn::find(state, &parts.headers)
            .await?
            .ok_or(ConsoleError::SignIn)
    }
}

/// The CSRF token of a session: HMAC-SHA-256 keyed by the session's cookie value.
fn csrf_token(session: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session);
    medgate_proto::b64::encode(hmac::sign(&key, b"medgate console csrf v1").as_ref())
}

/// A `Set-Cookie` for the console: secure, script-proof, never sent cross-site.
fn set_cookie(name: &'static str, value: String, max_age_secs: i64) -> HeaderValue {
    let cookie = cookie::Cookie::build((name, value))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .max_age(cookie::time::Duration::seconds(max_age_secs))
        .build();
    // Names are constants and values base64url: always a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// 32 random bytes in base64url: a session's or a sign-in form's cookie value.
fn random_value() -> Result<(Vec<u8>, String), ConsoleError> {
    let mut raw = vec![0u8; 32];
    getrandom::fill(&mut raw).map_err(|_| ConsoleError::Internal)?;
    let text = medgate_proto::b64::encode(&raw);
    Ok((raw, text))
}

/// A submitted form, read from a bounded body, from this origin only.
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) async fn read(
        state: &ServerState,
        method: &Method,
        headers: &HeaderMap,
        request: Body,
    ) -> Result<Form, ConsoleError> {
        if method != Method::POST || !input::same_origin(headers) {
            return Err(ConsoleError::Forbidden(
                "The form was not sent from this console.",
            ));
        }
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(ConsoleError::BadRequest("send the form as a form"));
        }
        let bytes = body(state, headers, request, MAX_FORM).await?;
        Ok(Form(input::form_fields(&bytes)))
    }

    /// A field's first value.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_belongs_to_its_session() {
        let a = csrf_token(&[1; 32]);
        assert_eq!(a, csrf_token(&[1; 32]));
        assert_ne!(a, csrf_token(&[2; 32]));
        assert_eq!(
            input::session_value(&medgate_proto::b64::encode([7u8; 32])),
            Some([7; 32])
        );
        assert_eq!(
            input::session_value(&medgate_proto::b64::encode([7u8; 31])),
            None
        );
        assert_eq!(input::session_value("not base64url!"), None);
    }
}
