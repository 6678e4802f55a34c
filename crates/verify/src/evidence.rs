//! Verification of the evidence JWS an installation posts to `/v1/attest`.
//!
//! 1. Parse the compact JWS (size-bounded, ES256 only: installation keys are P-256).
//! 2. `typ` is `medgate-evidence+jwt`.
//! 3. The header carries the installation's public key as `jwk` (private members refused).
//! 4. The signature verifies under that key: whoever signed holds the installation key.
//! 5. The payload has the documented shape, every field within its bounds.
//! 6. `iat` is within the freshness window around `now`.
//! 7. The platform evidence named by `platform` is present and well formed.
//!
//! The installation id is the key's RFC 7638 thumbprint. The challenge is *not* checked here:
//! it is single-use state the caller consumes and hands to [`crate::policy::FreshChallenge`].

use medgate_proto::wire::{self, EvidenceClaims, Signal, names};
use medgate_proto::{Alg, PublicJwk, Thumbprint};

use crate::UnixTime;
use crate::jws::{self, JwsError};
use crate::time::IatWindow;

/// Bounds on evidence.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceLimits {
    pub max_len: usize,
    pub iat: IatWindow,
    pub max_signals: usize,
}

impl Default for EvidenceLimits {
    fn default() -> Self {
        EvidenceLimits {
            max_len: 64 * 1024,
            iat: IatWindow {
                max_age_secs: 300,
                max_skew_secs: 60,
            },
            max_signals: 32,
        }
    }
}

/// Why evidence was refused. [`EvidenceError::is_malformed`] separates broken input (HTTP 400)
/// from well-formed evidence that does not hold up (`evidence_invalid`, HTTP 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    #[error("evidence {0}")]
    Jws(#[from] JwsError),
    #[error("evidence typ must be {}", wire::TYP_EVIDENCE)]
    WrongType,
    #[error("evidence header must carry the installation's public key as jwk")]
    MissingKey,
    #[error("evidence payload is malformed: {0}")]
    Claims(String),
    #[error("evidence field is invalid: {0}")]
    Field(&'static str),
    #[error("evidence platform is not supported")]
    UnsupportedPlatform,
    #[error("evidence iat is outside the accepted window")]
    Stale,
}

impl EvidenceError {
    pub fn is_malformed(&self) -> bool {
        match self {
            EvidenceError::Jws(error) => matches!(
                error,
                JwsError::TooLarge { .. } | JwsError::Malformed(_) | JwsError::BadHeader(_)
            ),
            EvidenceError::Claims(_) | EvidenceError::Field(_) => true,
            EvidenceError::WrongType
            | EvidenceError::MissingKey
            | EvidenceError::UnsupportedPlatform
            | EvidenceError::Stale => false,
        }
    }
}

/// The platform that produced the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Platform {
    /// medgate's own SDK evidence (software only).
    Sdk,
}

impl Platform {
    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Sdk => "sdk",
        }
    }
}

/// What the platform evidence says about the app.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Measurement {
    /// SHA-256 of the app binary, as lowercase hex.
    BinarySha256(String),
}

/// Evidence whose signature, shape and freshness have been checked. Only [`verify`] makes one.
#[derive(Debug, Clone)]
pub struct VerifiedEvidence {
    installation_key: PublicJwk,
    installation_id: Thumbprint,
    challenge: String,
    app_id: String,
    app_version: String,
    platform: Platform,
    measurement: Measurement,
    signals: Vec<Signal>,
    iat: UnixTime,
}

impl VerifiedEvidence {
    pub fn installation_key(&self) -> &PublicJwk {
        &self.installation_key
    }
    pub fn installation_id(&self) -> &Thumbprint {
        &self.installation_id
    }
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
    pub fn app_id(&self) -> &str {
        &self.app_id
    }
    pub fn app_version(&self) -> &str {
        &self.app_version
    }
    pub fn platform(&self) -> Platform {
        self.platform
    }
    pub fn measurement(&self) -> &Measurement {
        &self.measurement
    }
    pub fn signals(&self) -> &[Signal] {
        &self.signals
    }
    pub fn iat(&self) -> UnixTime {
        self.iat
    }
}

const MAX_SIGNAL_KIND: usize = 64;
const MAX_SIGNAL_DETAIL: usize = 1024;
const MAX_CHALLENGE: usize = 128;

/// Verifies an evidence JWS at `now`.
pub fn verify(
    compact: &str,
    limits: &EvidenceLimits,
    now: UnixTime,
) -> Result<VerifiedEvidence, EvidenceError> {
    // Step 1.
    let parsed = jws::parse(compact, limits.max_len, &[Alg::Es256])?;
    // Step 2.
    if !jws::typ_is(parsed.header().typ.as_deref(), wire::TYP_EVIDENCE) {
        return Err(EvidenceError::WrongType);
    }
    // Step 3.
    let key = parsed
        .header()
        .jwk
        .clone()
        .ok_or(EvidenceError::MissingKey)?;
    // Step 4.
    parsed.verify(&key)?;
    // Step 5.
    let claims: EvidenceClaims =
        jws::from_json_object(parsed.payload()).map_err(EvidenceError::Claims)?;
    check_fields(&claims, limits)?;
    // Step 6.
    if !limits.iat.admits(claims.iat, now) {
        return Err(EvidenceError::Stale);
    }
    // Step 7.
    let (platform, measurement) = platform_evidence(&claims)?;
    Ok(VerifiedEvidence {
        installation_id: key.thumbprint(),
        installation_key: key,
        challenge: claims.challenge,
        app_id: claims.app_id,
        app_version: claims.app_version,
        platform,
        measurement,
        signals: claims.signals,
        iat: UnixTime::from_secs(claims.iat),
    })
}

fn check_fields(claims: &EvidenceClaims, limits: &EvidenceLimits) -> Result<(), EvidenceError> {
    if claims.challenge.is_empty() || claims.challenge.len() > MAX_CHALLENGE {
        return Err(EvidenceError::Field("challenge"));
    }
    if !names::is_app_id(&claims.app_id) {
        return Err(EvidenceError::Field("app_id"));
    }
    if !names::is_version(&claims.app_version) {
        return Err(EvidenceError::Field("app_version"));
    }
    if claims.signals.len() > limits.max_signals {
        return Err(EvidenceError::Field("signals: too many"));
    }
    for signal in &claims.signals {
        if signal.kind.is_empty() || signal.kind.len() > MAX_SIGNAL_KIND {
            return Err(EvidenceError::Field("signals: kind"));
        }
        if signal.detail.len() > MAX_SIGNAL_DETAIL {
            return Err(EvidenceError::Field("signals: detail too long"));
        }
    }
    Ok(())
}

fn platform_evidence(claims: &EvidenceClaims) -> Result<(Platform, Measurement), EvidenceError> {
    match claims.platform.as_str() {
        "sdk" => {
            let sdk = claims
                .evidence
                .sdk
                .as_ref()
                .ok_or(EvidenceError::Field("evidence.sdk"))?;
            if !names::is_sha256_hex(&sdk.binary_sha256) {
                return Err(EvidenceError::Field("evidence.sdk.binary_sha256"));
            }
            Ok((
                Platform::Sdk,
                Measurement::BinarySha256(sdk.binary_sha256.clone()),
            ))
        }
        _ => Err(EvidenceError::UnsupportedPlatform),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testkey::TestKey;

    pub(crate) fn claims(now: i64) -> serde_json::Value {
        serde_json::json!({
            "challenge": "Y2hhbGxlbmdl",
            "app_id": "org.example.cgm",
            "app_version": "1.2.3",
            "platform": "sdk",
            "iat": now,
            "evidence": {"sdk": {"binary_sha256": "ab".repeat(32)}},
            "signals": [{"kind": "root", "detail": "su in /system/xbin"}],
        })
    }

    const NOW: i64 = 1_800_000_000;

    fn verify_now(jws: &str) -> Result<VerifiedEvidence, EvidenceError> {
        verify(jws, &EvidenceLimits::default(), UnixTime::from_secs(NOW))
    }

    #[test]
    fn genuine_evidence_verifies_and_names_the_installation() {
        let key = TestKey::new(1);
        let verified = verify_now(&key.evidence(&claims(NOW))).unwrap();
        assert_eq!(verified.installation_id(), &key.jwk().thumbprint());
        assert_eq!(verified.app_id(), "org.example.cgm");
        assert_eq!(verified.platform(), Platform::Sdk);
        assert_eq!(
            verified.measurement(),
            &Measurement::BinarySha256("ab".repeat(32))
        );
        assert_eq!(verified.signals()[0].kind, "root");
    }

    #[test]
    fn every_rejection_branch() {
        let key = TestKey::new(1);
        let other = TestKey::new(2);
        let good = key.evidence(&claims(NOW));

        // Step 2: wrong typ.
        let wrong_typ = key.sign_jws("JWT", Some(&key.jwk()), &claims(NOW));
        assert_eq!(
            verify_now(&wrong_typ).unwrap_err(),
            EvidenceError::WrongType
        );
        // Step 3: no key.
        let no_key = key.sign_jws(wire::TYP_EVIDENCE, None, &claims(NOW));
        assert_eq!(verify_now(&no_key).unwrap_err(), EvidenceError::MissingKey);
        // Step 4: signed by a key other than the one in the header.
        let swapped = key.sign_jws(wire::TYP_EVIDENCE, Some(&other.jwk()), &claims(NOW));
        assert_eq!(
            verify_now(&swapped).unwrap_err(),
            EvidenceError::Jws(JwsError::BadSignature)
        );
        // Step 5: shape and bounds.
        let mut bad = claims(NOW);
        bad["app_id"] = "has space".into();
        assert_eq!(
            verify_now(&key.evidence(&bad)).unwrap_err(),
            EvidenceError::Field("app_id")
        );
        let mut bad = claims(NOW);
        bad["signals"] = serde_json::json!(vec![serde_json::json!({"kind": "root"}); 33]);
        assert_eq!(
            verify_now(&key.evidence(&bad)).unwrap_err(),
            EvidenceError::Field("signals: too many")
        );
        let mut bad = claims(NOW);
        bad.as_object_mut().unwrap().remove("iat");
        let error = verify_now(&key.evidence(&bad)).unwrap_err();
        assert!(
            error.is_malformed() && error.to_string().contains("iat"),
            "{error}"
        );
        // Step 6: stale and future.
        assert_eq!(
            verify_now(&key.evidence(&claims(NOW - 301))).unwrap_err(),
            EvidenceError::Stale
        );
        assert_eq!(
            verify_now(&key.evidence(&claims(NOW + 61))).unwrap_err(),
            EvidenceError::Stale
        );
        // Step 7: platform evidence.
        let mut bad = claims(NOW);
        bad["platform"] = "windows-phone".into();
        assert_eq!(
            verify_now(&key.evidence(&bad)).unwrap_err(),
            EvidenceError::UnsupportedPlatform
        );
        let mut bad = claims(NOW);
        bad["evidence"]["sdk"]["binary_sha256"] = "AB".repeat(32).into();
        assert_eq!(
            verify_now(&key.evidence(&bad)).unwrap_err(),
            EvidenceError::Field("evidence.sdk.binary_sha256")
        );

        assert!(verify_now(&good).is_ok());
    }

    #[test]
    fn malformed_and_invalid_are_told_apart() {
        assert!(EvidenceError::Jws(JwsError::Malformed("x")).is_malformed());
        assert!(!EvidenceError::Jws(JwsError::BadSignature).is_malformed());
        assert!(!EvidenceError::Jws(JwsError::AlgorithmNotAllowed).is_malformed());
        assert!(!EvidenceError::Stale.is_malformed());
    }
}
