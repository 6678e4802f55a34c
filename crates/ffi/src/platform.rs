//! What the app's platform code implements: the installation key's signer (Android Keystore,
//! the Secure Enclave) and the platform step of an attestation (Android Key Attestation, App
//! Attest, Play Integrity). Foreign implementations are adapted here to the SDK's
//! [`medgate_sdk::signer::PlatformSign`] and [`medgate_sdk::platform::PlatformAttester`]; the
//! checks (signatures verify under the public key, a step is answered by its own statement)
//! live in the SDK.

use std::sync::Arc;

use medgate_sdk::evidence::PlatformEvidence;
use medgate_sdk::platform::{self as sdk, PlatformAttester};
use medgate_sdk::signer::{PlatformAgree, PlatformSign};

use crate::MedgateError;

/// The installation key, held by the platform. The private key never reaches Rust.
#[uniffi::export(with_foreign)]
pub trait InstallationSigner: Send + Sync {
    /// The public key: an uncompressed P-256 point (65 bytes, `0x04 ‖ x ‖ y`, what
    /// `SecKeyCopyExternalRepresentation` returns) or a DER SubjectPublicKeyInfo (what
    /// `java.security.PublicKey.getEncoded()` returns). Asked once, when the client is made.
    fn public_key(&self) -> Result<Vec<u8>, MedgateError>;

    /// ECDSA P-256 with SHA-256 over `message` (the platform hashes it): 64 bytes `r ‖ s`, or
    /// the DER signature that Android's `Signature("SHA256withECDSA")` and
    /// `SecKeyCreateSignature(.ecdsaSignatureMessageX962SHA256)` return.
    fn sign(&self, message: Vec<u8>) -> Result<Vec<u8>, MedgateError>;
}

/// The installation's key-agreement key, held by the platform (Android Keystore with
/// `PURPOSE_AGREE_KEY`, a Secure Enclave key): another key than the signer's, as hardware
/// keystores give one key one purpose. Secrets the control plane seals to it open on the phone:
/// the agreement runs here, the key wrap and decryption in Rust.
#[uniffi::export(with_foreign)]
pub trait KeyAgreementKey: Send + Sync {
    /// The public key, in either form [`InstallationSigner::public_key`] takes.
    fn public_key(&self) -> Result<Vec<u8>, MedgateError>;

    /// ECDH with `peer` (an uncompressed P-256 point, 65 bytes): the 32-byte shared x
    /// coordinate, as Android's `KeyAgreement("ECDH").generateSecret()` and
    /// `SecKeyCopyKeyExchangeResult(.ecdhKeyExchangeStandard)` return it.
    fn agree(&self, peer: Vec<u8>) -> Result<Vec<u8>, MedgateError>;
}

/// A foreign key-agreement key as the SDK's [`PlatformAgree`].
pub(crate) struct ForeignAgreement(pub Arc<dyn KeyAgreementKey>);

impl PlatformAgree for ForeignAgreement {
    fn agree(&self, peer: &[u8]) -> Result<Vec<u8>, String> {
        self.0.agree(peer.to_vec()).map_err(reason)
    }
}

/// A foreign signer as the SDK's [`PlatformSign`].
pub(crate) struct ForeignSigner(pub Arc<dyn InstallationSigner>);

impl PlatformSign for ForeignSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.0.sign(message.to_vec()).map_err(reason)
    }
}

/// The app's own words for a failure it raised.
pub(crate) fn reason(error: MedgateError) -> String {
    match error {
        MedgateError::Config { reason }
        | MedgateError::Network { reason }
        | MedgateError::Protocol { reason }
        | MedgateError::Platform { reason }
        | MedgateError::Pins { reason }
        | MedgateError::Internal { reason } => reason,
        other @ (MedgateError::Refused { .. } | MedgateError::PinMismatch { .. }) => {
            other.to_string()
        }
    }
}

/// How the client attests (see [`PlatformStep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AttestationMethod {
    /// medgate's SDK evidence: the app's own word.
    Sdk,
    AndroidKeyAttestation,
    AppleAppAttest,
    PlayIntegrity,
}

impl From<AttestationMethod> for sdk::AttestationMethod {
    fn from(method: AttestationMethod) -> Self {
        match method {
            AttestationMethod::Sdk => sdk::AttestationMethod::Sdk,
            AttestationMethod::AndroidKeyAttestation => {
                sdk::AttestationMethod::AndroidKeyAttestation
            }
            AttestationMethod::AppleAppAttest => sdk::AttestationMethod::AppleAppAttest,
            AttestationMethod::PlayIntegrity => sdk::AttestationMethod::PlayIntegrity,
        }
    }
}

impl From<sdk::AttestationMethod> for AttestationMethod {
    fn from(method: sdk::AttestationMethod) -> Self {
        match method {
            sdk::AttestationMethod::Sdk => AttestationMethod::Sdk,
            sdk::AttestationMethod::AndroidKeyAttestation => {
                AttestationMethod::AndroidKeyAttestation
            }
            sdk::AttestationMethod::AppleAppAttest => AttestationMethod::AppleAppAttest,
            sdk::AttestationMethod::PlayIntegrity => AttestationMethod::PlayIntegrity,
        }
    }
}

/// What the platform is asked to attest. Every byte string it must commit to is
/// SHA-256(challenge ‖ installation key thumbprint).
#[derive(Debug, Clone, uniffi::Enum)]
pub enum PlatformStep {
    /// Generate a Keystore key with `setAttestationChallenge(challenge)`; return its chain.
    AndroidKeyAttestation { challenge: Vec<u8> },
    /// `DCAppAttestService.generateKey`, then `attestKey(keyId, clientDataHash:)`.
    AppAttestKey { client_data_hash: Vec<u8> },
    /// `DCAppAttestService.generateAssertion(keyId, clientDataHash:)`.
    AppAttestAssertion {
        key_id: Vec<u8>,
        client_data_hash: Vec<u8>,
    },
    /// A Play Integrity standard request with `setRequestHash(request_hash)`.
    PlayIntegrity { request_hash: String },
}

/// The platform's answer to a [`PlatformStep`], as its API returned it. (No `Debug`: a Play
/// Integrity token is not for logs.)
#[derive(Clone, uniffi::Enum)]
pub enum PlatformStatement {
    /// The attested key's certificate chain, leaf first, DER.
    AndroidKeyAttestation {
        certificate_chain: Vec<Vec<u8>>,
    },
    /// The new key's id (raw bytes: the base64-decoded `keyId`) and attestation object;
    /// `app_id` (`TEAMID.bundle.id`) for a self-built app.
    AppAttestKey {
        key_id: Vec<u8>,
        attestation_object: Vec<u8>,
        app_id: Option<String>,
    },
    AppAttestAssertion {
        key_id: Vec<u8>,
        assertion: Vec<u8>,
    },
    PlayIntegrity {
        token: String,
    },
}

/// Performs the platform step of an attestation, for the first attestation and every refresh.
/// Called off the caller's thread; it may block until the platform answers. An error (or any
/// exception) is reported to the app as [`MedgateError::Platform`]; the client never attests
/// with SDK evidence instead.
#[uniffi::export(with_foreign)]
pub trait PlatformAttestor: Send + Sync {
    fn attest(&self, step: PlatformStep) -> Result<PlatformStatement, MedgateError>;
}

/// A foreign attestor as the SDK's [`PlatformAttester`].
pub(crate) struct ForeignAttestor(pub Arc<dyn PlatformAttestor>);

impl PlatformAttester for ForeignAttestor {
    fn attest(&self, step: &sdk::PlatformStep) -> Result<PlatformEvidence, String> {
        let step = match step {
            sdk::PlatformStep::AndroidKeyAttestation { challenge } => {
                PlatformStep::AndroidKeyAttestation {
                    challenge: challenge.to_vec(),
                }
            }
            sdk::PlatformStep::AppAttestKey { client_data_hash } => PlatformStep::AppAttestKey {
                client_data_hash: client_data_hash.to_vec(),
            },
            sdk::PlatformStep::AppAttestAssertion {
                key_id,
                client_data_hash,
            } => PlatformStep::AppAttestAssertion {
                key_id: key_id.clone(),
                client_data_hash: client_data_hash.to_vec(),
            },
            sdk::PlatformStep::PlayIntegrity { request_hash } => PlatformStep::PlayIntegrity {
                request_hash: request_hash.clone(),
            },
        };
        let statement = self.0.attest(step).map_err(reason)?;
        Ok(statement.into())
    }
}

impl From<PlatformStatement> for PlatformEvidence {
    fn from(statement: PlatformStatement) -> Self {
        match statement {
            PlatformStatement::AndroidKeyAttestation { certificate_chain } => {
                PlatformEvidence::AndroidKeyAttestation { certificate_chain }
            }
            PlatformStatement::AppAttestKey {
                key_id,
                attestation_object,
                app_id,
            } => PlatformEvidence::AppleAttestation {
                key_id,
                attestation_object,
                app_id,
            },
            PlatformStatement::AppAttestAssertion { key_id, assertion } => {
                PlatformEvidence::AppleAssertion { key_id, assertion }
            }
            PlatformStatement::PlayIntegrity { token } => PlatformEvidence::PlayIntegrity { token },
        }
    }
}
