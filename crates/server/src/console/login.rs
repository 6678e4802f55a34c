//! Signing in and out.
//!
//! The sign-in form sets a short-lived cookie and carries the same random value in a hidden
//! field; a sign-in must present both (a page of another site cannot read the cookie, so it
//! cannot sign a browser in as someone else). Attempts are limited per client address and per
//! name before the password is checked; an unknown name costs the same Argon2id work as a
//! wrong password, and gets the same answer.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use medgate_proto::admin::OPERATOR_PASSWORD_CHARS;
use medgate_proto::wire::names;
use medgate_service::client_ip::client_key;
use medgate_service::ratelimit::KeyedLimiter;
use medgate_store::{ConsoleSession, NewAuditEntry};
use subtle::ConstantTimeEq;

use super::input::cookie;
use super::{
    ConsoleError, Form, SESSION_COOKIE, SESSION_SECS, SignedIn, layout, password, random_value,
    see_other, set_cookie, sha256_hex,
};
use crate::ServerState;

/// The sign-in form's own cookie, and how long a form stays good.
const LOGIN_COOKIE: &str = "__Host-medgate-login";
const LOGIN_FORM_SECS: i64 = 600;

/// Attempts allowed at once per name, then one more a minute: a guesser gets about 1,440
/// guesses a day at one operator's password, whatever addresses they use.
const NAME_BURST: NonZeroU32 = NonZeroU32::new(5).expect("five is not zero");
const NAME_PERIOD: Duration = Duration::from_secs(60);
/// Attempts allowed at once per client address (a clinic's operators may share one), then one
/// more every three seconds: one address cannot try many names quickly.
const ADDRESS_BURST: NonZeroU32 = NonZeroU32::new(20).expect("twenty is not zero");
const ADDRESS_PERIOD: Duration = Duration::from_secs(3);

pub(super) struct Limits {
    by_address: KeyedLimiter<IpAddr>,
    by_name: KeyedLimiter<String>,
    /// A hash of a password nobody knows, checked when the name is unknown.
    decoy: OnceLock<Option<String>>,
    /// Argon2id checks running at once, at most one per core: each takes 19 MiB and tens of
    /// milliseconds, and many addresses must not add up to gigabytes.
    checks: tokio::sync::Semaphore,
}

impl Limits {
    pub(super) fn new() -> Self {
        Limits {
            by_address: KeyedLimiter::per_period(ADDRESS_BURST, ADDRESS_PERIOD),
            by_name: KeyedLimiter::per_period(NAME_BURST, NAME_PERIOD),
            decoy: OnceLock::new(),
            checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
        }
    }

    pub(super) fn trim(&self) {
        self.by_address.retain_recent();
        self.by_name.retain_recent();
    }

    fn decoy(&self) -> Option<String> {
        self.decoy
            .get_or_init(|| {
                random_value()
                    .ok()
                    .and_then(|(_, unknowable)| password::hash(&unknowable).ok())
            })
            .clone()
    }
}

/// `GET /console/login`: the form (or, signed in already, the overview).
pub(super) async fn form(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    if SignedIn::find(&state, &headers).await?.is_some() {
        return Ok(see_other("/console"));
    }
    form_page(StatusCode::OK, None)
}

fn form_page(status: StatusCode, problem: Option<&str>) -> Result<Response, ConsoleError> {
    let (_, token) = random_value()?;
    let page = layout::login(&token, problem);
    Ok((
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, token, LOGIN_FORM_SECS),
        )],
        page,
    )
        .into_response())
}

/// `POST /console/login`: name, password and the form's token.
pub(super) async fn sign_in(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ConsoleError> {
    let form = Form::read(&state, &method, &headers, request).await?;
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    let presented = form.get("login").unwrap_or_default();
    if expected.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(ConsoleError::Forbidden(
            "The sign-in form expired or came from elsewhere: reload it and try again.",
        ));
    }
    let name = form.get("name").unwrap_or_default();
    let given = form.get("password").unwrap_or_default();
    let limits = &state.console.login;
    // An IPv6 client by its /64, as the API's limits count it.
    let client = client_key(state.params.trusted_proxies.client(peer.ip(), &headers));
    limits
        .by_address
        .check(&client)
        .map_err(ConsoleError::RateLimited)?;
    let plausible =
        names::is_operator_name(name) && given.chars().count() <= *OPERATOR_PASSWORD_CHARS.end();
    if plausible {
        limits
            .by_name
            .check(&name.to_string())
            .map_err(ConsoleError::RateLimited)?;
    }
    let operator = if plausible {
        state.store.operator(name).await?
    } else {
        None
    };
    // The same work whether or not the name exists, a core's worth at a time.
    let stored = operator
        .as_ref()
        .map(|operator| operator.password_hash.clone());
    let given = given.to_string();
    let _permit = limits
        .checks
        .acquire()
        .await
        .map_err(|_| ConsoleError::Internal)?;
    let checking = Arc::clone(&state);
    let matched = tokio::task::spawn_blocking(move || {
        stored
            .or_else(|| checking.console.login.decoy())
            .is_some_and(|stored| password::matches(&given, &stored))
    })
    .await
    .map_err(|_| ConsoleError::Internal)?;
    let Some(operator) = operator.filter(|_| matched) else {
        state.metrics.console_sign_in(false);
        return form_page(
            StatusCode::UNAUTHORIZED,
            Some("The name or the password is wrong."),
        );
    };
    let now = state.clock.now();
    let (raw, value) = random_value()?;
    let session = ConsoleSession {
        id_sha256: sha256_hex(&raw),
        operator: operator.name.clone(),
        created_at: now,
        expires_at: now.plus(SESSION_SECS),
    };
    let audit = NewAuditEntry {
        at: now,
        kind: "console.sign_in".into(),
        actor: format!("operator:{}", operator.name),
        subject: operator.name.clone(),
        detail: serde_json::json!({ "role": operator.role.as_str() }),
    };
    state.store.create_console_session(&session, &audit).await?;
    state.metrics.console_sign_in(true);
    let mut response = see_other("/console");
    let headers = response.headers_mut();
    headers.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, value, SESSION_SECS),
    );
    headers.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, String::new(), 0),
    );
    Ok(response)
}

/// `POST /console/logout`: ends the session, here and in the store.
pub(super) async fn sign_out(
    State(state): State<Arc<ServerState>>,
    signed_in: SignedIn,
    method: Method,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ConsoleError> {
    let form = Form::read(&state, &method, &headers, request).await?;
    signed_in.check(&form)?;
    state
        .store
        .end_console_session(&signed_in.session_sha256)
        .await?;
    let mut response = see_other("/console/login");
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, String::new(), 0),
    );
    Ok(response)
}
