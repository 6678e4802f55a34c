//! The v1 protocol: messages, media types, problem types and the stable reason codes.
//!
//! Field names here are a public contract (see README "Protocol"). Fields may be added; none may
//! be renamed. Snapshot tests pin the serialised forms.

use serde::{Deserialize, Serialize};

use crate::jwk::Thumbprint;

/// `Content-Type` of an evidence JWS posted to `/v1/attest`.
pub const MEDIA_JOSE: &str = "application/jose";
/// `Content-Type` of every error body (RFC 9457).
pub const MEDIA_PROBLEM: &str = "application/problem+json";

/// `typ` of the evidence JWS.
pub const TYP_EVIDENCE: &str = "medgate-evidence+jwt";
/// `typ` of an access token (RFC 9068 §2.1).
pub const TYP_ACCESS_TOKEN: &str = "at+jwt";
/// `typ` of a DPoP proof (RFC 9449 §4.2).
pub const TYP_DPOP: &str = "dpop+jwt";

/// Problem `type` URIs (RFC 9457 §3.1.1).
pub mod problem_type {
    pub const ATTESTATION_REJECTED: &str = "urn:medgate:problem:attestation-rejected";
    pub const MALFORMED_REQUEST: &str = "urn:medgate:problem:malformed-request";
    pub const PAYLOAD_TOO_LARGE: &str = "urn:medgate:problem:payload-too-large";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "urn:medgate:problem:unsupported-media-type";
    pub const INVALID_TOKEN: &str = "urn:medgate:problem:invalid-token";
    pub const INVALID_DPOP_PROOF: &str = "urn:medgate:problem:invalid-dpop-proof";
    pub const INVALID_SIGNATURE: &str = "urn:medgate:problem:invalid-signature";
    pub const INSUFFICIENT_SCOPE: &str = "urn:medgate:problem:insufficient-scope";
    pub const ROUTE_DENIED: &str = "urn:medgate:problem:route-denied";
    pub const RATE_LIMITED: &str = "urn:medgate:problem:rate-limited";
    pub const UPSTREAM_UNAVAILABLE: &str = "urn:medgate:problem:upstream-unavailable";
    pub const UNAUTHORIZED: &str = "urn:medgate:problem:unauthorized";
    pub const NOT_FOUND: &str = "urn:medgate:problem:not-found";
    pub const CONFLICT: &str = "urn:medgate:problem:conflict";
    pub const INTERNAL: &str = "urn:medgate:problem:internal";
    pub const UNAVAILABLE: &str = "urn:medgate:problem:unavailable";
}

/// Identifier rules shared by the admin API and the evidence verifier.
pub mod names {
    /// An app id: 1–128 characters of `A–Z a–z 0–9 . _ -` (reverse-DNS ids, `TEAMID.bundle`).
    pub fn is_app_id(text: &str) -> bool {
        (1..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }

    /// A release version: 1–64 characters of `A–Z a–z 0–9 . _ + -`.
    pub fn is_version(text: &str) -> bool {
        (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-'))
    }

    /// An OAuth scope token (RFC 6749 §3.3), at most 128 characters, without `"` or a backslash.
    pub fn is_scope(text: &str) -> bool {
        (1..=128).contains(&text.len())
            && text
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
    }

    /// An operator secret's name: 1–64 characters of `a–z 0–9 _ -` (safe in a scope
    /// `secret:<name>`, a label and a log line).
    pub fn is_secret_name(text: &str) -> bool {
        (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    }

    /// A console operator's name: 1–64 characters of `a–z 0–9 . _ -` (it becomes an audit
    /// entry's actor, `operator:<name>`).
    pub fn is_operator_name(text: &str) -> bool {
        (1..=64).contains(&text.len())
            && text.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
    }

    /// Lowercase hex SHA-256 (64 characters).
    pub fn is_sha256_hex(text: &str) -> bool {
        text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

/// `POST /v1/challenge` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    pub app_id: String,
}

/// `201` answer to `POST /v1/challenge`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengeResponse {
    /// base64url (no padding) of 32 random bytes.
    pub challenge: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// The payload of the evidence JWS posted to `/v1/attest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvidenceClaims {
    pub challenge: String,
    pub app_id: String,
    pub app_version: String,
    pub platform: String,
    pub iat: i64,
    pub evidence: Evidence,
    #[serde(default)]
    pub signals: Vec<Signal>,
    /// A one-time enrolment code for a self-built app (see the admin API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_code: Option<String>,
    /// The installation's P-256 key-agreement key, separate from the installation (signing)
    /// key as hardware keystores require. Signed into the evidence by the installation key, so
    /// bound to it; the control plane seals secrets to it (`GET /v1/secrets/{name}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<crate::PublicJwk>,
    /// What the runtime detection pass behind `signals` examined (Linux and Android SDKs). A
    /// pass whose detectors were replaced or skipped reports none, so a silenced pass does
    /// not look like a clean one; an app's policy can require it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

/// A detection pass's positive evidence of work done: how much of the process it examined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// Lines of the process's memory map examined.
    pub maps_lines: u32,
    /// Threads examined (tracer and name of each).
    pub threads: u32,
    /// Executable modules whose code in memory was compared with their files.
    pub modules: u32,
    /// Bytes of code compared.
    pub code_bytes: u64,
    /// GOT slots checked against the addresses of their symbols.
    pub got_slots: u32,
    /// Lowercase hex SHA-256 over what was compared, mapping by mapping in the order compared:
    /// the SHA-256 of the mapping's bytes in its file, then each difference found in memory
    /// (its file offset, 8 bytes big-endian, and the bytes in memory there).
    pub code_sha256: String,
}

/// The platform-specific part of the evidence. Exactly the member named by `platform` is read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<SdkEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apple_app_attest: Option<AppleAppAttestEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub android_key_attestation: Option<AndroidKeyAttestationEvidence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play_integrity: Option<PlayIntegrityEvidence>,
}

/// The `platform` values.
pub mod platform {
    pub const SDK: &str = "sdk";
    pub const APPLE_APP_ATTEST: &str = "apple-app-attest";
    pub const ANDROID_KEY_ATTESTATION: &str = "android-key-attestation";
    pub const PLAY_INTEGRITY: &str = "play-integrity";
    pub const ALL: [&str; 4] = [
        SDK,
        APPLE_APP_ATTEST,
        ANDROID_KEY_ATTESTATION,
        PLAY_INTEGRITY,
    ];
}

/// Apple App Attest: the attestation object at first contact, an assertion afterwards.
/// Byte fields are base64 (standard or URL-safe).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppleAppAttestEvidence {
    pub key_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attestation_object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<String>,
    /// `TEAMID.bundle.id`; needed with an attestation object when the build is not the app's
    /// registered one (a self-built app being enrolled or already enrolled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
}

/// Android Key Attestation: the attested key's certificate chain, leaf first, base64 DER.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AndroidKeyAttestationEvidence {
    pub certificate_chain: Vec<String>,
}

/// A Play Integrity token, as the app received it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PlayIntegrityEvidence {
    pub token: String,
}

/// medgate's own software evidence: the app's measurement of itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SdkEvidence {
    /// Lowercase hex SHA-256 of the app binary (the executable on Linux).
    pub binary_sha256: String,
}

/// A runtime threat the SDK saw, reported inside the signed evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub kind: String,
    #[serde(default)]
    pub detail: String,
    /// The detector's confidence (`medium`, `high`); informational, policy acts on `kind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<String>,
}

impl Signal {
    /// A signal of a known kind, without a confidence.
    pub fn new(kind: SignalKind, detail: impl Into<String>) -> Self {
        Signal {
            kind: kind.as_str().to_string(),
            detail: detail.into(),
            confidence: None,
        }
    }
}

/// The signal kinds policy can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SignalKind {
    Debugger,
    Hook,
    InjectedLibrary,
    Root,
    Emulator,
    Tamper,
    /// A pinned connection met a certificate chain without a pinned key: someone between the
    /// app and medgate (reported at the next attestation, over a channel that passed).
    Mitm,
}

impl SignalKind {
    pub const ALL: [SignalKind; 7] = [
        SignalKind::Debugger,
        SignalKind::Hook,
        SignalKind::InjectedLibrary,
        SignalKind::Root,
        SignalKind::Emulator,
        SignalKind::Tamper,
        SignalKind::Mitm,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            SignalKind::Debugger => "debugger",
            SignalKind::Hook => "hook",
            SignalKind::InjectedLibrary => "injected_library",
            SignalKind::Root => "root",
            SignalKind::Emulator => "emulator",
            SignalKind::Tamper => "tamper",
            SignalKind::Mitm => "mitm",
        }
    }

    pub fn from_name(name: &str) -> Option<SignalKind> {
        SignalKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The reason code a rejection or degradation for this signal carries.
    pub const fn reason(self) -> Reason {
        match self {
            SignalKind::Debugger => Reason::DebuggerDetected,
            SignalKind::Hook => Reason::HookDetected,
            SignalKind::InjectedLibrary => Reason::InjectedLibraryDetected,
            SignalKind::Root => Reason::RootDetected,
            SignalKind::Emulator => Reason::EmulatorDetected,
            SignalKind::Tamper => Reason::TamperDetected,
            SignalKind::Mitm => Reason::MitmDetected,
        }
    }
}

/// Stable reason codes for attestation decisions. Documented in the README; never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Reason {
    /// The challenge is unknown, already used, expired, or was issued for another app.
    ChallengeInvalid,
    /// No app is registered under the evidence's `app_id`.
    AppUnknown,
    /// The app has no release with this version.
    ReleaseUnknown,
    /// The release was revoked by an admin.
    ReleaseRevoked,
    /// This installation was revoked by an admin.
    InstallationRevoked,
    /// The evidence is not validly signed, is stale, or does not have the required shape.
    EvidenceInvalid,
    DebuggerDetected,
    HookDetected,
    InjectedLibraryDetected,
    RootDetected,
    EmulatorDetected,
    /// A tamper signal was reported, or the measured binary is not the registered release.
    TamperDetected,
    /// The app met an interception of its pinned connections since its last attestation.
    MitmDetected,
    /// The enrolment code is unknown, used, expired, or for another app.
    EnrolmentInvalid,
    /// The app accepts no evidence from this platform.
    PlatformNotAllowed,
    /// The attested build is not the app's: Apple app id, Android package or signing
    /// certificate neither registered nor enrolled.
    AppIdentityMismatch,
    /// A certificate of the attestation chain is on Google's revocation status list.
    AttestationRevoked,
    /// The key is attested at a lower security level than policy requires (e.g. software).
    SecurityLevelInsufficient,
    /// The device's bootloader is unlocked.
    BootloaderUnlocked,
    /// Verified boot did not report a verified state.
    VerifiedBootFailed,
    /// The OS security patch level is older than policy allows.
    PatchLevelOutdated,
    /// An App Attest key from Apple's development environment where policy requires production.
    DevelopmentEnvironment,
    /// Play Integrity device labels below what policy requires.
    DeviceIntegrityInsufficient,
    /// Play does not recognise this app build.
    AppUnrecognized,
    /// Play reports the user did not get the app from Play.
    AppUnlicensed,
    /// Play reports risky apps running alongside, or Play Protect found risk.
    EnvironmentRisk,
    /// The platform attests a version code that is not the claimed release's.
    VersionMismatch,
    /// A Play Integrity test response (sent to license testers), not a verdict on a device.
    TestResponse,
    /// SDK evidence, which is the app's own word, under an app that grants it only the limited
    /// scopes (`sdk_evidence = limited`, the default).
    SdkEvidenceLimited,
}

impl Reason {
    pub const ALL: [Reason; 29] = [
        Reason::ChallengeInvalid,
        Reason::AppUnknown,
        Reason::ReleaseUnknown,
        Reason::ReleaseRevoked,
        Reason::InstallationRevoked,
        Reason::EvidenceInvalid,
        Reason::DebuggerDetected,
        Reason::HookDetected,
        Reason::InjectedLibraryDetected,
        Reason::RootDetected,
        Reason::EmulatorDetected,
        Reason::TamperDetected,
        Reason::MitmDetected,
        Reason::EnrolmentInvalid,
        Reason::PlatformNotAllowed,
        Reason::AppIdentityMismatch,
        Reason::AttestationRevoked,
        Reason::SecurityLevelInsufficient,
        Reason::BootloaderUnlocked,
        Reason::VerifiedBootFailed,
        Reason::PatchLevelOutdated,
        Reason::DevelopmentEnvironment,
        Reason::DeviceIntegrityInsufficient,
        Reason::AppUnrecognized,
        Reason::AppUnlicensed,
        Reason::EnvironmentRisk,
        Reason::VersionMismatch,
        Reason::TestResponse,
        Reason::SdkEvidenceLimited,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::ChallengeInvalid => "challenge_invalid",
            Reason::AppUnknown => "app_unknown",
            Reason::ReleaseUnknown => "release_unknown",
            Reason::ReleaseRevoked => "release_revoked",
            Reason::InstallationRevoked => "installation_revoked",
            Reason::EvidenceInvalid => "evidence_invalid",
            Reason::DebuggerDetected => "debugger_detected",
            Reason::HookDetected => "hook_detected",
            Reason::InjectedLibraryDetected => "injected_library_detected",
            Reason::RootDetected => "root_detected",
            Reason::EmulatorDetected => "emulator_detected",
            Reason::TamperDetected => "tamper_detected",
            Reason::MitmDetected => "mitm_detected",
            Reason::EnrolmentInvalid => "enrolment_invalid",
            Reason::PlatformNotAllowed => "platform_not_allowed",
            Reason::AppIdentityMismatch => "app_identity_mismatch",
            Reason::AttestationRevoked => "attestation_revoked",
            Reason::SecurityLevelInsufficient => "security_level_insufficient",
            Reason::BootloaderUnlocked => "bootloader_unlocked",
            Reason::VerifiedBootFailed => "verified_boot_failed",
            Reason::PatchLevelOutdated => "patch_level_outdated",
            Reason::DevelopmentEnvironment => "development_environment",
            Reason::DeviceIntegrityInsufficient => "device_integrity_insufficient",
            Reason::AppUnrecognized => "app_unrecognized",
            Reason::AppUnlicensed => "app_unlicensed",
            Reason::EnvironmentRisk => "environment_risk",
            Reason::VersionMismatch => "version_mismatch",
            Reason::TestResponse => "test_response",
            Reason::SdkEvidenceLimited => "sdk_evidence_limited",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of an attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Decision {
    Allow,
    AllowLimited,
    Reject,
}

impl Decision {
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::AllowLimited => "allow_limited",
            Decision::Reject => "reject",
        }
    }

    pub fn from_name(name: &str) -> Option<Decision> {
        [Decision::Allow, Decision::AllowLimited, Decision::Reject]
            .into_iter()
            .find(|decision| decision.as_str() == name)
    }
}

/// How strongly the installation's integrity was established, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IntegrityLevel {
    /// The app's own report (SDK evidence).
    SelfReported,
    /// Play Integrity MEETS_BASIC_INTEGRITY.
    Basic,
    /// Play Integrity MEETS_DEVICE_INTEGRITY.
    Device,
    /// A key in secure hardware (App Attest, a TEE key attestation, MEETS_STRONG_INTEGRITY).
    Hardware,
    /// A key in a StrongBox secure element.
    Strongbox,
}

impl IntegrityLevel {
    pub const fn as_str(self) -> &'static str {
        match self {
            IntegrityLevel::SelfReported => "self_reported",
            IntegrityLevel::Basic => "basic",
            IntegrityLevel::Device => "device",
            IntegrityLevel::Hardware => "hardware",
            IntegrityLevel::Strongbox => "strongbox",
        }
    }
}

/// `200` answer to `POST /v1/attest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttestResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: u64,
    pub scope: String,
    pub installation_id: String,
    pub decision: Decision,
    pub reasons: Vec<Reason>,
    pub integrity_level: IntegrityLevel,
    /// Whether the installation key itself is attested to live in secure hardware.
    pub hardware_key: bool,
    /// For an installation whose evidence named a key-agreement key: the token's session key
    /// for `session-mac` routes, as a compact JWE (`ECDH-ES+A256KW`, `A256GCM`) sealed to that
    /// key, its protected header naming the session (`medgate_session`, the token's `jti`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: String,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Reason>,
}

impl Problem {
    pub fn new(problem_type: &str, title: &str, status: u16) -> Self {
        Problem {
            problem_type: problem_type.to_string(),
            title: title.to_string(),
            status,
            detail: None,
            reasons: Vec::new(),
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_reasons(mut self, reasons: Vec<Reason>) -> Self {
        self.reasons = reasons;
        self
    }
}

/// RFC 7800 confirmation claim: the token is bound to the key with this thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: Thumbprint,
}

/// Claims of a medgate access token (RFC 9068 with RFC 9449 §6 `cnf`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    pub iss: String,
    /// The installation id (the installation key's thumbprint).
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// The app id.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    pub cnf: Confirmation,
    pub app_version: String,
    pub platform: String,
    pub decision: Decision,
    /// Absent in tokens from before these claims existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity_level: Option<IntegrityLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware_key: Option<bool>,
}

/// Claims of a partner backend's access token (RFC 9068, client credentials: `sub` is the
/// client), bound to a DPoP key when it sent a proof. No installation claim can be added to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerTokenClaims {
    pub iss: String,
    /// The partner's id, as `client_id`.
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated SMART scopes.
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// Claims of a DPoP proof (RFC 9449 §4.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DpopClaims {
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ath: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_serialise_as_their_documented_names() {
        for reason in Reason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        for kind in SignalKind::ALL {
            assert_eq!(
                kind.reason().as_str(),
                format!("{}_detected", kind.as_str())
            );
            assert_eq!(SignalKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(SignalKind::from_name("Debugger"), None);
    }

    #[test]
    fn the_readme_documents_every_reason_code_and_platform() {
        let readme = include_str!("../../../README.md");
        for reason in Reason::ALL {
            assert!(
                readme.contains(&format!("`{}`", reason.as_str())),
                "README does not document reason code {reason}"
            );
        }
        for name in platform::ALL {
            assert!(
                readme.contains(&format!("`{name}`")),
                "README does not document platform {name}"
            );
        }
    }

    #[test]
    fn attest_response_and_problem_wire_forms() {
        let response = AttestResponse {
            access_token: "t".into(),
            token_type: "DPoP".into(),
            expires_in: 300,
            scope: "a b".into(),
            installation_id: "i".into(),
            decision: Decision::AllowLimited,
            reasons: vec![Reason::RootDetected],
            integrity_level: IntegrityLevel::SelfReported,
            hardware_key: false,
            session_key: None,
        };
        insta::assert_snapshot!(serde_json::to_string(&response).unwrap(), @r#"{"access_token":"t","token_type":"DPoP","expires_in":300,"scope":"a b","installation_id":"i","decision":"allow_limited","reasons":["root_detected"],"integrity_level":"self_reported","hardware_key":false}"#);
        let problem = Problem::new(
            problem_type::ATTESTATION_REJECTED,
            "Attestation rejected",
            403,
        )
        .with_reasons(vec![Reason::HookDetected, Reason::DebuggerDetected]);
        insta::assert_snapshot!(serde_json::to_string(&problem).unwrap(), @r#"{"type":"urn:medgate:problem:attestation-rejected","title":"Attestation rejected","status":403,"reasons":["hook_detected","debugger_detected"]}"#);
    }

    #[test]
    fn identifier_rules() {
        assert!(names::is_app_id("ABCDE12345.org.example.loop"));
        assert!(!names::is_app_id("org example"));
        assert!(!names::is_app_id(""));
        assert!(!names::is_app_id(&"a".repeat(129)));
        assert!(names::is_version("3.4.1+build-7"));
        assert!(!names::is_version("1.0 beta"));
        assert!(names::is_scope("entries:read"));
        assert!(!names::is_scope("a b"));
        assert!(!names::is_scope("quote\""));
        assert!(names::is_sha256_hex(&"0f".repeat(32)));
        assert!(!names::is_sha256_hex(&"0F".repeat(32)));
        assert!(!names::is_sha256_hex("00"));
    }

    #[test]
    fn evidence_claims_parse_the_documented_shape() {
        let claims: EvidenceClaims = serde_json::from_str(
            r#"{"challenge":"c","app_id":"org.example","app_version":"1.2.3","platform":"sdk",
                "iat":1700000000,"evidence":{"sdk":{"binary_sha256":"00ff"}},
                "signals":[{"kind":"debugger","detail":"TracerPid: 42"}]}"#,
        )
        .unwrap();
        assert_eq!(claims.evidence.sdk.unwrap().binary_sha256, "00ff");
        assert_eq!(claims.signals[0].kind, "debugger");
        let no_signals: EvidenceClaims = serde_json::from_str(
            r#"{"challenge":"c","app_id":"a","app_version":"1","platform":"sdk","iat":1,"evidence":{}}"#,
        )
        .unwrap();
        assert!(no_signals.signals.is_empty());
    }
}
