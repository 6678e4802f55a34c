//! The signer seam: whatever holds the installation key.
//!
//! Every signature the SDK makes (evidence, DPoP proofs) goes through [`Signer`]. On a Linux
//! hub or in tests that is [`crate::key::InstallationKey`], a software key in a file. On a
//! phone it is a [`PlatformKey`]: the key lives in Android Keystore (TEE or StrongBox) or the
//! Secure Enclave, the app's platform code signs, and Rust only ever sees the public key and
//! the signatures. A platform key's every signature is checked against its public key before
//! it is used, so a broken or confused platform signer is a clear error here rather than a
//! proof the gateway refuses later.
//!
//! ```text
//!   evidence::evidence ─┐
//!   proof::dpop_proof ──┼─▶ &dyn Signer ─┬─ InstallationKey (file, RustCrypto)
//!   evidence::platform_binding (jkt) ─┘  └─ PlatformKey ─▶ PlatformSign (Kotlin, Swift, Python)
//! ```

use std::cell::RefCell;

use medgate_proto::jws::{HeaderFields, JwsSigner, SignError};
use medgate_proto::{Alg, PublicJwk, Thumbprint};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

/// The largest signature a platform signer may hand back (a DER ECDSA-Sig-Value for P-256 is
/// at most 72 bytes).
const MAX_PLATFORM_SIGNATURE: usize = 128;

/// Why a signature could not be made. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The platform's own signer failed; its message, as the app's code gave it.
    #[error("the platform signer failed: {0}")]
    Platform(String),
    #[error(
        "the platform's public key is neither an uncompressed P-256 point nor a P-256 SubjectPublicKeyInfo"
    )]
    PublicKey,
    #[error(
        "the platform signer returned {0} bytes, neither a 64-byte r‖s nor a DER ECDSA signature"
    )]
    Malformed(usize),
    #[error("the platform signer's signature does not verify under its public key")]
    Mismatch,
    #[error("the JWS header or payload could not be serialised")]
    Encode,
}

/// Holds the installation key: ECDSA P-256 with SHA-256 (ES256).
pub trait Signer: Send + Sync {
    /// The public key, published in every proof's header.
    fn public_jwk(&self) -> &PublicJwk;

    /// ES256 over `message` (the signer hashes it): `r ‖ s`, 32 bytes each.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignerError>;

    /// The installation id: the public key's RFC 7638 thumbprint.
    fn thumbprint(&self) -> Thumbprint {
        self.public_jwk().thumbprint()
    }
}

/// A compact JWS signed by `signer`, with the signer's own error when it fails.
pub fn sign_compact(
    fields: HeaderFields<'_>,
    payload: &impl serde::Serialize,
    signer: &dyn Signer,
) -> Result<String, SignerError> {
    let jws = Jws {
        signer,
        failure: RefCell::new(None),
    };
    medgate_proto::jws::sign_compact(fields, payload, &jws)
        .map_err(|_| jws.failure.take().unwrap_or(SignerError::Encode))
}

/// A [`Signer`] as the JWS code wants it, keeping the signer's error.
struct Jws<'a> {
    signer: &'a dyn Signer,
    failure: RefCell<Option<SignerError>>,
}

impl JwsSigner for Jws<'_> {
    fn alg(&self) -> Alg {
        Alg::Es256
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        match self.signer.sign(signing_input) {
            Ok(signature) => Ok(signature.to_vec()),
            Err(error) => {
                *self.failure.borrow_mut() = Some(error);
                Err(SignError::Backend)
            }
        }
    }
}

/// What the app's platform code does: sign `message` with ECDSA P-256 / SHA-256 under the
/// key it holds, and return either `r ‖ s` or the DER `ECDSA-Sig-Value` that Android's
/// `Signature("SHA256withECDSA")` and Apple's `SecKeyCreateSignature` produce.
pub trait PlatformSign: Send + Sync {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// A P-256 public key as a platform reports it: an uncompressed SEC1 point (65 bytes, what
/// `SecKeyCopyExternalRepresentation` returns) or a DER SubjectPublicKeyInfo (what Java's
/// `PublicKey.getEncoded()` returns), as a key and its JWK.
pub fn platform_public_key(public_key: &[u8]) -> Result<(VerifyingKey, PublicJwk), SignerError> {
    let verifying = if public_key.first() == Some(&0x04) && public_key.len() == 65 {
        VerifyingKey::from_sec1_bytes(public_key).map_err(|_| SignerError::PublicKey)?
    } else {
        VerifyingKey::from_public_key_der(public_key).map_err(|_| SignerError::PublicKey)?
    };
    let point = verifying.to_sec1_point(false);
    let public = PublicJwk::from_p256_sec1(point.as_bytes()).map_err(|_| SignerError::PublicKey)?;
    Ok((verifying, public))
}

/// What the app's platform code does with its key-agreement key (Android Keystore
/// `PURPOSE_AGREE_KEY` through `KeyAgreement("ECDH")`, the Secure Enclave through
/// `SecKeyCopyKeyExchangeResult(.ecdhKeyExchangeStandard)`): ECDH with `peer` (an uncompressed
/// point on P-256), returning the 32-byte shared x coordinate.
pub trait PlatformAgree: Send + Sync {
    fn agree(&self, peer: &[u8]) -> Result<Vec<u8>, String>;
}

/// An installation's key-agreement key held by the platform; secrets sealed to it open on the
/// phone (the key wrap and decryption run here, the agreement in the keystore).
pub struct PlatformAgreementKey {
    public: PublicJwk,
    platform: Box<dyn PlatformAgree>,
}

impl PlatformAgreementKey {
    /// `public_key` in either form [`platform_public_key`] reads.
    pub fn new(public_key: &[u8], platform: Box<dyn PlatformAgree>) -> Result<Self, SignerError> {
        let (_, public) = platform_public_key(public_key)?;
        Ok(PlatformAgreementKey { public, platform })
    }
}

impl medgate_trust::jwe::KeyAgreement for PlatformAgreementKey {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    fn shared_secret(
        &self,
        peer: &[u8; 65],
    ) -> Result<zeroize::Zeroizing<[u8; 32]>, medgate_trust::jwe::JweError> {
        let shared = zeroize::Zeroizing::new(
            self.platform
                .agree(peer)
                .map_err(|_| medgate_trust::jwe::JweError::KeyAgreement)?,
        );
        let mut out = zeroize::Zeroizing::new([0u8; 32]);
        if shared.len() != out.len() {
            return Err(medgate_trust::jwe::JweError::KeyAgreement);
        }
        out.copy_from_slice(&shared);
        Ok(out)
    }
}

/// An installation key held by the platform.
pub struct PlatformKey {
    public: PublicJwk,
    verifying: VerifyingKey,
    platform: Box<dyn PlatformSign>,
}

impl std::fmt::Debug for PlatformKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlatformKey({})", self.thumbprint())
    }
}

impl PlatformKey {
    /// `public_key` is the key as the platform reports it: an uncompressed SEC1 point (65
    /// bytes, what `SecKeyCopyExternalRepresentation` returns) or a DER SubjectPublicKeyInfo
    /// (what Java's `PublicKey.getEncoded()` returns). Only P-256 is accepted.
    pub fn new(public_key: &[u8], platform: Box<dyn PlatformSign>) -> Result<Self, SignerError> {
        let (verifying, public) = platform_public_key(public_key)?;
        Ok(PlatformKey {
            public,
            verifying,
            platform,
        })
    }
}

impl Signer for PlatformKey {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignerError> {
        let returned = self.platform.sign(message).map_err(SignerError::Platform)?;
        let signature = match returned.len() {
            64 => Signature::from_slice(&returned),
            n if n <= MAX_PLATFORM_SIGNATURE && returned.first() == Some(&0x30) => {
                Signature::from_der(&returned)
            }
            n => return Err(SignerError::Malformed(n)),
        }
        .map_err(|_| SignerError::Malformed(returned.len()))?;
        self.verifying
            .verify(message, &signature)
            .map_err(|_| SignerError::Mismatch)?;
        Ok(signature.to_bytes().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey;

    /// A platform signer backed by a RustCrypto key, answering in the form asked for.
    struct Software {
        key: SigningKey,
        der: bool,
    }

    impl PlatformSign for Software {
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
            let signature: Signature = self.key.sign(message);
            Ok(if self.der {
                signature.to_der().as_bytes().to_vec()
            } else {
                signature.to_bytes().to_vec()
            })
        }
    }

    struct Answer(Result<Vec<u8>, String>);

    impl PlatformSign for Answer {
        fn sign(&self, _: &[u8]) -> Result<Vec<u8>, String> {
            self.0.clone()
        }
    }

    fn software_key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn point(key: &SigningKey) -> Vec<u8> {
        key.verifying_key().to_sec1_point(false).as_bytes().to_vec()
    }

    #[test]
    fn raw_and_der_signatures_from_either_public_key_form_verify() {
        let key = software_key();
        let spki = key
            .verifying_key()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        for (public, der) in [(point(&key), false), (spki, true)] {
            let platform = PlatformKey::new(
                &public,
                Box::new(Software {
                    key: key.clone(),
                    der,
                }),
            )
            .unwrap();
            let signature = platform.sign(b"message").unwrap();
            key.verifying_key()
                .verify(b"message", &Signature::from_slice(&signature).unwrap())
                .unwrap();
            assert_eq!(
                platform.public_jwk(),
                &PublicJwk::from_p256_sec1(&point(&key)).unwrap()
            );
        }
    }

    #[test]
    fn a_signer_that_lies_fails_or_errs_is_refused_with_its_reason() {
        let key = software_key();
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        // Another key's signature.
        let lying = PlatformKey::new(
            &point(&key),
            Box::new(Software {
                key: other,
                der: false,
            }),
        )
        .unwrap();
        assert_eq!(lying.sign(b"m"), Err(SignerError::Mismatch));
        let answer = |bytes: Result<Vec<u8>, String>| {
            PlatformKey::new(&point(&key), Box::new(Answer(bytes)))
                .unwrap()
                .sign(b"m")
        };
        assert_eq!(
            answer(Err("key invalidated".into())),
            Err(SignerError::Platform("key invalidated".into()))
        );
        assert_eq!(answer(Ok(vec![])), Err(SignerError::Malformed(0)));
        assert_eq!(
            answer(Ok(vec![0x30; 4096])),
            Err(SignerError::Malformed(4096))
        );
        assert_eq!(
            answer(Ok(vec![0x30, 3, 1, 2, 3])),
            Err(SignerError::Malformed(5))
        );
        // r = s = 0 is not a signature.
        assert_eq!(answer(Ok(vec![0; 64])), Err(SignerError::Malformed(64)));
    }

    #[test]
    fn public_keys_that_are_not_p256_are_refused() {
        let key = software_key();
        let mut off_curve = point(&key);
        off_curve[64] ^= 1;
        for public in [
            vec![],
            vec![0x04; 65],
            off_curve,
            vec![0x30, 0x00],
            point(&key)[1..].to_vec(),
        ] {
            assert!(matches!(
                PlatformKey::new(&public, Box::new(Answer(Ok(vec![])))),
                Err(SignerError::PublicKey)
            ));
        }
    }
}
