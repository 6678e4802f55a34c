//! The evidence an installation posts to `/v1/attest`: a compact JWS signed by the
//! installation key, with the public key in the header (`typ` `medgate-evidence+jwt`).
//!
//! For hardware platforms the app first asks the platform to attest [`platform_binding`]:
//! SHA-256(challenge ‖ installation key thumbprint). It is the `clientDataHash` for App Attest,
//! the `attestationChallenge` for Android Key Attestation and (base64url) the `requestHash`
//! for Play Integrity, so the platform's statement covers this challenge and this key.

use medgate_proto::jws::HeaderFields;
use medgate_proto::wire::{
    self, AndroidKeyAttestationEvidence, AppleAppAttestEvidence, Coverage, Evidence,
    EvidenceClaims, PlayIntegrityEvidence, SdkEvidence, Signal,
};
use medgate_proto::{PublicJwk, b64};
use sha2::{Digest, Sha256};

use crate::signer::{Signer, SignerError, sign_compact};

/// What the app says about itself.
#[derive(Debug, Clone)]
pub struct AppIdentity {
    pub app_id: String,
    pub app_version: String,
    /// Lowercase hex SHA-256 of the app binary (see [`crate::measure`]), for SDK evidence.
    pub binary_sha256: String,
}

/// The platform's statement, as the platform API returned it. Its `Debug` names the platform
/// and the sizes only: a Play Integrity token is not for logs.
#[derive(Clone, PartialEq, Eq)]
pub enum PlatformEvidence {
    /// medgate's software evidence: the binary's measurement.
    Sdk { binary_sha256: String },
    /// `DCAppAttestService.attestKey` output, first contact. `app_id` is `TEAMID.bundle.id`
    /// (needed for self-built apps).
    AppleAttestation {
        key_id: Vec<u8>,
        attestation_object: Vec<u8>,
        app_id: Option<String>,
    },
    /// `DCAppAttestService.generateAssertion` output, later contacts.
    AppleAssertion { key_id: Vec<u8>, assertion: Vec<u8> },
    /// The attested key's certificate chain from Android KeyStore, leaf first, DER.
    AndroidKeyAttestation { certificate_chain: Vec<Vec<u8>> },
    /// A Play Integrity token.
    PlayIntegrity { token: String },
}

impl std::fmt::Debug for PlatformEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlatformEvidence::Sdk { binary_sha256 } => {
                write!(f, "Sdk {{ binary_sha256: {binary_sha256} }}")
            }
            PlatformEvidence::AppleAttestation {
                attestation_object, ..
            } => write!(f, "AppleAttestation({} bytes)", attestation_object.len()),
            PlatformEvidence::AppleAssertion { assertion, .. } => {
                write!(f, "AppleAssertion({} bytes)", assertion.len())
            }
            PlatformEvidence::AndroidKeyAttestation { certificate_chain } => write!(
                f,
                "AndroidKeyAttestation({} certificates)",
                certificate_chain.len()
            ),
            PlatformEvidence::PlayIntegrity { token } => {
                write!(f, "PlayIntegrity({} bytes)", token.len())
            }
        }
    }
}

impl PlatformEvidence {
    fn wire(&self) -> (&'static str, Evidence) {
        let mut evidence = Evidence::default();
        let platform = match self {
            PlatformEvidence::Sdk { binary_sha256 } => {
                evidence.sdk = Some(SdkEvidence {
                    binary_sha256: binary_sha256.clone(),
                });
                wire::platform::SDK
            }
            PlatformEvidence::AppleAttestation {
                key_id,
                attestation_object,
                app_id,
            } => {
                evidence.apple_app_attest = Some(AppleAppAttestEvidence {
                    key_id: b64::encode(key_id),
                    attestation_object: Some(b64::encode(attestation_object)),
                    assertion: None,
                    app_id: app_id.clone(),
                });
                wire::platform::APPLE_APP_ATTEST
            }
            PlatformEvidence::AppleAssertion { key_id, assertion } => {
                evidence.apple_app_attest = Some(AppleAppAttestEvidence {
                    key_id: b64::encode(key_id),
                    attestation_object: None,
                    assertion: Some(b64::encode(assertion)),
                    app_id: None,
                });
                wire::platform::APPLE_APP_ATTEST
            }
            PlatformEvidence::AndroidKeyAttestation { certificate_chain } => {
                evidence.android_key_attestation = Some(AndroidKeyAttestationEvidence {
                    certificate_chain: certificate_chain.iter().map(b64::encode).collect(),
                });
                wire::platform::ANDROID_KEY_ATTESTATION
            }
            PlatformEvidence::PlayIntegrity { token } => {
                evidence.play_integrity = Some(PlayIntegrityEvidence {
                    token: token.clone(),
                });
                wire::platform::PLAY_INTEGRITY
            }
        };
        (platform, evidence)
    }
}

/// SHA-256(challenge bytes ‖ thumbprint bytes): what the platform must attest. `None` if the
/// challenge is not base64url (not one medgate issued).
pub fn platform_binding(key: &dyn Signer, challenge: &str) -> Option<[u8; 32]> {
    let challenge = b64::decode(challenge, 128).ok()?;
    let jkt = key.thumbprint().digest()?;
    let mut hasher = Sha256::new();
    hasher.update(&challenge);
    hasher.update(jkt);
    Some(hasher.finalize().into())
}

/// Everything an evidence JWS carries besides the platform statement.
#[derive(Debug, Clone)]
pub struct EvidenceContext<'a> {
    pub app_id: &'a str,
    pub app_version: &'a str,
    pub challenge: &'a str,
    pub signals: Vec<Signal>,
    /// What the detection pass behind `signals` examined.
    pub coverage: Option<Coverage>,
    /// A one-time code enrolling a self-built app.
    pub enrolment_code: Option<String>,
    /// The installation's key-agreement key, for secrets sealed to it.
    pub encryption_key: Option<PublicJwk>,
    pub iat: i64,
}

/// Signs evidence for any platform.
pub fn evidence(
    key: &dyn Signer,
    context: EvidenceContext<'_>,
    platform: &PlatformEvidence,
) -> Result<String, SignerError> {
    let (platform, evidence) = platform.wire();
    let claims = EvidenceClaims {
        challenge: context.challenge.to_string(),
        app_id: context.app_id.to_string(),
        app_version: context.app_version.to_string(),
        platform: platform.into(),
        iat: context.iat,
        evidence,
        signals: context.signals,
        coverage: context.coverage,
        enrolment_code: context.enrolment_code,
        encryption_key: context.encryption_key,
    };
    let header = HeaderFields {
        typ: Some(wire::TYP_EVIDENCE),
        kid: None,
        jwk: Some(key.public_jwk()),
    };
    sign_compact(header, &claims, key)
}

/// Signs SDK evidence answering `challenge` at `iat`.
pub fn sdk_evidence(
    key: &dyn Signer,
    app: &AppIdentity,
    challenge: &str,
    signals: Vec<Signal>,
    iat: i64,
) -> Result<String, SignerError> {
    let context = EvidenceContext {
        app_id: &app.app_id,
        app_version: &app.app_version,
        challenge,
        signals,
        coverage: None,
        enrolment_code: None,
        encryption_key: None,
        iat,
    };
    evidence(
        key,
        context,
        &PlatformEvidence::Sdk {
            binary_sha256: app.binary_sha256.clone(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::InstallationKey;

    #[test]
    fn the_binding_covers_challenge_and_key() {
        let key = InstallationKey::generate().unwrap();
        let challenge = b64::encode([5u8; 32]);
        let binding = platform_binding(&key, &challenge).unwrap();
        let mut expected = vec![5u8; 32];
        expected.extend_from_slice(&key.thumbprint().digest().unwrap());
        assert_eq!(binding.as_slice(), Sha256::digest(&expected).as_slice());
        assert_ne!(
            Some(binding),
            platform_binding(&InstallationKey::generate().unwrap(), &challenge)
        );
        assert_eq!(platform_binding(&key, "not base64!"), None);
    }

    #[test]
    fn each_platform_has_its_wire_shape() {
        let key = InstallationKey::generate().unwrap();
        let context = || EvidenceContext {
            app_id: "a.b",
            app_version: "1",
            challenge: "c",
            signals: vec![],
            coverage: None,
            enrolment_code: Some("mge_x".into()),
            encryption_key: None,
            iat: 1,
        };
        let payload = |jws: String| -> serde_json::Value {
            serde_json::from_slice(&b64::decode(jws.split('.').nth(1).unwrap(), 65536).unwrap())
                .unwrap()
        };
        let android = payload(
            evidence(
                &key,
                context(),
                &PlatformEvidence::AndroidKeyAttestation {
                    certificate_chain: vec![vec![0x30, 0]],
                },
            )
            .unwrap(),
        );
        assert_eq!(android["platform"], "android-key-attestation");
        assert_eq!(
            android["evidence"]["android_key_attestation"]["certificate_chain"][0],
            "MAA"
        );
        assert_eq!(android["enrolment_code"], "mge_x");
        let apple = payload(
            evidence(
                &key,
                context(),
                &PlatformEvidence::AppleAssertion {
                    key_id: vec![1],
                    assertion: vec![2],
                },
            )
            .unwrap(),
        );
        assert_eq!(
            apple["evidence"]["apple_app_attest"],
            serde_json::json!({"key_id": "AQ", "assertion": "Ag"})
        );
        let play = payload(
            evidence(
                &key,
                context(),
                &PlatformEvidence::PlayIntegrity { token: "t".into() },
            )
            .unwrap(),
        );
        assert_eq!(play["evidence"]["play_integrity"]["token"], "t");
    }
}
