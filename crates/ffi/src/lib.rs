//! The medgate client SDK for Kotlin, Swift and Python, through UniFFI. No logic lives here:
//! each call forwards to `medgate-sdk`, panics are caught at the boundary, and every error
//! becomes a [`MedgateError`] in one place ([`From<ClientError>`]).
//!
//! ```text
//! client = MedgateClient(MedgateConfig(...))   configure (loads or creates the installation key)
//! client.attest()                              challenge, evidence with current signals, token
//! client.access_token()                        the cached token, attesting again near expiry
//! client.sign_request("GET", "/api/entries")   the Authorization and DPoP headers to add
//! client.current_signals()                     a detection pass now
//! ```
//!
//! Calls block; call them off the UI thread. The client owns a small Tokio runtime.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use medgate_sdk::client::{ClientConfig, ClientError};
use medgate_sdk::detect::{DetectConfig, Detector, Pass};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;

uniffi::setup_scaffolding!();

/// Everything that can go wrong, as the app sees it. Messages carry no token or key.
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum MedgateError {
    /// The configuration is unusable (bad URL, unreadable key file, unmeasurable app).
    #[error("configuration: {reason}")]
    Config { reason: String },
    /// The server could not be reached.
    #[error("network: {reason}")]
    Network { reason: String },
    /// The server refused the attestation; `reasons` are medgate's reason codes.
    #[error("attestation refused ({status}): {}", reasons.join(", "))]
    Refused { status: u16, reasons: Vec<String> },
    /// The server answered something unexpected.
    #[error("protocol: {reason}")]
    Protocol { reason: String },
    /// A bug in the SDK (a caught panic, or an internal failure).
    #[error("internal: {reason}")]
    Internal { reason: String },
}

impl From<ClientError> for MedgateError {
    fn from(error: ClientError) -> Self {
        match error {
            ClientError::Http { .. } => MedgateError::Network {
                reason: error.to_string(),
            },
            ClientError::Refused { status, problem } => MedgateError::Refused {
                status,
                reasons: problem
                    .reasons
                    .iter()
                    .map(|reason| reason.as_str().to_string())
                    .collect(),
            },
            ClientError::Protocol { .. } => MedgateError::Protocol {
                reason: error.to_string(),
            },
            other => MedgateError::Internal {
                reason: other.to_string(),
            },
        }
    }
}

/// Runs `call`, turning a panic into [`MedgateError::Internal`] so it never unwinds into the
/// foreign language.
fn boundary<T>(call: impl FnOnce() -> Result<T, MedgateError>) -> Result<T, MedgateError> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        Err(MedgateError::Internal { reason })
    })
}

fn config_error(reason: impl std::fmt::Display) -> MedgateError {
    MedgateError::Config {
        reason: reason.to_string(),
    }
}

/// How to reach medgate and who this app is.
#[derive(Debug, Clone, uniffi::Record)]
pub struct MedgateConfig {
    /// The control plane, e.g. `http://10.0.2.2:8700` (plain HTTP for now; see the README).
    pub server_url: String,
    /// The gateway's public URL.
    pub gateway_url: String,
    pub app_id: String,
    pub app_version: String,
    /// The app's measurement (lowercase hex SHA-256): on Android the signing-certificate
    /// digest the platform wrapper reads; empty to measure the running executable.
    pub measurement: Option<String>,
    /// Where the installation key is kept (created with mode 0600 if missing); empty for a
    /// key that lives as long as this client.
    pub key_path: Option<String>,
    /// Run the runtime threat detectors before each attestation.
    pub detect: bool,
    /// Libraries the app loads on purpose (file name, `prefix*` or `/dir/`), for the
    /// injected-library detector.
    pub allowed_libraries: Vec<String>,
    /// Attest again this many seconds before the token expires.
    pub refresh_margin_secs: i64,
}

/// A granted attestation.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Attestation {
    pub installation_id: String,
    /// `allow` or `allow_limited`.
    pub decision: String,
    pub scope: String,
    pub reasons: Vec<String>,
    pub expires_in: u64,
    pub integrity_level: String,
}

/// The headers that authorise one request at the gateway.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RequestHeaders {
    pub authorization: String,
    pub dpop: String,
}

/// A runtime threat the SDK sees.
#[derive(Debug, Clone, uniffi::Record)]
pub struct ThreatSignal {
    /// `debugger`, `hook`, `injected_library`, `root`, `emulator`, `tamper`.
    pub kind: String,
    pub detector: String,
    pub detail: String,
    /// `medium` or `high`.
    pub confidence: String,
}

/// A configured client.
#[derive(uniffi::Object)]
pub struct MedgateClient {
    runtime: tokio::runtime::Runtime,
    client: medgate_sdk::client::MedgateClient,
}

#[uniffi::export]
impl MedgateClient {
    /// Configures a client: loads or creates the installation key, measures the app.
    #[uniffi::constructor]
    pub fn new(config: MedgateConfig) -> Result<Arc<Self>, MedgateError> {
        boundary(|| {
            let key = match config.key_path.as_deref().filter(|path| !path.is_empty()) {
                Some(path) => {
                    InstallationKey::load_or_create(&PathBuf::from(path)).map_err(config_error)?
                }
                None => InstallationKey::generate().map_err(config_error)?,
            };
            let measurement = match config.measurement.filter(|m| !m.is_empty()) {
                Some(measurement) => measurement,
                None => medgate_sdk::measure::current_executable_sha256()
                    .map_err(|e| config_error(format!("cannot measure the app: {e}")))?,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| MedgateError::Internal {
                    reason: e.to_string(),
                })?;
            let mut client = medgate_sdk::client::MedgateClient::new(
                ClientConfig {
                    server_url: config.server_url,
                    gateway_url: config.gateway_url,
                    app: AppIdentity {
                        app_id: config.app_id,
                        app_version: config.app_version,
                        binary_sha256: measurement,
                    },
                    refresh_margin_secs: config.refresh_margin_secs,
                },
                key,
            );
            if config.detect {
                client = client.with_detector(Detector::new(DetectConfig {
                    allowed_libraries: config.allowed_libraries,
                    ..DetectConfig::default()
                }));
            }
            Ok(Arc::new(MedgateClient { runtime, client }))
        })
    }

    /// The installation id (the installation key's RFC 7638 thumbprint).
    pub fn installation_id(&self) -> String {
        self.client.installation_id().to_string()
    }

    /// Attests now (with a fresh detection pass when detection is on) and caches the token.
    pub fn attest(&self) -> Result<Attestation, MedgateError> {
        boundary(|| {
            let attestation = self.runtime.block_on(self.client.attest())?;
            Ok(Attestation {
                installation_id: attestation.installation_id,
                decision: attestation.decision.as_str().to_string(),
                scope: attestation.scope,
                reasons: attestation
                    .reasons
                    .iter()
                    .map(|reason| reason.as_str().to_string())
                    .collect(),
                expires_in: attestation.expires_in,
                integrity_level: attestation.integrity_level.as_str().to_string(),
            })
        })
    }

    /// The access token, attesting first when there is none or it is about to expire.
    pub fn access_token(&self) -> Result<String, MedgateError> {
        boundary(|| {
            let token = self.runtime.block_on(self.client.access_token())?;
            Ok(token.expose().clone())
        })
    }

    /// The `Authorization` and `DPoP` header values for one request to `path` on the gateway
    /// (e.g. `/api/v1/entries`, without query). Each call makes a new proof.
    pub fn sign_request(
        &self,
        method: String,
        path: String,
    ) -> Result<RequestHeaders, MedgateError> {
        boundary(|| {
            let headers = self
                .runtime
                .block_on(self.client.request_headers(&method, &path))?;
            Ok(RequestHeaders {
                authorization: headers.authorization.expose().clone(),
                dpop: headers.dpop,
            })
        })
    }

    /// Runs the detectors now (a periodic pass) and returns what they see. Empty when
    /// detection is off.
    pub fn current_signals(&self) -> Result<Vec<ThreatSignal>, MedgateError> {
        boundary(|| {
            let report = self
                .runtime
                .block_on(self.client.detect(Pass::Periodic))
                .unwrap_or_default();
            Ok(report
                .detections
                .into_iter()
                .map(|detection| ThreatSignal {
                    kind: detection.kind.as_str().to_string(),
                    detector: detection.detector.to_string(),
                    detail: detection.detail,
                    confidence: detection.confidence.as_str().to_string(),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let result: Result<(), MedgateError> = boundary(|| panic!("boom"));
        assert!(matches!(result, Err(MedgateError::Internal { reason }) if reason == "boom"));
    }

    #[test]
    fn an_unreachable_server_is_a_network_error() {
        let client = MedgateClient::new(MedgateConfig {
            server_url: "http://127.0.0.1:9".into(),
            gateway_url: "http://127.0.0.1:9".into(),
            app_id: "org.example.app".into(),
            app_version: "1.0.0".into(),
            measurement: Some("ab".repeat(32)),
            key_path: None,
            detect: false,
            allowed_libraries: Vec::new(),
            refresh_margin_secs: 30,
        })
        .unwrap();
        assert_eq!(client.installation_id().len(), 43);
        assert!(matches!(client.attest(), Err(MedgateError::Network { .. })));
        assert!(client.current_signals().unwrap().is_empty());
    }
}
