//! medgate's data plane: a streaming reverse proxy that admits a request only with a valid
//! DPoP-bound access token and a fresh proof of possession of its key.
//!
//! For every request, in order ([`Gateway::authorize`]):
//!
//! 1. The path is safe to route (no dot segments or encoded separators), and it and the query
//!    are within their bounds.
//! 2. `Authorization: DPoP <token>`: exactly one, with the DPoP scheme.
//! 3. The token verifies (signature checked once, then cached until `exp`).
//! 4. Neither the installation nor its release has been revoked.
//! 5. `DPoP: <proof>`: exactly one, and it verifies for this method and URI, with `ath` and the
//!    key binding (RFC 9449 §4.3, §7.1).
//! 6. The proof's `jti` has not been seen from this key within the window.
//! 7. A route rule matches the path and method, and the token carries its scopes.
//! 8. The installation is within its rate limit and the route's own, and the proof's `jti`
//!    takes its place in the replay cache.
//! 9. With `[redis]`, the same across every gateway, in one round trip: the installation's and
//!    the client address's cluster-wide limits, then the `jti` ([`medgate_service::shared`]).
//!    While Redis is unreachable, each route's [`routes::FailMode`] decides.
//!
//! 10. On a `proof = "dpop+signature"` route, the request's HTTP Message Signature and its body's
//!     digest (`signature`).
//!
//! With `[gateway.credentials]`, a request that carries no `Authorization: DPoP` but a
//! follower's or uploader's credential where Nightscout clients put one takes steps 2–7 as
//! `credential` does them (the credential live, a route that takes credentials, its scopes),
//! and the token exchange path is answered here. On a `tunnel = "socket.io"` route the
//! client's packets are read and filtered (`tunnel`, and `websocket` for upgrades).
//!
//! Then the request is forwarded to the upstream without `Authorization` and `DPoP`, with
//! `X-Medgate-Installation` (or `X-Medgate-Credential`), `X-Medgate-App` and `X-Medgate-Scope`
//! added, bodies streamed both ways (`proxy`). The gateway never writes to storage on the request path: revocations and
//! keys are polled by [`Gateway::refresh`], and rejections are queued to the audit writer.
//!
//! The parts: `authorize` (steps 1–9 and the [`Authorized`] request they make), `signature`
//! (step 10), `proxy` (the hop upstream and its [`UpstreamError`]), `cache` (verified tokens),
//! `routes`, `path`, `inject` and `upstream_jwt` (what routes add upstream), `credential`,
//! `tunnel`, `websocket`; the refusals are `medgate_service::resource`'s, shared with
//! the control plane.

mod authorize;
pub mod cache;
pub mod credential;
pub mod inject;
pub mod partner;
pub mod path;
mod proxy;
pub mod routes;
mod signature;
pub mod tunnel;
mod upstream_jwt;
mod websocket;

pub use authorize::Authorized;
pub use proxy::UpstreamError;

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
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
use medgate_service::Clock;
use medgate_service::audit::AuditSink;
use medgate_service::listen::{self, ConnectionLimits};
use medgate_service::metrics::Metrics;
use medgate_service::ratelimit::{KeyedLimiter, RateLimit};
use medgate_service::replay::ReplayCache;
pub use medgate_service::resource::{Refusal, Why};
use medgate_service::shared::SharedState;
use medgate_service::tls::ServerTls;
use medgate_store::seal::Sealer;
use medgate_store::{RevocationTarget, Store, StoreError, published_keys};
use medgate_verify::dpop::ProofPolicy;
use medgate_verify::httpsig::SignaturePolicy;
use medgate_verify::keys::KeySet;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cache::TokenCache;
use crate::routes::{ProofMode, Route};

/// Response bodies: streamed from the upstream, or our own small JSON.
pub type GatewayBody = BoxBody<Bytes, hyper::Error>;
/// Request bodies to the upstream: streamed from the client, or read whole to check a
/// signed body's digest.
pub(crate) type UpstreamBody = Either<Incoming, Full<Bytes>>;

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
    /// Upstream credentials clients must not send through (`gateway.strip_headers`,
    /// `strip_query`), removed from every forwarded request.
    pub strip: inject::Strip,
    /// What `session-mac` session keys derive from (shared with the control plane); none:
    /// such routes refuse every request.
    pub session_secret: Option<Arc<medgate_verify::httpsig::SessionSecret>>,
    /// Where clients of apps that cannot attest put their credentials; none: only attested
    /// installations are admitted.
    pub credentials: Option<credential::CredentialParams>,
    /// How partner backends' tokens count here; none: no partner token is admitted.
    pub partners: Option<partner::PartnerParams>,
}

/// Revocations learned from the store's feed.
#[derive(Debug, Default)]
pub(crate) struct Revoked {
    last_seq: i64,
    installations: HashSet<String>,
    releases: HashSet<(String, String)>,
}

pub(crate) struct Inner {
    params: GatewayParams,
    keys: RwLock<Arc<KeySet>>,
    revoked: RwLock<Revoked>,
    /// The live follower and uploader credentials, from the store at every refresh.
    credentials: RwLock<Arc<medgate_verify::credential::CredentialSet>>,
    /// The enabled partner backends, from the store at every refresh.
    partners: RwLock<Arc<partner::Partners>>,
    partner_limiter: KeyedLimiter<String>,
    tokens: TokenCache,
    replays: ReplayCache,
    limiter: KeyedLimiter<String>,
    address_limiter: KeyedLimiter<IpAddr>,
    /// Replay keys and limits shared with the other gateways, when `[redis]` is configured.
    shared: Option<SharedState>,
    client: Client<HttpsConnector<HttpConnector>, UpstreamBody>,
    /// What `proof = "dpop+signature"` and `"session-mac"` routes require of a signature.
    signature_policy: SignaturePolicy,
    session_policy: SignaturePolicy,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    audit: AuditSink,
    /// `public_url`, normalised once for the DPoP `htu` and signature `@target-uri` of every
    /// request (an unusable one refuses every proof).
    htu_base: Result<medgate_verify::dpop::HtuBase, medgate_verify::dpop::ProofError>,
    /// `X-Forwarded-Proto` and `-Host` for every forwarded request, from `public_url`.
    forwarded: Vec<(HeaderName, HeaderValue)>,
    /// Opens the operator secrets routes inject.
    sealer: Sealer,
    secrets: inject::SecretCache,
    /// Open WebSocket tunnels, which outlive the connection slot that opened them: at most
    /// as many as the listener's connections.
    tunnels: Arc<tokio::sync::Semaphore>,
    /// The scopes of routes that take credentials: all a credential's scopes can count for.
    credential_scopes: HashSet<String>,
    /// Open WebSocket tunnels per subject (at most `websocket::MAX_TUNNELS_PER_SUBJECT`).
    tunnels_of: Arc<parking_lot::Mutex<std::collections::HashMap<String, usize>>>,
    /// When the last fetch of an upstream JWT started, by app and secret (`upstream_jwt`).
    jwt_attempts: parking_lot::Mutex<std::collections::HashMap<(String, String), Instant>>,
}

/// The gateway. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("public_url", &self.inner.params.public_url)
            .finish_non_exhaustive()
    }
}

pub(crate) fn local(response: Response<Full<Bytes>>) -> Response<GatewayBody> {
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
                forwarded: proxy::forwarded_headers(&params.public_url),
                htu_base: medgate_verify::dpop::HtuBase::new(&params.public_url),
                sealer,
                secrets: inject::SecretCache::default(),
                tunnels: Arc::new(tokio::sync::Semaphore::new(
                    params.connections.max_connections.max(1),
                )),
                jwt_attempts: parking_lot::Mutex::default(),
                credential_scopes: params
                    .routes
                    .iter()
                    .filter(|route| route.accepts_credentials())
                    .flat_map(|route| route.scopes().iter().cloned())
                    .collect(),
                tunnels_of: Arc::default(),
                tokens: TokenCache::new(params.token_cache_capacity),
                replays: ReplayCache::new(params.replay_capacity, params.replay_share),
                limiter: KeyedLimiter::new(params.rate_limit),
                address_limiter: KeyedLimiter::new(params.address_rate_limit),
                shared,
                keys: RwLock::new(Arc::new(KeySet::default())),
                revoked: RwLock::new(Revoked::default()),
                credentials: RwLock::new(Arc::default()),
                partners: RwLock::new(Arc::default()),
                partner_limiter: KeyedLimiter::new(
                    params
                        .partners
                        .as_ref()
                        .map_or(params.rate_limit, |partners| partners.rate_limit),
                ),
                signature_policy: SignaturePolicy::for_requests(params.proof.window),
                session_policy: medgate_verify::httpsig::session_policy(params.proof.window),
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
        if inner.params.credentials.is_some() {
            let live = store
                .credentials(None)
                .await?
                .into_iter()
                .filter(|record| record.revoked_at.is_none())
                .map(|record| {
                    // What a credential may do is what its scopes say *and* what routes that
                    // take credentials need: a scope it was given for a class that needs an
                    // attested installation (an alarm ack, say) counts nowhere, not in the
                    // tunnel either.
                    let scopes = record
                        .scopes
                        .into_iter()
                        .filter(|scope| inner.credential_scopes.contains(scope))
                        .collect();
                    let credential = medgate_verify::credential::Credential {
                        id: record.id,
                        app_id: record.app_id,
                        kind: record.kind,
                        name: record.name,
                        scopes,
                        expires_at: record.expires_at,
                    };
                    (credential, record.digest, record.sha1_digest)
                });
            *inner.credentials.write() =
                Arc::new(medgate_verify::credential::CredentialSet::new(live));
        }
        if inner.params.partners.is_some() {
            let live: partner::Partners = store
                .partners()
                .await?
                .into_iter()
                .filter(|record| record.disabled_at.is_none())
                .map(|record| {
                    let ip_allow = record
                        .ip_allow
                        .iter()
                        .filter_map(|block| {
                            medgate_service::client_ip::Cidr::parse(block)
                                .map_err(|_| {
                                    tracing::error!(partner = %record.id, "a stored address block of a partner does not parse; it allows nothing")
                                })
                                .ok()
                        })
                        .collect();
                    let live = partner::LivePartner {
                        name: record.name,
                        any_address: record.ip_allow.is_empty(),
                        ip_allow,
                        require_dpop: record.require_dpop,
                    };
                    (record.id, live)
                })
                .collect();
            *inner.partners.write() = Arc::new(live);
        }
        inner.limiter.retain_recent();
        inner.address_limiter.retain_recent();
        inner.partner_limiter.retain_recent();
        for route in &inner.params.routes {
            route.retain_recent();
        }
        self.renew_upstream_jwts();
        Ok(())
    }

    pub(crate) fn algs(&self) -> String {
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

    /// Handles one request: authorise, then forward or refuse.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        let now = self.inner.clock.now();
        let (mut parts, body) = request.into_parts();
        let client = self
            .inner
            .params
            .connections
            .trusted_proxies
            .client(peer.ip(), &parts.headers);
        if let Some(answer) = self.exchange_answer(&parts, client, now) {
            let (outcome, code) = match &answer {
                Ok(_) => ("credential_exchanged", None),
                Err(refusal) => (refusal.outcome(), refusal.code()),
            };
            self.counted(outcome, code);
            return match answer {
                Ok(response) => local(response),
                Err(refusal) => {
                    self.audit_refusal(&parts, &refusal, None);
                    local(refusal.response(&self.algs()))
                }
            };
        }
        let decision = self.decide(&parts, client, now).await;
        self.inner
            .metrics
            .gateway_check(started.elapsed().as_secs_f64());
        let refused = |refusal: Refusal, installation: Option<String>| {
            self.counted(refusal.outcome(), refusal.code());
            self.audit_refusal(&parts, &refusal, installation);
            local(refusal.response(&self.algs()))
        };
        let authorized = match decision {
            Ok(authorized) => authorized,
            Err((refusal, installation)) => return refused(refusal, installation),
        };
        if authorized.tunnel.is_some() && websocket::is_upgrade(&parts) {
            if !websocket::handshake_ok(&parts) {
                return refused(
                    Refusal::TunnelMalformed,
                    Some(authorized.installation_id.clone()),
                );
            }
            let Some(slot) = websocket::TunnelSlot::take(&self.inner, &authorized) else {
                return refused(
                    Refusal::RateLimited(Duration::from_secs(1)),
                    Some(authorized.installation_id.clone()),
                );
            };
            return match self.open_tunnel(parts, authorized, client, slot).await {
                Ok(response) => response,
                Err(error) => {
                    self.counted(error.outcome(), None);
                    tracing::warn!(
                        outcome = error.outcome(),
                        "the tunnel's upstream side failed"
                    );
                    error.response(&self.algs())
                }
            };
        }
        let body = match (authorized.tunnel, authorized.proof_mode) {
            (Some(routes::Tunnel::SocketIo), _) => {
                match self.tunnel_body(&parts, body, &authorized).await {
                    Ok(body) => body,
                    Err(refusal) => {
                        return refused(refusal, Some(authorized.installation_id.clone()));
                    }
                }
            }
            (None, ProofMode::Dpop | ProofMode::SessionMac) => Either::Left(body),
            (None, ProofMode::DpopSignature) => {
                match signature::check(&self.inner, &parts, body, &authorized, now).await {
                    Ok(bytes) => Either::Right(Full::new(bytes)),
                    Err(refusal) => {
                        return refused(refusal, Some(authorized.installation_id.clone()));
                    }
                }
            }
        };
        // A body read whole goes on with its own length (a tunnel's is what is left of it).
        if let Either::Right(whole) = &body
            && let Some(length) = hyper::body::Body::size_hint(whole).exact()
        {
            parts
                .headers
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        self.forward(authorized, Request::from_parts(parts, body), client)
            .await
    }

    /// On a socket.io tunnel route (long polling; WebSocket is `websocket`'s): a `POST`'s
    /// packets filtered by the subject's scopes (`tunnel`); a `GET` (what the server pushes)
    /// streamed as it is.
    async fn tunnel_body(
        &self,
        parts: &Parts,
        body: Incoming,
        authorized: &Authorized,
    ) -> Result<UpstreamBody, Refusal> {
        let query = parts.uri.query();
        // JSONP polling (`j=`) reads the body as a form: never through the tunnel.
        if query.is_some_and(|q| {
            q.split('&')
                .any(|pair| pair == "j" || pair.starts_with("j="))
        }) {
            return Err(Refusal::TunnelMalformed);
        }
        if parts.method != http::Method::POST {
            return Ok(Either::Left(body));
        }
        let engine = tunnel::Engine::from_query(query).ok_or(Refusal::TunnelMalformed)?;
        let bytes = signature::read_body(&self.inner, parts, body, tunnel::MAX_PAYLOAD).await?;
        let scopes: Vec<&str> = authorized.scope.split(' ').collect();
        let secret = self.in_band_secret(authorized);
        let filtered = tunnel::filter(
            &bytes,
            engine,
            |scope| scopes.contains(&scope),
            secret.as_deref().map(String::as_str),
        )
        .map_err(|_| Refusal::TunnelMalformed)?;
        if filtered.dropped > 0 {
            self.inner
                .metrics
                .tunnel_dropped(u64::try_from(filtered.dropped).unwrap_or(u64::MAX));
        }
        Ok(Either::Right(Full::new(Bytes::from(filtered.body))))
    }

    /// What a tunnel's in-band credentials become: the `api-secret` value the route injects
    /// (Nightscout's SHA-1 of its `API_SECRET`), or none.
    pub(crate) fn in_band_secret(
        &self,
        authorized: &Authorized,
    ) -> Option<zeroize::Zeroizing<String>> {
        let mut scratch = http::HeaderMap::new();
        inject::apply(
            &authorized.inject,
            &self.inner.secrets,
            &authorized.app_id,
            &mut scratch,
            None,
        )
        .ok()?;
        let value = scratch.get("api-secret")?.to_str().ok()?;
        Some(zeroize::Zeroizing::new(value.to_string()))
    }

    /// Counts a request's outcome in the metrics and the telemetry series.
    fn counted(&self, outcome: &'static str, code: Option<&'static str>) {
        self.inner.metrics.gateway_request(outcome);
        self.inner
            .audit
            .observe(medgate_service::telemetry::Observation::gateway(
                outcome, code,
            ));
    }

    /// Counts the refusal in the audit tally: its kind, code, route pattern (not the raw path,
    /// which may carry identifiers) and installation; never the request's own text.
    fn audit_refusal(&self, parts: &Parts, refusal: &Refusal, installation: Option<String>) {
        let route = routes::find(
            &self.inner.params.routes,
            parts.uri.path(),
            &parts.method,
            parts.uri.query(),
        )
        .map(|route| route.pattern().to_string());
        self.inner.audit.tally(medgate_service::audit::Refusal {
            kind: refusal.outcome(),
            code: refusal.code(),
            route,
            installation,
        });
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
