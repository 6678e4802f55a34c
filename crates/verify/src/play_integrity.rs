//! Google Play Integrity tokens, decrypted and verified locally, and the verdict they carry.
//!
//! An app that opted in to "manage and download my response encryption keys" in Play Console
//! has two secrets: an AES-256 *decryption key* and the EC P-256 *verification key* of Google's
//! signing key ([`PlayIntegrityKeys::from_console`]). A token is a nested JWT: a compact JWE
//! (RFC 7516; `alg` A256KW, `enc` A256GCM) whose plaintext is a compact JWS (ES256) whose
//! payload is the verdict JSON. [`decrypt_and_verify`]:
//!
//! 1. Bound the token size ([`MAX_TOKEN_LEN`]) before any work.
//! 2. Split into exactly five parts (RFC 7516 §7.1): protected header, encrypted key, IV,
//!    ciphertext, tag.
//! 3. Decode the protected header as a JSON object; `alg` must be exactly `A256KW` and `enc`
//!    exactly `A256GCM` (an allow-list: `dir`, `none`, RSA, other sizes are refused), and `zip`
//!    and `crit` are refused.
//! 4. Decode the other four parts strictly: the encrypted key is 40 bytes (a wrapped 32-byte
//!    key), the IV 12 bytes, the tag 16 bytes.
//! 5. Unwrap the content-encryption key with AES Key Wrap (RFC 3394, RFC 7518 §4.4) under the
//!    decryption key; the wrap's integrity check fails for a wrong key or an altered token.
//! 6. Open the ciphertext with AES-256-GCM (RFC 7518 §5.3) under that key, with the IV, the tag
//!    and, as additional authenticated data, the ASCII of the base64url protected header.
//! 7. Parse the plaintext as a compact JWS with the allow-list `[ES256]` ([`crate::jws::parse`]).
//! 8. Verify its signature with the verification key from Play Console (never a key the token
//!    names or carries).
//! 9. Parse the payload as the verdict ([`parse_verdict`]): a JSON object with the documented
//!    shape, values Google may extend kept as `Unknown`.
//!
//! [`check_request`] then ties the verdict to the request the caller made:
//!
//! 10. `requestDetails.requestPackageName` is the expected package.
//! 11. The request binding is the expected one: `requestHash` for standard requests, `nonce`
//!     for classic ones (compared in constant time).
//! 12. `requestDetails.timestampMillis` is within `[now - max_age, now + skew]`.
//!
//! Everything else (app recognition, certificate digests, device labels, licensing, the
//! environment) is policy, decided by the caller from the typed [`IntegrityVerdict`].

use base64::Engine;
use base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT;
use medgate_proto::{Alg, PublicJwk};
use medgate_trust::jwe::{self, JweError, KeyManagement};
use ring::digest;
use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use spki::der::Decode;
use spki::{ObjectIdentifier, SubjectPublicKeyInfoRef};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::jws::{self, JwsError};

/// The longest token [`decrypt_and_verify`] reads. Real tokens are a few kilobytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

const KEY_LEN: usize = 32;

/// id-ecPublicKey (RFC 5480 §2.1.1).
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 (RFC 5480 §2.1.1.1).
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Why a token, a verdict or a pair of Play Console keys was refused. Messages name what is
/// wrong and never contain key material or token text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlayIntegrityError {
    #[error("Play Integrity decryption key is invalid: {0}")]
    BadDecryptionKey(&'static str),
    #[error("Play Integrity verification key is invalid: {0}")]
    BadVerificationKey(&'static str),
    #[error("integrity token is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("integrity token is malformed: {0}")]
    Malformed(&'static str),
    #[error("integrity token header is not allowed: {0}")]
    HeaderNotAllowed(&'static str),
    #[error("integrity token key unwrap failed: wrong decryption key or altered encrypted key")]
    KeyUnwrapFailed,
    #[error("integrity token decryption failed: altered ciphertext, IV, tag or header")]
    DecryptionFailed,
    #[error("integrity token's inner JWS is malformed: {0}")]
    InnerMalformed(&'static str),
    #[error("integrity token's inner JWS algorithm is not allowed")]
    InnerAlgorithmNotAllowed,
    #[error("integrity token signature does not verify: wrong verification key or altered token")]
    SignatureInvalid,
    #[error("integrity verdict is malformed: {0}")]
    PayloadMalformed(String),
    #[error("integrity verdict was requested for another package")]
    PackageMismatch,
    #[error("integrity verdict is bound to another request (requestHash or nonce)")]
    BindingMismatch,
    #[error("integrity verdict is too old")]
    Stale,
    #[error("integrity verdict is timestamped in the future")]
    FromTheFuture,
}

impl PlayIntegrityError {
    /// A stable code for the refusal, as the forgery suite's data file names it.
    pub fn code(&self) -> &'static str {
        match self {
            PlayIntegrityError::BadDecryptionKey(_) => "bad_decryption_key",
            PlayIntegrityError::BadVerificationKey(_) => "bad_verification_key",
            PlayIntegrityError::TooLarge { .. } => "too_large",
            PlayIntegrityError::Malformed(_) => "malformed",
            PlayIntegrityError::HeaderNotAllowed(_) => "header_not_allowed",
            PlayIntegrityError::KeyUnwrapFailed => "key_unwrap_failed",
            PlayIntegrityError::DecryptionFailed => "decryption_failed",
            PlayIntegrityError::InnerMalformed(_) => "inner_malformed",
            PlayIntegrityError::InnerAlgorithmNotAllowed => "inner_algorithm_not_allowed",
            PlayIntegrityError::SignatureInvalid => "signature_invalid",
            PlayIntegrityError::PayloadMalformed(_) => "payload_malformed",
            PlayIntegrityError::PackageMismatch => "package_mismatch",
            PlayIntegrityError::BindingMismatch => "binding_mismatch",
            PlayIntegrityError::Stale => "stale",
            PlayIntegrityError::FromTheFuture => "from_the_future",
        }
    }

    /// Whether the token itself is not a well-formed compact JWE (HTTP 400), as opposed to a
    /// token that does not decrypt, verify or match the request (HTTP 403) or unusable keys
    /// (a configuration error).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            PlayIntegrityError::TooLarge { .. } | PlayIntegrityError::Malformed(_)
        )
    }
}

/// The app's two Play Console secrets. `Debug` shows only the verification key's thumbprint.
pub struct PlayIntegrityKeys {
    decryption_key: Zeroizing<[u8; KEY_LEN]>,
    verification_key: PublicJwk,
}

impl PlayIntegrityKeys {
    /// The two strings Play Console shows: the base64 (standard alphabet, padding optional)
    /// 32-byte AES key and the base64 DER SubjectPublicKeyInfo of the P-256 verification key.
    /// Whitespace around either string (a pasted line end) is ignored.
    ///
    /// The SubjectPublicKeyInfo must be id-ecPublicKey on secp256r1 with an uncompressed point.
    /// Whether the point is on the curve is checked by the crypto backend when a signature is
    /// verified: a point off the curve makes every token fail with
    /// [`PlayIntegrityError::SignatureInvalid`].
    pub fn from_console(
        decryption_key_b64: &str,
        verification_key_b64: &str,
    ) -> Result<Self, PlayIntegrityError> {
        const WRONG_LENGTH: &str = "must be 32 bytes (AES-256)";
        let decryption_key = decode_console(decryption_key_b64, 64, WRONG_LENGTH)
            .map_err(PlayIntegrityError::BadDecryptionKey)?;
        let decryption_key: [u8; KEY_LEN] = decryption_key
            .as_slice()
            .try_into()
            .map_err(|_| PlayIntegrityError::BadDecryptionKey(WRONG_LENGTH))?;
        let spki = decode_console(verification_key_b64, 1024, "too long for a P-256 key")
            .map_err(PlayIntegrityError::BadVerificationKey)?;
        Ok(PlayIntegrityKeys {
            decryption_key: Zeroizing::new(decryption_key),
            verification_key: p256_from_spki(&spki)?,
        })
    }

    /// The verification key, as the JWK the JWS verifier takes.
    pub fn verification_key(&self) -> &PublicJwk {
        &self.verification_key
    }
}

impl std::fmt::Debug for PlayIntegrityKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlayIntegrityKeys")
            .field(
                "verification_key_thumbprint",
                &self.verification_key.thumbprint().as_str(),
            )
            .finish_non_exhaustive()
    }
}

/// Decodes a Play Console string of at most `max_len` characters (else `too_long`); the result
/// is zeroized.
fn decode_console(
    text: &str,
    max_len: usize,
    too_long: &'static str,
) -> Result<Zeroizing<Vec<u8>>, &'static str> {
    let text = text.trim_ascii();
    if text.len() > max_len {
        return Err(too_long);
    }
    if text.is_empty() {
        return Err("empty");
    }
    STANDARD_PAD_INDIFFERENT
        .decode(text)
        .map(Zeroizing::new)
        .map_err(|_| "not base64")
}

fn p256_from_spki(der: &[u8]) -> Result<PublicJwk, PlayIntegrityError> {
    let bad = PlayIntegrityError::BadVerificationKey;
    let spki = SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|_| bad("not a DER SubjectPublicKeyInfo"))?;
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(bad("not an elliptic-curve public key"));
    }
    if !matches!(spki.algorithm.parameters_oid(), Ok(curve) if curve == SECP256R1) {
        return Err(bad("not a P-256 key"));
    }
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or(bad("public key is not a whole number of bytes"))?;
    PublicJwk::from_p256_sec1(point).map_err(|_| bad("P-256 point must be uncompressed"))
}

/// A verdict that decrypted and verified under the app's keys. Only [`decrypt_and_verify`]
/// makes one (a verdict parsed from JSON is not one); it reads as the verdict it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct VerifiedVerdict(IntegrityVerdict);

impl std::ops::Deref for VerifiedVerdict {
    type Target = IntegrityVerdict;

    fn deref(&self) -> &IntegrityVerdict {
        &self.0
    }
}

impl VerifiedVerdict {
    pub fn verdict(&self) -> &IntegrityVerdict {
        &self.0
    }
}

/// Proof that [`check_request`] passed for a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestChecked(());

/// Steps 1–9: decrypts `token` with the decryption key, verifies the inner signature with the
/// verification key and parses the verdict. The verdict is not yet tied to a request: see
/// [`check_request`].
pub fn decrypt_and_verify(
    token: &str,
    keys: &PlayIntegrityKeys,
) -> Result<VerifiedVerdict, PlayIntegrityError> {
    use PlayIntegrityError as E;
    // Step 1.
    if token.len() > MAX_TOKEN_LEN {
        return Err(E::TooLarge { max: MAX_TOKEN_LEN });
    }
    // Steps 2–6 (medgate_trust::jwe): five parts, the header allow-list, strict lengths, the
    // key unwrap and the GCM open.
    let decrypted =
        jwe::decrypt(token, KeyManagement::A256Kw(&keys.decryption_key)).map_err(jwe_error)?;
    let plaintext = decrypted.plaintext.as_slice();
    let jws_text =
        std::str::from_utf8(plaintext).map_err(|_| E::InnerMalformed("plaintext is not UTF-8"))?;
    // Step 7.
    let parsed = jws::parse(jws_text, MAX_TOKEN_LEN, &[Alg::Es256]).map_err(inner_error)?;
    // Step 8.
    parsed.verify(&keys.verification_key).map_err(inner_error)?;
    // Step 9.
    parse_verdict(parsed.payload()).map(VerifiedVerdict)
}

/// The JWE layer's refusals, under the names the forgery suite gives them.
fn jwe_error(error: JweError) -> PlayIntegrityError {
    match error {
        JweError::TooLarge { max } => PlayIntegrityError::TooLarge { max },
        JweError::Malformed(what) => PlayIntegrityError::Malformed(what),
        JweError::HeaderNotAllowed(what) => PlayIntegrityError::HeaderNotAllowed(what),
        JweError::KeyUnwrapFailed | JweError::KeyAgreement => PlayIntegrityError::KeyUnwrapFailed,
        _ => PlayIntegrityError::DecryptionFailed,
    }
}

/// Maps the inner JWS verifier's errors; none of them carries text from the token.
fn inner_error(error: JwsError) -> PlayIntegrityError {
    match error {
        JwsError::TooLarge { .. } => PlayIntegrityError::InnerMalformed("plaintext is too large"),
        JwsError::Malformed(what) => PlayIntegrityError::InnerMalformed(what),
        JwsError::BadHeader(_) => PlayIntegrityError::InnerMalformed("JWS header is malformed"),
        JwsError::CriticalHeader => {
            PlayIntegrityError::InnerMalformed("critical header parameters are not supported")
        }
        JwsError::AlgorithmNotAllowed => PlayIntegrityError::InnerAlgorithmNotAllowed,
        JwsError::KeyMismatch | JwsError::BadSignature => PlayIntegrityError::SignatureInvalid,
    }
}

/// Step 9: parses a verdict payload, which must be a JSON object of the documented shape.
///
/// Also usable for the `tokenPayloadExternal` object Google's `decodeIntegrityToken` endpoint
/// returns. Error messages name the problem and position but not the offending string values.
pub fn parse_verdict(payload: &[u8]) -> Result<IntegrityVerdict, PlayIntegrityError> {
    if payload.trim_ascii_start().first() != Some(&b'{') {
        return Err(PlayIntegrityError::PayloadMalformed(
            "expected a JSON object".to_string(),
        ));
    }
    serde_json::from_slice(payload)
        .map_err(|error| PlayIntegrityError::PayloadMalformed(redacted(&error)))
}

/// A serde error message without the string values it may quote from the payload.
fn redacted(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match message.split_once('"') {
        Some((before, rest)) => match rest.rsplit_once('"') {
            Some((_, after)) => format!("{before}(value redacted){after}"),
            None => format!("{before}(value redacted)"),
        },
        None => message,
    }
}

/// What the caller expects of the verdict's `requestDetails`.
#[derive(Debug, Clone, Copy)]
pub struct Expectations<'a> {
    /// The app's package name.
    pub package_name: &'a str,
    /// What the app was asked to bind the request to.
    pub request_binding: RequestBinding<'a>,
    /// The oldest accepted `timestampMillis`, in milliseconds before `now`.
    pub max_age_ms: i64,
    /// The latest accepted `timestampMillis`, in milliseconds after `now` (clock skew).
    pub max_future_skew_ms: i64,
}

/// The value a request was bound to.
#[derive(Debug, Clone, Copy)]
pub enum RequestBinding<'a> {
    /// Standard requests carry `requestHash`.
    RequestHash(&'a str),
    /// Classic requests carry `nonce`.
    Nonce(&'a str),
}

/// Steps 10–12: checks `requestDetails` only, at `now_ms` (Unix milliseconds).
pub fn check_request(
    verdict: &VerifiedVerdict,
    expect: &Expectations<'_>,
    now_ms: i64,
) -> Result<RequestChecked, PlayIntegrityError> {
    let details = &verdict.request_details;
    // Step 10.
    if details.request_package_name != expect.package_name {
        return Err(PlayIntegrityError::PackageMismatch);
    }
    // Step 11.
    let (actual, expected) = match expect.request_binding {
        RequestBinding::RequestHash(expected) => (details.request_hash.as_deref(), expected),
        RequestBinding::Nonce(expected) => (details.nonce.as_deref(), expected),
    };
    if !actual.is_some_and(|actual| equal_in_constant_time(actual, expected)) {
        return Err(PlayIntegrityError::BindingMismatch);
    }
    // Step 12.
    if details.timestamp_millis < now_ms.saturating_sub(expect.max_age_ms) {
        return Err(PlayIntegrityError::Stale);
    }
    if details.timestamp_millis > now_ms.saturating_add(expect.max_future_skew_ms) {
        return Err(PlayIntegrityError::FromTheFuture);
    }
    Ok(RequestChecked(()))
}

/// Compares SHA-256 digests in constant time, so neither the contents nor the length of the
/// expected value leak through timing.
fn equal_in_constant_time(a: &str, b: &str) -> bool {
    let a = digest::digest(&digest::SHA256, a.as_bytes());
    let b = digest::digest(&digest::SHA256, b.as_bytes());
    bool::from(a.as_ref().ct_eq(b.as_ref()))
}

// ---------------------------------------------------------------------------------------------
// The verdict (developer.android.com/google/play/integrity/verdicts). Input is Google's
// camelCase JSON; output (Serialize) uses snake_case field names and Google's enum strings.
// ---------------------------------------------------------------------------------------------

/// A decrypted, verified integrity verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct IntegrityVerdict {
    pub request_details: RequestDetails,
    pub app_integrity: AppIntegrity,
    pub device_integrity: DeviceIntegrity,
    #[serde(default)]
    pub account_details: Option<AccountDetails>,
    #[serde(default)]
    pub environment_details: Option<EnvironmentDetails>,
    #[serde(default)]
    pub testing_details: Option<TestingDetails>,
}

/// `requestDetails`: what the verdict was requested for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct RequestDetails {
    /// The package the app claimed when requesting the token (it can be spoofed; the app's
    /// own package is `appIntegrity.packageName`).
    pub request_package_name: String,
    /// Standard requests: the hash the app passed.
    #[serde(default)]
    pub request_hash: Option<String>,
    /// Classic requests: the nonce the app passed.
    #[serde(default)]
    pub nonce: Option<String>,
    /// When Google prepared the verdict, in Unix milliseconds (a string of digits in the JSON).
    #[serde(deserialize_with = "integer::required")]
    pub timestamp_millis: i64,
}

/// `appIntegrity`: what Google Play knows about the calling binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct AppIntegrity {
    pub app_recognition_verdict: AppRecognitionVerdict,
    #[serde(default)]
    pub package_name: Option<String>,
    /// Base64url SHA-256 digests of the app's signing certificates.
    #[serde(default)]
    pub certificate_sha256_digest: Vec<String>,
    /// The app's version code (a string of digits in the JSON).
    #[serde(default, deserialize_with = "integer::optional")]
    pub version_code: Option<i64>,
}

/// `deviceIntegrity`: what Google Play knows about the device. No label means the device met
/// none of the integrity levels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct DeviceIntegrity {
    #[serde(default)]
    pub device_recognition_verdict: Vec<DeviceLabel>,
    /// The labels under the previous rules, sent during the transition to the new verdicts
    /// to apps that opted in to them.
    #[serde(default)]
    pub legacy_device_recognition_verdict: Option<Vec<DeviceLabel>>,
    #[serde(default)]
    pub recent_device_activity: Option<RecentDeviceActivity>,
    #[serde(default)]
    pub device_attributes: Option<DeviceAttributes>,
}

/// `deviceIntegrity.recentDeviceActivity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct RecentDeviceActivity {
    pub device_activity_level: DeviceActivityLevel,
}

/// `deviceIntegrity.deviceAttributes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct DeviceAttributes {
    /// The Android SDK level of the device.
    #[serde(default, deserialize_with = "integer::optional")]
    pub sdk_version: Option<i64>,
}

/// `accountDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct AccountDetails {
    pub app_licensing_verdict: AppLicensingVerdict,
}

/// `environmentDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct EnvironmentDetails {
    #[serde(default)]
    pub app_access_risk_verdict: Option<AppAccessRiskVerdict>,
    /// Play Protect's verdict, e.g. `NO_ISSUES`.
    #[serde(default)]
    pub play_protect_verdict: Option<String>,
}

/// `environmentDetails.appAccessRiskVerdict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct AppAccessRiskVerdict {
    /// E.g. `KNOWN_INSTALLED`, `UNKNOWN_CAPTURING`.
    #[serde(default)]
    pub apps_detected: Vec<String>,
}

/// `testingDetails`: present on responses to license testers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all(deserialize = "camelCase", serialize = "snake_case"))]
#[non_exhaustive]
pub struct TestingDetails {
    pub is_testing_response: bool,
}

/// An enumeration Google may extend: the known values, and any other string as `Unknown`.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of medgate does not know.
            Unknown(String),
        }

        impl $name {
            /// Google's spelling of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown(text) => text,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($text => $name::$variant,)+
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Ok($name::from(text.as_str()))
            }
        }
    };
}

open_enum! {
    /// `appIntegrity.appRecognitionVerdict`.
    AppRecognitionVerdict {
        /// The binary is one Google Play distributed for this package.
        PlayRecognized = "PLAY_RECOGNIZED",
        /// The binary or its signing certificate is not one Google Play knows.
        UnrecognizedVersion = "UNRECOGNIZED_VERSION",
        /// Not evaluated (a requirement such as device integrity was not met).
        Unevaluated = "UNEVALUATED",
    }
}

open_enum! {
    /// A `deviceIntegrity.deviceRecognitionVerdict` label.
    DeviceLabel {
        MeetsBasicIntegrity = "MEETS_BASIC_INTEGRITY",
        MeetsDeviceIntegrity = "MEETS_DEVICE_INTEGRITY",
        MeetsStrongIntegrity = "MEETS_STRONG_INTEGRITY",
        MeetsVirtualIntegrity = "MEETS_VIRTUAL_INTEGRITY",
    }
}

open_enum! {
    /// `deviceIntegrity.recentDeviceActivity.deviceActivityLevel`: how many tokens the device
    /// requested recently, `LEVEL_1` the fewest.
    DeviceActivityLevel {
        Level1 = "LEVEL_1",
        Level2 = "LEVEL_2",
        Level3 = "LEVEL_3",
        Level4 = "LEVEL_4",
        Unevaluated = "UNEVALUATED",
    }
}

open_enum! {
    /// `accountDetails.appLicensingVerdict`.
    AppLicensingVerdict {
        Licensed = "LICENSED",
        Unlicensed = "UNLICENSED",
        Unevaluated = "UNEVALUATED",
    }
}

/// Integers that Google's JSON carries as strings of digits (`"1675655009345"`): a string of
/// ASCII digits or a non-negative JSON integer, within `i64`. Anything else is refused.
mod integer {
    use super::*;

    struct NonNegative(i64);

    const EXPECTED: &str = "a non-negative integer, as a string of digits or a number";

    impl<'de> Deserialize<'de> for NonNegative {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Visitor)
        }
    }

    struct Visitor;

    impl de::Visitor<'_> for Visitor {
        type Value = NonNegative;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<NonNegative, E> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(E::custom(format!("expected {EXPECTED}")));
            }
            text.parse()
                .map(NonNegative)
                .map_err(|_| E::custom("integer does not fit in 64 bits"))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<NonNegative, E> {
            i64::try_from(value)
                .map(NonNegative)
                .map_err(|_| E::custom("integer does not fit in 64 bits"))
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<NonNegative, E> {
            if value < 0 {
                return Err(E::custom(format!("expected {EXPECTED}")));
            }
            Ok(NonNegative(value))
        }
    }

    pub(super) fn required<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        NonNegative::deserialize(deserializer).map(|value| value.0)
    }

    pub(super) fn optional<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<i64>, D::Error> {
        Option::<NonNegative>::deserialize(deserializer).map(|value| value.map(|value| value.0))
    }
}

/// Mints real Play Integrity tokens under throw-away keys: the counterpart of
/// [`decrypt_and_verify`] for tests (no public token exists together with its keys). Enabled in
/// this crate's tests and, for other crates' tests, by the `test-tokens` feature.
#[cfg(any(test, feature = "test-tokens"))]
pub mod testing {
    use super::*;
    use medgate_proto::b64;
    use ring::rand::{SecureRandom, SystemRandom};
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    /// Treats a parsed verdict as verified, so fuzzing can reach the request check with
    /// arbitrary verdicts. Test and fuzz builds only.
    pub fn trust_unverified(verdict: IntegrityVerdict) -> VerifiedVerdict {
        VerifiedVerdict(verdict)
    }

    /// The protected header Google's tokens carry.
    pub const JWE_HEADER: &str = r#"{"alg":"A256KW","enc":"A256GCM"}"#;
    /// The inner JWS header.
    pub const JWS_HEADER: &str = r#"{"alg":"ES256"}"#;

    /// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point (RFC 5480).
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];

    /// A fixed, published test key pair (PKCS#8, made with `openssl genpkey` for this purpose)
    /// so fuzz targets and seeds agree on keys. Never a production key.
    const FIXED_PKCS8_B64: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgrKQ+DmRjbLFGyqeYCsfOeonOSucEMsHoZluNqsCMPcqhRANCAATaZuY2geH4QPpf0589mQ0NOu0wnBSOViVTGjMOIEqmcZRQF1OXLRRnp0YklMB1r4ObrHBj/oovwdOzu7t1pSv8";
    /// The fixed decryption key that goes with it.
    const FIXED_DECRYPTION_KEY: [u8; KEY_LEN] = *b"medgate play integrity test key!";

    /// A Play Console key set for tests: the AES-256 decryption key and the ES256 key pair
    /// whose public half is the verification key.
    pub struct TestPlayKeys {
        decryption_key: Zeroizing<[u8; KEY_LEN]>,
        signing: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl TestPlayKeys {
        /// Fresh random keys.
        pub fn generate() -> Self {
            let rng = SystemRandom::new();
            let mut decryption_key = Zeroizing::new([0u8; KEY_LEN]);
            rng.fill(decryption_key.as_mut_slice())
                .expect("the system RNG works");
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .expect("the system RNG works");
            let signing =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .expect("ring reads its own PKCS#8");
            TestPlayKeys {
                decryption_key,
                signing,
                rng,
            }
        }

        /// The same published test keys every time (for fuzz targets and their seeds).
        pub fn fixed() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = STANDARD_PAD_INDIFFERENT
                .decode(FIXED_PKCS8_B64)
                .expect("the fixed key is base64");
            let signing = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
                .expect("the fixed key is a P-256 PKCS#8 key");
            TestPlayKeys {
                decryption_key: Zeroizing::new(FIXED_DECRYPTION_KEY),
                signing,
                rng,
            }
        }

        /// What Play Console would show: base64 decryption key, base64 DER SPKI verification key.
        pub fn console_strings(&self) -> (String, String) {
            (
                STANDARD_PAD_INDIFFERENT.encode(self.decryption_key.as_slice()),
                STANDARD_PAD_INDIFFERENT.encode(self.spki_der()),
            )
        }

        /// The verifier's view of these keys.
        pub fn keys(&self) -> PlayIntegrityKeys {
            let (decryption, verification) = self.console_strings();
            PlayIntegrityKeys::from_console(&decryption, &verification)
                .expect("test keys are valid console keys")
        }

        /// The verification key as DER SubjectPublicKeyInfo.
        pub fn spki_der(&self) -> Vec<u8> {
            let mut der = P256_SPKI_PREFIX.to_vec();
            der.extend_from_slice(self.signing.public_key().as_ref());
            der
        }
    }

    impl std::fmt::Debug for TestPlayKeys {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TestPlayKeys").finish_non_exhaustive()
        }
    }

    /// A compact JWS over exactly `payload`, signed ES256 with the test key, whatever
    /// `protected_header_json` says.
    pub fn sign_jws(protected_header_json: &str, payload: &[u8], keys: &TestPlayKeys) -> String {
        let signing_input = format!(
            "{}.{}",
            b64::encode(protected_header_json),
            b64::encode(payload)
        );
        let signature = keys
            .signing
            .sign(&keys.rng, signing_input.as_bytes())
            .expect("ECDSA signing works");
        format!("{signing_input}.{}", b64::encode(signature))
    }

    /// A compact JWE of `plaintext`: a random content key wrapped with AES Key Wrap under the
    /// test decryption key, a random IV, AES-256-GCM with the encoded header as AAD. The header
    /// is used as given (to test refusals); the crypto is always A256KW + A256GCM.
    pub fn encrypt_compact(
        protected_header_json: &str,
        plaintext: &[u8],
        keys: &TestPlayKeys,
    ) -> String {
        let random = jwe::Randomness::from_os().expect("the system RNG works");
        jwe::encrypt_with_header(
            protected_header_json,
            &keys.decryption_key,
            plaintext,
            random,
        )
        .expect("A256KW and A256GCM seal with a 32-byte key")
    }

    /// A token as Google makes it: `verdict_json` signed ES256, then encrypted A256KW/A256GCM.
    pub fn encrypt_token(verdict_json: &[u8], keys: &TestPlayKeys) -> String {
        let jws = sign_jws(JWS_HEADER, verdict_json, keys);
        encrypt_compact(JWE_HEADER, jws.as_bytes(), keys)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    const VERDICT: &str = r#"{
        "requestDetails": {"requestPackageName": "org.example.cgm", "nonce": "bm9uY2U", "timestampMillis": "1800000000000"},
        "appIntegrity": {"appRecognitionVerdict": "PLAY_RECOGNIZED", "packageName": "org.example.cgm", "certificateSha256Digest": ["abc"], "versionCode": 7},
        "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_BASIC_INTEGRITY", "MEETS_NEW_THING"]},
        "testingDetails": {"isTestingResponse": true}
    }"#;

    #[test]
    fn a_minted_token_round_trips() {
        let keys = TestPlayKeys::generate();
        let verdict =
            decrypt_and_verify(&encrypt_token(VERDICT.as_bytes(), &keys), &keys.keys()).unwrap();
        assert_eq!(verdict.request_details.nonce.as_deref(), Some("bm9uY2U"));
        assert_eq!(verdict.request_details.request_hash, None);
        assert_eq!(verdict.request_details.timestamp_millis, 1_800_000_000_000);
        assert_eq!(verdict.app_integrity.version_code, Some(7));
        assert_eq!(
            verdict.device_integrity.device_recognition_verdict,
            [
                DeviceLabel::MeetsBasicIntegrity,
                DeviceLabel::Unknown("MEETS_NEW_THING".into())
            ]
        );
        assert!(
            verdict
                .testing_details
                .as_ref()
                .unwrap()
                .is_testing_response
        );
        assert_eq!(verdict.account_details, None);
    }

    #[test]
    fn fixed_keys_are_stable_and_valid() {
        let (a, b) = (TestPlayKeys::fixed(), TestPlayKeys::fixed());
        assert_eq!(a.console_strings(), b.console_strings());
        let token = encrypt_token(VERDICT.as_bytes(), &a);
        assert!(decrypt_and_verify(&token, &b.keys()).is_ok());
    }

    #[test]
    fn integers_are_digit_strings_or_numbers_and_nothing_else() {
        let parse = |value: &str| {
            parse_verdict(VERDICT.replace(r#""1800000000000""#, value).as_bytes())
                .map(|verdict| verdict.request_details.timestamp_millis)
        };
        assert_eq!(parse("1800000000000"), Ok(1_800_000_000_000));
        assert_eq!(parse(r#""0042""#), Ok(42));
        assert_eq!(parse(r#""9223372036854775807""#), Ok(i64::MAX));
        for refused in [
            r#""""#,
            r#""-1""#,
            r#""+1""#,
            r#"" 1""#,
            r#""1.0""#,
            r#""0x10""#,
            r#""9223372036854775808""#,
            "-1",
            "1.5",
            "9223372036854775808",
            "null",
            "true",
            "[1]",
            "{}",
        ] {
            let error = parse(refused).unwrap_err();
            assert!(
                matches!(&error, PlayIntegrityError::PayloadMalformed(m) if m.contains("line")),
                "{refused}: {error}"
            );
        }
    }

    #[test]
    fn payload_errors_do_not_quote_payload_strings() {
        let leaky = VERDICT.replace(
            r#"["MEETS_BASIC_INTEGRITY", "MEETS_NEW_THING"]"#,
            r#""SECRET-VALUE""#,
        );
        let error = parse_verdict(leaky.as_bytes()).unwrap_err().to_string();
        assert!(!error.contains("SECRET"), "{error}");
        assert!(error.contains("invalid type"), "{error}");
        let error = parse_verdict(b"[1]").unwrap_err();
        assert_eq!(
            error,
            PlayIntegrityError::PayloadMalformed("expected a JSON object".into())
        );
    }

    #[test]
    fn debug_prints_no_key_bytes() {
        let test_keys = TestPlayKeys::generate();
        let keys = test_keys.keys();
        let debug = format!("{keys:?}");
        let (decryption, verification) = test_keys.console_strings();
        assert!(!debug.contains(&decryption) && !debug.contains(&verification[30..50]));
        assert!(debug.contains(keys.verification_key().thumbprint().as_str()));
        assert!(!format!("{test_keys:?}").contains(&decryption));
    }

    #[test]
    fn open_enums_round_trip_their_strings() {
        for text in [
            "PLAY_RECOGNIZED",
            "UNRECOGNIZED_VERSION",
            "UNEVALUATED",
            "X",
        ] {
            assert_eq!(AppRecognitionVerdict::from(text).as_str(), text);
        }
        assert_eq!(
            serde_json::to_string(&DeviceActivityLevel::Level2).unwrap(),
            r#""LEVEL_2""#
        );
        assert_eq!(
            serde_json::from_str::<AppLicensingVerdict>(r#""LICENSED""#).unwrap(),
            AppLicensingVerdict::Licensed
        );
        assert!(serde_json::from_str::<AppLicensingVerdict>("1").is_err());
    }
}
