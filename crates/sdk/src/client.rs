//! An async client that attests, keeps its access token fresh, and sends requests through the
//! gateway with `Authorization: DPoP <token>` and a new `DPoP` proof on each.
//!
//! This client speaks plain HTTP, and with the feature `tls` HTTPS pinned by the over-the-air
//! pin set ([`MedgateClient::with_pinning`], [`crate::ota`]): a pinned host presenting a chain
//! without a pinned key fails with [`ClientError::PinMismatch`] before any request byte, and
//! the next attestation carries a `mitm` signal. Mobile apps use their platform's HTTP stack,
//! pinned with [`crate::ota::OtaPins::pins_for`], and take the two headers from
//! [`MedgateClient::request_headers`].

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::Thumbprint;
use medgate_proto::redact::Secret;
use medgate_proto::wire::{
    AttestResponse, ChallengeRequest, ChallengeResponse, Coverage, MEDIA_JOSE, Problem, Signal,
};
use medgate_trust::jwe::{self, KeyAgreement, KeyManagement};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::detect::{Detector, Pass, Report};
use crate::evidence::{self, AppIdentity, EvidenceContext, PlatformEvidence, platform_binding};
use crate::platform::{AttestationMethod, PlatformAttester, PlatformStep};
use crate::proof::{ProofError, dpop_proof};
use crate::signer::{Signer, SignerError};
use crate::{Now, system_now};

mod http_client;

pub use http_client::HttpClient;
#[cfg(feature = "tls")]
pub use http_client::web_roots;

/// How long the app's platform step may take: a challenge is good for a minute.
const PLATFORM_STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Where the client talks to and who it is.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The control plane, e.g. `http://127.0.0.1:8700`.
    pub server_url: String,
    /// The gateway's public URL, e.g. `http://127.0.0.1:8701`.
    pub gateway_url: String,
    pub app: AppIdentity,
    /// Attest again this many seconds before the token expires.
    pub refresh_margin_secs: i64,
}

/// Why a client call failed. Never carries a token or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("HTTP request to {url} failed: {reason}")]
    Http { url: String, reason: String },
    #[error("refused with {status}: {}", problem.reasons.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "))]
    Refused { status: u16, problem: Problem },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("evidence could not be signed: {0}")]
    Sign(#[from] SignerError),
    /// A pinned host presented a chain (verified by WebPKI) without a pinned key: someone is
    /// in the middle, or the host's key changed without its pin. Nothing was sent; the next
    /// attestation reports a `mitm` signal.
    #[error("certificate pinning failure for {host}: the chain's keys are {}", chain.join(", "))]
    PinMismatch { host: String, chain: Vec<String> },
    /// TLS could not be set up (a bad root certificate, no protocol version).
    #[error("TLS: {0}")]
    Tls(String),
    /// The over-the-air pin set could not be loaded or refreshed.
    #[error(transparent)]
    Pins(#[from] crate::ota::OtaError),
    /// The platform step of a hardware attestation failed or answered with the wrong
    /// statement. The client does not fall back to SDK evidence.
    #[error("the {method:?} platform step failed: {reason}")]
    Platform {
        method: AttestationMethod,
        reason: String,
    },
}

/// A response, read in full.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    /// The problem document, when the body is one.
    pub fn problem(&self) -> Option<Problem> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The headers that authorise one request at the gateway.
#[derive(Debug, Clone)]
pub struct RequestHeaders {
    pub authorization: Secret<String>,
    pub dpop: String,
    /// For a signed write: `Signature-Input`, `Signature` and `Content-Digest`.
    pub signature: Option<crate::proof::SignatureHeaders>,
}

impl RequestHeaders {
    /// Every header to add, for a request sent by other means than [`MedgateClient::send`].
    pub fn to_header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        insert(&mut map, AUTHORIZATION, self.authorization.expose());
        insert(&mut map, HeaderName::from_static("dpop"), &self.dpop);
        if let Some(signed) = &self.signature {
            for (name, value) in [
                ("signature-input", &signed.signature_input),
                ("signature", &signed.signature),
                ("content-digest", &signed.content_digest),
            ] {
                insert(&mut map, HeaderName::from_static(name), value);
            }
        }
        map
    }
}

/// A granted attestation, without its token.
#[derive(Debug, Clone)]
pub struct Attestation {
    pub installation_id: String,
    pub decision: medgate_proto::wire::Decision,
    pub scope: String,
    pub reasons: Vec<medgate_proto::wire::Reason>,
    pub expires_in: u64,
    pub integrity_level: medgate_proto::wire::IntegrityLevel,
    pub hardware_key: bool,
}

/// A challenge and what a hardware platform must attest for it.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub value: String,
    /// SHA-256(challenge ‖ installation key thumbprint).
    pub binding: [u8; 32],
}

struct CachedToken {
    token: Secret<String>,
    refresh_at: i64,
    /// The token's session key, when the server sealed one to the encryption key.
    session: Option<crate::proof::Session>,
}

/// What one exchange issued: the token, and its session key if the server sealed one.
struct Issued {
    token: String,
    session: Option<crate::proof::Session>,
}

/// The client.
pub struct MedgateClient {
    config: ClientConfig,
    key: Arc<dyn Signer>,
    /// Replaced when the pins change.
    http: std::sync::RwLock<HttpClient>,
    /// The over-the-air pins and the roots the client's TLS checks against.
    #[cfg(feature = "tls")]
    pinning: Option<Pinning>,
    /// A pinning failure seen since the last granted attestation, to report with the next.
    mitm: std::sync::Mutex<Option<Signal>>,
    token: Mutex<Option<CachedToken>>,
    signals: SignalSlot,
    detection: Option<Detection>,
    attester: Option<Arc<dyn PlatformAttester>>,
    /// The key secrets are sealed to, published in every evidence.
    encryption: std::sync::RwLock<Option<Arc<dyn KeyAgreement + Send + Sync>>>,
    standing: std::sync::Mutex<Standing>,
    now: Now,
}

/// How the client attests next: the method it last attested with (or was configured for),
/// the App Attest key once one is attested, and an enrolment code not yet used.
#[derive(Default)]
struct Standing {
    method: AttestationMethod,
    app_attest_key: Option<Vec<u8>>,
    enrolment_code: Option<String>,
}

/// Runtime detection attached to a client: the detector, and the report whose signals went
/// into the last attestation.
struct Detection {
    detector: Arc<std::sync::Mutex<Detector>>,
    reported: std::sync::Mutex<Option<Report>>,
}

/// What the monitor did in one interval.
#[derive(Debug)]
pub enum MonitorEvent {
    /// A pass found nothing new since the last attestation.
    Unchanged(Report),
    /// A pass found a new threat and the client attested again; the server's answer.
    Reattested {
        report: Report,
        outcome: Result<Attestation, ClientError>,
    },
}

fn read<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The signals reported with the next attestation, and the coverage of the pass that found
/// them (a std mutex, held only for a copy).
#[derive(Default)]
struct SignalSlot(std::sync::Mutex<(Vec<Signal>, Option<Coverage>)>);

impl SignalSlot {
    fn set(&self, signals: Vec<Signal>, coverage: Option<Coverage>) {
        *lock(&self.0) = (signals, coverage);
    }

    fn get(&self) -> (Vec<Signal>, Option<Coverage>) {
        lock(&self.0).clone()
    }
}

impl std::fmt::Debug for MedgateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MedgateClient")
            .field("app_id", &self.config.app.app_id)
            .field("installation", &self.key.thumbprint())
            .finish_non_exhaustive()
    }
}

impl MedgateClient {
    /// A client whose installation key is `key`: an [`crate::key::InstallationKey`] or a
    /// [`crate::signer::PlatformKey`].
    pub fn new(config: ClientConfig, key: impl Signer + 'static) -> Self {
        MedgateClient {
            config,
            key: Arc::new(key),
            http: std::sync::RwLock::new(HttpClient::default()),
            #[cfg(feature = "tls")]
            pinning: None,
            mitm: std::sync::Mutex::new(None),
            token: Mutex::new(None),
            signals: Default::default(),
            detection: None,
            attester: None,
            encryption: Default::default(),
            standing: Default::default(),
            now: system_now(),
        }
    }

    /// The installation's key-agreement key: published (signed by the installation key) in
    /// every evidence from now on, so the control plane can seal secrets to it
    /// ([`secret`](Self::secret)). On a phone, a keystore key with the agree-key purpose
    /// (Android `PURPOSE_AGREE_KEY`, a Secure Enclave key) behind the FFI; a software
    /// [`EcdhSecret`](medgate_trust::jwe::EcdhSecret) elsewhere.
    pub fn with_encryption_key(self, key: Arc<dyn KeyAgreement + Send + Sync>) -> Self {
        self.set_encryption_key(key);
        self
    }

    /// [`with_encryption_key`](Self::with_encryption_key) on a client already made: the next
    /// attestation publishes the key.
    pub fn set_encryption_key(&self, key: Arc<dyn KeyAgreement + Send + Sync>) {
        *write(&self.encryption) = Some(key);
    }

    fn encryption_key(&self) -> Option<Arc<dyn KeyAgreement + Send + Sync>> {
        read(&self.encryption).clone()
    }

    /// Attests with `method`, asking `attester` for each platform step, from the first
    /// attestation on; every refresh goes the same way. Without an attester, only
    /// [`MedgateClient::attest_platform`] can attest with a hardware method.
    pub fn with_platform(
        mut self,
        method: AttestationMethod,
        attester: Option<Arc<dyn PlatformAttester>>,
    ) -> Self {
        self.attester = attester;
        lock(&self.standing).method = method;
        self
    }

    /// A one-time code enrolling a self-built app: sent with attestations until one is
    /// granted.
    pub fn with_enrolment_code(self, code: String) -> Self {
        lock(&self.standing).enrolment_code = Some(code);
        self
    }

    /// The App Attest key attested in an earlier run (the app keeps its key id), so that the
    /// next attestations are assertions with it.
    pub fn restore_app_attest_key(&self, key_id: Vec<u8>) {
        let mut standing = lock(&self.standing);
        standing.method = AttestationMethod::AppleAppAttest;
        standing.app_attest_key = Some(key_id);
    }

    /// Forgets the App Attest key (the platform says it is invalid: the app was restored or
    /// reinstalled), so that the next attestation attests a new key, which replaces it.
    pub fn forget_app_attest_key(&self) {
        lock(&self.standing).app_attest_key = None;
    }

    /// How the next attestation (and every refresh) is made.
    pub fn attestation_method(&self) -> AttestationMethod {
        lock(&self.standing).method
    }

    /// The App Attest key the server accepted (or the app restored): the key id the app keeps
    /// for its next run.
    pub fn app_attest_key(&self) -> Option<Vec<u8>> {
        lock(&self.standing).app_attest_key.clone()
    }

    /// Runs `detector` before every attestation and reports what it sees as the evidence's
    /// signals (replacing [`MedgateClient::set_signals`]). The first attestation runs a full
    /// pass, later ones a periodic pass.
    pub fn with_detector(mut self, detector: Detector) -> Self {
        self.detection = Some(Detection {
            detector: Arc::new(std::sync::Mutex::new(detector)),
            reported: std::sync::Mutex::new(None),
        });
        self
    }

    /// Runs one detection pass on a blocking thread. `None` without a detector.
    pub async fn detect(&self, pass: Pass) -> Option<Report> {
        let detection = self.detection.as_ref()?;
        let detector = detection.detector.clone();
        tokio::task::spawn_blocking(move || lock(&detector).run(pass))
            .await
            .ok()
    }

    /// Before an attestation: a detection pass whose signals the evidence will carry.
    async fn detect_for_attestation(&self) {
        let Some(detection) = &self.detection else {
            return;
        };
        let first = lock(&detection.reported).is_none();
        if let Some(report) = self
            .detect(if first { Pass::Full } else { Pass::Periodic })
            .await
        {
            self.report(report);
        }
    }

    /// Makes `report`'s signals the ones the next attestation carries.
    fn report(&self, report: Report) {
        self.signals.set(report.signals(), report.coverage.clone());
        if let Some(detection) = &self.detection {
            *lock(&detection.reported) = Some(report);
        }
    }

    /// Checks every `interval` for threats that appeared since the last attestation (Frida can
    /// attach after it and leave before the next); a new one triggers a fresh attestation at
    /// once, so the server learns of it within one interval. A refused attestation drops the
    /// cached token: the app's next request attests again and is refused while the threat
    /// lasts. Each interval's outcome is sent on the returned channel (dropping the receiver
    /// does not stop the monitor; aborting the handle does).
    pub fn spawn_monitor(
        self: &Arc<Self>,
        interval: std::time::Duration,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::Receiver<MonitorEvent>,
    ) {
        let (events, receiver) = tokio::sync::mpsc::channel(16);
        let client = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(report) = client.detect(Pass::Periodic).await else {
                    return;
                };
                let earlier = client
                    .detection
                    .as_ref()
                    .and_then(|detection| lock(&detection.reported).clone())
                    .unwrap_or_default();
                let event = if report.has_new_threats(&earlier) {
                    client.report(report.clone());
                    let outcome = client.attest_reported().await;
                    if outcome.is_err() {
                        client.forget_token().await;
                    }
                    MonitorEvent::Reattested { report, outcome }
                } else {
                    MonitorEvent::Unchanged(report)
                };
                let _ = events.try_send(event);
            }
        });
        (handle, receiver)
    }

    /// Replaces the clock (tests align it with a server on a manual clock).
    pub fn with_clock(mut self, now: Now) -> Self {
        self.now = now;
        self
    }

    pub fn installation_id(&self) -> Thumbprint {
        self.key.thumbprint()
    }

    pub fn key(&self) -> &dyn Signer {
        self.key.as_ref()
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Sets the threat signals reported with every later attestation (found by the app's
    /// own detection, which reports no coverage).
    pub fn set_signals(&self, signals: Vec<Signal>) {
        self.signals.set(signals, None);
    }

    /// Fetches a challenge, signs evidence with the current signals, and exchanges it for an
    /// access token, which is cached.
    pub async fn attest(&self) -> Result<Attestation, ClientError> {
        self.detect_for_attestation().await;
        self.attest_reported().await
    }

    /// Attests with the signals already recorded.
    async fn attest_reported(&self) -> Result<Attestation, ClientError> {
        let mut cached = self.token.lock().await;
        let (attestation, token) = self.attest_uncached().await?;
        *cached = Some(self.cache_entry(&attestation, token));
        Ok(attestation)
    }

    fn cache_entry(&self, attestation: &Attestation, issued: Issued) -> CachedToken {
        let lifetime = i64::try_from(attestation.expires_in).unwrap_or(0);
        CachedToken {
            token: Secret::new(issued.token),
            refresh_at: (self.now)() + lifetime - self.config.refresh_margin_secs,
            session: issued.session,
        }
    }

    /// A fresh challenge, and the binding a hardware platform must attest for it.
    pub async fn challenge(&self) -> Result<Challenge, ClientError> {
        let base = self.config.server_url.trim_end_matches('/');
        let challenge_url = format!("{base}/v1/challenge");
        let request = serde_json::to_vec(&ChallengeRequest {
            app_id: self.config.app.app_id.clone(),
        })
        .map_err(|e| protocol(&challenge_url, e))?;
        let response = self
            .send_raw(
                Method::POST,
                &challenge_url,
                json_headers("application/json"),
                Bytes::from(request),
            )
            .await?;
        if response.status != StatusCode::CREATED {
            return Err(protocol(
                &challenge_url,
                format!("status {}", response.status),
            ));
        }
        let challenge: ChallengeResponse =
            serde_json::from_slice(&response.body).map_err(|e| protocol(&challenge_url, e))?;
        let binding = platform_binding(self.key.as_ref(), &challenge.challenge)
            .ok_or_else(|| protocol(&challenge_url, "the challenge is not base64url"))?;
        Ok(Challenge {
            value: challenge.challenge,
            binding,
        })
    }

    /// Attests with a platform's statement about `challenge` (see [`MedgateClient::challenge`])
    /// and caches the token. A granted statement sets how the client refreshes: the same
    /// platform (App Attest with assertions by the key just attested). `enrolment_code`, when
    /// given, replaces the one the client was configured with.
    pub async fn attest_platform(
        &self,
        challenge: &Challenge,
        platform: &PlatformEvidence,
        enrolment_code: Option<String>,
    ) -> Result<Attestation, ClientError> {
        let mut cached = self.token.lock().await;
        if matches!(platform, PlatformEvidence::Sdk { .. })
            && self.attestation_method() != AttestationMethod::Sdk
        {
            return Err(ClientError::Platform {
                method: self.attestation_method(),
                reason: "a client that attests with hardware does not send SDK evidence".into(),
            });
        }
        self.detect_for_attestation().await;
        if enrolment_code.is_some() {
            lock(&self.standing).enrolment_code = enrolment_code;
        }
        let (attestation, token) = self.exchange(challenge, platform).await?;
        *cached = Some(self.cache_entry(&attestation, token));
        Ok(attestation)
    }

    /// A fresh challenge and the statement the client's method calls for: SDK evidence, or
    /// the platform step answered by the app's attester.
    async fn attest_uncached(&self) -> Result<(Attestation, Issued), ClientError> {
        let challenge = self.challenge().await?;
        let (method, app_attest_key) = {
            let standing = lock(&self.standing);
            (standing.method, standing.app_attest_key.clone())
        };
        let platform =
            match PlatformStep::for_method(method, challenge.binding, app_attest_key.as_deref()) {
                None => PlatformEvidence::Sdk {
                    binary_sha256: self.config.app.binary_sha256.clone(),
                },
                Some(step) => self.platform_step(method, step).await?,
            };
        self.exchange(&challenge, &platform).await
    }

    /// Runs `step` through the app's attester on a blocking thread.
    async fn platform_step(
        &self,
        method: AttestationMethod,
        step: PlatformStep,
    ) -> Result<PlatformEvidence, ClientError> {
        let failed = |reason: &str| ClientError::Platform {
            method,
            reason: reason.to_string(),
        };
        let attester = self
            .attester
            .clone()
            .ok_or_else(|| failed("the app gave the client no platform attester"))?;
        let work = tokio::task::spawn_blocking(move || {
            let answer = attester.attest(&step);
            (step, answer)
        });
        let (step, answer) = tokio::time::timeout(PLATFORM_STEP_TIMEOUT, work)
            .await
            .map_err(|_| failed("the platform step took longer than a challenge lives"))?
            .map_err(|_| failed("the platform attester panicked"))?;
        let statement = answer.map_err(|reason| failed(&reason))?;
        if !step.answered_by(&statement) {
            return Err(failed(
                "the platform attester answered with a statement of another step",
            ));
        }
        Ok(statement)
    }

    async fn exchange(
        &self,
        challenge: &Challenge,
        platform: &PlatformEvidence,
    ) -> Result<(Attestation, Issued), ClientError> {
        let base = self.config.server_url.trim_end_matches('/');
        let enrolment_code = lock(&self.standing).enrolment_code.clone();
        let (signals, coverage) = self.signals.get();
        let context = EvidenceContext {
            app_id: &self.config.app.app_id,
            app_version: &self.config.app.app_version,
            challenge: &challenge.value,
            signals: signals
                .into_iter()
                .chain(lock(&self.mitm).clone())
                .collect(),
            coverage,
            enrolment_code,
            encryption_key: self.encryption_key().map(|key| key.public_jwk().clone()),
            iat: (self.now)(),
        };
        let evidence = evidence::evidence(self.key.as_ref(), context, platform)?;
        let attest_url = format!("{base}/v1/attest");
        let response = self
            .send_raw(
                Method::POST,
                &attest_url,
                json_headers(MEDIA_JOSE),
                Bytes::from(evidence),
            )
            .await?;
        ok_or_refused(&response, &attest_url)?;
        let granted: AttestResponse =
            serde_json::from_slice(&response.body).map_err(|e| protocol(&attest_url, e))?;
        self.granted(platform);
        let attestation = Attestation {
            installation_id: granted.installation_id,
            decision: granted.decision,
            scope: granted.scope,
            reasons: granted.reasons,
            expires_in: granted.expires_in,
            integrity_level: granted.integrity_level,
            hardware_key: granted.hardware_key,
        };
        let session = match (&granted.session_key, self.encryption_key()) {
            (Some(sealed), Some(key)) => Some(open_session(sealed, key.as_ref(), &attest_url)?),
            _ => None,
        };
        Ok((
            attestation,
            Issued {
                token: granted.access_token,
                session,
            },
        ))
    }

    /// After a grant: the method that earned it is the one to refresh with (a hardware method
    /// is never given up for SDK evidence), an App Attest key just attested signs the
    /// assertions from now on, and the enrolment code is spent.
    fn granted(&self, platform: &PlatformEvidence) {
        let mut standing = lock(&self.standing);
        let method = AttestationMethod::of(platform);
        if method != AttestationMethod::Sdk {
            standing.method = method;
        }
        if let PlatformEvidence::AppleAttestation { key_id, .. } = platform {
            standing.app_attest_key = Some(key_id.clone());
        }
        standing.enrolment_code = None;
        // The interception was reported with this attestation.
        *lock(&self.mitm) = None;
    }

    /// The cached access token, attesting again when it is within the refresh margin of
    /// expiring (or there is none).
    pub async fn access_token(&self) -> Result<Secret<String>, ClientError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| (self.now)() < token.refresh_at)
        {
            return Ok(token.token.clone());
        }
        self.detect_for_attestation().await;
        let (attestation, token) = self.attest_uncached().await?;
        let entry = self.cache_entry(&attestation, token);
        let token = entry.token.clone();
        *cached = Some(entry);
        Ok(token)
    }

    /// Forgets the cached token (the next request attests again).
    pub async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Operator secret `name` (`GET /v1/secrets/{name}` on the control plane, with the access
    /// token and a fresh proof), opened with the installation's key-agreement key. The token
    /// must carry `secret:<name>` from a full `allow`; a refusal is `Refused` with the
    /// server's problem document. The value never touches the client's logs or errors.
    pub async fn secret(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        let url = format!(
            "{}/v1/secrets/{name}",
            self.config.server_url.trim_end_matches('/')
        );
        let Some(key) = self.encryption_key() else {
            return Err(protocol(
                &url,
                "the client has no encryption key (with_encryption_key)",
            ));
        };
        let headers = self
            .headers_for_url(Method::GET.as_str(), &url, None)
            .await?;
        let response = self
            .send_raw(Method::GET, &url, headers.to_header_map(), Bytes::new())
            .await?;
        ok_or_refused(&response, &url)?;
        let text = std::str::from_utf8(&response.body).map_err(|_| protocol(&url, "not a JWE"))?;
        let opened = jwe::decrypt(text.trim(), KeyManagement::EcdhEsA256Kw(key.as_ref()))
            .map_err(|error| protocol(&url, error))?;
        // The header is authenticated: a value sealed as another secret is not this one.
        if opened.header.get("medgate_secret").and_then(|v| v.as_str()) != Some(name) {
            return Err(protocol(&url, "the sealed value is of another secret"));
        }
        Ok(opened.plaintext)
    }

    /// `Authorization` and an `hmac-sha256` signature by the token's session key, for a
    /// request on a `session-mac` route (high-rate reads: the session key lives in memory,
    /// so use DPoP or a signature by the installation key for writes). Needs an encryption
    /// key ([`with_encryption_key`](Self::with_encryption_key)): the server seals the session
    /// key to it.
    pub async fn session_headers(
        &self,
        method: &str,
        path: &str,
    ) -> Result<HeaderMap, ClientError> {
        let token = self.access_token().await?;
        let url = self.gateway_url(path);
        let session = self
            .token
            .lock()
            .await
            .as_ref()
            .and_then(|cached| cached.session.clone())
            .ok_or_else(|| protocol(&url, "no session key (set an encryption key, then attest)"))?;
        let authorization = format!("DPoP {}", token.expose());
        let signed =
            crate::proof::session_signature(&session, method, &url, &authorization, (self.now)())?;
        let mut map = HeaderMap::new();
        insert(&mut map, AUTHORIZATION, &authorization);
        insert(
            &mut map,
            HeaderName::from_static("signature-input"),
            &signed.signature_input,
        );
        insert(
            &mut map,
            HeaderName::from_static("signature"),
            &signed.signature,
        );
        Ok(map)
    }

    /// Sends a request on a `session-mac` route (see [`session_headers`](Self::session_headers)).
    pub async fn send_session(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        let headers = self.session_headers(method.as_str(), path).await?;
        self.send_raw(method, &self.gateway_url(path), headers, body)
            .await
    }

    /// The gateway URL for `path`.
    pub fn gateway_url(&self, path: &str) -> String {
        format!("{}{}", self.config.gateway_url.trim_end_matches('/'), path)
    }

    /// The `Authorization` and `DPoP` values for one request to the gateway.
    pub async fn request_headers(
        &self,
        method: &str,
        path: &str,
    ) -> Result<RequestHeaders, ClientError> {
        self.headers_for(method, path, None).await
    }

    /// The headers of one request to the gateway: `Authorization` and `DPoP`, and with a
    /// `body` (the bytes as sent) an HTTP Message Signature over it and its `Content-Digest`,
    /// as routes with `proof = "dpop+signature"` require. `path` may carry a query; it is
    /// signed too.
    pub async fn headers_for(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RequestHeaders, ClientError> {
        self.headers_for_url(method, &self.gateway_url(path), body)
            .await
    }

    /// [`headers_for`](Self::headers_for) for an absolute `url` (the gateway's, or the
    /// control plane's DPoP-protected endpoints).
    async fn headers_for_url(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> Result<RequestHeaders, ClientError> {
        let token = self.access_token().await?;
        let now = (self.now)();
        let proof = dpop_proof(self.key.as_ref(), method, url, Some(token.expose()), now)?;
        let authorization = format!("DPoP {}", token.expose());
        let signature = body
            .map(|body| {
                crate::proof::signature_headers(
                    self.key.as_ref(),
                    method,
                    url,
                    &authorization,
                    body,
                    now,
                )
            })
            .transpose()?;
        Ok(RequestHeaders {
            authorization: Secret::new(authorization),
            dpop: proof,
            signature,
        })
    }

    /// Sends a request through the gateway with a fresh proof; a body goes as
    /// `application/json` (what medical-device APIs such as Nightscout read: Express's body
    /// parser ignores a body without it). For another type, `send_raw` with `headers_for`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        self.send_proved(method, path, body, false).await
    }

    /// Sends a write through the gateway with a fresh proof and a signature over its body
    /// (for `proof = "dpop+signature"` routes: readings, treatments, commands), as `send`
    /// does.
    pub async fn send_signed(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        self.send_proved(method, path, body, true).await
    }

    async fn send_proved(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        signed: bool,
    ) -> Result<HttpResponse, ClientError> {
        let headers = self
            .headers_for(method.as_str(), path, signed.then_some(&body[..]))
            .await?;
        let mut headers = headers.to_header_map();
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        self.send_raw(method, &self.gateway_url(path), headers, body)
            .await
    }

    pub async fn get(&self, path: &str) -> Result<HttpResponse, ClientError> {
        self.send(Method::GET, path, Bytes::new()).await
    }

    /// Sends a request as given, without adding anything.
    pub async fn send_raw(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        let http = read(&self.http).clone();
        self.send_with(&http, method, url, headers, body).await
    }

    /// Sends through `http`; a pinning failure is remembered as a `mitm` signal.
    async fn send_with(
        &self,
        http: &HttpClient,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        let result = http.send(method, url, headers, body).await;
        if let Err(ClientError::PinMismatch { host, .. }) = &result {
            *lock(&self.mitm) = Some(Signal {
                kind: medgate_proto::wire::SignalKind::Mitm.as_str().into(),
                detail: format!("certificate pinning failure for {host}"),
                confidence: None,
            });
        }
        result
    }

    /// HTTPS with WebPKI against `roots` and the pins `ota` holds, from now on (and after each
    /// [`refresh_pins`](Self::refresh_pins)).
    #[cfg(feature = "tls")]
    pub fn with_pinning(
        mut self,
        ota: Arc<crate::ota::OtaPins>,
        roots: Arc<rustls::RootCertStore>,
    ) -> Result<Self, ClientError> {
        let http = HttpClient::pinned(Arc::clone(&roots), ota.managed_roots(), ota.pins())?;
        self.http = std::sync::RwLock::new(http);
        self.pinning = Some(Pinning { ota, roots });
        Ok(self)
    }

    /// Refreshes the over-the-air pins from the control plane's `/v1/trust/`, over the pinned
    /// channel, and pins with them from now on. A failure keeps the pins in force (the
    /// never-brick rules, [`crate::ota`]) and is returned.
    #[cfg(feature = "tls")]
    pub async fn refresh_pins(&self) -> Result<crate::ota::PinsStatus, ClientError> {
        let Some(pinning) = &self.pinning else {
            return Err(ClientError::Tls(
                "the client has no pinning configured".into(),
            ));
        };
        let base = format!("{}/v1/trust", self.config.server_url.trim_end_matches('/'));
        let now = (self.now)();
        // The repository is read with the device's roots and the pins, never the managed
        // roots: a wrong roots.pem must not cut the client off from the release that fixes
        // it (the files are signed; TUF, not TLS, decides whether they are genuine).
        let trust_http = HttpClient::pinned(Arc::clone(&pinning.roots), None, pinning.ota.pins())?;
        let fetch = |name: String| {
            let url = format!("{base}/{name}");
            let trust_http = &trust_http;
            async move {
                let response = self
                    .send_with(
                        trust_http,
                        Method::GET,
                        &url,
                        HeaderMap::new(),
                        Bytes::new(),
                    )
                    .await
                    .map_err(|error| crate::ota::OtaError::Fetch {
                        file: name.clone(),
                        reason: error.to_string(),
                    })?;
                match response.status {
                    StatusCode::OK => Ok(Some(response.body.to_vec())),
                    StatusCode::NOT_FOUND => Ok(None),
                    status => Err(crate::ota::OtaError::Fetch {
                        file: name,
                        reason: format!("status {status}"),
                    }),
                }
            }
        };
        let refreshed = pinning.ota.refresh(now, fetch).await;
        let http = HttpClient::pinned(
            Arc::clone(&pinning.roots),
            pinning.ota.managed_roots(),
            pinning.ota.pins(),
        )?;
        *write(&self.http) = http;
        refreshed?;
        Ok(pinning.ota.status(now))
    }

    /// Refreshes the pins now and every `interval` (over the pinned channel), sending each
    /// outcome on the returned channel: the status, or why the refresh failed (the pins in
    /// force then stay). Dropping the receiver does not stop it; aborting the handle does.
    #[cfg(feature = "tls")]
    pub fn spawn_pin_refresh(
        self: &Arc<Self>,
        interval: std::time::Duration,
    ) -> (
        tokio::task::JoinHandle<()>,
        tokio::sync::mpsc::Receiver<Result<crate::ota::PinsStatus, String>>,
    ) {
        let (events, receiver) = tokio::sync::mpsc::channel(16);
        let client = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                // The first tick is at once: the pins are refreshed at start.
                ticker.tick().await;
                let outcome = client.refresh_pins().await.map_err(|e| e.to_string());
                let _ = events.try_send(outcome);
            }
        });
        (handle, receiver)
    }

    /// What the pins are and where they come from; `None` without pinning.
    #[cfg(feature = "tls")]
    pub fn pins_status(&self) -> Option<crate::ota::PinsStatus> {
        self.pinning
            .as_ref()
            .map(|pinning| pinning.ota.status((self.now)()))
    }
}

/// The over-the-air pins and the roots of the client's TLS.
#[cfg(feature = "tls")]
struct Pinning {
    ota: Arc<crate::ota::OtaPins>,
    roots: Arc<rustls::RootCertStore>,
}

/// `Ok` for a 200; otherwise the server's problem (`Refused`), or a protocol error without one.
fn ok_or_refused(response: &HttpResponse, url: &str) -> Result<(), ClientError> {
    if response.status == StatusCode::OK {
        return Ok(());
    }
    Err(match response.problem() {
        Some(problem) => ClientError::Refused {
            status: response.status.as_u16(),
            problem,
        },
        None => protocol(url, format!("status {}", response.status)),
    })
}

/// The session key sealed to the encryption key, opened; its id is in the authenticated
/// header.
fn open_session(
    sealed: &str,
    key: &(dyn KeyAgreement + Send + Sync),
    url: &str,
) -> Result<crate::proof::Session, ClientError> {
    let opened = jwe::decrypt(sealed, KeyManagement::EcdhEsA256Kw(key))
        .map_err(|error| protocol(url, format!("session key: {error}")))?;
    let id = opened
        .header
        .get("medgate_session")
        .and_then(|id| id.as_str())
        .ok_or_else(|| protocol(url, "session key: no session id"))?
        .to_string();
    let bytes: [u8; 32] = opened
        .plaintext
        .as_slice()
        .try_into()
        .map_err(|_| protocol(url, "session key: not 32 bytes"))?;
    Ok(crate::proof::Session {
        id,
        key: Zeroizing::new(bytes),
    })
}

fn protocol(url: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol {
        url: url.to_string(),
        reason: reason.to_string(),
    }
}

fn json_headers(content_type: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers
}

fn insert(map: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        map.insert(name, value);
    }
}
