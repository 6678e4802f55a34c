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

use medgate_proto::wire::{self, Coverage, EvidenceClaims, Signal, names};
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
    /// A stable code for the refusal (a JWS refusal by its own code).
    pub fn code(&self) -> &'static str {
        match self {
            EvidenceError::Jws(error) => error.code(),
            EvidenceError::WrongType => "wrong_type",
            EvidenceError::MissingKey => "missing_key",
            EvidenceError::Claims(_) => "claims_malformed",
            EvidenceError::Field(_) => "field_invalid",
            EvidenceError::UnsupportedPlatform => "unsupported_platform",
            EvidenceError::Stale => "stale",
        }
    }

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// medgate's own SDK evidence (software only).
    Sdk,
    AppleAppAttest,
    AndroidKeyAttestation,
    PlayIntegrity,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Sdk,
        Platform::AppleAppAttest,
        Platform::AndroidKeyAttestation,
        Platform::PlayIntegrity,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Platform::Sdk => wire::platform::SDK,
            Platform::AppleAppAttest => wire::platform::APPLE_APP_ATTEST,
            Platform::AndroidKeyAttestation => wire::platform::ANDROID_KEY_ATTESTATION,
            Platform::PlayIntegrity => wire::platform::PLAY_INTEGRITY,
        }
    }

    pub fn from_name(name: &str) -> Option<Platform> {
        Platform::ALL
            .into_iter()
            .find(|platform| platform.as_str() == name)
    }
}

/// The platform part of the evidence, decoded (not yet verified: that needs the platform's
/// roots and the installation's stored state, see `crate::platform`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformEvidence {
    /// SHA-256 of the app binary, as lowercase hex.
    Sdk {
        binary_sha256: String,
    },
    /// First contact with an App Attest key.
    AppleAttestation {
        key_id: Vec<u8>,
        object: Vec<u8>,
        app_id: Option<String>,
    },
    /// A later contact, signed by the attested key.
    AppleAssertion {
        key_id: Vec<u8>,
        assertion: Vec<u8>,
    },
    /// DER certificates, leaf first.
    AndroidKeyAttestation {
        chain: Vec<Vec<u8>>,
    },
    PlayIntegrity {
        token: String,
    },
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
    platform_evidence: PlatformEvidence,
    signals: Vec<Signal>,
    coverage: Option<Coverage>,
    enrolment_code: Option<String>,
    encryption_key: Option<PublicJwk>,
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
    pub fn platform_evidence(&self) -> &PlatformEvidence {
        &self.platform_evidence
    }
    pub fn enrolment_code(&self) -> Option<&str> {
        self.enrolment_code.as_deref()
    }
    /// The installation's key-agreement key (a P-256 point on the curve, not the installation
    /// key), signed into the evidence by the installation key.
    pub fn encryption_key(&self) -> Option<&PublicJwk> {
        self.encryption_key.as_ref()
    }
    /// What the platform attestation must commit to: SHA-256(challenge bytes ‖ jkt bytes),
    /// the challenge base64url-decoded and the installation key's RFC 7638 digest. It binds the
    /// platform's statement to this challenge and to the installation key.
    pub fn platform_binding(&self) -> Option<[u8; 32]> {
        binding(&self.challenge, &self.installation_id)
    }
    pub fn signals(&self) -> &[Signal] {
        &self.signals
    }
    /// What the detection pass behind the signals examined, as the app reported it.
    pub fn coverage(&self) -> Option<&Coverage> {
        self.coverage.as_ref()
    }
    pub fn iat(&self) -> UnixTime {
        self.iat
    }
}

const MAX_SIGNAL_KIND: usize = 64;
const MAX_SIGNAL_DETAIL: usize = 1024;
const MAX_CHALLENGE: usize = 128;
const MAX_ENROLMENT_CODE: usize = 128;
const MAX_KEY_ID: usize = 64;
const MAX_APPLE_APP_ID: usize = 256;

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
    check_encryption_key(claims.encryption_key.as_ref(), &key)?;
    // Step 6.
    if !limits.iat.admits(claims.iat, now) {
        return Err(EvidenceError::Stale);
    }
    // Step 7.
    let (platform, platform_evidence) = platform_evidence(&claims)?;
    Ok(VerifiedEvidence {
        installation_id: key.thumbprint(),
        installation_key: key,
        challenge: claims.challenge,
        app_id: claims.app_id,
        app_version: claims.app_version,
        platform,
        platform_evidence,
        signals: claims.signals,
        coverage: claims.coverage,
        enrolment_code: claims.enrolment_code,
        encryption_key: claims.encryption_key,
        iat: UnixTime::from_secs(claims.iat),
    })
}

/// SHA-256(challenge bytes ‖ jkt bytes); `None` if either is not what medgate issues.
pub fn binding(challenge: &str, installation_id: &Thumbprint) -> Option<[u8; 32]> {
    let challenge = medgate_proto::b64::decode(challenge, MAX_CHALLENGE).ok()?;
    let jkt = installation_id.digest()?;
    Some(crate::sha256(&[&challenge, &jkt]))
}

/// An encryption key must be a P-256 point on the curve, and another key than the one that
/// signs: a hardware keystore gives one key one purpose.
fn check_encryption_key(
    encryption: Option<&PublicJwk>,
    installation: &PublicJwk,
) -> Result<(), EvidenceError> {
    let Some(encryption) = encryption else {
        return Ok(());
    };
    let on_curve = matches!(encryption, PublicJwk::P256 { .. })
        && p256::PublicKey::from_sec1_bytes(&encryption.public_key_bytes()).is_ok();
    if !on_curve || encryption == installation {
        return Err(EvidenceError::Field("encryption_key"));
    }
    Ok(())
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
    if let Some(code) = &claims.enrolment_code
        && (code.is_empty() || code.len() > MAX_ENROLMENT_CODE)
    {
        return Err(EvidenceError::Field("enrolment_code"));
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
        if signal
            .confidence
            .as_ref()
            .is_some_and(|confidence| confidence.len() > MAX_SIGNAL_KIND)
        {
            return Err(EvidenceError::Field("signals: confidence"));
        }
    }
    if claims
        .coverage
        .as_ref()
        .is_some_and(|coverage| !names::is_sha256_hex(&coverage.code_sha256))
    {
        return Err(EvidenceError::Field("coverage: code_sha256"));
    }
    Ok(())
}

/// Base64 in either alphabet, padded or not, within a budget.
fn base64_field(text: &str, max_len: usize, field: &'static str) -> Result<Vec<u8>, EvidenceError> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    if text.len() > max_len {
        return Err(EvidenceError::Field(field));
    }
    let trimmed = text.trim_end_matches('=');
    STANDARD
        .decode(text)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .map_err(|_| EvidenceError::Field(field))
}

fn platform_evidence(
    claims: &EvidenceClaims,
) -> Result<(Platform, PlatformEvidence), EvidenceError> {
    let platform =
        Platform::from_name(&claims.platform).ok_or(EvidenceError::UnsupportedPlatform)?;
    let evidence = &claims.evidence;
    let decoded = match platform {
        Platform::Sdk => {
            let sdk = evidence
                .sdk
                .as_ref()
                .ok_or(EvidenceError::Field("evidence.sdk"))?;
            if !names::is_sha256_hex(&sdk.binary_sha256) {
                return Err(EvidenceError::Field("evidence.sdk.binary_sha256"));
            }
            PlatformEvidence::Sdk {
                binary_sha256: sdk.binary_sha256.clone(),
            }
        }
        Platform::AppleAppAttest => {
            let apple = evidence
                .apple_app_attest
                .as_ref()
                .ok_or(EvidenceError::Field("evidence.apple_app_attest"))?;
            let key_id = base64_field(
                &apple.key_id,
                MAX_KEY_ID,
                "evidence.apple_app_attest.key_id",
            )?;
            if let Some(app_id) = &apple.app_id
                && (app_id.is_empty() || app_id.len() > MAX_APPLE_APP_ID || !app_id.contains('.'))
            {
                return Err(EvidenceError::Field("evidence.apple_app_attest.app_id"));
            }
            match (&apple.attestation_object, &apple.assertion) {
                (Some(object), None) => PlatformEvidence::AppleAttestation {
                    key_id,
                    object: base64_field(
                        object,
                        MAX_PLATFORM_FIELD,
                        "evidence.apple_app_attest.attestation_object",
                    )?,
                    app_id: apple.app_id.clone(),
                },
                (None, Some(assertion)) => PlatformEvidence::AppleAssertion {
                    key_id,
                    assertion: base64_field(
                        assertion,
                        MAX_PLATFORM_FIELD,
                        "evidence.apple_app_attest.assertion",
                    )?,
                },
                _ => {
                    return Err(EvidenceError::Field(
                        "evidence.apple_app_attest: exactly one of attestation_object, assertion",
                    ));
                }
            }
        }
        Platform::AndroidKeyAttestation => {
            let android = evidence
                .android_key_attestation
                .as_ref()
                .ok_or(EvidenceError::Field("evidence.android_key_attestation"))?;
            if android.certificate_chain.is_empty()
                || android.certificate_chain.len() > crate::x509::MAX_CHAIN
            {
                return Err(EvidenceError::Field(
                    "evidence.android_key_attestation.certificate_chain",
                ));
            }
            let chain = android
                .certificate_chain
                .iter()
                .map(|cert| {
                    base64_field(
                        cert,
                        MAX_PLATFORM_FIELD,
                        "evidence.android_key_attestation.certificate_chain",
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            PlatformEvidence::AndroidKeyAttestation { chain }
        }
        Platform::PlayIntegrity => {
            let play = evidence
                .play_integrity
                .as_ref()
                .ok_or(EvidenceError::Field("evidence.play_integrity"))?;
            if play.token.is_empty() || play.token.len() > MAX_PLATFORM_FIELD {
                return Err(EvidenceError::Field("evidence.play_integrity.token"));
            }
            PlatformEvidence::PlayIntegrity {
                token: play.token.clone(),
            }
        }
    };
    Ok((platform, decoded))
}

/// The largest base64 field inside the evidence (the whole JWS is bounded too).
const MAX_PLATFORM_FIELD: usize = 48 * 1024;

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
            verified.platform_evidence(),
            &PlatformEvidence::Sdk {
                binary_sha256: "ab".repeat(32)
            }
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
        let coverage = serde_json::json!({"maps_lines": 40, "threads": 2, "modules": 3,
            "code_bytes": 100_000, "got_slots": 90, "code_sha256": "0f".repeat(32)});
        let mut covered = claims(NOW);
        covered["coverage"] = coverage.clone();
        let verified = verify_now(&key.evidence(&covered)).unwrap();
        assert_eq!(verified.coverage().map(|c| c.modules), Some(3));
        let mut bad = covered.clone();
        bad["coverage"]["code_sha256"] = "0F".repeat(32).into();
        assert_eq!(
            verify_now(&key.evidence(&bad)).unwrap_err(),
            EvidenceError::Field("coverage: code_sha256")
        );
        for (member, value) in [
            ("threads", serde_json::json!(-1)),
            ("modules", serde_json::json!(1u64 << 32)),
            ("extra", serde_json::json!(1)),
        ] {
            let mut bad = covered.clone();
            bad["coverage"][member] = value;
            assert!(verify_now(&key.evidence(&bad)).unwrap_err().is_malformed());
        }
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
    fn an_encryption_key_is_another_p256_key_on_the_curve() {
        let key = TestKey::new(1);
        let other = TestKey::new(2);
        let with = |jwk: serde_json::Value| {
            let mut claims = claims(NOW);
            claims["encryption_key"] = jwk;
            verify_now(&key.evidence(&claims))
        };
        let verified = with(serde_json::to_value(other.jwk()).unwrap()).unwrap();
        assert_eq!(verified.encryption_key(), Some(&other.jwk()));
        assert_eq!(
            verify_now(&key.evidence(&claims(NOW)))
                .unwrap()
                .encryption_key(),
            None
        );
        // The installation key itself: one key, one purpose.
        assert_eq!(
            with(serde_json::to_value(key.jwk()).unwrap()).unwrap_err(),
            EvidenceError::Field("encryption_key")
        );
        // A point off the curve, and an Ed25519 key.
        let b64 = |byte: u8| medgate_proto::b64::encode([byte; 32]);
        assert_eq!(
            with(serde_json::json!({"kty": "EC", "crv": "P-256", "x": b64(1), "y": b64(2)}))
                .unwrap_err(),
            EvidenceError::Field("encryption_key")
        );
        assert_eq!(
            with(serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64(3)})).unwrap_err(),
            EvidenceError::Field("encryption_key")
        );
        // Private key material is malformed evidence.
        let mut private = serde_json::to_value(other.jwk()).unwrap();
        private["d"] = b64(4).into();
        assert!(with(private).unwrap_err().is_malformed());
    }

    #[test]
    fn hardware_platform_shapes_are_decoded_and_bounded() {
        let key = TestKey::new(1);
        let with = |platform: &str, evidence: serde_json::Value| {
            let mut claims = claims(NOW);
            claims["platform"] = platform.into();
            claims["evidence"] = evidence;
            verify_now(&key.evidence(&claims))
        };
        let apple = with("apple-app-attest", serde_json::json!({"apple_app_attest": {"key_id": "AAEC", "attestation_object": "o2NmbXQ="}})).unwrap();
        assert_eq!(
            apple.platform_evidence(),
            &PlatformEvidence::AppleAttestation {
                key_id: vec![0, 1, 2],
                object: vec![0xa3, 0x63, 0x66, 0x6d, 0x74],
                app_id: None
            }
        );
        let assertion = with(
            "apple-app-attest",
            serde_json::json!({"apple_app_attest": {"key_id": "AAEC", "assertion": "AQ"}}),
        )
        .unwrap();
        assert!(matches!(
            assertion.platform_evidence(),
            PlatformEvidence::AppleAssertion { .. }
        ));
        let both = with(
            "apple-app-attest",
            serde_json::json!({"apple_app_attest": {"key_id": "AAEC", "assertion": "AQ", "attestation_object": "AQ"}}),
        );
        assert!(both.unwrap_err().to_string().contains("exactly one"));
        let android = with(
            "android-key-attestation",
            serde_json::json!({"android_key_attestation": {"certificate_chain": ["MAA=", "MAA"]}}),
        )
        .unwrap();
        assert_eq!(
            android.platform_evidence(),
            &PlatformEvidence::AndroidKeyAttestation {
                chain: vec![vec![0x30, 0], vec![0x30, 0]]
            }
        );
        let too_long =
            serde_json::json!({"android_key_attestation": {"certificate_chain": vec!["MAA="; 11]}});
        assert!(with("android-key-attestation", too_long).is_err());
        assert!(
            with(
                "android-key-attestation",
                serde_json::json!({"android_key_attestation": {"certificate_chain": ["!!"]}})
            )
            .is_err()
        );
        let play = with(
            "play-integrity",
            serde_json::json!({"play_integrity": {"token": "a.b.c.d.e"}}),
        )
        .unwrap();
        assert_eq!(
            play.platform_evidence(),
            &PlatformEvidence::PlayIntegrity {
                token: "a.b.c.d.e".into()
            }
        );
        assert_eq!(
            with("play-integrity", serde_json::json!({})).unwrap_err(),
            EvidenceError::Field("evidence.play_integrity")
        );
        for error in [
            with("apple-app-attest", serde_json::json!({})).unwrap_err(),
            with("android-key-attestation", serde_json::json!({})).unwrap_err(),
        ] {
            assert!(error.is_malformed(), "{error}");
        }
    }

    #[test]
    fn the_platform_binding_commits_to_challenge_and_key() {
        let key = TestKey::new(1);
        let mut with_challenge = claims(NOW);
        with_challenge["challenge"] = medgate_proto::b64::encode([9u8; 32]).into();
        let evidence = verify_now(&key.evidence(&with_challenge)).unwrap();
        let mut expected = vec![9u8; 32];
        expected.extend_from_slice(&key.jwk().thumbprint().digest().unwrap());
        let digest = ring::digest::digest(&ring::digest::SHA256, &expected);
        assert_eq!(
            evidence.platform_binding().unwrap().as_slice(),
            digest.as_ref()
        );
        let other = verify_now(&TestKey::new(2).evidence(&with_challenge)).unwrap();
        assert_ne!(other.platform_binding(), evidence.platform_binding());
        // The sample claims' challenge ("Y2hhbGxlbmdl") is base64url too; a non-base64 one has no binding.
        let mut odd = claims(NOW);
        odd["challenge"] = "not base64!".into();
        assert!(
            verify_now(&key.evidence(&odd))
                .unwrap()
                .platform_binding()
                .is_none()
        );
    }

    #[test]
    fn malformed_and_invalid_are_told_apart() {
        assert!(EvidenceError::Jws(JwsError::Malformed("x")).is_malformed());
        assert!(!EvidenceError::Jws(JwsError::BadSignature).is_malformed());
        assert!(!EvidenceError::Jws(JwsError::AlgorithmNotAllowed).is_malformed());
        assert!(!EvidenceError::Stale.is_malformed());
    }
}
