//! The platform step of an attestation: what the app's platform code is asked to attest, and
//! how a client that attested with hardware keeps doing so when it refreshes.
//!
//! The SDK cannot call Android Keystore, Play Integrity or `DCAppAttestService` itself; the
//! app does, through a [`PlatformAttester`]. For each attestation the client names the step
//! ([`PlatformStep`]) with the bytes the platform must commit to (SHA-256(challenge ‖ jkt),
//! [`crate::evidence::platform_binding`]), and checks that the answer is a statement of that
//! same step: a hardware client never falls back to SDK evidence on its own.

use medgate_proto::b64;

use crate::evidence::PlatformEvidence;

/// How an installation attests. A client remembers the method it last attested with and
/// refreshes its token the same way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AttestationMethod {
    /// medgate's software evidence (the app's own word).
    #[default]
    Sdk,
    AndroidKeyAttestation,
    AppleAppAttest,
    PlayIntegrity,
}

impl AttestationMethod {
    /// The method a statement belongs to.
    pub fn of(evidence: &PlatformEvidence) -> Self {
        match evidence {
            PlatformEvidence::Sdk { .. } => AttestationMethod::Sdk,
            PlatformEvidence::AndroidKeyAttestation { .. } => {
                AttestationMethod::AndroidKeyAttestation
            }
            PlatformEvidence::AppleAttestation { .. } | PlatformEvidence::AppleAssertion { .. } => {
                AttestationMethod::AppleAppAttest
            }
            PlatformEvidence::PlayIntegrity { .. } => AttestationMethod::PlayIntegrity,
        }
    }
}

/// What the platform is asked to attest, with the bytes it must commit to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlatformStep {
    /// Generate a key with `KeyGenParameterSpec.Builder.setAttestationChallenge(challenge)`
    /// and return its certificate chain.
    AndroidKeyAttestation { challenge: [u8; 32] },
    /// `DCAppAttestService.generateKey`, then `attestKey(keyId, clientDataHash:)`.
    AppAttestKey { client_data_hash: [u8; 32] },
    /// `DCAppAttestService.generateAssertion(keyId, clientDataHash:)` with the key attested
    /// before.
    AppAttestAssertion {
        key_id: Vec<u8>,
        client_data_hash: [u8; 32],
    },
    /// A Play Integrity standard request with `setRequestHash(request_hash)`.
    PlayIntegrity { request_hash: String },
}

impl PlatformStep {
    /// The step for `method` over `binding`; App Attest asserts once a key was attested.
    /// `None` for SDK evidence, which needs no platform.
    pub fn for_method(
        method: AttestationMethod,
        binding: [u8; 32],
        app_attest_key: Option<&[u8]>,
    ) -> Option<Self> {
        Some(match method {
            AttestationMethod::Sdk => return None,
            AttestationMethod::AndroidKeyAttestation => {
                PlatformStep::AndroidKeyAttestation { challenge: binding }
            }
            AttestationMethod::AppleAppAttest => match app_attest_key {
                Some(key_id) => PlatformStep::AppAttestAssertion {
                    key_id: key_id.to_vec(),
                    client_data_hash: binding,
                },
                None => PlatformStep::AppAttestKey {
                    client_data_hash: binding,
                },
            },
            AttestationMethod::PlayIntegrity => PlatformStep::PlayIntegrity {
                request_hash: b64::encode(binding),
            },
        })
    }

    /// Whether `statement` answers this step: the same platform, and for an assertion the
    /// same App Attest key.
    pub fn answered_by(&self, statement: &PlatformEvidence) -> bool {
        match (self, statement) {
            (
                PlatformStep::AndroidKeyAttestation { .. },
                PlatformEvidence::AndroidKeyAttestation { .. },
            )
            | (PlatformStep::AppAttestKey { .. }, PlatformEvidence::AppleAttestation { .. })
            | (PlatformStep::PlayIntegrity { .. }, PlatformEvidence::PlayIntegrity { .. }) => true,
            (
                PlatformStep::AppAttestAssertion { key_id, .. },
                PlatformEvidence::AppleAssertion {
                    key_id: answered, ..
                },
            ) => key_id == answered,
            _ => false,
        }
    }
}

/// The app's platform code: performs a [`PlatformStep`] and returns the platform's statement.
/// Called on a blocking thread; it may take as long as the platform does. An error is the
/// platform's message, reported to the app as it is.
pub trait PlatformAttester: Send + Sync {
    fn attest(&self, step: &PlatformStep) -> Result<PlatformEvidence, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_method_and_only_their_own_statement_answers_them() {
        let binding = [3u8; 32];
        assert_eq!(
            PlatformStep::for_method(AttestationMethod::Sdk, binding, None),
            None
        );
        let android =
            PlatformStep::for_method(AttestationMethod::AndroidKeyAttestation, binding, None)
                .unwrap();
        let first =
            PlatformStep::for_method(AttestationMethod::AppleAppAttest, binding, None).unwrap();
        let later =
            PlatformStep::for_method(AttestationMethod::AppleAppAttest, binding, Some(&[1]))
                .unwrap();
        let play =
            PlatformStep::for_method(AttestationMethod::PlayIntegrity, binding, None).unwrap();
        assert_eq!(
            play,
            PlatformStep::PlayIntegrity {
                request_hash: b64::encode(binding)
            }
        );
        let sdk = PlatformEvidence::Sdk {
            binary_sha256: "00".into(),
        };
        let chain = PlatformEvidence::AndroidKeyAttestation {
            certificate_chain: vec![],
        };
        let attestation = PlatformEvidence::AppleAttestation {
            key_id: vec![1],
            attestation_object: vec![],
            app_id: None,
        };
        let assertion = |key_id: u8| PlatformEvidence::AppleAssertion {
            key_id: vec![key_id],
            assertion: vec![],
        };
        let token = PlatformEvidence::PlayIntegrity { token: "t".into() };
        for step in [&android, &first, &later, &play] {
            assert!(!step.answered_by(&sdk), "{step:?} answered by SDK evidence");
        }
        assert!(android.answered_by(&chain) && !android.answered_by(&token));
        assert!(first.answered_by(&attestation) && !first.answered_by(&assertion(1)));
        assert!(later.answered_by(&assertion(1)) && !later.answered_by(&assertion(2)));
        assert!(!later.answered_by(&attestation));
        assert!(play.answered_by(&token) && !play.answered_by(&chain));
        assert_eq!(
            AttestationMethod::of(&assertion(1)),
            AttestationMethod::AppleAppAttest
        );
    }
}
