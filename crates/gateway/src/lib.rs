//! medgate's data plane: a streaming reverse proxy that admits a request only with a valid
//! DPoP-bound access token and a fresh proof of possession of its key.
//!
//! For every request, in order ([`Gateway::authorize`]):
//!
//! 1. The path is safe to route (no dot segments or encoded separators).
//! 2. `Authorization: DPoP <token>`: exactly one, with the DPoP scheme.
//! 3. The token verifies (signature checked once, then cached until `exp`).
//! 4. Neither the installation nor its release has been revoked.
//! 5. `DPoP: <proof>`: exactly one, and it verifies for this method and URI, with `ath` and the
//!    key binding (RFC 9449 §4.3, §7.1).
//! 6. The proof's `jti` has not been seen from this key within the window.
//! 7. A route rule matches the path and method, and the token carries its scopes.
//! 8. The installation is within its rate limit, and the proof's `jti` takes its place in the
//!    replay cache.
//! 9. With `[redis]`, the same across every gateway, in one round trip: the installation's and
//!    the client address's cluster-wide limits, then the `jti` ([`medgate_service::shared`]).
//!    While Redis is unreachable, each route's [`routes::FailMode`] decides.
//!
//! Then the request is forwarded to the upstream without `Authorization` and `DPoP`, with
//! `X-Medgate-Installation`, `X-Medgate-App` and `X-Medgate-Scope` added, bodies streamed both
//! ways. The gateway never writes to storage on the request path: revocations and keys are
//! polled by [`Gateway::refresh`], and rejections are queued to the audit writer.

pub mod cache;
pub mod inject;
pub mod path;
pub mod routes;
mod signature;

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONNECTION, HOST, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use medgate_proto::redact::short;
use medgate_proto::wire::{Problem, problem_type};
use medgate_service::Clock;
use medgate_service::audit::AuditSink;
use medgate_service::listen::{self, ConnectionLimits};
use medgate_service::metrics::Metrics;
use medgate_service::problem;
use medgate_service::ratelimit::{KeyedLimiter, RateLimit};
use medgate_service::replay::{ReplayCache, ReplayError};
use medgate_service::resource;
pub use medgate_service::resource::{Refusal, Why};
use medgate_service::shared::{Admission, Cell, SharedState};
use medgate_service::tls::ServerTls;
use medgate_store::seal::Sealer;
use medgate_store::{RevocationTarget, Store, StoreError, published_keys};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{self, ProofPolicy, RequestTarget};
use medgate_verify::httpsig::SignaturePolicy;
use medgate_verify::keys::KeySet;
use medgate_verify::token::{self, TokenExpectations, VerifiedToken};
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::TokenCache;
use crate::routes::{FailMode, ProofMode, Route};

/// Response bodies: streamed from the upstream, or our own small JSON.
pub type GatewayBody = BoxBody<Bytes, hyper::Error>;
/// Request bodies to the upstream: streamed from the client, or read whole to check a
/// signed body's digest.
type UpstreamBody = Either<Incoming, Full<Bytes>>;

const X_INSTALLATION: HeaderName = HeaderName::from_static("x-medgate-installation");
const X_APP: HeaderName = HeaderName::from_static("x-medgate-app");
const X_SCOPE: HeaderName = HeaderName::from_static("x-medgate-scope");
const X_KEY: HeaderName = HeaderName::from_static("x-medgate-key");
const X_AUTHORIZATION: HeaderName = HeaderName::from_static("x-medgate-authorization");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// Headers a client must not set for the upstream, by normalised name (lower case, `_` read as
/// `-`, since CGI and WSGI servers merge the two): credentials the gateway consumed, the
/// identity and forwarding headers the gateway sets itself, and rewrite and method overrides
/// that would make the upstream act on another route or method than the one checked.
const SPOOFABLE: [&str; 21] = [
    "authorization",
    "x-medgate-key",
    "x-medgate-authorization",
    "dpop",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-override-url",
];
/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Settings the gateway runs with (resolved from the config file by the node).
#[derive(Debug, Clone)]
pub struct GatewayParams {
    /// The URL clients use to reach the gateway; `htu` must be this plus the request path.
    pub public_url: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// The `aud` tokens must carry.
    pub audience: String,
    /// Where admitted requests go (`http(s)://host:port[/prefix]`); `None` answers 503.
    pub upstream: Option<Uri>,
    /// Whom an https upstream must be (`medgate_service::tls::upstream_client_config`); for a
    /// plain upstream, a configuration that trusts nothing.
    pub upstream_tls: Arc<rustls::ClientConfig>,
    pub routes: Vec<Route>,
    /// Per installation.
    pub rate_limit: RateLimit,
    /// Per client address (the peer, or what trusted proxies say).
    pub address_rate_limit: RateLimit,
    pub proof: ProofPolicy,
    pub token_leeway_secs: i64,
    pub token_cache_capacity: usize,
    pub replay_capacity: usize,
    /// The live replay-cache entries one installation may hold.
    pub replay_share: usize,
    pub upstream_timeout: Duration,
    /// How long retired signing keys stay trusted (the server's token lifetime plus leeway).
    pub key_retention_secs: i64,
    /// What clients can hold of the listener (and the proxies it trusts).
    pub connections: ConnectionLimits,
    /// The largest body a `dpop+signature` route reads to check its digest.
    pub max_signed_body: usize,
}

/// Revocations learned from the store's feed.
#[derive(Debug, Default)]
struct Revoked {
    last_seq: i64,
    installations: HashSet<String>,
    releases: HashSet<(String, String)>,
}

struct Inner {
    params: GatewayParams,
    keys: RwLock<Arc<KeySet>>,
    revoked: RwLock<Revoked>,
    tokens: TokenCache,
    replays: ReplayCache,
    limiter: KeyedLimiter<String>,
    address_limiter: KeyedLimiter<IpAddr>,
    /// Replay keys and limits shared with the other gateways, when `[redis]` is configured.
    shared: Option<SharedState>,
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    /// What `proof = "dpop+signature"` routes require of a signature.
    signature_policy: SignaturePolicy,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    audit: AuditSink,
    /// `X-Forwarded-Proto` and `-Host` for every forwarded request, from `public_url`.
    forwarded: Vec<(HeaderName, HeaderValue)>,
    /// Opens the operator secrets routes inject.
    sealer: Sealer,
    secrets: inject::SecretCache,
}

/// The scheme and authority of the gateway's public URL, as forwarding headers.
fn forwarded_headers(public_url: &str) -> Vec<(HeaderName, HeaderValue)> {
    let Ok(public) = public_url.parse::<Uri>() else {
        return Vec::new();
    };
    let proto = public
        .scheme_str()
        .and_then(|s| HeaderValue::from_str(s).ok())
        .map(|value| (X_FORWARDED_PROTO, value));
    let host = public
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .map(|value| (X_FORWARDED_HOST, value));
    proto.into_iter().chain(host).collect()
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("public_url", &self.inner.params.public_url)
            .finish_non_exhaustive()
    }
}

/// A request that passed every check. Only [`Gateway::authorize`] makes one, and only an
/// `Authorized` request is forwarded.
#[derive(Debug)]
pub struct Authorized {
    installation_id: String,
    app_id: String,
    scope: String,
    /// The canonical path the routes were checked against: what the upstream receives.
    path: String,
    /// The proof's replay key and how long it must stay taken.
    replay_key: [u8; 32],
    replay_lifetime: Duration,
    /// The route's choice while the shared state is unreachable.
    redis_down: FailMode,
    /// The upstream credentials the route adds.
    inject: Arc<[inject::Injection]>,
    /// What else the route requires: a signature over the body's digest.
    proof_mode: ProofMode,
    /// The installation key that signed the proof, and its thumbprint (the token's `cnf.jkt`).
    key: medgate_proto::PublicJwk,
    jkt: String,
    /// The installation, as the replay cache files its entries.
    owner: [u8; 32],
}

impl Authorized {
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }
}

fn local(response: Response<Full<Bytes>>) -> Response<GatewayBody> {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

impl Gateway {
    /// `sealer` opens the operator secrets that routes inject (the node's master key).
    pub fn new(
        params: GatewayParams,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        audit: AuditSink,
        shared: Option<SharedState>,
    ) -> Gateway {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        http.enforce_http(false);
        // The upstream's scheme decides: an https upstream gets the verifier the node built
        // (roots, pins); a plain one never makes a handshake.
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config((*params.upstream_tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Gateway {
            inner: Arc::new(Inner {
                forwarded: forwarded_headers(&params.public_url),
                sealer,
                secrets: inject::SecretCache::default(),
                tokens: TokenCache::new(params.token_cache_capacity),
                replays: ReplayCache::new(params.replay_capacity, params.replay_share),
                limiter: KeyedLimiter::new(params.rate_limit),
                address_limiter: KeyedLimiter::new(params.address_rate_limit),
                shared,
                keys: RwLock::new(Arc::new(KeySet::default())),
                revoked: RwLock::new(Revoked::default()),
                signature_policy: SignaturePolicy::for_requests(params.proof.window),
                params,
                client,
                clock,
                metrics,
                audit,
            }),
        }
    }

    /// Loads the published signing keys and new revocations from the store. The node calls
    /// this every second, which bounds how long a revocation takes to reach the gateway.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let inner = &self.inner;
        let records = store.signing_keys().await?;
        let keys = published_keys(&records, inner.clock.now(), inner.params.key_retention_secs);
        *inner.keys.write() = Arc::new(keys);
        let after = inner.revoked.read().last_seq;
        let news = store.revocations_since(after).await?;
        if let Some(last) = news.last() {
            let mut revoked = inner.revoked.write();
            revoked.last_seq = last.seq;
            for revocation in news {
                match revocation.target {
                    RevocationTarget::Installation {
                        installation_id, ..
                    } => {
                        revoked.installations.insert(installation_id);
                    }
                    RevocationTarget::Release { app_id, version } => {
                        revoked.releases.insert((app_id, version));
                    }
                }
            }
        }
        inner
            .secrets
            .update(store.secrets(None).await?, &inner.sealer);
        inner.limiter.retain_recent();
        inner.address_limiter.retain_recent();
        Ok(())
    }

    fn algs(&self) -> String {
        let names: Vec<&str> = self
            .inner
            .params
            .proof
            .algs
            .iter()
            .map(|alg| alg.as_str())
            .collect();
        names.join(" ")
    }

    /// Steps 1–8 of the module documentation.
    pub fn authorize(&self, parts: &Parts, now: UnixTime) -> Result<Authorized, Refusal> {
        self.check(parts, now).map_err(|(refusal, _)| refusal)
    }

    /// Steps 1–9: [`authorize`](Self::authorize), then the client address's limit and the
    /// shared state — what [`handle`](Self::handle) runs before forwarding.
    pub async fn admit(
        &self,
        parts: &Parts,
        client: IpAddr,
        now: UnixTime,
    ) -> Result<Authorized, Refusal> {
        self.decide(parts, client, now)
            .await
            .map_err(|(refusal, _)| refusal)
    }

    /// Steps 1–8; a refusal comes with the installation when its token verified. The order
    /// puts every check that costs no shared state first: a refused request takes no place in
    /// the replay cache and no one else's rate.
    fn check(&self, parts: &Parts, now: UnixTime) -> Result<Authorized, (Refusal, Option<String>)> {
        let inner = &self.inner;
        let anonymous = |refusal: Refusal| (refusal, None);
        // Step 1: one canonical path for the route check, the proof and the upstream.
        let path = path::canonical_path(parts.uri.path()).map_err(|error| {
            anonymous(match error {
                path::PathError::TooLong => Refusal::PathTooLong,
                _ => Refusal::UnsafePath,
            })
        })?;
        let path = path.as_str();
        // Step 2.
        let token_text = resource::access_token(&parts.headers).map_err(anonymous)?;
        // Step 3.
        let ath = token::access_token_hash(token_text);
        let token = match inner.tokens.get(&ath, now) {
            Some(token) => {
                inner.metrics.token_cache(true);
                token
            }
            None => {
                inner.metrics.token_cache(false);
                let keys = Arc::clone(&inner.keys.read());
                let expect = TokenExpectations {
                    issuer: &inner.params.issuer,
                    audience: &inner.params.audience,
                    leeway_secs: inner.params.token_leeway_secs,
                };
                let verified = token::verify(token_text, &keys, &expect, now)
                    .map_err(|error| anonymous(Refusal::InvalidToken(error.into())))?;
                let verified = Arc::new(verified);
                inner.tokens.insert(Arc::clone(&verified), now);
                verified
            }
        };
        let installation = token.installation_id().to_string();
        let theirs = |refusal: Refusal| (refusal, Some(installation.clone()));
        // Step 4.
        check_revocation(&inner.revoked.read(), &token).map_err(theirs)?;
        // Step 5.
        let proof_text = resource::dpop_proof(&parts.headers).map_err(theirs)?;
        let uri = dpop::target_uri(&inner.params.public_url, path)
            .map_err(|error| theirs(Refusal::InvalidProof(error.into())))?;
        let target = RequestTarget {
            method: parts.method.as_str(),
            uri: &uri,
        };
        let bound = dpop::verify_bound(proof_text, &token, target, &inner.params.proof, now)
            .map_err(|error| theirs(Refusal::InvalidProof(error.into())))?;
        // Step 6.
        let route = routes::find(&inner.params.routes, path)
            .filter(|route| route.allows_method(&parts.method))
            .ok_or_else(|| theirs(Refusal::RouteDenied))?;
        let missing: Vec<String> = route
            .scopes()
            .iter()
            .filter(|s| !token.has_scope(s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(theirs(Refusal::InsufficientScope(missing)));
        }
        // Step 7.
        inner
            .limiter
            .check(&installation)
            .map_err(|wait| theirs(Refusal::RateLimited(wait)))?;
        // Step 8: only now does the proof take a place in the replay cache, within the
        // installation's share.
        let acceptable_until = bound
            .proof()
            .iat()
            .plus(inner.params.proof.window.max_age_secs);
        // The installation's key thumbprint, checked when the token verified.
        let owner_key = token.jkt().digest().unwrap_or([0; 32]);
        let replay_key = bound.proof().replay_key();
        inner
            .replays
            .admit(replay_key, owner_key, acceptable_until, now)
            .map_err(|error| {
                theirs(match error {
                    ReplayError::Replayed => Refusal::InvalidProof(Why::new(
                        "replayed",
                        "DPoP proof jti was already used",
                    )),
                    ReplayError::ShareExhausted => Refusal::RateLimited(Duration::from_secs(1)),
                    ReplayError::Full => Refusal::Overloaded,
                })
            })?;
        Ok(Authorized {
            installation_id: installation.clone(),
            app_id: token.app_id().to_string(),
            scope: token.scopes().join(" "),
            path: path.to_string(),
            replay_key,
            // Until the proof's iat leaves the window, on the slowest gateway clock the skew
            // allows, plus a second for whole-second clocks.
            replay_lifetime: Duration::from_secs(
                (acceptable_until.secs() - now.secs()
                    + inner.params.proof.window.max_skew_secs
                    + 1)
                .max(1)
                .unsigned_abs(),
            ),
            redis_down: route.redis_down(&parts.method),
            inject: Arc::clone(route.inject()),
            proof_mode: route.proof(),
            key: bound.proof().key().clone(),
            jkt: token.jkt().as_str().to_string(),
            owner: owner_key,
        })
    }

    /// Steps 1–9: the local checks, then the client address's local limit, then (with
    /// `[redis]`) the cluster-wide limits and replay key. A request these refuse has already
    /// spent its proof's local replay entry: a retry needs a new proof, as every request does.
    async fn decide(
        &self,
        parts: &Parts,
        client: IpAddr,
        now: UnixTime,
    ) -> Result<Authorized, (Refusal, Option<String>)> {
        let inner = &self.inner;
        let authorized = self.check(parts, now)?;
        let theirs = |refusal: Refusal| (refusal, Some(authorized.installation_id.clone()));
        // An IPv6 client is its /64, as for connection limits: rotating addresses within it
        // gains nothing.
        let client = medgate_service::client_ip::client_key(client);
        inner
            .address_limiter
            .check(&client)
            .map_err(|wait| theirs(Refusal::RateLimited(wait)))?;
        let Some(shared) = &inner.shared else {
            return Ok(authorized);
        };
        let address = client.to_string();
        let cells = [
            Cell {
                kind: "i",
                id: &authorized.installation_id,
                limit: inner.params.rate_limit,
            },
            Cell {
                kind: "a",
                id: &address,
                limit: inner.params.address_rate_limit,
            },
        ];
        let admission = shared
            .admit(&authorized.replay_key, authorized.replay_lifetime, &cells)
            .await;
        inner.metrics.shared_state(match admission {
            Ok(Admission::Admitted) => "admitted",
            Ok(Admission::Replayed) => "replayed",
            Ok(Admission::Limited(_)) => "limited",
            Err(_) if authorized.redis_down == FailMode::Open => "unavailable_open",
            Err(_) => "unavailable_closed",
        });
        match admission {
            Ok(Admission::Admitted) => Ok(authorized),
            Ok(Admission::Replayed) => Err(theirs(Refusal::InvalidProof(Why::new(
                "replayed",
                "DPoP proof jti was already used",
            )))),
            Ok(Admission::Limited(wait)) => Err(theirs(Refusal::RateLimited(wait))),
            Err(_) => match authorized.redis_down {
                FailMode::Open => Ok(authorized),
                FailMode::Closed => Err(theirs(Refusal::SharedUnavailable)),
            },
        }
    }

    /// Handles one request: authorise, then forward or refuse.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        let now = self.inner.clock.now();
        let (parts, body) = request.into_parts();
        let client = self
            .inner
            .params
            .connections
            .trusted_proxies
            .client(peer.ip(), &parts.headers);
        let decision = self.decide(&parts, client, now).await;
        self.inner
            .metrics
            .gateway_check(started.elapsed().as_secs_f64());
        let refused = |refusal: Refusal, installation: Option<String>| {
            self.inner.metrics.gateway_request(refusal.outcome());
            self.audit_refusal(&parts, &refusal, installation);
            local(refusal.response(&self.algs()))
        };
        let authorized = match decision {
            Ok(authorized) => authorized,
            Err((refusal, installation)) => return refused(refusal, installation),
        };
        let body = match authorized.proof_mode {
            ProofMode::Dpop => Either::Left(body),
            ProofMode::DpopSignature => {
                match signature::check(&self.inner, &parts, body, &authorized, now).await {
                    Ok(bytes) => Either::Right(Full::new(bytes)),
                    Err(refusal) => {
                        return refused(refusal, Some(authorized.installation_id.clone()));
                    }
                }
            }
        };
        self.forward(authorized, Request::from_parts(parts, body), client)
            .await
    }

    /// Counts the refusal in the audit tally: its kind, code, route pattern (not the raw path,
    /// which may carry identifiers) and installation; never the request's own text.
    fn audit_refusal(&self, parts: &Parts, refusal: &Refusal, installation: Option<String>) {
        let route = routes::find(&self.inner.params.routes, parts.uri.path())
            .map(|route| route.pattern().to_string());
        self.inner.audit.tally(medgate_service::audit::Refusal {
            kind: refusal.outcome(),
            code: refusal.code(),
            route,
            installation,
        });
    }

    async fn forward(
        &self,
        authorized: Authorized,
        request: Request<UpstreamBody>,
        client: IpAddr,
    ) -> Response<GatewayBody> {
        let inner = &self.inner;
        let Some(upstream) = &inner.params.upstream else {
            inner.metrics.gateway_request("no_upstream");
            let document = Problem::new(
                problem_type::UPSTREAM_UNAVAILABLE,
                "No upstream configured",
                503,
            );
            return local(problem::response(&document));
        };
        let (mut parts, body) = request.into_parts();
        // Kept for the upstream on signed routes only (below).
        let authorization = (authorized.proof_mode == ProofMode::DpopSignature)
            .then(|| parts.headers.get(http::header::AUTHORIZATION).cloned())
            .flatten();
        strip_hop_by_hop(&mut parts.headers);
        strip_spoofable(&mut parts.headers);
        // The route's credentials replace whatever the client sent in their place.
        let injected = match inject::apply(
            &authorized.inject,
            &inner.secrets,
            &authorized.app_id,
            &mut parts.headers,
            parts.uri.query(),
        ) {
            Ok(injected) => injected,
            Err(unavailable) => {
                tracing::error!(
                    app = authorized.app_id.as_str(),
                    secret = unavailable.secret.as_str(),
                    "the route injects a secret this app does not have (medgate admin secret set)"
                );
                inner.metrics.gateway_request("secret_unavailable");
                let document = Problem::new(
                    problem_type::UPSTREAM_UNAVAILABLE,
                    "Upstream credential not configured",
                    503,
                );
                return local(problem::response(&document));
            }
        };
        let Ok(uri) = upstream_uri(
            upstream,
            &authorized.path,
            injected.query(parts.uri.query()),
        ) else {
            return local(Refusal::UnsafePath.response(&self.algs()));
        };
        parts.uri = uri;
        if let Some(authority) = upstream
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(HOST, authority);
        }
        // What the upstream may rely on is set here, replacing anything the client sent.
        for (name, value) in [
            (X_INSTALLATION, authorized.installation_id.as_str()),
            (X_APP, authorized.app_id.as_str()),
            (X_SCOPE, authorized.scope.as_str()),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                parts.headers.insert(name, value);
            }
        }
        // A verified signature travels on with the key that made it and the token it covers
        // (DPoP-bound, so useless without the installation key, and expiring within minutes),
        // for the upstream to keep with the record and re-verify later (provenance).
        if authorized.proof_mode == ProofMode::DpopSignature {
            if let Ok(value) = HeaderValue::from_str(&authorized.jkt) {
                parts.headers.insert(X_KEY, value);
            }
            if let Some(value) = authorization {
                parts.headers.insert(X_AUTHORIZATION, value);
            }
        }
        if let Ok(value) = HeaderValue::from_str(&client.to_string()) {
            parts.headers.insert(X_FORWARDED_FOR, value);
        }
        for (name, value) in &inner.forwarded {
            parts.headers.insert(name, value.clone());
        }
        let started = Instant::now();
        let sent = inner.client.request(Request::from_parts(parts, body));
        match tokio::time::timeout(inner.params.upstream_timeout, sent).await {
            Ok(Ok(response)) => {
                inner.metrics.upstream(started.elapsed().as_secs_f64());
                inner.metrics.gateway_request("forwarded");
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                if injected.scrub(&mut parts.headers) > 0 {
                    tracing::warn!(
                        app = authorized.app_id.as_str(),
                        "the upstream repeated an injected query credential in a URL header; removed"
                    );
                }
                Response::from_parts(parts, body.boxed())
            }
            Ok(Err(error)) => {
                // A pinned upstream presenting another key is a MitM on the hop, or a key
                // rotated without its pin: told apart from an upstream that is down.
                let outcome = if medgate_trust::pins::find_pin_mismatch(&error).is_some() {
                    "upstream_pin_mismatch"
                } else {
                    "upstream_error"
                };
                tracing::warn!(%error, installation = short(&authorized.installation_id), outcome, "upstream request failed");
                inner.metrics.gateway_request(outcome);
                let document = Problem::new(
                    problem_type::UPSTREAM_UNAVAILABLE,
                    "Upstream unavailable",
                    502,
                );
                local(problem::response(&document))
            }
            Err(_) => {
                inner.metrics.gateway_request("upstream_timeout");
                let document = Problem::new(
                    problem_type::UPSTREAM_UNAVAILABLE,
                    "Upstream timed out",
                    504,
                );
                local(problem::response(&document))
            }
        }
    }

    /// Accepts connections on `listener`, over TLS when `tls` is given, until `shutdown`
    /// changes.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<Arc<ServerTls>>,
        shutdown: watch::Receiver<bool>,
    ) {
        listen::serve(
            listener,
            shutdown,
            self.inner.params.connections.clone(),
            tls,
            "gateway",
            move |peer| {
                let gateway = self.clone();
                service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
                })
            },
        )
        .await;
    }
}

fn check_revocation(revoked: &Revoked, token: &VerifiedToken) -> Result<(), Refusal> {
    if revoked.installations.contains(token.installation_id()) {
        return Err(Refusal::InvalidToken(Why::new(
            "installation_revoked",
            "the installation has been revoked",
        )));
    }
    let release = (
        token.app_id().to_string(),
        token.claims().app_version.clone(),
    );
    if revoked.releases.contains(&release) {
        return Err(Refusal::InvalidToken(Why::new(
            "release_revoked",
            "the app release has been revoked",
        )));
    }
    Ok(())
}

fn upstream_uri(upstream: &Uri, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
    let prefix = upstream.path().trim_end_matches('/');
    let path_and_query = match query {
        Some(query) => format!("{prefix}{path}?{query}"),
        None => format!("{prefix}{path}"),
    };
    let mut builder = Uri::builder().path_and_query(path_and_query);
    if let Some(scheme) = upstream.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = upstream.authority() {
        builder = builder.authority(authority.clone());
    }
    builder.build()
}

/// Removes every header whose normalised name is in [`SPOOFABLE`] or starts with
/// `x-medgate-`.
fn strip_spoofable(headers: &mut HeaderMap) {
    let spoofed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let normalised = name.as_str().replace('_', "-");
            normalised.starts_with("x-medgate-") || SPOOFABLE.contains(&normalised.as_str())
        })
        .cloned()
        .collect();
    for name in spoofed {
        headers.remove(name);
    }
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_uris_keep_the_prefix_and_query() {
        let upstream: Uri = "http://127.0.0.1:1337/ns/".parse().unwrap();
        assert_eq!(
            upstream_uri(&upstream, "/api/v1/entries.json", Some("count=10")).unwrap(),
            "http://127.0.0.1:1337/ns/api/v1/entries.json?count=10"
        );
    }

    #[test]
    fn headers_that_speak_for_someone_else_are_removed_by_normalised_name() {
        let mut headers = HeaderMap::new();
        for name in [
            "x-medgate-scope",
            "x_medgate_scope",
            "X_Medgate_Installation",
            "x-forwarded-for",
            "x_forwarded_for",
            "forwarded",
            "x-forwarded-host",
            "x-real-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "x_http_method_override",
            "authorization",
            "dpop",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        headers.insert("accept", HeaderValue::from_static("*/*"));
        headers.insert("x-request-id", HeaderValue::from_static("r-1"));
        strip_spoofable(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-request-id"]);
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("accept"));
    }
}
