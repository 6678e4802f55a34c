//! A medgate node: the store, the control plane and the gateway in one process, with their
//! background tasks (gateway refresh every second, challenge purge, the audit writer).
//!
//! [`Node::start`] takes a [`Config`] value and returns once both listeners are bound, so
//! tests and `medgate demo` run a whole node on loopback ports chosen by the OS.

pub mod alerts;
pub mod checkpoint;
pub mod config;
mod jwks_fetch;
pub mod nightscout;
mod outbound;
pub mod revocation;
pub mod sample_upstream;
mod sealed_meta;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use medgate_gateway::routes::Route;
use medgate_gateway::{Gateway, GatewayParams};
use medgate_proto::{Alg, b64};
use medgate_server::revocation::RevocationState;
use medgate_server::{
    ADMIN_TOKEN_META, AttestationRoots, Server, ServerParams, ServerRuntime, admin_token_hash,
};
use medgate_service::audit::AuditSink;
use medgate_service::duration::secs;
use medgate_service::listen;
use medgate_service::metrics::Metrics;
use medgate_service::shared::{SharedError, SharedParams, SharedState};
use medgate_service::tls::{ServerTls, TlsError};
use medgate_service::{Clock, SystemClock};
use medgate_store::postgres::{PostgresOptions, PostgresStore};
use medgate_store::seal::{SealError, Sealer};
use medgate_store::sqlite::{SqliteStore, create_private_dir, create_private_file};
use medgate_store::{Store, StoreError};
use medgate_verify::dpop::{self, ProofPolicy};
use medgate_verify::evidence::EvidenceLimits;
use medgate_verify::keys::TokenSigningKey;
use medgate_verify::time::IatWindow;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt as _;

use config::StoreLocation;
pub use config::{Config, ConfigError};

/// Proofs must be signed by the installation key a token is bound to, and installation keys
/// are P-256: the only curve phone keystores and the Secure Enclave offer.
pub const INSTALLATION_KEY_ALGS: [Alg; 1] = [Alg::Es256];

/// The admin token file inside the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seal(#[from] SealError),
    #[error(transparent)]
    Server(#[from] medgate_server::ServerError),
    #[error(transparent)]
    Shared(#[from] SharedError),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// Opens the store `[store] url` names (applying pending migrations): SQLite in the data
/// directory by default, or PostgreSQL.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, NodeError> {
    Ok(match config.store_location()? {
        StoreLocation::Sqlite(dir) => Arc::new(SqliteStore::open(&dir)?),
        StoreLocation::Postgres(url) => Arc::new(
            PostgresStore::open(&PostgresOptions {
                url,
                pool_size: config.store.pool_size,
                statement_timeout_ms: u64::try_from(config.store.statement_timeout.as_millis())
                    .unwrap_or(u64::MAX),
                ca: config.store.ca.clone(),
            })
            .await?,
        ),
    })
}

/// What the node needs besides its config file: secrets from the environment and a clock.
pub struct NodeOptions {
    /// `MEDGATE_MASTER_KEY`, read by the binary (tests pass it directly).
    pub master_key: Option<String>,
    pub clock: Arc<dyn Clock>,
    /// Apple's and Google's roots. Not settable from the config file or the command line: only
    /// tests replace them, to add their own test CA.
    pub attestation_roots: AttestationRoots,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            master_key: None,
            clock: Arc::new(SystemClock),
            attestation_roots: AttestationRoots::production(),
        }
    }
}

/// A running node. Dropping it stops its tasks.
pub struct Node {
    server_addr: SocketAddr,
    gateway_addr: SocketAddr,
    admin_addr: SocketAddr,
    server_scheme: &'static str,
    gateway_scheme: &'static str,
    checkpoint_key: Arc<TokenSigningKey>,
    issuer: String,
    public_url: String,
    data_dir: PathBuf,
    store: Arc<dyn Store>,
    server: Server,
    gateway: Gateway,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    revocation_source: Option<revocation::RevocationSource>,
    revocations: Arc<RevocationState>,
    /// The listeners' TLS, `[server.tls]` then `[gateway.tls]`, for `reload_tls`.
    tls: Vec<Arc<ServerTls>>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("server", &self.server_addr)
            .field("gateway", &self.gateway_addr)
            .finish_non_exhaustive()
    }
}

/// Makes sure `<data_dir>/admin.token` exists (0600) and the store knows its hash. Returns the
/// file's path. An existing file is kept: it is the admin's credential.
pub async fn ensure_admin_token(data_dir: &Path, store: &dyn Store) -> Result<PathBuf, NodeError> {
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    let io = |context: &str| {
        let context = format!("{context} {}", path.display());
        move |source| NodeError::Io { context, source }
    };
    let token = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            create_private_file(&path)?;
            text.trim().to_string()
        }
        Ok(_) | Err(_) => {
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| NodeError::Io {
                    context: "the system random generator failed".into(),
                    source: std::io::Error::other("rng"),
                })?;
            let token = b64::encode(bytes);
            create_private_file(&path)?;
            std::fs::write(&path, format!("{token}\n")).map_err(io("cannot write"))?;
            tracing::info!(path = %path.display(), "admin token written");
            token
        }
    };
    store
        .set_meta(ADMIN_TOKEN_META, &admin_token_hash(&token))
        .await?;
    Ok(path)
}

fn scheme(tls: &Option<Arc<ServerTls>>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}

/// An https URL served as plain HTTP is right only behind a TLS-terminating proxy: say so.
/// A random secret every node shares, made by the first and kept sealed in the store's meta:
/// what the session keys of `session-mac` routes derive from, and the key of credential
/// exchange tokens.
async fn shared_secret(
    store: &dyn medgate_store::Store,
    sealer: &medgate_store::seal::Sealer,
    meta_key: &'static str,
    label: &'static str,
) -> Result<[u8; 32], NodeError> {
    let loaded = sealed_meta::load_or_make(store, sealer, meta_key, label, || {
        use ring::rand::SecureRandom as _;
        let mut secret = zeroize::Zeroizing::new(vec![0u8; 32]);
        ring::rand::SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| NodeError::Io {
                context: "the system random generator".into(),
                source: std::io::Error::other("no randomness"),
            })?;
        Ok(secret)
    })
    .await?;
    let bytes: [u8; 32] =
        loaded.secret.as_slice().try_into().map_err(|_| {
            medgate_store::StoreError::Corrupt(format!("the {label} is not 32 bytes"))
        })?;
    Ok(bytes)
}

/// `[gateway.partners]`, checked.
fn partner_params(
    config: &config::PartnersConfig,
) -> Result<medgate_gateway::partner::PartnerParams, ConfigError> {
    let mut scopes = Vec::new();
    for mapping in &config.scopes {
        if medgate_verify::smart_scope::SmartScope::parse(&mapping.smart).is_none() {
            return Err(ConfigError::Invalid(format!(
                "gateway.partners.scopes: {:?} is not a SMART backend scope (system/<Resource or *>.<cruds, read, write or *>)",
                mapping.smart
            )));
        }
        if mapping.grants.is_empty()
            || !mapping
                .grants
                .iter()
                .all(|scope| medgate_proto::wire::names::is_scope(scope))
        {
            return Err(ConfigError::Invalid(
                "gateway.partners.scopes: grants are 1 or more route scopes".into(),
            ));
        }
        scopes.push(medgate_gateway::partner::ScopeMapping {
            smart: mapping.smart.clone(),
            grants: mapping.grants.clone(),
        });
    }
    Ok(medgate_gateway::partner::PartnerParams {
        scopes,
        rate_limit: config.rate_limit,
    })
}

/// `[gateway.credentials]`, checked, with the exchange key.
fn credential_params(
    config: &config::CredentialsConfig,
    exchange_secret: [u8; 32],
) -> Result<medgate_gateway::credential::CredentialParams, ConfigError> {
    let invalid = |problem: &str| ConfigError::Invalid(format!("gateway.credentials: {problem}"));
    let headers = config
        .headers
        .iter()
        .map(|name| {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid("headers must be header names"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let unusable =
        |path: &String| !path.starts_with('/') || !path.ends_with('/') || path.contains("..");
    if config.exchange_path.as_ref().is_some_and(unusable) {
        return Err(invalid(
            "exchange_path is a path that starts and ends with /",
        ));
    }
    let lifetime = secs(config.exchange_lifetime);
    if !(60..=24 * 3600).contains(&lifetime) {
        return Err(invalid("exchange_lifetime is 1 minute to 24 hours"));
    }
    Ok(medgate_gateway::credential::CredentialParams {
        query: config.query.clone(),
        headers,
        exchange_path: config.exchange_path.clone(),
        exchange_lifetime_secs: lifetime,
        exchange_key: Arc::new(medgate_verify::credential::ExchangeKey::new(
            &exchange_secret,
        )),
    })
}

fn warn_of_plain_https(key: &'static str, url: &str, tls: &Option<Arc<ServerTls>>) {
    if tls.is_none() && url.starts_with("https://") {
        tracing::warn!(
            key,
            "an https URL but no TLS on this listener: clients must reach it through a proxy that terminates TLS"
        );
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { addr, source })
}

fn resolve_routes(config: &Config) -> Result<Vec<Route>, NodeError> {
    config
        .gateway
        .routes
        .iter()
        .map(|route| Route::compile(route).map_err(|e| ConfigError::Invalid(e.to_string()).into()))
        .collect()
}

/// (route pattern, secret name), once each, for every secret a route injects.
fn secret_routes(routes: &[Route]) -> Vec<(String, String)> {
    let pairs: std::collections::BTreeSet<(String, String)> = routes
        .iter()
        .flat_map(|route| {
            route
                .inject()
                .iter()
                .map(|injection| (route.pattern().to_string(), injection.secret().to_string()))
        })
        .collect();
    pairs.into_iter().collect()
}

/// The upstream's URL and whom it must be: over https, the system's roots, `upstream_ca` and
/// `upstream_pins`; over http, nobody (no handshake is made).
fn resolve_upstream(
    config: &Config,
) -> Result<(Option<Uri>, Arc<rustls::ClientConfig>), NodeError> {
    let gateway = &config.gateway;
    let trust_given = gateway.upstream_ca.is_some() || !gateway.upstream_pins.is_empty();
    let Some(text) = &gateway.upstream else {
        if trust_given {
            return Err(ConfigError::Invalid(
                "gateway.upstream_ca and gateway.upstream_pins need gateway.upstream".into(),
            )
            .into());
        }
        return Ok((None, medgate_service::tls::no_trust_client_config()?));
    };
    let uri: Uri = text
        .parse()
        .map_err(|_| ConfigError::Invalid(format!("gateway.upstream {text:?} is not a URL")))?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(ConfigError::Invalid(format!(
            "gateway.upstream {text:?} must be an http:// or https:// URL"
        ))
        .into());
    };
    let tls = match scheme {
        "https" => {
            if gateway.upstream_pins.len() == 1 {
                tracing::warn!(
                    "gateway.upstream_pins has no backup pin: a new upstream key will stop every forwarded request"
                );
            }
            medgate_service::tls::upstream_client_config(
                host,
                gateway.upstream_ca.as_deref(),
                &gateway.upstream_pins,
            )?
        }
        "http" if trust_given => {
            return Err(ConfigError::Invalid(format!(
                "gateway.upstream {text:?} is plain http: gateway.upstream_ca and gateway.upstream_pins need https"
            ))
            .into());
        }
        "http" => medgate_service::tls::no_trust_client_config()?,
        _ => {
            return Err(ConfigError::Invalid(format!(
                "gateway.upstream {text:?} must be an http:// or https:// URL"
            ))
            .into());
        }
    };
    Ok((Some(uri), tls))
}

impl Node {
    pub async fn start(config: Config, options: NodeOptions) -> Result<Node, NodeError> {
        let clock = options.clock;
        // One for the server's keys, one for the secrets the gateway injects.
        let sealer = || match &options.master_key {
            Some(key) => Sealer::from_master_key(key),
            None => Ok(Sealer::plain()),
        };
        let (gateway_sealer, sealer) = (sealer()?, sealer()?);
        config.validate()?;
        let routes = resolve_routes(&config)?;
        // The places credentials come in are stripped too: they go no further than here.
        let (mut strip_headers, mut strip_query) = (
            config.gateway.strip_headers.clone(),
            config.gateway.strip_query.clone(),
        );
        if let Some(credentials) = &config.gateway.credentials {
            strip_headers.extend(credentials.headers.iter().cloned());
            strip_query.extend(credentials.query.iter().cloned());
        }
        let strip = medgate_gateway::inject::Strip::compile(&strip_headers, &strip_query)
            .map_err(ConfigError::Invalid)?;
        let (upstream, upstream_tls) = resolve_upstream(&config)?;
        let revocation_source = config.attestation.revocation_source()?;
        let revocations = Arc::new(RevocationState::new(
            revocation_source.is_some(),
            config.attestation.revocation_max_age,
        ));
        match &revocation_source {
            None => tracing::warn!(
                "no attestation.revocation_list: Android chains are not checked against Google's status list"
            ),
            Some(source @ revocation::RevocationSource::File(_)) => {
                revocation::reload(source, &revocations, &*clock)
                    .await
                    .map_err(ConfigError::Invalid)?;
            }
            Some(revocation::RevocationSource::Url(_)) => {}
        }
        if config.gateway.routes.is_empty() {
            tracing::warn!("no [[gateway.routes]] configured: the gateway denies every request");
        }

        let data_dir = config.server.data_dir.clone();
        create_private_dir(&data_dir)?;
        let store = open_store(&config).await?;
        ensure_admin_token(&data_dir, &*store).await?;
        let shared = match &config.redis.url {
            None => None,
            Some(url) => Some(
                SharedState::connect(SharedParams {
                    url: url.clone(),
                    prefix: config.redis.prefix.clone(),
                    timeout: config.redis.timeout,
                })
                .await?,
            ),
        };

        let load_tls = |tls: &Option<config::TlsConfig>| {
            tls.as_ref()
                .map(|tls| ServerTls::load(tls.files()).map(Arc::new))
                .transpose()
        };
        let server_tls = load_tls(&config.server.tls)?;
        let gateway_tls = load_tls(&config.gateway.tls)?;
        let server_listener = bind(config.server.listen).await?;
        let gateway_listener = bind(config.gateway.listen).await?;
        let admin_listener = bind(config.admin.listen).await?;
        let local = |listener: &TcpListener| {
            listener.local_addr().map_err(|source| NodeError::Io {
                context: "listener address".into(),
                source,
            })
        };
        let server_addr = local(&server_listener)?;
        let gateway_addr = local(&gateway_listener)?;
        let admin_addr = local(&admin_listener)?;
        if !admin_addr.ip().is_loopback() {
            tracing::warn!(admin = %admin_addr, "the admin API listens beyond loopback: put it behind your own access control");
        }
        let issuer = config
            .server
            .issuer
            .clone()
            .unwrap_or_else(|| format!("{}://{server_addr}", scheme(&server_tls)));
        let public_url = config
            .gateway
            .public_url
            .clone()
            .unwrap_or_else(|| format!("{}://{gateway_addr}", scheme(&gateway_tls)));
        warn_of_plain_https("server.issuer", &issuer, &server_tls);
        warn_of_plain_https("gateway.public_url", &public_url, &gateway_tls);
        dpop::target_uri(&public_url, "/").map_err(|_| {
            ConfigError::Invalid(format!(
                "gateway.public_url {public_url:?} is not an http(s) URL"
            ))
        })?;

        let metrics = Arc::new(Metrics::new());
        let (audit, audit_writer) =
            AuditSink::new(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&metrics));
        let token_ttl_secs = secs(config.server.token_ttl);
        let server_params = ServerParams {
            issuer: issuer.clone(),
            audience: public_url.clone(),
            token_ttl_secs,
            challenge_ttl_secs: secs(config.server.challenge_ttl),
            client_rate_limit: config.server.client_rate_limit,
            evidence_limits: EvidenceLimits::default(),
            attestation: options.attestation_roots,
            body_read_timeout: config.server.body_read_timeout,
            trusted_proxies: config.server.connections.limits().trusted_proxies,
            secret_routes: secret_routes(&routes),
        };
        let key_retention_secs = server_params.key_retention_secs();
        let checkpoint_key = checkpoint::key(&*store, &sealer).await?;
        let session_secret = Arc::new(medgate_verify::httpsig::SessionSecret::new(
            shared_secret(&*store, &sealer, "session_mac_secret", "session-mac-secret").await?,
        ));
        let credentials = match &config.gateway.credentials {
            Some(credentials) => Some(credential_params(
                credentials,
                shared_secret(
                    &*store,
                    &sealer,
                    "credential_exchange_secret",
                    "credential-exchange-secret",
                )
                .await?,
            )?),
            None => None,
        };
        let server = Server::new(
            server_params,
            Arc::clone(&store),
            sealer,
            ServerRuntime {
                clock: Arc::clone(&clock),
                metrics: Arc::clone(&metrics),
                audit: audit.clone(),
                revocations: Arc::clone(&revocations),
                shared: shared.clone(),
                session_secret: Some(Arc::clone(&session_secret)),
                fetch_jwks: Some(jwks_fetch::fetcher()),
            },
        )
        .await?;
        let gateway = Gateway::new(
            GatewayParams {
                public_url: public_url.clone(),
                issuer: issuer.clone(),
                audience: public_url.clone(),
                upstream,
                upstream_tls,
                routes,
                rate_limit: config.gateway.rate_limit,
                address_rate_limit: config.gateway.address_rate_limit,
                proof: ProofPolicy {
                    window: IatWindow {
                        max_age_secs: secs(config.gateway.proof_max_age),
                        max_skew_secs: secs(config.gateway.clock_skew),
                    },
                    algs: INSTALLATION_KEY_ALGS.to_vec(),
                },
                token_leeway_secs: secs(config.gateway.clock_skew),
                token_cache_capacity: config.gateway.token_cache_size,
                replay_capacity: config.gateway.replay_cache_size,
                replay_share: config.gateway.replay_share(),
                upstream_timeout: config.gateway.upstream_timeout,
                key_retention_secs,
                connections: config.gateway.connections.limits(),
                max_signed_body: config.gateway.max_signed_body,
                strip,
                session_secret: Some(session_secret),
                credentials,
                partners: config
                    .gateway
                    .partners
                    .as_ref()
                    .map(partner_params)
                    .transpose()?,
            },
            gateway_sealer,
            Arc::clone(&clock),
            Arc::clone(&metrics),
            audit,
            shared.clone(),
        );
        gateway.refresh(&*store).await?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(
                audit_writer
                    .telemetry_retention(config.audit.telemetry_retention)
                    .run(shutdown_rx.clone()),
            ),
            tokio::spawn(serve_router(
                server_listener,
                shutdown_rx.clone(),
                config.server.connections.limits(),
                server_tls.clone(),
                "control plane",
                server.router(),
            )),
            tokio::spawn(serve_router(
                admin_listener,
                shutdown_rx.clone(),
                listen::ConnectionLimits::default(),
                None,
                "admin plane",
                server.admin_router(),
            )),
            tokio::spawn(gateway.clone().serve(
                gateway_listener,
                gateway_tls.clone(),
                shutdown_rx.clone(),
            )),
        ];
        if let Some(source) = revocation_source.clone() {
            let refresh = config.attestation.revocation_refresh;
            tasks.push(tokio::spawn(revocation::keep_fresh(
                source,
                Arc::clone(&revocations),
                Arc::clone(&clock),
                refresh,
                shutdown_rx.clone(),
            )));
        }
        let checkpoint_key = Arc::new(checkpoint_key);
        if let Err(error) =
            checkpoint::make(&*store, &checkpoint_key, &*clock, &data_dir, &server).await
        {
            tracing::error!(%error, "audit checkpoint failed");
        }
        tasks.push(tokio::spawn(keep_checkpointing(
            Arc::clone(&store),
            Arc::clone(&checkpoint_key),
            Arc::clone(&clock),
            data_dir.clone(),
            server.clone(),
            config.audit.checkpoint_interval,
            shutdown_rx.clone(),
        )));
        if let Some(alerts) =
            alerts::Alerts::from_config(&config.alerts).map_err(ConfigError::Invalid)?
        {
            tasks.push(tokio::spawn(alerts::keep_alerting(
                alerts,
                alerts::AlertContext {
                    store: Arc::clone(&store),
                    server: server.clone(),
                    clock: Arc::clone(&clock),
                    metrics: Arc::clone(&metrics),
                },
                shutdown_rx.clone(),
            )));
        }
        let changed = Arc::new(Notify::new());
        let shared_for_upkeep = shared.clone();
        if let Some(shared) = shared {
            tasks.push(tokio::spawn(
                shared.follow_changes(Arc::clone(&changed), shutdown_rx.clone()),
            ));
            // The follower wakes once subscribed: from then on no announcement is missed, so
            // a node that has started hears every change made after it.
            if tokio::time::timeout(Duration::from_secs(5), changed.notified())
                .await
                .is_err()
            {
                tracing::warn!(
                    "not yet subscribed to Redis announcements: revocations arrive by the poll until it is"
                );
            }
        }
        tasks.push(tokio::spawn(maintain(
            Upkeep {
                store: Arc::clone(&store),
                server: server.clone(),
                gateway: gateway.clone(),
                clock: Arc::clone(&clock),
                refresh_interval: config.gateway.refresh_interval,
                changed,
                shared: shared_for_upkeep,
            },
            shutdown_rx,
        )));
        tracing::info!(server = %server_addr, gateway = %gateway_addr, admin = %admin_addr, %issuer, %public_url, "medgate node started");
        Ok(Node {
            server_addr,
            gateway_addr,
            admin_addr,
            server_scheme: scheme(&server_tls),
            gateway_scheme: scheme(&gateway_tls),
            checkpoint_key,
            issuer,
            public_url,
            data_dir,
            store,
            server,
            gateway,
            metrics,
            clock,
            revocation_source,
            revocations,
            tls: server_tls.into_iter().chain(gateway_tls).collect(),
            shutdown,
            tasks,
        })
    }

    /// Loads the configured revocation status list now, as the background refresh does, and
    /// returns its number of entries. A failure keeps the list in use.
    pub async fn reload_revocation_list(&self) -> Result<usize, String> {
        let source = self
            .revocation_source
            .as_ref()
            .ok_or("no attestation.revocation_list is configured")?;
        revocation::reload(source, &self.revocations, &*self.clock).await
    }

    /// The control plane's listening address.
    pub fn server_addr(&self) -> SocketAddr {
        self.server_addr
    }

    pub fn gateway_addr(&self) -> SocketAddr {
        self.gateway_addr
    }

    /// `http(s)://<server address>`, where the control plane answers.
    pub fn server_url(&self) -> String {
        format!("{}://{}", self.server_scheme, self.server_addr)
    }

    /// `http(s)://<gateway address>`, where the gateway answers.
    pub fn gateway_url(&self) -> String {
        format!("{}://{}", self.gateway_scheme, self.gateway_addr)
    }

    /// Reads every listener's certificate and key again (the CLI calls it on `SIGHUP`) and
    /// returns how many listeners have TLS: new handshakes present the new pair, open
    /// connections carry on. A listener whose files do not load keeps its pair; the first such
    /// error is returned after all were tried.
    pub fn reload_tls(&self) -> Result<usize, NodeError> {
        let mut first_error = None;
        for tls in &self.tls {
            if let Err(error) = tls.reload() {
                tracing::error!(%error, "TLS certificate not reloaded; the previous one stays in use");
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(self.tls.len()), |error| Err(error.into()))
    }

    /// Makes a signed checkpoint of the audit chain's head now (as the node does at start and
    /// every `audit.checkpoint_interval`); `None` while the log is empty.
    pub async fn make_checkpoint(&self) -> Result<Option<String>, NodeError> {
        checkpoint::make(
            &*self.store,
            &self.checkpoint_key,
            &*self.clock,
            &self.data_dir,
            &self.server,
        )
        .await
    }

    /// The thumbprint of the key that signs audit checkpoints (to pin them).
    pub fn checkpoint_key_thumbprint(&self) -> medgate_proto::Thumbprint {
        self.checkpoint_key.public_jwk().thumbprint()
    }

    /// `http://<admin address>`, where the admin API and `/metrics` answer.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The gateway's public URL (token audience and `htu` base).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.store)
    }

    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    pub fn server(&self) -> &Server {
        &self.server
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The admin token, read from its file.
    pub fn admin_token(&self) -> Result<String, NodeError> {
        let path = self.data_dir.join(ADMIN_TOKEN_FILE);
        std::fs::read_to_string(&path)
            .map(|text| text.trim().to_string())
            .map_err(|source| NodeError::Io {
                context: format!("cannot read {}", path.display()),
                source,
            })
    }

    /// Stops accepting, lets in-flight work and queued audit entries finish for up to
    /// `grace`, then stops whatever is left.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut self.tasks);
        let aborts: Vec<_> = tasks.iter().map(JoinHandle::abort_handle).collect();
        let _ = tokio::time::timeout(grace, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        for abort in aborts {
            abort.abort();
        }
        // The head as the node leaves it, once every writer has stopped.
        if let Err(error) = self.make_checkpoint().await {
            tracing::error!(%error, "final audit checkpoint failed");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Background upkeep: the gateway learns revocations and keys every second; expired
/// challenges are purged and signing keys reloaded every 30 seconds.
/// Serves an axum router on the shared accept loop, telling it each request's peer.
async fn serve_router(
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
    limits: listen::ConnectionLimits,
    tls: Option<Arc<ServerTls>>,
    plane: &'static str,
    router: axum::Router,
) {
    listen::serve(listener, shutdown, limits, tls, plane, move |peer| {
        let router = router.clone();
        service_fn(move |mut request: Request<Incoming>| {
            // What axum's `ConnectInfo` extractor reads.
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        })
    })
    .await;
}

/// A checkpoint every `interval` until shutdown.
async fn keep_checkpointing(
    store: Arc<dyn Store>,
    key: Arc<TokenSigningKey>,
    clock: Arc<dyn Clock>,
    data_dir: PathBuf,
    server: Server,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(error) = checkpoint::make(&*store, &key, &*clock, &data_dir, &server).await {
            tracing::error!(%error, "audit checkpoint failed");
        }
    }
}

/// How often gateways read the store while Redis's pushes cannot be relied on.
const FALLBACK_POLL: Duration = Duration::from_secs(5);

/// What the node's upkeep loop works on.
struct Upkeep {
    store: Arc<dyn Store>,
    server: Server,
    gateway: Gateway,
    clock: Arc<dyn Clock>,
    refresh_interval: Duration,
    /// Woken when another replica announces a change (`[redis]`).
    changed: Arc<Notify>,
    /// Whether those announcements can be relied on now (`[redis]`).
    shared: Option<SharedState>,
}

/// Every `gateway.refresh_interval`, and at once when a change is announced: the gateway reads
/// new revocations and keys. Every second: the server trims its limiters; every 30 s it purges
/// expired challenges and console sessions, reloads signing keys and the TUF repository (also
/// at an announcement, for changes made at another replica) and renews the TUF timestamp when
/// it is due.
async fn maintain(upkeep: Upkeep, mut shutdown: watch::Receiver<bool>) {
    let Upkeep {
        store,
        server,
        gateway,
        clock,
        refresh_interval,
        changed,
        shared,
    } = upkeep;
    let mut refresh = tokio::time::interval(refresh_interval);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
    housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = refresh.tick() => {
                if let Err(error) = gateway.refresh(&*store).await {
                    tracing::error!(%error, "gateway refresh failed");
                }
            }
            _ = changed.notified() => {
                if let Err(error) = gateway.refresh(&*store).await {
                    tracing::error!(%error, "gateway refresh failed");
                }
                if let Err(error) = server.refresh_keys().await {
                    tracing::error!(%error, "signing key reload failed");
                }
                if let Err(error) = server.refresh_trust().await {
                    tracing::error!(%error, "TUF repository reload failed");
                }
            }
            _ = housekeeping.tick() => {
                ticks += 1;
                server.trim();
                // A poll slower than 5 s relies on Redis's pushes: while they cannot arrive
                // (unsubscribed, or a call failed), poll every 5 s.
                let pushes = shared.as_ref().is_some_and(SharedState::pushes_arrive);
                if refresh_interval > FALLBACK_POLL
                    && !pushes
                    && ticks.is_multiple_of(5)
                    && let Err(error) = gateway.refresh(&*store).await
                {
                    tracing::error!(%error, "gateway refresh failed");
                }
                if ticks.is_multiple_of(30) {
                    if let Err(error) = store.purge_challenges(clock.now()).await {
                        tracing::error!(%error, "challenge purge failed");
                    }
                    if let Err(error) = store.purge_console_sessions(clock.now()).await {
                        tracing::error!(%error, "console session purge failed");
                    }
                    if let Err(error) = server.refresh_keys().await {
                        tracing::error!(%error, "signing key reload failed");
                    }
                    // Another replica's publication, and the timestamp's renewal.
                    if let Err(error) = server.refresh_trust().await {
                        tracing::error!(%error, "TUF repository reload failed");
                    }
                    if let Err(error) = server.renew_trust().await {
                        tracing::error!(%error, "TUF timestamp renewal failed");
                    }
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
