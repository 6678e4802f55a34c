//! Sealing of private key material at rest.
//!
//! With a master key configured (`MEDGATE_MASTER_KEY`: 32 random bytes, base64), key material
//! is stored as `0x01 ‖ nonce (12) ‖ AES-256-GCM(ciphertext ‖ tag)`, with a label naming what
//! it is (`signing-key:<kid>`, `app-secret:<app>:<name>`) bound in as associated data, so a
//! sealed value cannot be moved to another row. Without one it is stored
//! as `0x00 ‖ plaintext`, and the database file's `0600` mode is the only protection; the
//! server logs a warning at start and re-seals plain keys once a master key is set.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const PLAIN: u8 = 0;
const AES_GCM: u8 = 1;
const AAD_PREFIX: &str = "medgate-sealed:";

/// Why sealing or opening failed. Never carries key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("MEDGATE_MASTER_KEY must be 32 bytes in base64 (e.g. `openssl rand -base64 32`)")]
    BadMasterKey,
    #[error(
        "stored key material is sealed; set MEDGATE_MASTER_KEY to the master key it was sealed with"
    )]
    MasterKeyRequired,
    #[error("the master key does not open the stored key material (wrong MEDGATE_MASTER_KEY?)")]
    WrongMasterKey,
    #[error("stored key material is malformed")]
    Malformed,
    #[error(
        "stored key material is in the clear although a master key is set: medgate did not write it so"
    )]
    PlainWithMasterKey,
    #[error("the system random generator failed")]
    Random,
}

/// The master key, or its absence.
pub struct Sealer {
    key: Option<LessSafeKey>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.key.is_some() {
            "master key set"
        } else {
            "no master key"
        };
        write!(f, "Sealer({state})")
    }
}

impl Sealer {
    /// A sealer that stores key material unencrypted (no master key configured).
    pub fn plain() -> Self {
        Sealer { key: None }
    }

    /// Parses a master key given as standard or URL-safe base64 of 32 bytes.
    pub fn from_master_key(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| SealError::BadMasterKey)?,
        );
        if bytes.len() != 32 {
            return Err(SealError::BadMasterKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadMasterKey)?;
        Ok(Sealer {
            key: Some(LessSafeKey::new(key)),
        })
    }

    pub fn has_master_key(&self) -> bool {
        self.key.is_some()
    }

    pub fn seal(&self, label: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(key) = &self.key else {
            let mut out = Vec::with_capacity(plaintext.len() + 1);
            out.push(PLAIN);
            out.extend_from_slice(plaintext);
            return Ok(out);
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut in_out = Zeroizing::new(plaintext.to_vec());
        let aad = format!("{AAD_PREFIX}{label}");
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad.as_bytes()),
            &mut *in_out,
        )
        .map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(AES_GCM);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Opens sealed material. With a master key set, material in the clear is refused: after
    /// the one migration of a store created without a master key
    /// ([`Sealer::open_for_migration`]), medgate writes only sealed material, so a clear blob
    /// was put there by someone else.
    pub fn open(&self, label: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if self.key.is_some() && Sealer::is_plain(sealed) {
            return Err(SealError::PlainWithMasterKey);
        }
        self.open_for_migration(label, sealed)
    }

    /// As [`Sealer::open`], also accepting material in the clear: only for sealing a store's
    /// existing material the first time a master key is configured.
    pub fn open_for_migration(
        &self,
        label: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        match sealed.split_first() {
            Some((&PLAIN, plaintext)) => Ok(Zeroizing::new(plaintext.to_vec())),
            Some((&AES_GCM, rest)) if rest.len() > NONCE_LEN => {
                let key = self.key.as_ref().ok_or(SealError::MasterKeyRequired)?;
                let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
                let nonce =
                    Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
                let mut in_out = Zeroizing::new(ciphertext.to_vec());
                let aad = format!("{AAD_PREFIX}{label}");
                let plaintext = key
                    .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut in_out)
                    .map_err(|_| SealError::WrongMasterKey)?;
                Ok(Zeroizing::new(plaintext.to_vec()))
            }
            _ => Err(SealError::Malformed),
        }
    }

    /// Whether `sealed` is stored in the clear (and should be re-sealed once a master key is set).
    pub fn is_plain(sealed: &[u8]) -> bool {
        sealed.first() == Some(&PLAIN)
    }
}

/// The label of a token-signing key.
pub fn signing_key_label(kid: &str) -> String {
    format!("signing-key:{kid}")
}

/// The label of a per-app secret.
pub fn app_secret_label(app_id: &str, name: &str) -> String {
    format!("app-secret:{app_id}:{name}")
}

/// The label of an online TUF key's seed (`TrustStore`).
pub fn trust_key_label(key_id: &str) -> String {
    format!("trust-key:{key_id}")
}

/// The label of one version of an operator secret (`SecretStore`).
pub fn secret_label(app_id: &str, name: &str, version: i64) -> String {
    format!("secret/{app_id}/{name}/{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";

    #[test]
    fn sealed_material_opens_only_with_the_same_key_and_kid() {
        let sealer = Sealer::from_master_key(MASTER).unwrap();
        let sealed = sealer.seal("kid-1", b"pkcs8 bytes").unwrap();
        assert_eq!(sealed[0], AES_GCM);
        assert!(
            !sealed.windows(5).any(|w| w == b"pkcs8"),
            "plaintext must not appear"
        );
        assert_eq!(&*sealer.open("kid-1", &sealed).unwrap(), b"pkcs8 bytes");
        assert_eq!(
            sealer.open("kid-2", &sealed).unwrap_err(),
            SealError::WrongMasterKey
        );
        let other = Sealer::from_master_key(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap();
        assert_eq!(
            other.open("kid-1", &sealed).unwrap_err(),
            SealError::WrongMasterKey
        );
        assert_eq!(
            Sealer::plain().open("kid-1", &sealed).unwrap_err(),
            SealError::MasterKeyRequired
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            sealer.open("kid-1", &flipped).unwrap_err(),
            SealError::WrongMasterKey
        );
    }

    #[test]
    fn plain_material_is_refused_once_a_master_key_is_set_except_to_migrate() {
        let sealed = Sealer::plain().seal("k", b"abc").unwrap();
        assert!(Sealer::is_plain(&sealed));
        assert_eq!(&*Sealer::plain().open("k", &sealed).unwrap(), b"abc");
        let master = Sealer::from_master_key(MASTER).unwrap();
        assert_eq!(
            master.open("k", &sealed).unwrap_err(),
            SealError::PlainWithMasterKey
        );
        assert_eq!(&*master.open_for_migration("k", &sealed).unwrap(), b"abc");
    }

    #[test]
    fn bad_master_keys_and_blobs_are_refused() {
        assert_eq!(
            Sealer::from_master_key("short").unwrap_err(),
            SealError::BadMasterKey
        );
        assert_eq!(
            Sealer::from_master_key(&STANDARD.encode([1u8; 31])).unwrap_err(),
            SealError::BadMasterKey
        );
        let sealer = Sealer::from_master_key(MASTER).unwrap();
        assert_eq!(sealer.open("k", &[]).unwrap_err(), SealError::Malformed);
        assert_eq!(
            sealer.open("k", &[1, 2, 3]).unwrap_err(),
            SealError::Malformed
        );
        assert_eq!(sealer.open("k", &[9, 0]).unwrap_err(), SealError::Malformed);
        assert!(!format!("{sealer:?}").contains(MASTER));
    }
}
