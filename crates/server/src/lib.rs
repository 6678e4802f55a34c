//! medgate's control plane.
//!
//! | Route | Purpose |
//! |---|---|
//! | `POST /v1/challenge` | a single-use challenge for an app |
//! | `POST /v1/attest` | evidence in, verdict and DPoP-bound access token out |
//! | `GET /.well-known/jwks.json` | the published token-signing keys |
//! | `GET /.well-known/medgate-configuration` | discovery document |
//! | `POST /v1/oauth/token` | partner backends: client credentials with a `private_key_jwt` assertion (SMART Backend Services) |
//! | `GET /.well-known/smart-configuration`, `GET /.well-known/oauth-authorization-server` | the token endpoint's discovery (SMART, RFC 8414) |
//! | `GET /v1/trust/…` | the TUF repository: pin sets for the apps' pinned clients |
//! | `GET /v1/secrets/{name}` | an operator secret sealed to the calling installation (DPoP) |
//! | `GET /v1/installations/{id}/jwk` | an installation's public key, for provenance (DPoP, scope `provenance:read`) |
//! | `GET /metrics` | Prometheus metrics |
//! | `GET /healthz`, `GET /readyz` | liveness, readiness (store reachable, revocation list within its maximum age) |
//! | `/v1/admin/…` | the admin API (bearer admin token) |
//! | `/console/…` | the console: pages for named operators (admin listener) |
//!
//! The server is built in-process from [`ServerParams`] and a [`Store`], so tests start it on
//! a loopback port in milliseconds.

mod admin;
pub use admin::admin_token_hash;
mod attest;
mod console;
pub use console::input as console_input;
mod dpop_resource;
mod http_util;
pub mod keyring;
mod partners;
pub use partners::{JwksFetch, OutboundUrlRefused, check_jwks_url, check_outbound_url};
mod platforms;
pub mod provenance;
pub mod revocation;
mod secrets;
pub mod trust;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use medgate_service::Clock;
use medgate_service::audit::AuditSink;
use medgate_service::metrics::Metrics;
use medgate_service::ratelimit::{KeyedLimiter, RateLimit};
use medgate_service::replay::ReplayCache;
use medgate_service::shared::SharedState;
use medgate_store::seal::Sealer;
use medgate_store::{Store, StoreError};
use medgate_verify::android::attestation::AndroidRoots;
use medgate_verify::dpop::ProofPolicy;
use medgate_verify::evidence::EvidenceLimits;
use medgate_verify::httpsig::SessionSecret;
use medgate_verify::keys::KeyError;
use medgate_verify::x509::TrustAnchor;
use parking_lot::RwLock;

use crate::keyring::KeyRing;
use crate::revocation::RevocationState;

/// Proofs the secret endpoint remembers at once, and one installation's share of them: far
/// more than secrets are fetched (once per installation and rotation).
const REPLAY_CAPACITY: usize = 100_000;
const REPLAY_SHARE: usize = 64;

/// The `meta` key under which the store keeps the SHA-256 of the admin token.
pub const ADMIN_TOKEN_META: &str = "admin_token_sha256";

/// Why the server could not start or reload.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    #[error("the store has no active signing key")]
    NoActiveKey,
}

/// Settings the server runs with (resolved from the config file by the node).
#[derive(Debug, Clone)]
pub struct ServerParams {
    /// The `iss` of tokens, and the base of the discovery document's URLs.
    pub issuer: String,
    /// The `aud` of tokens: the gateway's public URL.
    pub audience: String,
    pub token_ttl_secs: i64,
    pub challenge_ttl_secs: i64,
    /// Per client address, on `/v1/challenge` and `/v1/attest`.
    pub client_rate_limit: RateLimit,
    pub evidence_limits: EvidenceLimits,
    pub attestation: AttestationRoots,
    /// How long a client may take to send a request body.
    pub body_read_timeout: std::time::Duration,
    /// Proxies whose forwarding headers name the client (for per-client rate limits).
    pub trusted_proxies: medgate_service::client_ip::TrustedProxies,
    /// (route pattern, secret name) for every secret a gateway route injects: what the admin
    /// API's secret listing says about who uses a secret.
    pub secret_routes: Vec<(String, String)>,
}

/// The trust anchors for hardware-backed evidence. The defaults are Apple's and Google's;
/// tests add their own test CA here, and nothing else does.
#[derive(Debug, Clone)]
pub struct AttestationRoots {
    pub apple_roots: Vec<TrustAnchor>,
    pub android_roots: AndroidRoots,
}

impl AttestationRoots {
    pub fn production() -> Self {
        AttestationRoots {
            apple_roots: medgate_verify::roots::apple_app_attest(),
            android_roots: AndroidRoots::default(),
        }
    }
}

impl ServerParams {
    /// How long a retired signing key stays published: the longest a token it signed can
    /// live, plus a minute for clock differences.
    pub fn key_retention_secs(&self) -> i64 {
        self.token_ttl_secs + 60
    }
}

pub(crate) struct ServerState {
    params: ServerParams,
    store: Arc<dyn Store>,
    sealer: Sealer,
    keys: RwLock<KeyRing>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    audit: AuditSink,
    admin_token_sha256: Option<[u8; 32]>,
    client_limiter: KeyedLimiter<IpAddr>,
    revocations: Arc<RevocationState>,
    /// The latest signed checkpoint of the audit chain's head.
    checkpoint: RwLock<Option<String>>,
    /// Where committed admin changes are announced to every replica (`[redis]`).
    shared: Option<SharedState>,
    /// The TUF repository's files, as last loaded (`refresh_trust`).
    trust: RwLock<Arc<trust::TrustFiles>>,
    /// DPoP proofs on `/v1/secrets`: what they must be, and the ones already seen.
    proof_policy: ProofPolicy,
    /// Session keys for `session-mac` routes derive from it.
    session_secret: Option<Arc<SessionSecret>>,
    replays: ReplayCache,
    /// Partner backends' keys, fetched ones kept a while.
    partner_keys: partners::PartnerKeyCache,
    /// The console's sign-in limits.
    console: console::ConsoleState,
}

/// The latest signed checkpoint the node published, its signature and claims checked.
fn latest_checkpoint(
    state: &ServerState,
) -> Option<medgate_verify::checkpoint::VerifiedCheckpoint> {
    let jws = state.checkpoint.read().clone()?;
    medgate_verify::checkpoint::verify(&jws, None).ok()
}

/// The control plane, ready to serve.
#[derive(Clone)]
pub struct Server {
    state: Arc<ServerState>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("issuer", &self.state.params.issuer)
            .finish_non_exhaustive()
    }
}

/// What the server runs with beside its settings and store: the node's clock, metrics, audit
/// sink, Android status list, and (with `[redis]`) the state shared with other replicas.
pub struct ServerRuntime {
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub audit: AuditSink,
    pub revocations: Arc<RevocationState>,
    pub shared: Option<SharedState>,
    /// What `session-mac` session keys derive from (shared with the gateways); none: no
    /// session keys are handed out.
    pub session_secret: Option<Arc<SessionSecret>>,
    /// How partner backends' JWKS URLs are fetched; none: only registered JWKS are used.
    pub fetch_jwks: Option<JwksFetch>,
}

impl Server {
    pub async fn new(
        params: ServerParams,
        store: Arc<dyn Store>,
        sealer: Sealer,
        runtime: ServerRuntime,
    ) -> Result<Server, ServerError> {
        let ServerRuntime {
            clock,
            metrics,
            audit,
            revocations,
            shared,
            session_secret,
            fetch_jwks,
        } = runtime;
        if !sealer.has_master_key() {
            tracing::warn!(
                "no MEDGATE_MASTER_KEY: signing keys are stored unencrypted (file mode 0600 only)"
            );
        }
        let keys = KeyRing::load(&*store, &sealer, clock.now()).await?;
        let admin_token_sha256 = store
            .get_meta(ADMIN_TOKEN_META)
            .await?
            .and_then(|hex| medgate_proto::hex::sha256(&hex));
        if admin_token_sha256.is_none() {
            tracing::warn!("no admin token is configured: the admin API refuses every request");
        }
        let client_limiter = KeyedLimiter::new(params.client_rate_limit);
        let trust_files = trust::TrustFiles::load(&*store).await?;
        Ok(Server {
            state: Arc::new(ServerState {
                params,
                store,
                sealer,
                keys: RwLock::new(keys),
                clock,
                metrics,
                audit,
                admin_token_sha256,
                client_limiter,
                revocations,
                checkpoint: RwLock::new(None),
                shared,
                trust: RwLock::new(Arc::new(trust_files)),
                proof_policy: ProofPolicy::default(),
                session_secret,
                replays: ReplayCache::new(REPLAY_CAPACITY, REPLAY_SHARE),
                partner_keys: partners::PartnerKeyCache::new(fetch_jwks),
                console: console::ConsoleState::new(),
            }),
        })
    }

    /// The public control plane: what apps reach.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/challenge", post(attest::challenge))
            .route("/v1/attest", post(attest::attest))
            .route("/.well-known/jwks.json", get(attest::jwks))
            .route("/.well-known/medgate-configuration", get(attest::discovery))
            .route(
                "/.well-known/smart-configuration",
                get(partners::smart_configuration),
            )
            .route(
                "/.well-known/oauth-authorization-server",
                get(partners::oauth_metadata),
            )
            .route("/v1/oauth/token", post(partners::token))
            .route("/v1/audit/checkpoint", get(attest::checkpoint))
            .route("/v1/trust/{*file}", get(trust::serve_file))
            .route("/v1/secrets/{name}", get(secrets::sealed_secret))
            .route(
                "/v1/installations/{id}/jwk",
                get(provenance::installation_jwk),
            )
            .route("/healthz", get(http_util::healthz))
            .route("/readyz", get(http_util::readyz))
            .fallback(http_util::not_found)
            .with_state(Arc::clone(&self.state))
    }

    /// The admin plane, on its own (loopback) listener: the admin API, the console and
    /// `/metrics`.
    pub fn admin_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(http_util::metrics))
            .route("/healthz", get(http_util::healthz))
            .nest("/v1/admin", admin::router())
            .nest("/console", console::router())
            .fallback(http_util::not_found)
            .with_state(Arc::clone(&self.state))
    }

    /// The latest signed checkpoint published, checked, if any.
    pub fn checkpoint(&self) -> Option<medgate_verify::checkpoint::VerifiedCheckpoint> {
        latest_checkpoint(&self.state)
    }

    /// Publishes a signed checkpoint of the audit chain's head at `/v1/audit/checkpoint`.
    pub fn publish_checkpoint(&self, checkpoint: String) {
        *self.state.checkpoint.write() = Some(checkpoint);
    }

    /// Reloads signing keys from the store (another process may have rotated them).
    pub async fn refresh_keys(&self) -> Result<(), ServerError> {
        let state = &self.state;
        let ring = KeyRing::load(&*state.store, &state.sealer, state.clock.now()).await?;
        *state.keys.write() = ring;
        Ok(())
    }

    /// Reloads the TUF repository's files from the store (another replica may have published).
    pub async fn refresh_trust(&self) -> Result<(), ServerError> {
        let files = trust::TrustFiles::load(&*self.state.store).await?;
        *self.state.trust.write() = Arc::new(files);
        Ok(())
    }

    /// Re-signs the TUF timestamp (or the whole release) before it expires, then reloads.
    pub async fn renew_trust(&self) -> Result<bool, trust::TrustError> {
        let state = &self.state;
        let renewed = trust::renew(&*state.store, &state.sealer, state.clock.now()).await?;
        if renewed {
            *state.trust.write() = Arc::new(trust::TrustFiles::load(&*state.store).await?);
        }
        Ok(renewed)
    }

    /// Forgets idle per-client rate-limit state.
    pub fn trim(&self) {
        self.state.client_limiter.retain_recent();
        self.state.console.trim();
    }

    pub fn params(&self) -> &ServerParams {
        &self.state.params
    }
}
