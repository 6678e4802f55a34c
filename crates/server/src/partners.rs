//! Partner backends' way to a token: RFC 6749 §4.4 client credentials with RFC 7523
//! `private_key_jwt` client authentication, as SMART Backend Services profiles them, optionally
//! sender-bound with DPoP (RFC 9449 §5); and the discovery documents that announce it
//! (`/.well-known/smart-configuration`, RFC 8414's `/.well-known/oauth-authorization-server`).
//!
//! `POST /v1/oauth/token`, in order:
//!
//! 1. The client address's rate limit; a form body (bounded), each parameter at most once.
//! 2. `grant_type` is `client_credentials`, `client_assertion_type` is RFC 7523's JWT bearer,
//!    `client_assertion` and `scope` are present.
//! 3. The assertion parses (`verify::partner`, step 1); its `iss` names a partner that is
//!    registered and not disabled, and equals the form's `client_id` when one is sent.
//! 4. The client address is in the partner's `ip_allow` (when it has one).
//! 5. The partner's keys (its registered JWKS, or its JWKS URL through a bounded cache) verify
//!    the assertion (steps 2–7).
//! 6. A DPoP proof, when sent, is verified for `POST` and this endpoint.
//! 7. The assertion's `jti` (and the proof's) take a place in the replay cache the secret
//!    endpoint's proofs use, and with `[redis]` in the cluster's; a Redis that cannot answer
//!    refuses (503).
//! 8. The grant: what was asked ∩ what was registered, bound to the proof's key (required when
//!    the partner's policy says so).
//! 9. The token is signed, its issue audited (synchronously: no token leaves unrecorded), and
//!    answered with `Cache-Control: no-store`.
//!
//! Every refusal is an RFC 6749 §5.2 error whose description is a fixed sentence: nothing the
//! client sent is repeated, logged or audited.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::Response;
use http::header::{CACHE_CONTROL, HeaderMap, HeaderName, HeaderValue, PRAGMA};
use http::{StatusCode, Uri};
use medgate_service::client_ip::Cidr;
use medgate_service::replay::ReplayError;
use medgate_service::resource::single_header;
use medgate_service::shared::Admission;
use medgate_store::{NewAuditEntry, PartnerKeys, PartnerRecord};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{self, RequestTarget};
use medgate_verify::partner::{self, ClientAssertion, GrantError, PartnerJwks, PartnerPolicy};
use medgate_verify::token::{self, IssueParams};
use parking_lot::Mutex;

use crate::ServerState;
use crate::http_util::{ApiError, body, content_type_is, is_public_id, json, limit_client};

/// Fetches a partner's JWKS URL (the node gives one that speaks https, and plain http only to
/// this machine); the answer is at most `partner::MAX_JWKS_LEN` bytes.
pub type JwksFetch = Arc<
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>> + Send + Sync,
>;

const TOKEN_PATH: &str = "/v1/oauth/token";
/// What a partner's id (its `client_id`) starts with.
pub(crate) const PARTNER_ID_PREFIX: &str = "ptn_";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const MAX_FORM: usize = 16 * 1024;
/// SMART: access tokens for backend services live at most five minutes.
const MAX_TOKEN_TTL_SECS: i64 = 300;
/// A fetched JWKS is used this long, refetched sooner (at most this often) for a `kid` it
/// lacks, used up to a day past its freshness while its URL cannot be reached (not once it
/// answers something unusable), and a URL that failed is not asked again for 30 s.
const JWKS_FRESH_SECS: i64 = 300;
const JWKS_UNKNOWN_KID_SECS: i64 = 30;
const JWKS_STALE_SECS: i64 = 24 * 3600;
const JWKS_RETRY_SECS: i64 = 30;
const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The token endpoint's URL: the issuer's, plus [`TOKEN_PATH`].
pub(crate) fn token_endpoint(state: &ServerState) -> String {
    format!("{}{TOKEN_PATH}", state.params.issuer.trim_end_matches('/'))
}

/// A JWKS URL must be https, or plain http to this machine (a partner's JWKS served beside the
/// node); no user information.
pub fn check_jwks_url(text: &str) -> Result<Uri, &'static str> {
    check_outbound_url(text).map_err(|_| {
        "jwks_url is an https URL (plain http only to 127.0.0.1, [::1] or localhost), without user information, of at most 512 characters"
    })
}

/// Why an outbound URL is refused: it is not https (nor http to this machine), has user
/// information, or is too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundUrlRefused;

/// A URL the node sends to (a JWKS it fetches, the alerts webhook): https, or plain http only
/// to this machine; no user information; at most 512 characters.
pub fn check_outbound_url(text: &str) -> Result<Uri, OutboundUrlRefused> {
    const WHY: OutboundUrlRefused = OutboundUrlRefused;
    if text.len() > 512 {
        return Err(WHY);
    }
    let uri: Uri = text.parse().map_err(|_| WHY)?;
    let authority = uri.authority().ok_or(WHY)?;
    if authority.as_str().contains('@') {
        return Err(WHY);
    }
    let host = authority.host();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err(WHY),
    }
}

/// Partners' keys: a registered JWKS parsed once per document; a JWKS URL's answer kept
/// ([`JWKS_FRESH_SECS`] and the rest above). One fetch at a time for the whole node, none for
/// a URL within [`JWKS_RETRY_SECS`] of its last failure: token requests (anyone may send one
/// naming a partner) cannot make the node hammer a partner's server.
pub(crate) struct PartnerKeyCache {
    fetch: Option<JwksFetch>,
    state: Mutex<KeyState>,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyState {
    /// By partner: the registered document and its keys.
    registered: HashMap<String, (String, Arc<PartnerJwks>)>,
    /// By partner: what its URL last answered with usable keys.
    fetched: HashMap<String, Fetched>,
    /// By partner: the URL's last failed fetch, and whether it answered something unusable
    /// (then the kept keys no longer count: the partner changed them).
    failed: HashMap<String, Failed>,
}

struct Fetched {
    url: String,
    keys: Arc<PartnerJwks>,
    at: UnixTime,
}

struct Failed {
    url: String,
    at: UnixTime,
    unusable: bool,
}

/// Why a fetch gave no keys.
enum FetchError {
    /// The URL could not be reached (the kept keys serve a while).
    Unreachable(String),
    /// It answered, with no usable JWKS (the kept keys do not serve).
    Unusable(String),
}

impl PartnerKeyCache {
    pub(crate) fn new(fetch: Option<JwksFetch>) -> Self {
        PartnerKeyCache {
            fetch,
            state: Mutex::new(KeyState::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// Drops what was kept for a partner whose keys were rotated.
    pub(crate) fn forget(&self, id: &str) {
        let mut state = self.state.lock();
        state.registered.remove(id);
        state.fetched.remove(id);
        state.failed.remove(id);
    }

    /// The partner's keys for an assertion naming `kid`; `None` when there are none to use.
    async fn keys(
        &self,
        partner: &PartnerRecord,
        kid: Option<&str>,
        now: UnixTime,
    ) -> Option<Arc<PartnerJwks>> {
        let url = match &partner.keys {
            PartnerKeys::Jwks(text) => return self.registered(&partner.id, text),
            PartnerKeys::Url(url) => url,
        };
        if let Some(kept) = self.kept(&partner.id, url, kid, now) {
            return kept;
        }
        let _one_at_a_time = self.fetching.lock().await;
        // Another request may have fetched (or failed) while this one waited.
        if let Some(kept) = self.kept(&partner.id, url, kid, now) {
            return kept;
        }
        let fetched = self.fetch_keys(url).await;
        let mut state = self.state.lock();
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                state.failed.remove(&partner.id);
                state.fetched.insert(
                    partner.id.clone(),
                    Fetched {
                        url: url.clone(),
                        keys: Arc::clone(&keys),
                        at: now,
                    },
                );
                Some(keys)
            }
            Err(error) => {
                let (unusable, why) = match error {
                    FetchError::Unreachable(why) => (false, why),
                    FetchError::Unusable(why) => (true, why),
                };
                tracing::warn!(partner = %partner.id, error = %why, "a partner's JWKS could not be used");
                if unusable {
                    // The partner changed its keys into something unusable: what was kept
                    // no longer stands for them.
                    state.fetched.remove(&partner.id);
                }
                state.failed.insert(
                    partner.id.clone(),
                    Failed {
                        url: url.clone(),
                        at: now,
                        unusable,
                    },
                );
                usable_stale(&state, &partner.id, url, now)
            }
        }
    }

    /// A registered document's keys, parsed once.
    fn registered(&self, id: &str, text: &str) -> Option<Arc<PartnerJwks>> {
        let mut state = self.state.lock();
        if let Some((known, keys)) = state.registered.get(id)
            && known == text
        {
            return Some(Arc::clone(keys));
        }
        let keys = PartnerJwks::parse(text.as_bytes())
            .map(Arc::new)
            .map_err(|error| tracing::error!(%error, "a registered partner JWKS does not parse"))
            .ok()?;
        state
            .registered
            .insert(id.to_string(), (text.to_string(), Arc::clone(&keys)));
        Some(keys)
    }

    /// What is kept and may be used without a fetch: `Some(keys)` (fresh, or stale while the
    /// URL recently failed to answer), `Some(None)` (it recently answered nothing usable), or
    /// `None` (fetch now).
    fn kept(
        &self,
        id: &str,
        url: &str,
        kid: Option<&str>,
        now: UnixTime,
    ) -> Option<Option<Arc<PartnerJwks>>> {
        let state = self.state.lock();
        if let Some(fetched) = state.fetched.get(id).filter(|fetched| fetched.url == url) {
            let age = now.secs() - fetched.at.secs();
            let has_kid = kid.is_none_or(|kid| fetched.keys.get(kid).is_some());
            if age < JWKS_FRESH_SECS && (has_kid || age < JWKS_UNKNOWN_KID_SECS) {
                return Some(Some(Arc::clone(&fetched.keys)));
            }
        }
        let recently_failed = state.failed.get(id).is_some_and(|failed| {
            failed.url == url && now.secs() - failed.at.secs() < JWKS_RETRY_SECS
        });
        recently_failed.then(|| usable_stale(&state, id, url, now))
    }

    async fn fetch_keys(&self, url: &str) -> Result<PartnerJwks, FetchError> {
        let fetch = self
            .fetch
            .as_ref()
            .ok_or_else(|| FetchError::Unreachable("this node fetches no JWKS URLs".into()))?;
        let bytes = tokio::time::timeout(Duration::from_secs(10), fetch(url.to_string()))
            .await
            .map_err(|_| FetchError::Unreachable("the fetch timed out".into()))?
            .map_err(FetchError::Unreachable)?;
        PartnerJwks::parse(&bytes).map_err(|error| FetchError::Unusable(error.to_string()))
    }
}

/// Keys fetched earlier that still serve while the URL cannot be reached: up to a day past
/// their freshness, and never after it answered something unusable.
fn usable_stale(state: &KeyState, id: &str, url: &str, now: UnixTime) -> Option<Arc<PartnerJwks>> {
    if state
        .failed
        .get(id)
        .is_some_and(|failed| failed.url == url && failed.unusable)
    {
        return None;
    }
    state
        .fetched
        .get(id)
        .filter(|fetched| fetched.url == url)
        .filter(|fetched| now.secs() - fetched.at.secs() < JWKS_FRESH_SECS + JWKS_STALE_SECS)
        .map(|fetched| Arc::clone(&fetched.keys))
}

/// An RFC 6749 §5.2 error: the code, and a description that quotes nothing the client sent.
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: &'static str,
}

const fn refused(error: &'static str, description: &'static str) -> OAuthError {
    let status = match error.as_bytes() {
        b"invalid_client" => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    OAuthError {
        status,
        error,
        description,
    }
}

const CLIENT_REFUSED: OAuthError = refused("invalid_client", "client authentication failed");

impl OAuthError {
    fn response(&self) -> Response {
        no_store(json(
            self.status,
            &serde_json::json!({"error": self.error, "error_description": self.description}),
        ))
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Step 1's form: each parameter once (RFC 6749 §3.2), the ones medgate reads.
fn form(bytes: &[u8]) -> Result<HashMap<String, String>, OAuthError> {
    const READ: [&str; 5] = [
        "grant_type",
        "scope",
        "client_id",
        "client_assertion_type",
        "client_assertion",
    ];
    let mut fields = HashMap::new();
    for (name, value) in form_urlencoded::parse(bytes) {
        if !READ.contains(&name.as_ref()) {
            continue;
        }
        if fields
            .insert(name.into_owned(), value.into_owned())
            .is_some()
        {
            return Err(refused(
                "invalid_request",
                "a parameter was sent more than once",
            ));
        }
    }
    Ok(fields)
}

pub(crate) async fn token(
    State(state): State<Arc<ServerState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    request: Body,
) -> Response {
    match issue(&state, peer, &headers, request).await {
        Ok(response) => response,
        Err(Refusal::OAuth(error)) => {
            state.metrics.partner_token(error.error);
            error.response()
        }
        Err(Refusal::Api(error)) => axum::response::IntoResponse::into_response(error),
    }
}

enum Refusal {
    OAuth(OAuthError),
    /// Not the client's request but the node: rate limits, an unrecordable grant.
    Api(ApiError),
}

impl From<OAuthError> for Refusal {
    fn from(error: OAuthError) -> Self {
        Refusal::OAuth(error)
    }
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal::Api(error)
    }
}

async fn issue(
    state: &ServerState,
    peer: SocketAddr,
    headers: &HeaderMap,
    request: Body,
) -> Result<Response, Refusal> {
    // Step 1.
    limit_client(state, peer, headers)?;
    if !content_type_is(headers, "application/x-www-form-urlencoded") {
        return Err(refused(
            "invalid_request",
            "the token request is an application/x-www-form-urlencoded form",
        )
        .into());
    }
    let fields = form(&body(state, headers, request, MAX_FORM).await?)?;
    let field = |name: &str| fields.get(name).map(String::as_str);
    // Step 2.
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => {
            return Err(refused(
                "unsupported_grant_type",
                "this endpoint grants client_credentials only",
            )
            .into());
        }
        None => return Err(refused("invalid_request", "grant_type is required").into()),
    }
    if field("client_assertion_type") != Some(JWT_BEARER) {
        return Err(refused(
            "invalid_client",
            "clients authenticate with a private_key_jwt client assertion",
        )
        .into());
    }
    let assertion = field("client_assertion").ok_or(refused(
        "invalid_client",
        "clients authenticate with a private_key_jwt client assertion",
    ))?;
    let scope = field("scope").ok_or(refused("invalid_scope", "a scope is required"))?;
    // Step 3.
    let assertion = ClientAssertion::parse(assertion).map_err(|error| {
        tracing::info!(code = error.code(), "a client assertion was refused");
        CLIENT_REFUSED
    })?;
    let client_id = assertion.claimed_client().to_string();
    if field("client_id").is_some_and(|id| id != client_id) {
        return Err(CLIENT_REFUSED.into());
    }
    let partner = match is_public_id(&client_id, PARTNER_ID_PREFIX) {
        true => state
            .store
            .partner(&client_id)
            .await
            .map_err(ApiError::from)?,
        false => None,
    };
    let Some(partner) = partner.filter(|partner| partner.disabled_at.is_none()) else {
        return Err(CLIENT_REFUSED.into());
    };
    // Step 4.
    if !partner.ip_allow.is_empty() {
        let client = state.params.trusted_proxies.client(peer.ip(), headers);
        let allowed = partner
            .ip_allow
            .iter()
            .filter_map(|block| Cidr::parse(block).ok())
            .any(|block| block.contains(client));
        if !allowed {
            tracing::info!(partner = %partner.id, "a partner's token request came from an address it may not use");
            return Err(CLIENT_REFUSED.into());
        }
    }
    // Step 5.
    let now = state.clock.now();
    let keys = state
        .partner_keys
        .keys(&partner, assertion.kid(), now)
        .await
        .ok_or(refused(
            "invalid_client",
            "the client's keys cannot be fetched right now",
        ))?;
    let endpoint = token_endpoint(state);
    let audiences = [endpoint.as_str(), state.params.issuer.as_str()];
    let verified = assertion
        .verify(
            &partner.id,
            &keys,
            &audiences,
            state.proof_policy.window.max_skew_secs,
            now,
        )
        .map_err(|error| {
            tracing::info!(partner = %partner.id, code = error.code(), "a client assertion was refused");
            CLIENT_REFUSED
        })?;
    // Step 6.
    let proof = match single_header(headers, &DPOP) {
        Err(_) => return Err(refused("invalid_dpop_proof", "send at most one DPoP header").into()),
        Ok(None) => None,
        Ok(Some(text)) => {
            let target = RequestTarget {
                method: "POST",
                uri: &endpoint,
            };
            Some(
                dpop::verify_proof(text, target, &state.proof_policy, now).map_err(|error| {
                    tracing::info!(
                        code = error.code(),
                        "a token request's DPoP proof was refused"
                    );
                    refused(
                        "invalid_dpop_proof",
                        "the DPoP proof is not valid for this request",
                    )
                })?,
            )
        }
    };
    // Step 7.
    let owner = medgate_verify::partner::owner_key(&partner.id);
    let mut taken = vec![(verified.replay_key(), verified.expires_at())];
    if let Some(proof) = &proof {
        let until = proof.iat().plus(state.proof_policy.window.max_age_secs);
        taken.push((proof.replay_key(), until));
    }
    for (key, until) in &taken {
        state
            .replays
            .admit(*key, owner, *until, now)
            .map_err(|error| match error {
                ReplayError::Replayed => refused(
                    "invalid_client",
                    "the client assertion or DPoP proof was already used",
                )
                .into(),
                ReplayError::ShareExhausted => {
                    Refusal::Api(ApiError::RateLimited(Duration::from_secs(1)))
                }
                _ => Refusal::Api(ApiError::Unavailable(
                    "too many token requests at once".into(),
                )),
            })?;
        if let Some(shared) = &state.shared {
            let lifetime =
                Duration::from_secs((until.secs() - now.secs()).max(1).unsigned_abs() + 5);
            match shared.admit(key, lifetime, &[]).await {
                Ok(Admission::Admitted) => {}
                Ok(_) => {
                    return Err(refused(
                        "invalid_client",
                        "the client assertion or DPoP proof was already used",
                    )
                    .into());
                }
                Err(_) => {
                    return Err(ApiError::Unavailable(
                        "the shared replay cache cannot answer; retry shortly".into(),
                    )
                    .into());
                }
            }
        }
    }
    // Step 8.
    let policy = PartnerPolicy {
        scopes: &partner.scopes,
        require_dpop: partner.require_dpop,
        audience: partner.audience.as_deref(),
    };
    let grant =
        partner::grant(&verified, &policy, scope, proof.as_ref()).map_err(|error| match error {
            GrantError::DpopRequired => refused(
                "invalid_request",
                "this client must send a DPoP proof with its token request",
            ),
            _ => refused(
                "invalid_scope",
                "none of the requested scopes is granted to this client",
            ),
        })?;
    // Step 9.
    let jti = crate::attest::random_b64(16).ok_or(ApiError::Internal)?;
    let key = state.keys.read().active();
    let ttl = state.params.token_ttl_secs.min(MAX_TOKEN_TTL_SECS);
    let params = IssueParams {
        issuer: &state.params.issuer,
        audience: &state.params.audience,
        ttl_secs: ttl,
        jti: &jti,
    };
    let issued = token::issue_partner(&grant, &key, &params, now).map_err(|error| {
        tracing::error!(%error, "token signing failed");
        ApiError::Internal
    })?;
    let bound = grant.jkt().is_some();
    let entry = NewAuditEntry {
        at: now,
        kind: "partner.token".into(),
        actor: partner.id.clone(),
        subject: partner.id.clone(),
        detail: serde_json::json!({
            "name": partner.name,
            "scope": issued.claims.scope,
            "jti": jti,
            "kid": key.kid(),
            "dpop": bound,
            "exp": issued.claims.exp,
        }),
    };
    if state.audit.write(entry).await.is_err() {
        return Err(crate::http_util::recording_failed(state).into());
    }
    state.metrics.partner_token("issued");
    Ok(no_store(json(
        StatusCode::OK,
        &serde_json::json!({
            "access_token": issued.token.expose(),
            "token_type": if bound { "DPoP" } else { "Bearer" },
            "expires_in": ttl,
            "scope": issued.claims.scope,
        }),
    )))
}

/// What both discovery documents say about the token endpoint.
fn token_metadata(state: &ServerState) -> serde_json::Map<String, serde_json::Value> {
    let issuer = state.params.issuer.trim_end_matches('/');
    let algs: Vec<&str> = partner::ASSERTION_ALGS
        .iter()
        .map(|alg| alg.as_str())
        .collect();
    let mut fields = serde_json::Map::new();
    for (name, value) in [
        ("issuer", serde_json::json!(state.params.issuer)),
        ("jwks_uri", format!("{issuer}/.well-known/jwks.json").into()),
        ("token_endpoint", token_endpoint(state).into()),
        (
            "grant_types_supported",
            serde_json::json!(["client_credentials"]),
        ),
        (
            "token_endpoint_auth_methods_supported",
            serde_json::json!(["private_key_jwt"]),
        ),
        (
            "token_endpoint_auth_signing_alg_values_supported",
            serde_json::json!(algs),
        ),
        (
            "dpop_signing_alg_values_supported",
            serde_json::json!(["ES256"]),
        ),
    ] {
        fields.insert(name.into(), value);
    }
    fields
}

/// `/.well-known/smart-configuration` (SMART App Launch 2.x §"Conformance").
pub(crate) async fn smart_configuration(State(state): State<Arc<ServerState>>) -> Response {
    let mut document = token_metadata(&state);
    document.insert(
        "capabilities".into(),
        serde_json::json!([
            "client-confidential-asymmetric",
            "permission-v1",
            "permission-v2"
        ]),
    );
    document.insert(
        "scopes_supported".into(),
        serde_json::json!(["system/*.rs", "system/*.cruds"]),
    );
    json(StatusCode::OK, &document)
}

/// `/.well-known/oauth-authorization-server` (RFC 8414).
pub(crate) async fn oauth_metadata(State(state): State<Arc<ServerState>>) -> Response {
    let mut document = token_metadata(&state);
    // No authorization endpoint: no response type is supported.
    document.insert("response_types_supported".into(), serde_json::json!([]));
    json(StatusCode::OK, &document)
}
