//! Credentials for apps that cannot attest (`medgate admin follower|uploader`), where and how
//! Nightscout's clients send theirs (`gateway.credentials`):
//!
//! - a query parameter (`?token=<secret>`, the share link);
//! - a header (`api-secret: <secret>`, `api-secret: token=<secret>` as py-nightscout sends it,
//!   or `api-secret: <SHA-1 hex of the secret>` as clients that hash what the user typed do);
//! - `Authorization: Bearer <exchange token>`, the JWT the gateway itself answers
//!   `GET <exchange path><secret>` (or `…/token=<secret>`, Nightguard's spelling) with, in
//!   Nightscout's shape, for v3 clients (AndroidAPS, xDrip+ follower, Nightguard).
//!
//! A credential is weaker than an attested installation: a bearer secret, no key, no device.
//! So it counts only on routes with `credentials = true` (never a `dpop+signature` one) and
//! only for its scopes; it passes the installation rate limits under its own id, takes no
//! replay-cache place (there is no proof to replay), and every accepted use is counted in the
//! audit log per credential and minute. Requests that carry `Authorization: DPoP` take the
//! installation path; the credential places are stripped before anything goes upstream.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderName;
use http::request::Parts;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use medgate_service::resource::{Refusal, Why};
use medgate_verify::UnixTime;
use medgate_verify::credential::{CredentialError, CredentialSet, ExchangeKey, VerifiedCredential};

use crate::authorize::Authorized;
use crate::routes::{self, ProofMode};
use crate::{Gateway, inject};

/// Where clients put credentials, and the exchange endpoint.
#[derive(Debug, Clone)]
pub struct CredentialParams {
    /// Query parameters that carry a credential (`token`).
    pub query: Vec<String>,
    /// Headers that carry one (`api-secret`).
    pub headers: Vec<HeaderName>,
    /// The path prefix the gateway answers with an exchange token
    /// (`/api/v2/authorization/request/`); none: no exchange.
    pub exchange_path: Option<String>,
    /// How long an exchange token lasts (never past its credential's expiry).
    pub exchange_lifetime_secs: i64,
    /// The deployment's key for exchange tokens, shared by every gateway.
    pub exchange_key: Arc<ExchangeKey>,
}

/// What a request presented in place of a token and proof.
enum Presented<'a> {
    Secret(Cow<'a, str>),
    ExchangeToken(&'a str),
}

fn refusal(error: CredentialError) -> Refusal {
    Refusal::InvalidToken(Why::new(error.code(), &error.to_string()))
}

/// The first credential the request carries, in the configured places; `None` when it
/// carries none (or takes the installation path with `Authorization: DPoP`).
fn presented<'a>(params: &CredentialParams, parts: &'a Parts) -> Option<Presented<'a>> {
    let authorization = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    if let Some(value) = authorization {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(Presented::ExchangeToken(rest.trim()));
        }
        // `DPoP` (or anything else): the installation path decides.
        return None;
    }
    if let Some(value) = params
        .headers
        .iter()
        .find_map(|name| parts.headers.get(name))
    {
        return Some(Presented::Secret(Cow::Borrowed(
            value.to_str().unwrap_or_default(),
        )));
    }
    let query = parts.uri.query()?;
    inject::decoded_parameter(query, &params.query).map(Presented::Secret)
}

impl Gateway {
    fn credentials(&self) -> Arc<CredentialSet> {
        Arc::clone(&self.inner.credentials.read())
    }

    /// Steps 1 (done by the caller), then the credential in place of steps 2–6, then step 7:
    /// `None` when the request carries no credential (the installation path goes on).
    pub(crate) fn check_credential(
        &self,
        parts: &Parts,
        path: &str,
        now: UnixTime,
    ) -> Option<Result<Authorized, Refusal>> {
        let params = self.inner.params.credentials.as_ref()?;
        let presented = presented(params, parts)?;
        Some(self.admit_credential(params, parts, path, presented, now))
    }

    fn admit_credential(
        &self,
        params: &CredentialParams,
        parts: &Parts,
        path: &str,
        presented: Presented<'_>,
        now: UnixTime,
    ) -> Result<Authorized, Refusal> {
        let inner = &self.inner;
        let credentials = self.credentials();
        let verified = match presented {
            Presented::Secret(secret) => credentials.find(&secret, now),
            Presented::ExchangeToken(token) => params.exchange_key.verify(token, &credentials, now),
        }
        .map_err(refusal)?;
        let credential = verified.credential();
        let route = routes::find(&inner.params.routes, path, &parts.method, parts.uri.query())
            .filter(|route| route.accepts_credentials())
            .ok_or(Refusal::RouteDenied)?;
        route.require_scopes(|scope| verified.has_scope(scope))?;
        inner
            .limiter
            .check(&credential.id)
            .and_then(|()| route.check_limit(&credential.id))
            .map_err(Refusal::RateLimited)?;
        // No proof, so nothing to replay.
        let (replay_key, replay_lifetime) = crate::authorize::unreplayable_key()?;
        inner
            .audit
            .count_use(medgate_service::audit::CredentialUse {
                by: medgate_service::audit::UseBy::Credential,
                credential: credential.id.clone(),
                name: credential.name.clone(),
                route: Some(route.pattern().to_string()),
            });
        // Its scopes are those that count (kept at refresh: `Gateway::refresh`).
        Ok(Authorized {
            installation_id: credential.id.clone(),
            subject: crate::authorize::Subject::Credential,
            expires_at: credential.expires_at,
            app_version: None,
            app_id: credential.app_id.clone(),
            scope: credential.scopes.join(" "),
            path: path.to_string(),
            replay_key,
            replay_lifetime,
            redis_down: route.redis_down(&parts.method),
            inject: Arc::clone(route.inject()),
            proof_mode: ProofMode::Dpop,
            tunnel: route.tunnel(),
            key: None,
            jkt: String::new(),
            owner: [0; 32],
        })
    }

    /// The exchange endpoint: `GET <exchange path>[token=]<secret>` answered here, never
    /// forwarded. `None` for every other request.
    pub(crate) fn exchange_answer(
        &self,
        parts: &Parts,
        client: std::net::IpAddr,
        now: UnixTime,
    ) -> Option<Result<Response<Full<Bytes>>, Refusal>> {
        let params = self.inner.params.credentials.as_ref()?;
        let prefix = params.exchange_path.as_deref()?;
        let rest = parts.uri.path().strip_prefix(prefix)?;
        // Within the client address's limit, as every request is.
        let client = medgate_service::client_ip::client_key(client);
        if let Err(wait) = self.inner.address_limiter.check(&client) {
            return Some(Err(Refusal::RateLimited(wait)));
        }
        Some(self.answer_exchange(params, parts, rest, now))
    }

    fn answer_exchange(
        &self,
        params: &CredentialParams,
        parts: &Parts,
        rest: &str,
        now: UnixTime,
    ) -> Result<Response<Full<Bytes>>, Refusal> {
        if parts.method != Method::GET {
            return Err(Refusal::RouteDenied);
        }
        let secret = rest.strip_prefix("token=").unwrap_or(rest);
        if secret.is_empty() || secret.contains('/') {
            return Err(Refusal::RouteDenied);
        }
        let verified: VerifiedCredential = self.credentials().find(secret, now).map_err(refusal)?;
        let answer = params
            .exchange_key
            .mint(&verified, now, params.exchange_lifetime_secs);
        self.inner
            .audit
            .count_use(medgate_service::audit::CredentialUse {
                by: medgate_service::audit::UseBy::Credential,
                credential: verified.credential().id.clone(),
                name: verified.credential().name.clone(),
                route: params.exchange_path.clone(),
            });
        let body = serde_json::to_vec(&answer).map_err(|_| Refusal::Overloaded)?;
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = StatusCode::OK;
        let headers: &mut HeaderMap = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }
}
