//! The medgate client SDK for Kotlin, Swift and Python, through UniFFI. No logic lives here:
//! each call forwards to `medgate-sdk`, panics are caught at the boundary, and every error
//! becomes a [`MedgateError`] in one place ([`From<ClientError>`]).
//!
//! ```text
//! client = MedgateClient(MedgateConfig(...))   configure (loads or creates the file key)
//! client = MedgateClient.with_platform(config, signer, attestor, method)
//!                                              the key in Keystore / the Secure Enclave, and
//!                                              the platform step of each attestation
//! client.attest()                              challenge, evidence with current signals, token
//! client.prepare_attestation()                 or by hand: the challenge and the bytes the
//! client.attest_android_key_attestation(…)     platform must attest, then the platform's
//! client.attest_app_attest(…) / …              statement
//! client.access_token()                        the cached token, attesting again near expiry
//!                                              the way it last attested
//! client.sign_request("GET", "/api/entries")   the Authorization and DPoP headers to add
//!                                              (with a body: its signature too)
//! client.session_headers("GET", "/api/readings") on a session-mac route: the token and a
//!                                              session-key signature
//! client.current_signals()                     a detection pass now
//! client.set_encryption_key(key)               the keystore's key-agreement key, published
//! client.secret("name")                        in the evidence; an operator secret sealed
//!                                              to it, opened
//! PinSet(root, folder).refresh(fetcher)        the over-the-air pins for the app's own
//!                                              HTTP stack (see `pins`)
//! ```
//!
//! Calls block; call them off the UI thread. The client owns a small Tokio runtime.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use medgate_sdk::client::{Challenge, ClientConfig, ClientError};
use medgate_sdk::detect::{DetectConfig, Detector, Pass};
use medgate_sdk::evidence::{AppIdentity, PlatformEvidence};
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::ProofError;
use medgate_sdk::signer::{PlatformAgreementKey, PlatformKey};

mod pins;
mod platform;

use medgate_sdk::platform::PlatformAttester;
pub use pins::{PinSet, PinsStatus, TrustFetcher};
pub use platform::{
    AttestationMethod, InstallationSigner, KeyAgreementKey, PlatformAttestor, PlatformStatement,
    PlatformStep,
};

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
    /// The server refused: `reasons` are medgate's reason codes for an attestation, or the
    /// problem type for another request (a sealed secret).
    #[error("refused ({status}): {}", reasons.join(", "))]
    Refused { status: u16, reasons: Vec<String> },
    /// The server answered something unexpected.
    #[error("protocol: {reason}")]
    Protocol { reason: String },
    /// The app's platform code failed: the signer (a key that is gone, a signature that does
    /// not verify under its public key) or the platform step of an attestation. Raise it from
    /// an [`InstallationSigner`] or [`PlatformAttestor`]; any other exception becomes it too.
    #[error("platform: {reason}")]
    Platform { reason: String },
    /// A pinned host presented a chain without a pinned key: someone in the middle, or a key
    /// changed without its pin. Nothing was sent.
    #[error("certificate pinning failure for {host}: {}", chain.join(", "))]
    PinMismatch { host: String, chain: Vec<String> },
    /// The over-the-air pin set could not be loaded or refreshed; the pins in force stay.
    #[error("pins: {reason}")]
    Pins { reason: String },
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
                reasons: if problem.reasons.is_empty() {
                    vec![problem.problem_type]
                } else {
                    problem
                        .reasons
                        .iter()
                        .map(|reason| reason.as_str().to_string())
                        .collect()
                },
            },
            ClientError::Protocol { .. } => MedgateError::Protocol {
                reason: error.to_string(),
            },
            ClientError::PinMismatch { host, chain } => MedgateError::PinMismatch { host, chain },
            ClientError::Pins(error) => error.into(),
            ClientError::Platform { .. }
            | ClientError::Sign(_)
            | ClientError::Proof(ProofError::Sign(_)) => MedgateError::Platform {
                reason: error.to_string(),
            },
            other => MedgateError::Internal {
                reason: other.to_string(),
            },
        }
    }
}

/// An exception the foreign code raised that is not a [`MedgateError`].
impl From<uniffi::UnexpectedUniFFICallbackError> for MedgateError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        MedgateError::Platform {
            reason: error.reason,
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

/// How to reach medgate and who this app is. (No `Debug`: the enrolment code is a secret.)
#[derive(Clone, uniffi::Record)]
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
    /// A one-time code from the app's operator enrolling a self-built app (Loop, AndroidAPS),
    /// sent with attestations until one is granted.
    #[uniffi(default = None)]
    pub enrolment_code: Option<String>,
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
    /// Whether the server verified that the installation key itself is hardware-backed.
    pub hardware_key: bool,
}

impl From<medgate_sdk::client::Attestation> for Attestation {
    fn from(attestation: medgate_sdk::client::Attestation) -> Self {
        Attestation {
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
            hardware_key: attestation.hardware_key,
        }
    }
}

/// A challenge, and what the platform must attest for it: `binding` = SHA-256(challenge ‖
/// installation key thumbprint), 32 bytes, for Android's `setAttestationChallenge` and App
/// Attest's `clientDataHash`; `request_hash`, the same bytes base64url, for Play Integrity's
/// `setRequestHash`.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PreparedAttestation {
    pub challenge: String,
    pub binding: Vec<u8>,
    pub request_hash: String,
}

impl PreparedAttestation {
    /// The challenge, with the binding computed again for this client's key (what the app
    /// hands back is not trusted to be it).
    fn challenge(&self, key: &dyn medgate_sdk::signer::Signer) -> Result<Challenge, MedgateError> {
        let binding = medgate_sdk::evidence::platform_binding(key, &self.challenge)
            .ok_or_else(|| config_error("the prepared challenge is not one medgate issued"))?;
        Ok(Challenge {
            value: self.challenge.clone(),
            binding,
        })
    }
}

/// The headers that authorise one request at the gateway.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RequestHeaders {
    pub authorization: String,
    pub dpop: String,
    /// With a body: the `Signature-Input`, `Signature` and `Content-Digest` values of the
    /// HTTP Message Signature over it (routes with `proof = "dpop+signature"`).
    #[uniffi(default = None)]
    pub signature_input: Option<String>,
    #[uniffi(default = None)]
    pub signature: Option<String>,
    #[uniffi(default = None)]
    pub content_digest: Option<String>,
}

/// The headers of one request on a `session-mac` route: the token and an `hmac-sha256`
/// signature by its session key (no DPoP proof).
#[derive(Debug, Clone, uniffi::Record)]
pub struct SessionHeaders {
    pub authorization: String,
    pub signature_input: String,
    pub signature: String,
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
    /// `None` only while the client is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    client: medgate_sdk::client::MedgateClient,
}

impl MedgateClient {
    fn runtime(&self) -> Result<&tokio::runtime::Runtime, MedgateError> {
        self.runtime.as_ref().ok_or_else(|| MedgateError::Internal {
            reason: "the client is being dropped".into(),
        })
    }
}

/// The app may drop its last reference anywhere, also on one of the runtime's own threads (a
/// callback's): a runtime must not be dropped there (tokio refuses to block inside itself),
/// so it is shut down in the background instead.
impl Drop for MedgateClient {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[uniffi::export]
impl MedgateClient {
    /// Configures a client with a file key: loads or creates the installation key at
    /// `key_path` (without one, a key that lives as long as the client) and measures the
    /// app. It attests with SDK evidence.
    #[uniffi::constructor]
    pub fn new(config: MedgateConfig) -> Result<Arc<Self>, MedgateError> {
        boundary(|| Self::build(config, None, None, AttestationMethod::Sdk))
    }

    /// Configures a client whose installation key is held by the platform (`signer`; `None`
    /// for the file key at `key_path`) and which attests with `method`, asking `attestor`
    /// for the platform step of the first attestation and of every refresh.
    #[uniffi::constructor]
    pub fn with_platform(
        config: MedgateConfig,
        signer: Option<Arc<dyn InstallationSigner>>,
        attestor: Option<Arc<dyn PlatformAttestor>>,
        method: AttestationMethod,
    ) -> Result<Arc<Self>, MedgateError> {
        boundary(|| Self::build(config, signer, attestor, method))
    }

    /// The installation id (the installation key's RFC 7638 thumbprint).
    pub fn installation_id(&self) -> String {
        self.client.installation_id().to_string()
    }

    /// Attests now (with a fresh detection pass when detection is on) the way the client
    /// attests (SDK evidence, or the configured platform through the attestor) and caches the
    /// token.
    pub fn attest(&self) -> Result<Attestation, MedgateError> {
        boundary(|| Ok(self.runtime()?.block_on(self.client.attest())?.into()))
    }

    /// How the client attests next, and refreshes: the method it last attested with.
    pub fn attestation_method(&self) -> AttestationMethod {
        self.client.attestation_method().into()
    }

    /// A fresh challenge and the bytes the platform must attest for it.
    pub fn prepare_attestation(&self) -> Result<PreparedAttestation, MedgateError> {
        boundary(|| {
            let challenge = self.runtime()?.block_on(self.client.challenge())?;
            Ok(PreparedAttestation {
                request_hash: medgate_proto::b64::encode(challenge.binding),
                binding: challenge.binding.to_vec(),
                challenge: challenge.value,
            })
        })
    }

    /// Attests with the Android KeyStore chain (leaf first, DER) of a key generated with
    /// `setAttestationChallenge(prepared.binding)`. Refreshes then ask the attestor for a
    /// fresh chain.
    pub fn attest_android_key_attestation(
        &self,
        prepared: PreparedAttestation,
        certificate_chain: Vec<Vec<u8>>,
    ) -> Result<Attestation, MedgateError> {
        self.finish(
            &prepared,
            PlatformEvidence::AndroidKeyAttestation { certificate_chain },
        )
    }

    /// Attests with App Attest's first contact: `attestKey(keyId, clientDataHash:
    /// prepared.binding)`; `key_id` is the base64-decoded `keyId`, `app_id` (`TEAMID.bundle`)
    /// names a self-built app. Refreshes then assert with this key.
    pub fn attest_app_attest(
        &self,
        prepared: PreparedAttestation,
        key_id: Vec<u8>,
        attestation_object: Vec<u8>,
        app_id: Option<String>,
    ) -> Result<Attestation, MedgateError> {
        self.finish(
            &prepared,
            PlatformEvidence::AppleAttestation {
                key_id,
                attestation_object,
                app_id,
            },
        )
    }

    /// Attests with an App Attest assertion, `generateAssertion(keyId, clientDataHash:
    /// prepared.binding)`, by the key attested before.
    pub fn attest_app_attest_assertion(
        &self,
        prepared: PreparedAttestation,
        key_id: Vec<u8>,
        assertion: Vec<u8>,
    ) -> Result<Attestation, MedgateError> {
        self.finish(
            &prepared,
            PlatformEvidence::AppleAssertion { key_id, assertion },
        )
    }

    /// Attests with a Play Integrity token requested with `setRequestHash(prepared.request_hash)`.
    pub fn attest_play_integrity(
        &self,
        prepared: PreparedAttestation,
        token: String,
    ) -> Result<Attestation, MedgateError> {
        self.finish(&prepared, PlatformEvidence::PlayIntegrity { token })
    }

    /// The App Attest key id the server accepted: what the app keeps (in the Keychain) for
    /// [`MedgateClient::restore_app_attest_key`] in its next run. `None` before one is.
    pub fn app_attest_key_id(&self) -> Option<Vec<u8>> {
        self.client.app_attest_key()
    }

    /// Forgets the App Attest key when the platform says it is invalid (`DCError.invalidKey`:
    /// the app was reinstalled or the device restored): the next attestation attests a new
    /// key, which replaces the old one on the server.
    pub fn forget_app_attest_key(&self) {
        self.client.forget_app_attest_key();
    }

    /// The App Attest key this installation attested in an earlier run (the app keeps its
    /// key id), so that attestations from now on are assertions with it.
    pub fn restore_app_attest_key(&self, key_id: Vec<u8>) {
        self.client.restore_app_attest_key(key_id);
    }

    /// The access token, attesting first when there is none or it is about to expire.
    pub fn access_token(&self) -> Result<String, MedgateError> {
        boundary(|| {
            let token = self.runtime()?.block_on(self.client.access_token())?;
            Ok(token.expose().clone())
        })
    }

    /// Every header to add to one request to `path` on the gateway (e.g. `/api/v1/entries`,
    /// a query included): `Authorization` and `DPoP`, and with `body` (the bytes exactly as
    /// sent) an HTTP Message Signature over it and its `Content-Digest`, which writes on
    /// `dpop+signature` routes need. Each call makes a new proof and signature.
    #[uniffi::method(default(body = None))]
    pub fn sign_request(
        &self,
        method: String,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<RequestHeaders, MedgateError> {
        boundary(|| {
            let headers = self.runtime()?.block_on(self.client.headers_for(
                &method,
                &path,
                body.as_deref(),
            ))?;
            let signature = headers.signature;
            Ok(RequestHeaders {
                authorization: headers.authorization.expose().clone(),
                dpop: headers.dpop,
                signature_input: signature.as_ref().map(|s| s.signature_input.clone()),
                signature: signature.as_ref().map(|s| s.signature.clone()),
                content_digest: signature.map(|s| s.content_digest),
            })
        })
    }

    /// The headers of one request to `path` on a `session-mac` route (high-rate reads): the
    /// token and a signature by the session key the control plane sealed to the key-agreement
    /// key at the last attestation (needs [`set_encryption_key`](Self::set_encryption_key)).
    pub fn session_headers(
        &self,
        method: String,
        path: String,
    ) -> Result<SessionHeaders, MedgateError> {
        boundary(|| {
            let headers = self
                .runtime()?
                .block_on(self.client.session_headers(&method, &path))?;
            let value = |name: &str| {
                headers
                    .get(name)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| MedgateError::Internal {
                        reason: format!("the SDK made no {name} header"),
                    })
            };
            Ok(SessionHeaders {
                authorization: value("authorization")?,
                signature_input: value("signature-input")?,
                signature: value("signature")?,
            })
        })
    }

    /// Publishes `key` (the platform's key-agreement key) in every attestation from now on, so
    /// the control plane can seal secrets to this installation. Attest again after setting it.
    pub fn set_encryption_key(&self, key: Arc<dyn KeyAgreementKey>) -> Result<(), MedgateError> {
        boundary(|| {
            let public = key.public_key()?;
            let key = PlatformAgreementKey::new(&public, Box::new(platform::ForeignAgreement(key)))
                .map_err(|error| MedgateError::Platform {
                    reason: error.to_string(),
                })?;
            self.client.set_encryption_key(Arc::new(key));
            Ok(())
        })
    }

    /// Operator secret `name`, sealed by the control plane to the key-agreement key and
    /// opened with it (needs [`set_encryption_key`](Self::set_encryption_key), then a grant
    /// of `secret:<name>` with a full allow). The value: keep it out of logs.
    pub fn secret(&self, name: String) -> Result<Vec<u8>, MedgateError> {
        boundary(|| {
            let value = self.runtime()?.block_on(self.client.secret(&name))?;
            Ok(value.to_vec())
        })
    }

    /// Runs the detectors now (a periodic pass) and returns what they see. Empty when
    /// detection is off.
    pub fn current_signals(&self) -> Result<Vec<ThreatSignal>, MedgateError> {
        boundary(|| {
            let report = self
                .runtime()?
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

impl MedgateClient {
    fn build(
        config: MedgateConfig,
        signer: Option<Arc<dyn InstallationSigner>>,
        attestor: Option<Arc<dyn PlatformAttestor>>,
        method: AttestationMethod,
    ) -> Result<Arc<Self>, MedgateError> {
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
        let client_config = ClientConfig {
            server_url: config.server_url,
            gateway_url: config.gateway_url,
            app: AppIdentity {
                app_id: config.app_id,
                app_version: config.app_version,
                binary_sha256: measurement,
            },
            refresh_margin_secs: config.refresh_margin_secs,
        };
        let mut client = match signer {
            Some(signer) => {
                let public_key = signer.public_key()?;
                let key = PlatformKey::new(&public_key, Box::new(platform::ForeignSigner(signer)))
                    .map_err(|e| MedgateError::Platform {
                        reason: e.to_string(),
                    })?;
                medgate_sdk::client::MedgateClient::new(client_config, key)
            }
            None => {
                let key = match config.key_path.as_deref().filter(|path| !path.is_empty()) {
                    Some(path) => InstallationKey::load_or_create(&PathBuf::from(path))
                        .map_err(config_error)?,
                    None => InstallationKey::generate().map_err(config_error)?,
                };
                medgate_sdk::client::MedgateClient::new(client_config, key)
            }
        };
        let attestor = attestor.map(|attestor| {
            Arc::new(platform::ForeignAttestor(attestor)) as Arc<dyn PlatformAttester>
        });
        client = client.with_platform(method.into(), attestor);
        if let Some(code) = config.enrolment_code.filter(|code| !code.is_empty()) {
            client = client.with_enrolment_code(code);
        }
        if config.detect {
            client = client.with_detector(Detector::new(DetectConfig {
                allowed_libraries: config.allowed_libraries,
                ..DetectConfig::default()
            }));
        }
        Ok(Arc::new(MedgateClient {
            runtime: Some(runtime),
            client,
        }))
    }

    fn finish(
        &self,
        prepared: &PreparedAttestation,
        platform: PlatformEvidence,
    ) -> Result<Attestation, MedgateError> {
        boundary(|| {
            let challenge = prepared.challenge(self.client.key())?;
            let attestation = self
                .runtime()?
                .block_on(self.client.attest_platform(&challenge, &platform, None))?;
            Ok(attestation.into())
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
            enrolment_code: None,
        })
        .unwrap();
        assert_eq!(client.installation_id().len(), 43);
        assert!(matches!(client.attest(), Err(MedgateError::Network { .. })));
        assert!(client.current_signals().unwrap().is_empty());
        // As when an app's last reference goes away inside a callback the SDK's runtime runs:
        // dropping a runtime there panics in tokio; the client shuts it down in the background.
        let elsewhere = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        elsewhere.block_on(async move { drop(client) });
    }
}
