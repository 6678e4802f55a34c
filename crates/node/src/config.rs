//! `medgate.toml`: one typed file, every key optional, unknown keys refused (a typo is an
//! error, not a silently ignored setting). The README documents every key in a table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use medgate_gateway::routes::RouteConfig;
use medgate_service::ratelimit::RateLimit;
use serde::Deserialize;

use crate::revocation::RevocationSource;

/// The config file format version this medgate reads.
pub const CONFIG_VERSION: u32 = 1;

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {message}")]
    Parse { path: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub version: u32,
    pub server: ServerConfig,
    pub gateway: GatewayConfig,
    pub attestation: AttestationConfig,
    pub admin: AdminConfig,
    pub audit: AuditConfig,
    pub store: StoreConfig,
    pub redis: RedisConfig,
    pub alerts: AlertsConfig,
}

/// Alerts to the security team's webhook (`[alerts]`): threat spikes, a new kind of threat, a
/// revoked release still in use, an audit chain that does not verify; signed as Standard
/// Webhooks with a shared secret. No URL: no alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Where alerts are POSTed: https, or plain http only to this machine.
    pub url: Option<String>,
    /// The file holding the shared secret: `whsec_` and the base64 of 24 to 64 random bytes.
    pub secret_file: Option<PathBuf>,
    /// How often the rules are evaluated (and undelivered alerts retried).
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub interval: Duration,
    /// A minute with at least this many attestations refused or limited for a threat…
    pub spike_threshold: u64,
    /// …and at least this many times the hour before's average per minute is a spike.
    pub spike_factor: u64,
    /// How often the whole audit chain is verified (it is read from the start each time).
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub chain_check_interval: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            url: None,
            secret_file: None,
            interval: Duration::from_secs(60),
            spike_threshold: 10,
            spike_factor: 3,
            chain_check_interval: Duration::from_secs(3600),
        }
    }
}

/// Short-lived state shared by several gateways (`[redis]`): proof replay keys, cluster-wide
/// rate limits, and pushed revocations. None: each gateway keeps its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS, or `redis+unix:///path`.
    pub url: Option<String>,
    /// Prepended to every key and channel, so deployments can share one Redis.
    pub prefix: String,
    /// Deadline of every Redis call; past it the route's `redis_down` choice applies.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            prefix: "medgate:".into(),
            timeout: Duration::from_millis(100),
        }
    }
}

/// Where state lives (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://user@host:port/database` for several nodes on one database, or
    /// `sqlite://DIR` for the embedded file in DIR; none: SQLite in `server.data_dir`.
    pub url: Option<String>,
    /// PostgreSQL connections per node.
    pub pool_size: usize,
    /// PostgreSQL's `statement_timeout` for every statement.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub statement_timeout: Duration,
    /// With `sslmode=require` in the URL (TLS, with the certificate and host name verified):
    /// the CA certificates (PEM) the database's certificate must chain to. None: Mozilla's
    /// roots, as for a managed database with a public certificate.
    pub ca: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            url: None,
            pool_size: 16,
            statement_timeout: Duration::from_secs(30),
            ca: None,
        }
    }
}

/// The backend a `[store] url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Config {
    /// Where the store is, from `[store] url` (default: SQLite in the data directory).
    pub fn store_location(&self) -> Result<StoreLocation, ConfigError> {
        match self.store.url.as_deref() {
            None => Ok(StoreLocation::Sqlite(self.server.data_dir.clone())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreLocation::Postgres(url.to_string()))
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(dir) if !dir.is_empty() => Ok(StoreLocation::Sqlite(PathBuf::from(dir))),
                _ => Err(ConfigError::Invalid(
                    "store.url must be postgres://… or sqlite://DIR".into(),
                )),
            },
        }
    }
}

/// The audit log (`[audit]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often a signed checkpoint of the chain's head is made (also at start).
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub checkpoint_interval: Duration,
    /// How long the telemetry series (decisions and gateway outcomes counted per minute, for
    /// charts) is kept.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub telemetry_retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_interval: Duration::from_secs(3600),
            telemetry_retention: medgate_service::audit::DEFAULT_TELEMETRY_RETENTION,
        }
    }
}

/// The admin plane: the admin API and `/metrics`, on their own listener (`[admin]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Loopback by default: operators reach it on the host (or through their own tunnel),
    /// never on the public listener.
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8702)),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            server: ServerConfig::default(),
            gateway: GatewayConfig::default(),
            attestation: AttestationConfig::default(),
            admin: AdminConfig::default(),
            audit: AuditConfig::default(),
            store: StoreConfig::default(),
            redis: RedisConfig::default(),
            alerts: AlertsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestationConfig {
    /// Google's attestation revocation status list: a file path, or an https URL such as
    /// `https://android.googleapis.com/attestation/status` (plain http is refused). Unset:
    /// chains are not checked against a list (the server warns).
    pub revocation_list: Option<String>,
    /// How often the list is loaded again.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub revocation_refresh: Duration,
    /// How old the loaded list may get (refreshes failing) before Android attestations get
    /// 503. Must be greater than `revocation_refresh`.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub revocation_max_age: Duration,
}

impl Default for AttestationConfig {
    fn default() -> Self {
        AttestationConfig {
            revocation_list: None,
            revocation_refresh: Duration::from_secs(3600),
            revocation_max_age: Duration::from_secs(24 * 3600),
        }
    }
}

impl AttestationConfig {
    /// The configured list's source, if any; a URL must be https.
    pub fn revocation_source(&self) -> Result<Option<RevocationSource>, ConfigError> {
        self.revocation_list
            .as_deref()
            .map(RevocationSource::parse)
            .transpose()
            .map_err(ConfigError::Invalid)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.revocation_source()?;
        if self.revocation_max_age <= self.revocation_refresh {
            return Err(ConfigError::Invalid(format!(
                "attestation.revocation_max_age ({}s) must be greater than attestation.revocation_refresh ({}s)",
                self.revocation_max_age.as_secs(),
                self.revocation_refresh.as_secs()
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Default: `http://<listen>`.
    pub issuer: Option<String>,
    pub data_dir: PathBuf,
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub token_ttl: Duration,
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub challenge_ttl: Duration,
    /// Per client address on `/v1/challenge` and `/v1/attest`.
    pub client_rate_limit: RateLimit,
    /// How long a client may take to send a request body, from the end of its head.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub body_read_timeout: Duration,
    pub connections: ConnectionConfig,
    /// TLS on this listener; none: plain HTTP (for loopback, or behind a TLS-terminating proxy).
    pub tls: Option<TlsConfig>,
}

/// A listener's certificate chain and key, PEM files (`[server.tls]`, `[gateway.tls]`),
/// read again on `SIGHUP`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate first, then its intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, SEC1 or PKCS#1); keep it `0600`.
    pub key: PathBuf,
}

impl TlsConfig {
    pub fn files(&self) -> medgate_service::tls::TlsFiles {
        medgate_service::tls::TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// What clients can hold of a listener (`[server.connections]`, `[gateway.connections]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionConfig {
    /// Connections the listener holds at once; beyond it, newcomers wait in the backlog.
    pub max: usize,
    /// Connections one client (IPv4 address, IPv6 /64) holds at once; more are closed.
    pub max_per_client: usize,
    /// How long a client may take to send a request head, and how long a kept-alive
    /// connection may idle before its next request.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub header_read_timeout: Duration,
    /// Reverse proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the client; they are
    /// exempt from `max_per_client`. Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        let defaults = medgate_service::listen::ConnectionLimits::default();
        ConnectionConfig {
            max: defaults.max_connections,
            max_per_client: defaults.max_connections_per_client,
            header_read_timeout: defaults.header_read_timeout,
            trusted_proxies: Vec::new(),
        }
    }
}

impl ConnectionConfig {
    /// The listener's limits. Call after [`Config::validate`]: an invalid proxy list is
    /// treated as empty here.
    pub fn limits(&self) -> medgate_service::listen::ConnectionLimits {
        medgate_service::listen::ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max,
            max_connections_per_client: self.max_per_client,
            trusted_proxies: self.proxies().unwrap_or_default(),
            ..medgate_service::listen::ConnectionLimits::default()
        }
    }

    pub fn proxies(&self) -> Result<medgate_service::client_ip::TrustedProxies, String> {
        medgate_service::client_ip::TrustedProxies::parse(&self.trusted_proxies)
    }

    fn validate(&self, table: &str) -> Result<(), String> {
        if self.max == 0 || self.max_per_client == 0 || self.header_read_timeout.is_zero() {
            return Err(format!(
                "{table}: max, max_per_client and header_read_timeout must be greater than 0"
            ));
        }
        self.proxies()
            .map(|_| ())
            .map_err(|error| format!("{table}.trusted_proxies: {error}"))
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            issuer: None,
            data_dir: PathBuf::from("./medgate-data"),
            token_ttl: Duration::from_secs(300),
            challenge_ttl: Duration::from_secs(60),
            client_rate_limit: RateLimit {
                per_second: 20,
                burst: 40,
            },
            body_read_timeout: Duration::from_secs(10),
            connections: ConnectionConfig::default(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    /// Default: `http://<listen>`.
    pub public_url: Option<String>,
    /// `http://` or `https://host[:port][/prefix]`.
    pub upstream: Option<String>,
    /// For an https upstream: a PEM bundle of CA certificates trusted besides the system's
    /// (a private CA).
    pub upstream_ca: Option<PathBuf>,
    /// For an https upstream: SPKI SHA-256 pins (base64, OkHttp's convention); one of them must
    /// match a certificate of the upstream's verified chain. Name a backup key too.
    pub upstream_pins: Vec<String>,
    /// Per installation.
    pub rate_limit: RateLimit,
    /// Per client address (behind a NAT, many patients share one).
    pub address_rate_limit: RateLimit,
    /// How often the gateway reads new revocations and keys from the store. Over 5 s only
    /// with `[redis]`, whose pushes then keep revocations within the 5 s bound.
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub refresh_interval: Duration,
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub proof_max_age: Duration,
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub clock_skew: Duration,
    #[serde(deserialize_with = "medgate_service::duration::deserialize")]
    pub upstream_timeout: Duration,
    pub token_cache_size: usize,
    pub replay_cache_size: usize,
    /// Live replay-cache entries one installation may hold. Default: what its rate limit lets
    /// it send within the proof window (`burst + per_second × (proof_max_age + clock_skew)`),
    /// or a hundredth of the cache when rate limiting is off.
    pub replay_share: Option<usize>,
    pub routes: Vec<RouteConfig>,
    pub connections: ConnectionConfig,
    /// TLS on the gateway's listener; none: plain HTTP.
    pub tls: Option<TlsConfig>,
    /// The largest body a `proof = "dpop+signature"` route reads to check it against its
    /// `Content-Digest` (413 beyond).
    pub max_signed_body: usize,
    /// Headers that carry credentials for the upstream, removed from every request the
    /// gateway forwards (Nightscout: `["api-secret"]`), whatever the client sent.
    pub strip_headers: Vec<String>,
    /// Query parameters that carry credentials for the upstream, removed likewise
    /// (Nightscout: `["secret", "token", "api_secret"]`), in any spelling the upstream reads.
    pub strip_query: Vec<String>,
    /// Credentials for apps that cannot attest (`medgate admin follower|uploader`): where
    /// clients put them. None: only attested installations are admitted.
    pub credentials: Option<CredentialsConfig>,
    /// Partner backends (`medgate admin partner`): what their SMART scopes give on routes that
    /// say `partners = true`. None: no partner token is admitted.
    pub partners: Option<PartnersConfig>,
}

/// `[gateway.partners]`: a partner's rate limit, and `[[gateway.partners.scopes]]`, each a
/// SMART scope a token must cover and the route scopes that gives it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnersConfig {
    #[serde(default = "default_partner_rate_limit")]
    pub rate_limit: RateLimit,
    #[serde(default)]
    pub scopes: Vec<PartnerScopeConfig>,
}

/// `smart = "system/Observation.rs"`, `grants = ["fhir:observation:read"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerScopeConfig {
    pub smart: String,
    pub grants: Vec<String>,
}

fn default_partner_rate_limit() -> RateLimit {
    RateLimit {
        per_second: 100,
        burst: 200,
    }
}

/// `[gateway.credentials]`: where clients of apps that cannot attest put their credential
/// (Nightscout: `query = ["token"]`, `headers = ["api-secret"]`, `exchange_path =
/// "/api/v2/authorization/request/"`). Every place listed is also stripped from what is
/// forwarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsConfig {
    #[serde(default)]
    pub query: Vec<String>,
    #[serde(default)]
    pub headers: Vec<String>,
    /// A path prefix the gateway answers itself, `GET <prefix>[token=]<secret>`, with a
    /// short-lived JWT it accepts as `Authorization: Bearer` (Nightscout's token exchange).
    pub exchange_path: Option<String>,
    #[serde(
        default = "default_exchange_lifetime",
        deserialize_with = "medgate_service::duration::deserialize"
    )]
    pub exchange_lifetime: Duration,
}

fn default_exchange_lifetime() -> Duration {
    Duration::from_secs(3600)
}

impl GatewayConfig {
    /// The replay-cache share of one installation, as configured or derived.
    pub fn replay_share(&self) -> usize {
        let derived = if self.rate_limit.per_second == 0 {
            self.replay_cache_size / 100
        } else {
            let window = self.proof_max_age.as_secs() + self.clock_skew.as_secs();
            u64::from(self.rate_limit.burst)
                .saturating_add(u64::from(self.rate_limit.per_second).saturating_mul(window))
                .try_into()
                .unwrap_or(usize::MAX)
        };
        self.replay_share
            .unwrap_or(derived)
            .clamp(1, self.replay_cache_size.max(1))
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8701)),
            public_url: None,
            upstream: None,
            upstream_ca: None,
            upstream_pins: Vec::new(),
            rate_limit: RateLimit {
                per_second: 50,
                burst: 100,
            },
            address_rate_limit: RateLimit {
                per_second: 1_000,
                burst: 2_000,
            },
            refresh_interval: Duration::from_secs(1),
            proof_max_age: Duration::from_secs(60),
            clock_skew: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(30),
            token_cache_size: 10_000,
            replay_cache_size: 1_000_000,
            replay_share: None,
            routes: Vec::new(),
            connections: ConnectionConfig::default(),
            tls: None,
            max_signed_body: 1024 * 1024,
            strip_headers: Vec::new(),
            strip_query: Vec::new(),
            credentials: None,
            partners: None,
        }
    }
}

impl Config {
    /// Parses the text of a config file. `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: origin.to_string(),
            message: error.to_string(),
        })?;
        if config.version != CONFIG_VERSION {
            return Err(ConfigError::Invalid(format!(
                "version {} is not supported (this medgate reads version {CONFIG_VERSION})",
                config.version
            )));
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: `Node::start` calls it too, for configs built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.attestation.validate()?;
        self.store_location()?;
        let refresh = self.gateway.refresh_interval;
        if refresh < Duration::from_millis(100) || refresh > Duration::from_secs(60) {
            return Err(ConfigError::Invalid(
                "gateway.refresh_interval must be between 100ms and 60s".into(),
            ));
        }
        if refresh > Duration::from_secs(5) && self.redis.url.is_none() {
            return Err(ConfigError::Invalid(
                "gateway.refresh_interval over 5s needs [redis] url: revocations must reach every gateway within 5 s".into(),
            ));
        }
        if self.redis.timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "redis.timeout must be above zero".into(),
            ));
        }
        if self.store.pool_size == 0 {
            return Err(ConfigError::Invalid(
                "store.pool_size must be at least 1".into(),
            ));
        }
        self.server
            .connections
            .validate("server.connections")
            .and_then(|()| self.gateway.connections.validate("gateway.connections"))
            .map_err(ConfigError::Invalid)?;
        if self.audit.checkpoint_interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "audit.checkpoint_interval must be at least 1s".into(),
            ));
        }
        if self.audit.telemetry_retention < Duration::from_secs(3600) {
            return Err(ConfigError::Invalid(
                "audit.telemetry_retention must be at least 1h".into(),
            ));
        }
        if let Some(url) = &self.alerts.url {
            medgate_server::check_outbound_url(url).map_err(|_| {
                ConfigError::Invalid(
                    "alerts.url is an https URL (plain http only to 127.0.0.1, [::1] or localhost), without user information, of at most 512 characters".into(),
                )
            })?;
            if self.alerts.secret_file.is_none() {
                return Err(ConfigError::Invalid(
                    "alerts.url needs alerts.secret_file: alerts are signed".into(),
                ));
            }
            if self.alerts.interval < Duration::from_secs(1)
                || self.alerts.chain_check_interval < Duration::from_secs(1)
                || self.alerts.spike_threshold == 0
            {
                return Err(ConfigError::Invalid(
                    "alerts.interval and alerts.chain_check_interval are at least 1s, alerts.spike_threshold at least 1".into(),
                ));
            }
        }
        if self.server.body_read_timeout.is_zero() {
            return Err(ConfigError::Invalid(
                "server.body_read_timeout must be greater than 0".into(),
            ));
        }
        Ok(())
    }

    /// Reads a config file; a missing file is an error (use `Config::default()` for none).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_url_names_a_backend_or_is_refused() {
        let location = |toml: &str| Config::from_toml(toml, "t").map(|c| c.store_location());
        assert_eq!(
            location("").unwrap().unwrap(),
            StoreLocation::Sqlite(PathBuf::from("./medgate-data"))
        );
        assert_eq!(
            location("[store]\nurl = \"sqlite:///var/lib/medgate\"\n")
                .unwrap()
                .unwrap(),
            StoreLocation::Sqlite(PathBuf::from("/var/lib/medgate"))
        );
        assert_eq!(
            location("[store]\nurl = \"postgres://medgate@db/medgate\"\npool_size = 4\n")
                .unwrap()
                .unwrap(),
            StoreLocation::Postgres("postgres://medgate@db/medgate".into())
        );
        for bad in [
            "[store]\nurl = \"mysql://db\"\n",
            "[store]\nurl = \"sqlite://\"\n",
            "[store]\npool_size = 0\n",
        ] {
            assert!(location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_telemetry_series_is_kept_at_least_an_hour() {
        let retention = |toml: &str| {
            Config::from_toml(toml, "t").map(|config| config.audit.telemetry_retention)
        };
        assert_eq!(retention("").unwrap(), Duration::from_secs(90 * 24 * 3600));
        assert_eq!(
            retention("[audit]\ntelemetry_retention = \"7d\"\n").unwrap(),
            Duration::from_secs(7 * 24 * 3600)
        );
        assert!(retention("[audit]\ntelemetry_retention = \"30m\"\n").is_err());
    }

    #[test]
    fn connection_limits_are_configurable_and_must_be_positive() {
        let config = Config::from_toml(
            "[server]\nbody_read_timeout = \"5s\"\n[server.connections]\nmax = 100\n\
             [gateway.connections]\nmax_per_client = 4\nheader_read_timeout = \"3s\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(config.server.body_read_timeout, Duration::from_secs(5));
        let server = config.server.connections.limits();
        assert_eq!(
            (server.max_connections, server.max_connections_per_client),
            (100, 32)
        );
        let gateway = config.gateway.connections.limits();
        assert_eq!(
            (
                gateway.max_connections_per_client,
                gateway.header_read_timeout
            ),
            (4, Duration::from_secs(3))
        );
        let proxied = Config::from_toml(
            "[gateway.connections]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
            "t",
        )
        .unwrap();
        assert!(
            proxied
                .gateway
                .connections
                .limits()
                .trusted_proxies
                .trusts("10.9.8.7".parse().unwrap())
        );
        for bad in [
            "[gateway.connections]\ntrusted_proxies = [\"10.0.0.0/40\"]\n",
            "[server.connections]\nmax = 0\n",
            "[gateway.connections]\nmax_per_client = 0\n",
            "[server]\nbody_read_timeout = 0\n",
        ] {
            assert!(Config::from_toml(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_file_is_the_default() {
        let config = Config::from_toml("", "t").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8700");
        assert_eq!(config.gateway.listen.to_string(), "127.0.0.1:8701");
        assert_eq!(config.server.token_ttl, Duration::from_secs(300));
        assert_eq!(
            config.gateway.rate_limit,
            RateLimit {
                per_second: 50,
                burst: 100
            }
        );
        assert_eq!(config.server.data_dir, PathBuf::from("./medgate-data"));
    }

    #[test]
    fn a_full_file_parses() {
        let config = Config::from_toml(
            r#"
            version = 1
            [server]
            listen = "0.0.0.0:9000"
            issuer = "https://attest.example.org"
            data_dir = "/var/lib/medgate"
            token_ttl = "10m"
            challenge_ttl = 30
            client_rate_limit = { per_second = 5, burst = 10 }
            [gateway]
            public_url = "https://api.example.org"
            upstream = "http://127.0.0.1:1337"
            rate_limit = { per_second = 10, burst = 20 }
            proof_max_age = "2m"
            [[gateway.routes]]
            path = "/api/v1/entries*"
            methods = ["GET"]
            scopes = ["entries:read"]
            "#,
            "t",
        )
        .unwrap();
        assert_eq!(config.server.token_ttl, Duration::from_secs(600));
        assert_eq!(config.server.challenge_ttl, Duration::from_secs(30));
        assert_eq!(config.gateway.routes.len(), 1);
        assert_eq!(config.gateway.proof_max_age, Duration::from_secs(120));
    }

    #[test]
    fn the_example_file_parses_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../medgate.example.toml");
        let example = Config::load(&path).unwrap();
        let defaults = Config::default();
        assert_eq!(example.server.listen, defaults.server.listen);
        assert_eq!(example.server.token_ttl, defaults.server.token_ttl);
        assert_eq!(example.server.challenge_ttl, defaults.server.challenge_ttl);
        assert_eq!(
            example.server.client_rate_limit,
            defaults.server.client_rate_limit
        );
        assert_eq!(example.gateway.rate_limit, defaults.gateway.rate_limit);
        assert_eq!(
            example.gateway.proof_max_age,
            defaults.gateway.proof_max_age
        );
        assert_eq!(
            example.gateway.replay_cache_size,
            defaults.gateway.replay_cache_size
        );
        assert_eq!(example.gateway.routes.len(), 3);
        assert_eq!(
            example.attestation.revocation_refresh,
            defaults.attestation.revocation_refresh
        );
        assert_eq!(
            example.attestation.revocation_max_age,
            defaults.attestation.revocation_max_age
        );
    }

    #[test]
    fn the_revocation_list_is_a_file_or_an_https_url_and_outlives_its_refresh() {
        let config = Config::from_toml(
            "[attestation]\nrevocation_list = \"https://android.googleapis.com/attestation/status\"\nrevocation_refresh = \"30m\"\nrevocation_max_age = \"12h\"",
            "t",
        )
        .unwrap();
        assert_eq!(
            config.attestation.revocation_max_age,
            Duration::from_secs(12 * 3600)
        );
        assert!(matches!(
            config.attestation.revocation_source().unwrap(),
            Some(RevocationSource::Url(_))
        ));
        assert_eq!(
            Config::default().attestation.revocation_max_age,
            Duration::from_secs(24 * 3600)
        );
        let config =
            Config::from_toml("[attestation]\nrevocation_list = \"/etc/status.json\"", "t")
                .unwrap();
        assert_eq!(
            config.attestation.revocation_source().unwrap(),
            Some(RevocationSource::File(PathBuf::from("/etc/status.json")))
        );
        for refused in [
            "http://android.googleapis.com/attestation/status",
            "HTTP://android.googleapis.com/attestation/status",
            "ftp://example.org/status",
        ] {
            let error = Config::from_toml(
                &format!("[attestation]\nrevocation_list = \"{refused}\""),
                "t",
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("attestation.revocation_list") && error.contains("must be https"),
                "{refused}: {error}"
            );
        }
        for (refresh, max_age) in [("1h", "1h"), ("2h", "1h")] {
            let error = Config::from_toml(
                &format!(
                    "[attestation]\nrevocation_refresh = \"{refresh}\"\nrevocation_max_age = \"{max_age}\""
                ),
                "t",
            )
            .unwrap_err()
            .to_string();
            assert!(
                error.contains(
                    "attestation.revocation_max_age (3600s) must be greater than attestation.revocation_refresh"
                ),
                "{error}"
            );
        }
        // The same check for a config built in code.
        let mut config = Config::default();
        config.attestation.revocation_max_age = config.attestation.revocation_refresh;
        assert!(config.validate().is_err());
    }

    #[test]
    fn typos_wrong_types_and_versions_are_clear_errors() {
        let error = Config::from_toml("[server]\nlisten_addr = \"x\"", "medgate.toml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("medgate.toml") && error.contains("listen_addr"),
            "{error}"
        );
        let error = Config::from_toml("[server]\ntoken_ttl = \"soon\"", "t")
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid duration"), "{error}");
        let error = Config::from_toml("[gateway]\nlisten = 5", "t")
            .unwrap_err()
            .to_string();
        assert!(error.contains("listen"), "{error}");
        let error = Config::from_toml("version = 2", "t")
            .unwrap_err()
            .to_string();
        assert!(error.contains("version 2 is not supported"), "{error}");
        let error = Config::load(Path::new("/nonexistent/medgate.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("cannot read config file /nonexistent/medgate.toml"),
            "{error}"
        );
    }

    #[test]
    fn a_slow_store_poll_needs_redis_and_redis_settings_are_read() {
        let slow = "[gateway]\nrefresh_interval = \"30s\"\n";
        let error = Config::from_toml(slow, "t").unwrap_err().to_string();
        assert!(error.contains("needs [redis] url"), "{error}");
        let config = Config::from_toml(
            &format!("{slow}[redis]\nurl = \"redis://127.0.0.1:6379\"\nprefix = \"clinic:\"\ntimeout = \"20ms\"\n"),
            "t",
        )
        .unwrap();
        assert_eq!(config.redis.prefix, "clinic:");
        assert_eq!(config.redis.timeout, Duration::from_millis(20));
        assert_eq!(config.gateway.refresh_interval, Duration::from_secs(30));
        for bad in [
            "[gateway]\nrefresh_interval = \"10ms\"",
            "[redis]\ntimeout = \"0s\"",
            "[redis]\nport = 1",
        ] {
            assert!(Config::from_toml(bad, "t").is_err(), "{bad}");
        }
        assert_eq!(Config::default().redis.url, None);
    }
}
