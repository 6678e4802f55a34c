//! Compact JWE (RFC 7516) with AES-256-GCM content encryption, for the two ways medgate meets it:
//!
//! - `A256KW`: the content key wrapped under a shared AES-256 key. Google's Play Integrity tokens
//!   (the verifier decrypts them with the app's decryption key).
//! - `ECDH-ES+A256KW` over P-256 (RFC 7518 §4.6): the key-wrapping key agreed between a fresh
//!   ephemeral key and the recipient's key, through the Concat KDF. Secrets the control plane
//!   seals to one installation's encryption key, which only that installation (its keystore)
//!   can open.
//!
//! [`decrypt`], with hostile input:
//!
//! 1. Bound the size ([`MAX_JWE_LEN`]) before any work.
//! 2. Exactly five parts: protected header, encrypted key, IV, ciphertext, tag.
//! 3. The protected header is a JSON object; `alg` must be the one the caller's
//!    [`KeyManagement`] names and `enc` exactly `A256GCM` (an allow-list: `dir`, `none`, RSA,
//!    other sizes are refused); `zip` and `crit` are refused. For ECDH-ES, `epk` is a public
//!    P-256 JWK on the curve, and `apu`/`apv`, when present, are base64url.
//! 4. The encrypted key is 40 bytes, the IV 12, the tag 16, all strict base64url.
//! 5. The key-wrapping key: the caller's, or for ECDH-ES the Concat KDF of the shared secret
//!    (the recipient's [`KeyAgreement`], which may be a hardware keystore).
//! 6. AES Key Wrap (RFC 3394) unwrap of the 32-byte content key; its integrity check fails for a
//!    wrong key or an altered token.
//! 7. AES-256-GCM open with the ASCII of the encoded protected header as associated data.
//!
//! Errors never carry text from the token. No I/O and no clock; [`Randomness::from_os`] is the
//! one call out, for encryption.

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use aes_kw::{KeyInit, KwAes256};
use medgate_proto::{PublicJwk, b64};
use p256::elliptic_curve::sec1::ToSec1Point;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The longest compact JWE [`decrypt`] reads.
pub const MAX_JWE_LEN: usize = 64 * 1024;

/// `enc`: the one content encryption medgate speaks.
pub const ENC_A256GCM: &str = "A256GCM";
/// `alg` for a shared AES-256 key-wrapping key.
pub const ALG_A256KW: &str = "A256KW";
/// `alg` for a key-wrapping key agreed over P-256.
pub const ALG_ECDH_ES_A256KW: &str = "ECDH-ES+A256KW";

const KEY_LEN: usize = 32;
const WRAPPED_KEY_LEN: usize = KEY_LEN + aes_kw::IV_LEN;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// `apu`/`apv` longer than this are refused (they are identifiers, not data).
const MAX_PARTY_INFO: usize = 512;

/// Why a JWE was refused or could not be made. Never carries text or key bytes from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JweError {
    #[error("JWE is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("JWE is malformed: {0}")]
    Malformed(&'static str),
    #[error("JWE header is not allowed: {0}")]
    HeaderNotAllowed(&'static str),
    #[error("the content key does not unwrap (wrong key or altered token)")]
    KeyUnwrapFailed,
    #[error("the ciphertext does not decrypt (altered token)")]
    DecryptionFailed,
    #[error("the recipient's key agreement failed")]
    KeyAgreement,
    #[error("the system random generator failed")]
    Random,
}

/// The recipient's side of ECDH on P-256: the raw shared secret (the x coordinate) with a
/// peer's public key. A software key here ([`EcdhSecret`]); on a phone, the keystore's
/// key-agreement key, whose private half never leaves the hardware.
pub trait KeyAgreement {
    /// The public half, as the installation's evidence publishes it.
    fn public_jwk(&self) -> &PublicJwk;
    /// `peer` is an uncompressed SEC1 point (`0x04 ‖ x ‖ y`) already checked to be on the curve.
    fn shared_secret(&self, peer: &[u8; 65]) -> Result<Zeroizing<[u8; 32]>, JweError>;
}

/// A P-256 key-agreement key held in memory.
pub struct EcdhSecret {
    key: p256::SecretKey,
    public: PublicJwk,
}

impl EcdhSecret {
    /// A new random key.
    pub fn generate() -> Result<Self, JweError> {
        loop {
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            getrandom::fill(bytes.as_mut_slice()).map_err(|_| JweError::Random)?;
            // A draw that is zero or not below the group order (odds about 2^-32) is redrawn.
            if let Ok(key) = p256::SecretKey::from_slice(bytes.as_slice()) {
                return EcdhSecret::new(key);
            }
        }
    }

    /// The key from its 32-byte scalar (as stored by the SDK).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, JweError> {
        let bad = JweError::Malformed("a P-256 private key is a 32-byte scalar");
        // `from_slice` would also take a shorter slice, zero-padded: only the stored form is.
        if bytes.len() != KEY_LEN {
            return Err(bad);
        }
        p256::SecretKey::from_slice(bytes)
            .map_err(|_| bad)
            .and_then(EcdhSecret::new)
    }

    fn new(key: p256::SecretKey) -> Result<Self, JweError> {
        let point = key.public_key().to_sec1_point(false);
        let public = PublicJwk::from_p256_sec1(point.as_bytes())
            .map_err(|_| JweError::Malformed("the public key has no uncompressed form"))?;
        Ok(EcdhSecret { key, public })
    }

    /// The 32-byte scalar, for storage.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.key.to_bytes().to_vec())
    }
}

impl std::fmt::Debug for EcdhSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EcdhSecret").field(&"…").finish()
    }
}

impl KeyAgreement for EcdhSecret {
    fn public_jwk(&self) -> &PublicJwk {
        &self.public
    }

    fn shared_secret(&self, peer: &[u8; 65]) -> Result<Zeroizing<[u8; 32]>, JweError> {
        let peer = p256_point(peer)?;
        let shared = p256::ecdh::diffie_hellman(self.key.to_nonzero_scalar(), peer.as_affine());
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        out.copy_from_slice(shared.raw_secret_bytes().as_slice());
        Ok(out)
    }
}

fn p256_point(sec1: &[u8]) -> Result<p256::PublicKey, JweError> {
    p256::PublicKey::from_sec1_bytes(sec1)
        .map_err(|_| JweError::Malformed("epk is not a point on P-256"))
}

/// How the recipient unwraps the content key.
pub enum KeyManagement<'a> {
    /// `A256KW` under this shared key.
    A256Kw(&'a [u8; 32]),
    /// `ECDH-ES+A256KW` with this key-agreement key.
    EcdhEsA256Kw(&'a dyn KeyAgreement),
}

impl KeyManagement<'_> {
    fn alg(&self) -> &'static str {
        match self {
            KeyManagement::A256Kw(_) => ALG_A256KW,
            KeyManagement::EcdhEsA256Kw(_) => ALG_ECDH_ES_A256KW,
        }
    }
}

/// To whom [`encrypt`] seals.
pub enum Recipient<'a> {
    /// `A256KW` under this shared key.
    A256Kw(&'a [u8; 32]),
    /// `ECDH-ES+A256KW` to this public P-256 key.
    EcdhEsA256Kw(&'a PublicJwk),
}

/// The random values one encryption uses, drawn before the pure work.
pub struct Randomness {
    ephemeral: Zeroizing<[u8; KEY_LEN]>,
    cek: Zeroizing<[u8; KEY_LEN]>,
    iv: [u8; IV_LEN],
}

impl Randomness {
    /// Fresh values from the operating system.
    pub fn from_os() -> Result<Self, JweError> {
        let mut ephemeral = Zeroizing::new([0u8; KEY_LEN]);
        let mut cek = Zeroizing::new([0u8; KEY_LEN]);
        let mut iv = [0u8; IV_LEN];
        loop {
            getrandom::fill(ephemeral.as_mut_slice()).map_err(|_| JweError::Random)?;
            if p256::SecretKey::from_slice(ephemeral.as_slice()).is_ok() {
                break;
            }
        }
        getrandom::fill(cek.as_mut_slice()).map_err(|_| JweError::Random)?;
        getrandom::fill(&mut iv).map_err(|_| JweError::Random)?;
        Ok(Randomness { ephemeral, cek, iv })
    }
}

/// A decrypted JWE: its protected header (already checked) and the plaintext.
pub struct Decrypted {
    pub header: Map<String, Value>,
    pub plaintext: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("header", &self.header)
            .field("plaintext", &format_args!("{} bytes", self.plaintext.len()))
            .finish()
    }
}

/// Seals `plaintext` to `recipient` as a compact JWE. `header` holds extra protected header
/// members (`kid`, `cty`, the caller's own); `alg`, `enc` and `epk` are set here and replace any
/// of the same name.
pub fn encrypt(
    recipient: Recipient<'_>,
    mut header: Map<String, Value>,
    plaintext: &[u8],
    random: Randomness,
) -> Result<String, JweError> {
    let kek = match recipient {
        Recipient::A256Kw(key) => {
            header.insert("alg".into(), ALG_A256KW.into());
            Zeroizing::new(*key)
        }
        Recipient::EcdhEsA256Kw(jwk) => {
            let PublicJwk::P256 { .. } = jwk else {
                return Err(JweError::HeaderNotAllowed(
                    "the recipient key must be P-256",
                ));
            };
            let peer = p256_point(&jwk.public_key_bytes())?;
            let ephemeral = EcdhSecret::from_bytes(random.ephemeral.as_slice())?;
            let shared =
                p256::ecdh::diffie_hellman(ephemeral.key.to_nonzero_scalar(), peer.as_affine());
            header.insert("alg".into(), ALG_ECDH_ES_A256KW.into());
            header.insert(
                "epk".into(),
                serde_json::to_value(ephemeral.public_jwk())
                    .map_err(|_| JweError::Malformed("epk does not serialise"))?,
            );
            let apu = party_info(&header, "apu")?;
            let apv = party_info(&header, "apv")?;
            concat_kdf(
                shared.raw_secret_bytes().as_slice(),
                ALG_ECDH_ES_A256KW,
                &apu,
                &apv,
            )
        }
    };
    header.insert("enc".into(), ENC_A256GCM.into());
    let header_b64 = b64::encode(
        serde_json::to_vec(&header)
            .map_err(|_| JweError::Malformed("header does not serialise"))?,
    );
    encrypt_under(&header_b64, &kek, plaintext, &random)
}

/// Seals `plaintext` with `protected_header_json` exactly as given, under a shared key-wrapping
/// key: for tests that need a header [`encrypt`] would not write.
pub fn encrypt_with_header(
    protected_header_json: &str,
    kek: &[u8; 32],
    plaintext: &[u8],
    random: Randomness,
) -> Result<String, JweError> {
    encrypt_under(&b64::encode(protected_header_json), kek, plaintext, &random)
}

fn encrypt_under(
    header_b64: &str,
    kek: &[u8; KEY_LEN],
    plaintext: &[u8],
    random: &Randomness,
) -> Result<String, JweError> {
    let mut wrapped = [0u8; WRAPPED_KEY_LEN];
    KwAes256::new_from_slice(kek)
        .map_err(|_| JweError::KeyUnwrapFailed)?
        .wrap_key(random.cek.as_slice(), &mut wrapped)
        .map_err(|_| JweError::KeyUnwrapFailed)?;
    let mut ciphertext = plaintext.to_vec();
    let tag = Aes256Gcm::new_from_slice(random.cek.as_slice())
        .map_err(|_| JweError::DecryptionFailed)?
        .encrypt_inout_detached(
            &Nonce::from(random.iv),
            header_b64.as_bytes(),
            ciphertext.as_mut_slice().into(),
        )
        .map_err(|_| JweError::DecryptionFailed)?;
    Ok(format!(
        "{header_b64}.{}.{}.{}.{}",
        b64::encode(wrapped),
        b64::encode(random.iv),
        b64::encode(&ciphertext),
        b64::encode(tag.as_slice())
    ))
}

/// Steps 1–7: opens `token` with the recipient's key.
pub fn decrypt(token: &str, key: KeyManagement<'_>) -> Result<Decrypted, JweError> {
    use JweError as E;
    // Step 1.
    if token.len() > MAX_JWE_LEN {
        return Err(E::TooLarge { max: MAX_JWE_LEN });
    }
    // Step 2.
    let parts: Vec<&str> = token.splitn(6, '.').collect();
    let &[header_b64, key_b64, iv_b64, ciphertext_b64, tag_b64] = parts.as_slice() else {
        return Err(E::Malformed("a compact JWE has exactly five parts"));
    };
    // Step 3.
    let header_bytes = b64::decode(header_b64, MAX_JWE_LEN)
        .map_err(|_| E::Malformed("protected header is not base64url"))?;
    let header = serde_json::from_slice::<StrictObject>(&header_bytes)
        .map_err(|_| E::Malformed("protected header is not a JSON object without duplicates"))?
        .0;
    let (Some(Value::String(header_alg)), Some(Value::String(_))) =
        (header.get("alg"), header.get("enc"))
    else {
        return Err(E::Malformed(
            "protected header needs alg and enc as strings",
        ));
    };
    if header_alg != key.alg() {
        return Err(E::HeaderNotAllowed(match key {
            KeyManagement::A256Kw(_) => "alg must be A256KW",
            KeyManagement::EcdhEsA256Kw(_) => "alg must be ECDH-ES+A256KW",
        }));
    }
    if header.get("enc").and_then(Value::as_str) != Some(ENC_A256GCM) {
        return Err(E::HeaderNotAllowed("enc must be A256GCM"));
    }
    if header.contains_key("zip") {
        return Err(E::HeaderNotAllowed("compression (zip) is not supported"));
    }
    if header.contains_key("crit") {
        return Err(E::HeaderNotAllowed(
            "critical header parameters are not supported",
        ));
    }
    // Step 4.
    let wrapped: [u8; WRAPPED_KEY_LEN] = b64::decode_array(key_b64)
        .map_err(|_| E::Malformed("encrypted key must be 40 base64url-encoded bytes"))?;
    let iv: [u8; IV_LEN] = b64::decode_array(iv_b64)
        .map_err(|_| E::Malformed("IV must be 12 base64url-encoded bytes"))?;
    let tag: [u8; TAG_LEN] = b64::decode_array(tag_b64)
        .map_err(|_| E::Malformed("tag must be 16 base64url-encoded bytes"))?;
    let mut ciphertext = b64::decode(ciphertext_b64, MAX_JWE_LEN)
        .map_err(|_| E::Malformed("ciphertext is not base64url"))?;
    // Step 5.
    let kek = match key {
        KeyManagement::A256Kw(key) => Zeroizing::new(*key),
        KeyManagement::EcdhEsA256Kw(agreement) => {
            let epk: PublicJwk = header
                .get("epk")
                .cloned()
                .ok_or(E::Malformed("ECDH-ES needs the ephemeral key as epk"))
                .and_then(|epk| {
                    serde_json::from_value(epk).map_err(|_| E::Malformed("epk is not a public JWK"))
                })?;
            let PublicJwk::P256 { .. } = epk else {
                return Err(E::HeaderNotAllowed("epk must be a P-256 key"));
            };
            let mut point = [0u8; 65];
            point.copy_from_slice(&epk.public_key_bytes());
            p256_point(&point)?;
            let shared = agreement.shared_secret(&point)?;
            let apu = party_info(&header, "apu")?;
            let apv = party_info(&header, "apv")?;
            concat_kdf(shared.as_slice(), ALG_ECDH_ES_A256KW, &apu, &apv)
        }
    };
    // Step 6.
    let mut cek = Zeroizing::new([0u8; KEY_LEN]);
    let unwrapped = KwAes256::new_from_slice(kek.as_slice())
        .map_err(|_| E::KeyUnwrapFailed)?
        .unwrap_key(&wrapped, cek.as_mut_slice())
        .map_err(|_| E::KeyUnwrapFailed)?;
    if unwrapped.len() != KEY_LEN {
        return Err(E::KeyUnwrapFailed);
    }
    // Step 7.
    Aes256Gcm::new_from_slice(cek.as_slice())
        .map_err(|_| E::DecryptionFailed)?
        .decrypt_inout_detached(
            &Nonce::from(iv),
            header_b64.as_bytes(),
            ciphertext.as_mut_slice().into(),
            &Tag::from(tag),
        )
        .map_err(|_| E::DecryptionFailed)?;
    Ok(Decrypted {
        header,
        plaintext: Zeroizing::new(ciphertext),
    })
}

/// A JSON object whose member names are unique (RFC 7515 §5.2 lets a parser refuse
/// duplicates; medgate does, so no two readers of one header can see different `alg`s).
struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((name, value)) = access.next_entry::<String, Value>()? {
                    if map.insert(name, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                }
                Ok(StrictObject(map))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `apu`/`apv` (RFC 7518 §4.6.1.2, 4.6.1.3): absent is empty.
fn party_info(header: &Map<String, Value>, name: &str) -> Result<Vec<u8>, JweError> {
    match header.get(name) {
        None => Ok(Vec::new()),
        Some(Value::String(text)) => b64::decode(text, MAX_PARTY_INFO)
            .map_err(|_| JweError::Malformed("apu and apv must be short base64url")),
        Some(_) => Err(JweError::Malformed("apu and apv must be strings")),
    }
}

/// The Concat KDF of NIST SP 800-56A §5.8.1 as RFC 7518 §4.6.2 uses it, for a 256-bit key:
/// one SHA-256 round over `1 ‖ Z ‖ AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo`, each
/// variable-length field prefixed with its 32-bit big-endian length.
fn concat_kdf(shared: &[u8], alg: &str, apu: &[u8], apv: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    concat_kdf_bits(shared, alg, apu, apv, 256)
}

fn concat_kdf_bits(
    shared: &[u8],
    alg: &str,
    apu: &[u8],
    apv: &[u8],
    key_bits: u32,
) -> Zeroizing<[u8; KEY_LEN]> {
    let mut hash = Sha256::new();
    hash.update(1u32.to_be_bytes());
    hash.update(shared);
    for field in [alg.as_bytes(), apu, apv] {
        // Every field here is bounded far below 4 GiB (the algorithm name, MAX_PARTY_INFO).
        hash.update((field.len() as u32).to_be_bytes());
        hash.update(field);
    }
    hash.update(key_bits.to_be_bytes());
    let mut out = Zeroizing::new([0u8; KEY_LEN]);
    out.copy_from_slice(&hash.finalize());
    out
}

#[cfg(test)]
mod tests;
