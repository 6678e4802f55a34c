//! Apple App Attest, following Apple's "Validating apps that connect to your server".
//!
//! Attestation object (first contact), CBOR `{fmt, attStmt: {x5c, receipt}, authData}`:
//! 1. `fmt` is `apple-appattest`; the x5c chain (leaf, intermediate) verifies to the App Attest
//!    root at `now`.
//! 2. `clientDataHash` is given by the caller (medgate: SHA-256(challenge ‖ jkt)).
//! 3. nonce = SHA-256(authData ‖ clientDataHash).
//! 4. The leaf's extension 1.2.840.113635.100.8.2, `SEQUENCE { [1] EXPLICIT OCTET STRING }`,
//!    holds exactly that nonce.
//! 5. SHA-256 of the leaf's public key (uncompressed point) is the key identifier the app sent.
//! 6. authData's rpIdHash is SHA-256 of the app id (`TEAMID.bundle.id`).
//! 7. authData's counter is 0.
//! 8. aaguid is `appattestdevelop` (development) or `appattest` + seven zero bytes (production).
//! 9. authData's credentialId is the key identifier.
//!
//! The receipt is kept for later use (fraud-metric requests to Apple).
//!
//! Assertion (every later contact), CBOR `{signature, authenticatorData}`:
//! 1. Decode; `clientDataHash` is given.
//! 2. nonce = SHA-256(authenticatorData ‖ clientDataHash).
//! 3. The DER ECDSA signature verifies over nonce (P-256, SHA-256) with the key stored at
//!    attestation.
//! 4. rpIdHash is SHA-256 of the app id.
//! 5. The counter is greater than the stored one. Storing the new counter atomically is the
//!    caller's job (compare-and-set), so two assertions with one counter cannot both pass.

use ciborium::Value;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Serialize;

use crate::x509::{self, CertSummary, Certificate, PublicKey, TrustAnchor, X509Error};
use crate::{UnixTime, sha256};

/// The largest attestation object or assertion read.
pub const MAX_OBJECT: usize = 64 * 1024;
const NONCE_OID: &str = "1.2.840.113635.100.8.2";
const AAGUID_PRODUCTION: &[u8; 16] = b"appattest\0\0\0\0\0\0\0";
const AAGUID_DEVELOPMENT: &[u8; 16] = b"appattestdevelop";
const FLAG_ATTESTED_CREDENTIAL: u8 = 0x40;

/// Why App Attest evidence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppAttestError {
    #[error("App Attest object is larger than {MAX_OBJECT} bytes")]
    TooLarge,
    #[error("App Attest object is malformed: {0}")]
    Malformed(String),
    #[error("attestation format is not apple-appattest")]
    WrongFormat,
    #[error("App Attest certificate chain: {0}")]
    Chain(#[from] X509Error),
    #[error("the nonce in the credential certificate does not match authData and clientDataHash")]
    NonceMismatch,
    #[error("the key identifier is not the SHA-256 of the attested public key")]
    KeyIdMismatch,
    #[error("rpIdHash is not the SHA-256 of the expected app id")]
    AppIdMismatch,
    #[error("the attestation counter is not 0")]
    CounterNotZero,
    #[error("aaguid is neither appattest nor appattestdevelop")]
    UnknownAaguid,
    #[error("the credential id is not the key identifier")]
    CredentialIdMismatch,
    #[error("the assertion signature does not verify with the attested key")]
    BadSignature,
    #[error("the assertion counter {got} is not greater than the stored {stored}")]
    CounterNotIncreasing { got: u32, stored: u32 },
}

impl AppAttestError {
    /// A stable code for the refusal, as the forgery suite's data file names it.
    pub fn code(&self) -> &'static str {
        match self {
            AppAttestError::TooLarge => "too_large",
            AppAttestError::Malformed(_) => "malformed",
            AppAttestError::WrongFormat => "wrong_format",
            AppAttestError::Chain(error) => error.code(),
            AppAttestError::NonceMismatch => "nonce_mismatch",
            AppAttestError::KeyIdMismatch => "key_id_mismatch",
            AppAttestError::AppIdMismatch => "app_id_mismatch",
            AppAttestError::CounterNotZero => "counter_not_zero",
            AppAttestError::UnknownAaguid => "unknown_aaguid",
            AppAttestError::CredentialIdMismatch => "credential_id_mismatch",
            AppAttestError::BadSignature => "bad_signature",
            AppAttestError::CounterNotIncreasing { .. } => "counter_not_increasing",
        }
    }

    /// The certificate the refusal is about (0 is the leaf), where there is one.
    pub fn index(&self) -> Option<usize> {
        match self {
            AppAttestError::Chain(error) => error.index(),
            _ => None,
        }
    }
}

/// Which App Attest environment produced the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Production,
    Development,
}

/// The fields of authenticator data this module reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthData<'a> {
    rp_id_hash: &'a [u8],
    counter: u32,
    aaguid: Option<&'a [u8]>,
    credential_id: Option<&'a [u8]>,
}

/// Reads authenticator data. With `credential`, the attested credential data (aaguid and
/// credential id) must follow the fixed 37 bytes, as in an attestation. Assertions carry only
/// the 37 bytes; real iOS 14 devices set the attested-credential flag there anyway, so the
/// flag is not what decides.
fn parse_auth_data(bytes: &[u8], credential: bool) -> Result<AuthData<'_>, AppAttestError> {
    let short = || AppAttestError::Malformed("authenticator data is too short".into());
    let rp_id_hash = bytes.get(..32).ok_or_else(short)?;
    let flags = *bytes.get(32).ok_or_else(short)?;
    let counter = bytes.get(33..37).ok_or_else(short)?;
    let counter = u32::from_be_bytes([counter[0], counter[1], counter[2], counter[3]]);
    if !credential {
        return Ok(AuthData {
            rp_id_hash,
            counter,
            aaguid: None,
            credential_id: None,
        });
    }
    if flags & FLAG_ATTESTED_CREDENTIAL == 0 {
        return Err(AppAttestError::Malformed(
            "authenticator data has no attested credential".into(),
        ));
    }
    let aaguid = bytes.get(37..53).ok_or_else(short)?;
    let length = bytes.get(53..55).ok_or_else(short)?;
    let length = usize::from(u16::from_be_bytes([length[0], length[1]]));
    let credential_id = bytes.get(55..55 + length).ok_or_else(short)?;
    Ok(AuthData {
        rp_id_hash,
        counter,
        aaguid: Some(aaguid),
        credential_id: Some(credential_id),
    })
}

/// A CBOR map from the top level, with text keys, each at most once.
fn cbor_map(bytes: &[u8]) -> Result<Vec<(String, Value)>, AppAttestError> {
    if bytes.len() > MAX_OBJECT {
        return Err(AppAttestError::TooLarge);
    }
    let value: Value = ciborium::de::from_reader(bytes)
        .map_err(|e| AppAttestError::Malformed(format!("CBOR: {e}")))?;
    into_text_map(value)
}

fn into_text_map(value: Value) -> Result<Vec<(String, Value)>, AppAttestError> {
    let Value::Map(entries) = value else {
        return Err(AppAttestError::Malformed("expected a CBOR map".into()));
    };
    let mut out: Vec<(String, Value)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Value::Text(key) = key else {
            return Err(AppAttestError::Malformed(
                "CBOR map keys must be text".into(),
            ));
        };
        if out.iter().any(|(seen, _)| *seen == key) {
            return Err(AppAttestError::Malformed(format!(
                "duplicate CBOR key {key:?}"
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

fn take(map: &mut Vec<(String, Value)>, key: &str) -> Result<Value, AppAttestError> {
    let index = map
        .iter()
        .position(|(k, _)| k == key)
        .ok_or_else(|| AppAttestError::Malformed(format!("missing {key}")))?;
    Ok(map.swap_remove(index).1)
}

fn bytes(value: Value, what: &str) -> Result<Vec<u8>, AppAttestError> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        _ => Err(AppAttestError::Malformed(format!(
            "{what} must be a byte string"
        ))),
    }
}

/// An attestation object, decoded but not yet verified.
#[derive(Debug, Clone)]
pub struct DecodedAttestation {
    format: String,
    chain: Vec<Certificate>,
    receipt: Vec<u8>,
    auth_data: Vec<u8>,
}

impl DecodedAttestation {
    pub fn decode(object: &[u8]) -> Result<DecodedAttestation, AppAttestError> {
        let mut map = cbor_map(object)?;
        let format = match take(&mut map, "fmt")? {
            Value::Text(format) => format,
            _ => return Err(AppAttestError::Malformed("fmt must be text".into())),
        };
        let auth_data = bytes(take(&mut map, "authData")?, "authData")?;
        let mut statement = into_text_map(take(&mut map, "attStmt")?)?;
        let Value::Array(x5c) = take(&mut statement, "x5c")? else {
            return Err(AppAttestError::Malformed("x5c must be an array".into()));
        };
        let ders = x5c
            .into_iter()
            .map(|cert| bytes(cert, "x5c entries"))
            .collect::<Result<Vec<_>, _>>()?;
        let chain = Certificate::chain_from_der(&ders)?;
        let receipt = bytes(take(&mut statement, "receipt")?, "receipt")?;
        Ok(DecodedAttestation {
            format,
            chain,
            receipt,
            auth_data,
        })
    }

    /// Whether authData's rpIdHash is SHA-256 of `app_id` (to pick which of an app's ids an
    /// attestation is for before verifying it).
    pub fn rp_id_hash_is(&self, app_id: &str) -> bool {
        parse_auth_data(&self.auth_data, true)
            .is_ok_and(|auth| auth.rp_id_hash == sha256(&[app_id.as_bytes()]))
    }

    /// The decoded fields, for reports; `None` where a field is absent.
    pub fn report(&self) -> AttestationReport {
        let auth = parse_auth_data(&self.auth_data, true).ok();
        let key = self.chain.first().map(Certificate::public_key);
        let point = match &key {
            Some(PublicKey::P256(point)) => Some(point.clone()),
            _ => None,
        };
        AttestationReport {
            fmt: self.format.clone(),
            environment: auth.as_ref().and_then(|a| environment(a.aaguid?)),
            aaguid_hex: auth
                .as_ref()
                .and_then(|a| a.aaguid)
                .map(medgate_proto::hex::encode),
            counter: auth.as_ref().map(|a| a.counter),
            rp_id_hash_hex: auth
                .as_ref()
                .map(|a| medgate_proto::hex::encode(a.rp_id_hash)),
            credential_id_hex: auth
                .as_ref()
                .and_then(|a| a.credential_id)
                .map(medgate_proto::hex::encode),
            credential_public_key_x962_hex: point.as_deref().map(medgate_proto::hex::encode),
            key_id_sha256_hex: point
                .as_deref()
                .map(|p| medgate_proto::hex::encode(&sha256(&[p]))),
            certificates: self.chain.iter().map(Certificate::summary).collect(),
            receipt_bytes: self.receipt.len(),
        }
    }
}

fn environment(aaguid: &[u8]) -> Option<Environment> {
    match aaguid {
        a if a == AAGUID_PRODUCTION => Some(Environment::Production),
        a if a == AAGUID_DEVELOPMENT => Some(Environment::Development),
        _ => None,
    }
}

/// What an attestation object says, for reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttestationReport {
    pub fmt: String,
    pub environment: Option<Environment>,
    pub aaguid_hex: Option<String>,
    pub counter: Option<u32>,
    pub rp_id_hash_hex: Option<String>,
    pub credential_id_hex: Option<String>,
    pub credential_public_key_x962_hex: Option<String>,
    pub key_id_sha256_hex: Option<String>,
    pub certificates: Vec<CertSummary>,
    pub receipt_bytes: usize,
}

/// What the caller expects of an attestation.
#[derive(Debug, Clone, Copy)]
pub struct AttestationExpectations<'a> {
    /// `TEAMID.bundle.id`.
    pub app_id: &'a str,
    pub client_data_hash: &'a [u8],
    /// The key identifier the app sent (SHA-256 of its public key).
    pub key_id: &'a [u8],
}

/// A verified App Attest key. Only [`verify_attestation`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAttestation {
    key_id: [u8; 32],
    public_key: Vec<u8>,
    environment: Environment,
    receipt: Vec<u8>,
}

impl VerifiedAttestation {
    pub fn key_id(&self) -> &[u8; 32] {
        &self.key_id
    }
    /// The attested key, an uncompressed P-256 point: store it for assertions.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }
    pub fn environment(&self) -> Environment {
        self.environment
    }
    pub fn receipt(&self) -> &[u8] {
        &self.receipt
    }
}

/// Steps 1–9.
pub fn verify_attestation(
    decoded: &DecodedAttestation,
    expect: &AttestationExpectations<'_>,
    anchors: &[TrustAnchor],
    now: UnixTime,
) -> Result<VerifiedAttestation, AppAttestError> {
    // Step 1.
    if decoded.format != "apple-appattest" {
        return Err(AppAttestError::WrongFormat);
    }
    x509::verify_chain(&decoded.chain, anchors, now)?;
    let leaf = decoded.chain.first().ok_or(X509Error::Empty)?;
    // Steps 2 and 3.
    let nonce = sha256(&[&decoded.auth_data, expect.client_data_hash]);
    // Step 4.
    let extension = leaf
        .extension(NONCE_OID)
        .ok_or(AppAttestError::NonceMismatch)?;
    if nonce_from_extension(extension)? != nonce {
        return Err(AppAttestError::NonceMismatch);
    }
    // Step 5.
    let PublicKey::P256(point) = leaf.public_key() else {
        return Err(AppAttestError::Malformed(
            "the credential certificate key is not P-256".into(),
        ));
    };
    let key_id = sha256(&[&point]);
    if key_id.as_slice() != expect.key_id {
        return Err(AppAttestError::KeyIdMismatch);
    }
    let auth = parse_auth_data(&decoded.auth_data, true)?;
    // Step 6.
    if auth.rp_id_hash != sha256(&[expect.app_id.as_bytes()]) {
        return Err(AppAttestError::AppIdMismatch);
    }
    // Step 7.
    if auth.counter != 0 {
        return Err(AppAttestError::CounterNotZero);
    }
    // Step 8.
    let environment = auth
        .aaguid
        .and_then(environment)
        .ok_or(AppAttestError::UnknownAaguid)?;
    // Step 9.
    if auth.credential_id != Some(key_id.as_slice()) {
        return Err(AppAttestError::CredentialIdMismatch);
    }
    Ok(VerifiedAttestation {
        key_id,
        public_key: point,
        environment,
        receipt: decoded.receipt.clone(),
    })
}

/// `SEQUENCE { [1] EXPLICIT OCTET STRING }` → the octet string.
fn nonce_from_extension(der: &[u8]) -> Result<Vec<u8>, AppAttestError> {
    use der::{Reader, SliceReader, Tag, TagNumber};
    let malformed = |e: der::Error| AppAttestError::Malformed(format!("nonce extension: {e}"));
    let mut reader = SliceReader::new(der).map_err(malformed)?;
    let nonce = reader
        .sequence(|inner| {
            inner
                .context_specific::<der::asn1::OctetString>(TagNumber(1), der::TagMode::Explicit)?
                .ok_or_else(|| {
                    Tag::ContextSpecific {
                        constructed: true,
                        number: TagNumber(1),
                    }
                    .value_error()
                    .into()
                })
        })
        .map_err(malformed)?;
    reader.finish().map_err(malformed)?;
    Ok(nonce.into_bytes().to_vec())
}

/// A verified assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAssertion {
    counter: u32,
}

impl VerifiedAssertion {
    /// The new counter, to be stored with compare-and-set against the old one.
    pub fn counter(&self) -> u32 {
        self.counter
    }
}

/// Assertion steps 1–5.
pub fn verify_assertion(
    assertion: &[u8],
    public_key: &[u8],
    app_id: &str,
    client_data_hash: &[u8],
    previous_counter: u32,
) -> Result<VerifiedAssertion, AppAttestError> {
    // Step 1.
    let mut map = cbor_map(assertion)?;
    let signature = bytes(take(&mut map, "signature")?, "signature")?;
    let authenticator_data = bytes(take(&mut map, "authenticatorData")?, "authenticatorData")?;
    let auth = parse_auth_data(&authenticator_data, false)?;
    // Step 2.
    let nonce = sha256(&[&authenticator_data, client_data_hash]);
    // Step 3: ECDSA with SHA-256 over the nonce (ring hashes the message it is given).
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, public_key)
        .verify(&nonce, &signature)
        .map_err(|_| AppAttestError::BadSignature)?;
    // Step 4.
    if auth.rp_id_hash != sha256(&[app_id.as_bytes()]) {
        return Err(AppAttestError::AppIdMismatch);
    }
    // Step 5.
    if auth.counter <= previous_counter {
        return Err(AppAttestError::CounterNotIncreasing {
            got: auth.counter,
            stored: previous_counter,
        });
    }
    Ok(VerifiedAssertion {
        counter: auth.counter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_data_bounds_are_checked() {
        assert!(parse_auth_data(&[0; 36], false).is_err());
        let mut data = vec![0u8; 37];
        assert!(
            parse_auth_data(&data, false).is_ok(),
            "an assertion's 37 bytes"
        );
        assert!(
            parse_auth_data(&data, true)
                .unwrap_err()
                .to_string()
                .contains("no attested credential")
        );
        data[32] = FLAG_ATTESTED_CREDENTIAL;
        assert!(
            parse_auth_data(&data, false).is_ok(),
            "the flag alone does not demand credential data"
        );
        assert!(
            parse_auth_data(&data, true).is_err(),
            "attested credential flag without data"
        );
        data.extend_from_slice(&[0; 16]);
        data.extend_from_slice(&[0, 40]);
        data.extend_from_slice(&[1; 39]);
        assert!(
            parse_auth_data(&data, true).is_err(),
            "credential id shorter than declared"
        );
        data.push(1);
        let parsed = parse_auth_data(&data, true).unwrap();
        assert_eq!(parsed.credential_id.unwrap().len(), 40);
    }

    #[test]
    fn cbor_shape_errors_are_clear() {
        let encode = |value: &Value| {
            let mut out = Vec::new();
            ciborium::ser::into_writer(value, &mut out).unwrap();
            out
        };
        let text = |s: &str| Value::Text(s.into());
        assert!(matches!(
            DecodedAttestation::decode(b"\xff"),
            Err(AppAttestError::Malformed(_))
        ));
        let not_map = encode(&Value::Array(vec![]));
        assert_eq!(
            DecodedAttestation::decode(&not_map).unwrap_err(),
            AppAttestError::Malformed("expected a CBOR map".into())
        );
        let duplicate = encode(&Value::Map(vec![
            (text("fmt"), text("a")),
            (text("fmt"), text("b")),
        ]));
        assert!(
            DecodedAttestation::decode(&duplicate)
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
        let missing = encode(&Value::Map(vec![(text("fmt"), text("apple-appattest"))]));
        assert!(
            DecodedAttestation::decode(&missing)
                .unwrap_err()
                .to_string()
                .contains("missing authData")
        );
        let int_key = encode(&Value::Map(vec![(Value::Integer(1.into()), text("x"))]));
        assert!(
            DecodedAttestation::decode(&int_key)
                .unwrap_err()
                .to_string()
                .contains("keys must be text")
        );
        assert_eq!(
            DecodedAttestation::decode(&vec![0; MAX_OBJECT + 1]).unwrap_err(),
            AppAttestError::TooLarge
        );
    }
}
