//! X.509 certificates and certificate chains, as attestation uses them.
//!
//! Attestation chains are not web PKI chains: Google anchors them by the root's public key (its
//! root certificate has been re-issued with the same key, and old chains end at old issuances),
//! intermediates may be short-lived, and some real chains carry quirks (an explicit NULL in an
//! ECDSA AlgorithmIdentifier, 76-column PEM). So this module checks what matters and nothing
//! else, for hostile input:
//!
//! 1. The chain has 1 to [`MAX_CHAIN`] certificates of at most [`MAX_CERT_LEN`] bytes, each strict DER.
//! 2. It is anchored: the last certificate carries a trusted public key (the anchor's own dates
//!    are not checked), or the last certificate is signed by one.
//!    a. When the last certificate carries the anchor's key it is the anchor's certificate, never
//!    the attested leaf: at least one certificate must stand below it.
//!    b. The anchor's certificate is signed by the anchor's own key. A certificate that merely
//!    carries a published root key, signed by anyone, proves nothing.
//!    c. No certificate below the anchor carries a trusted key.
//! 3. Every link: the issuer's name is the next certificate's subject, the signature verifies
//!    with the next certificate's key (or the anchor's), and the outer and inner signature
//!    algorithms agree.
//! 4. Every certificate below the anchor is valid at `now`.
//!
//! So every certificate from the leaf up to the anchor is signature-checked, and every one
//! below the anchor is in date.
//!
//! Basic constraints and key usage are not consulted (as in Google's verifier); callers add the
//! checks their format needs (Android: only the leaf may carry a key description).

use der::{Decode, Encode, Header, Reader, SliceReader, Tag};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Serialize;
use spki::ObjectIdentifier;

use crate::UnixTime;

/// The largest certificate read.
pub const MAX_CERT_LEN: usize = 16 * 1024;
/// The longest chain read.
pub const MAX_CHAIN: usize = 10;

const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

/// Why a certificate or chain was refused. Indexes count from the leaf (0).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    #[error("certificate chain is empty")]
    Empty,
    #[error("certificate chain has {0} certificates, more than {MAX_CHAIN}")]
    TooLong(usize),
    #[error("certificate {index} is larger than {MAX_CERT_LEN} bytes")]
    TooLarge { index: usize },
    #[error("certificate {index} is not a DER X.509 certificate: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("the chain does not end at a trusted root key")]
    UntrustedRoot,
    #[error("the chain holds only a trust anchor's certificate; nothing below it is attested")]
    AnchorOnly,
    #[error("certificate {index} carries a trust anchor's key but is not the last certificate")]
    AnchorKeyBelowRoot { index: usize },
    #[error("certificate {index} is not signed by its issuer")]
    BadSignature { index: usize },
    #[error(
        "certificate {index} uses a signature algorithm or issuer key this verifier does not support ({detail})"
    )]
    UnsupportedAlgorithm { index: usize, detail: String },
    #[error("certificate {index} names an issuer that is not the next certificate's subject")]
    NameMismatch { index: usize },
    #[error("certificate {index} is not valid yet at the verification time")]
    NotYetValid { index: usize },
    #[error("certificate {index} has expired at the verification time")]
    Expired { index: usize },
}

impl X509Error {
    /// A stable code for the refusal, as the forgery suite's data file names it.
    pub fn code(&self) -> &'static str {
        match self {
            X509Error::Empty => "empty",
            X509Error::TooLong(_) => "too_long",
            X509Error::TooLarge { .. } => "too_large",
            X509Error::Malformed { .. } => "malformed",
            X509Error::UntrustedRoot => "untrusted_root",
            X509Error::AnchorOnly => "anchor_only",
            X509Error::AnchorKeyBelowRoot { .. } => "anchor_key_below_root",
            X509Error::BadSignature { .. } => "bad_signature",
            X509Error::UnsupportedAlgorithm { .. } => "unsupported_algorithm",
            X509Error::NameMismatch { .. } => "name_mismatch",
            X509Error::NotYetValid { .. } => "not_yet_valid",
            X509Error::Expired { .. } => "expired",
        }
    }

    /// The certificate the refusal is about (0 is the leaf), where there is one.
    pub fn index(&self) -> Option<usize> {
        match self {
            X509Error::TooLarge { index }
            | X509Error::Malformed { index, .. }
            | X509Error::AnchorKeyBelowRoot { index }
            | X509Error::BadSignature { index }
            | X509Error::UnsupportedAlgorithm { index, .. }
            | X509Error::NameMismatch { index }
            | X509Error::NotYetValid { index }
            | X509Error::Expired { index } => Some(*index),
            X509Error::Empty
            | X509Error::TooLong(_)
            | X509Error::UntrustedRoot
            | X509Error::AnchorOnly => None,
        }
    }
}

/// A parsed certificate and the bytes it was parsed from.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    tbs_len: (usize, usize),
    cert: x509_cert::Certificate,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject())
            .field("serial", &self.serial_hex())
            .finish()
    }
}

/// A public key as this verifier understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Uncompressed SEC1 point, 65 bytes.
    P256(Vec<u8>),
    /// Uncompressed SEC1 point, 97 bytes.
    P384(Vec<u8>),
    /// DER RSAPublicKey.
    Rsa(Vec<u8>),
    /// A key this verifier cannot use (ML-DSA, other curves): it parses, policy decides.
    Other { algorithm: String },
}

impl PublicKey {
    pub fn describe(&self) -> String {
        match self {
            PublicKey::P256(_) => "EC P-256".into(),
            PublicKey::P384(_) => "EC P-384".into(),
            PublicKey::Rsa(der) => format!("RSA-{}", rsa_bits(der).unwrap_or(0)),
            PublicKey::Other { algorithm } => format!("other ({algorithm})"),
        }
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Result<PublicKey, String> {
        let info = spki::SubjectPublicKeyInfoRef::from_der(spki).map_err(|e| e.to_string())?;
        Ok(key_of(&info))
    }
}

fn key_of(info: &spki::SubjectPublicKeyInfoRef<'_>) -> PublicKey {
    let bits = info.subject_public_key.as_bytes().map(<[u8]>::to_vec);
    let curve = info
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    match (info.algorithm.oid, curve, bits) {
        (EC_PUBLIC_KEY, Some(P256), Some(point)) if point.len() == 65 && point[0] == 4 => {
            PublicKey::P256(point)
        }
        (EC_PUBLIC_KEY, Some(P384), Some(point)) if point.len() == 97 && point[0] == 4 => {
            PublicKey::P384(point)
        }
        (RSA, _, Some(der)) => PublicKey::Rsa(der),
        (oid, curve, _) => PublicKey::Other {
            algorithm: match curve {
                Some(curve) => format!("{oid} on {curve}"),
                None => oid.to_string(),
            },
        },
    }
}

/// The modulus length of a DER RSAPublicKey, in bits.
fn rsa_bits(der: &[u8]) -> Option<usize> {
    let mut reader = SliceReader::new(der).ok()?;
    let header = Header::decode(&mut reader).ok()?;
    if header.tag() != Tag::Sequence {
        return None;
    }
    let modulus = der::asn1::UintRef::decode(&mut reader).ok()?;
    let bytes = modulus.as_bytes();
    let leading = bytes.first().map_or(8, |b| b.leading_zeros() as usize);
    Some(bytes.len() * 8 - leading)
}

/// Summary fields for reports (`medgate inspect`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    pub subject: String,
    pub issuer: String,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub key: String,
    pub spki_sha256: String,
}

impl Certificate {
    /// Parses one DER certificate. `index` only labels errors.
    pub fn from_der(der: &[u8], index: usize) -> Result<Certificate, X509Error> {
        if der.len() > MAX_CERT_LEN {
            return Err(X509Error::TooLarge { index });
        }
        let malformed = |reason: String| X509Error::Malformed { index, reason };
        let cert = x509_cert::Certificate::from_der(der).map_err(|e| malformed(e.to_string()))?;
        let tbs_len = tbs_range(der).map_err(|e| malformed(e.to_string()))?;
        Ok(Certificate {
            der: der.to_vec(),
            tbs_len,
            cert,
        })
    }

    /// Parses a chain given leaf first.
    pub fn chain_from_der<B: AsRef<[u8]>>(ders: &[B]) -> Result<Vec<Certificate>, X509Error> {
        if ders.is_empty() {
            return Err(X509Error::Empty);
        }
        if ders.len() > MAX_CHAIN {
            return Err(X509Error::TooLong(ders.len()));
        }
        ders.iter()
            .enumerate()
            .map(|(i, der)| Certificate::from_der(der.as_ref(), i))
            .collect()
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    fn tbs_der(&self) -> &[u8] {
        &self.der[self.tbs_len.0..self.tbs_len.1]
    }

    /// The value of the extension with this OID, if present.
    pub fn extension(&self, oid: &str) -> Option<&[u8]> {
        let oid = ObjectIdentifier::new(oid).ok()?;
        self.cert
            .tbs_certificate()
            .extensions()?
            .iter()
            .find(|extension| extension.extn_id == oid)
            .map(|extension| extension.extn_value.as_bytes())
    }

    /// How many extensions with this OID the certificate carries (RFC 5280 allows one).
    pub fn extension_count(&self, oid: &str) -> usize {
        let Ok(oid) = ObjectIdentifier::new(oid) else {
            return 0;
        };
        self.cert
            .tbs_certificate()
            .extensions()
            .map_or(0, |all| all.iter().filter(|e| e.extn_id == oid).count())
    }

    /// The serial number in lowercase hex without leading zeros (as revocation lists key it).
    pub fn serial_hex(&self) -> String {
        let bytes = self.cert.tbs_certificate().serial_number().as_bytes();
        let hex = medgate_proto::hex::encode(bytes);
        let trimmed = hex.trim_start_matches('0');
        if trimmed.is_empty() {
            "0".into()
        } else {
            trimmed.into()
        }
    }

    pub fn subject(&self) -> String {
        self.cert.tbs_certificate().subject().to_string()
    }

    pub fn issuer(&self) -> String {
        self.cert.tbs_certificate().issuer().to_string()
    }

    pub fn not_before(&self) -> UnixTime {
        seconds(self.cert.tbs_certificate().validity().not_before)
    }

    pub fn not_after(&self) -> UnixTime {
        seconds(self.cert.tbs_certificate().validity().not_after)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        self.cert
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .unwrap_or_default()
    }

    pub fn public_key(&self) -> PublicKey {
        let spki = self.spki_der();
        PublicKey::from_spki_der(&spki).unwrap_or(PublicKey::Other {
            algorithm: "unparsable".into(),
        })
    }

    pub fn summary(&self) -> CertSummary {
        CertSummary {
            subject: self.subject(),
            issuer: self.issuer(),
            serial_hex: self.serial_hex(),
            not_before: self.not_before().secs(),
            not_after: self.not_after().secs(),
            key: self.public_key().describe(),
            spki_sha256: medgate_proto::hex::encode(
                ring::digest::digest(&ring::digest::SHA256, &self.spki_der()).as_ref(),
            ),
        }
    }

    fn issued_by_name(&self, issuer: &Certificate) -> bool {
        let named = self.cert.tbs_certificate().issuer().to_der();
        let subject = issuer.cert.tbs_certificate().subject().to_der();
        matches!((named, subject), (Ok(a), Ok(b)) if a == b)
    }

    /// Verifies this certificate's signature with `issuer_key`.
    pub fn verify_signed_by(&self, issuer_key: &PublicKey, index: usize) -> Result<(), X509Error> {
        let outer = &self.cert.signature_algorithm().oid;
        let inner = &self.cert.tbs_certificate().signature().oid;
        if outer != inner {
            return Err(X509Error::Malformed {
                index,
                reason: "outer and inner signature algorithms differ".into(),
            });
        }
        let unsupported = |detail: String| X509Error::UnsupportedAlgorithm { index, detail };
        let (algorithm, key): (&dyn VerificationAlgorithm, &[u8]) = match (*outer, issuer_key) {
            (SHA256_WITH_RSA, PublicKey::Rsa(key)) => (rsa_algorithm(key, 256), key),
            (SHA384_WITH_RSA, PublicKey::Rsa(key)) => (rsa_algorithm(key, 384), key),
            (SHA512_WITH_RSA, PublicKey::Rsa(key)) => (rsa_algorithm(key, 512), key),
            (ECDSA_SHA256, PublicKey::P256(key)) => (&signature::ECDSA_P256_SHA256_ASN1, key),
            (ECDSA_SHA256, PublicKey::P384(key)) => (&signature::ECDSA_P384_SHA256_ASN1, key),
            (ECDSA_SHA384, PublicKey::P256(key)) => (&signature::ECDSA_P256_SHA384_ASN1, key),
            (ECDSA_SHA384, PublicKey::P384(key)) => (&signature::ECDSA_P384_SHA384_ASN1, key),
            (oid, key) => return Err(unsupported(format!("{oid} with an {} key", key.describe()))),
        };
        let signature = self
            .cert
            .signature()
            .as_bytes()
            .ok_or_else(|| X509Error::Malformed {
                index,
                reason: "signature has unused bits".into(),
            })?;
        UnparsedPublicKey::new(algorithm, key)
            .verify(self.tbs_der(), signature)
            .map_err(|_| X509Error::BadSignature { index })
    }
}

/// RSA PKCS#1 v1.5. Keys under 2048 bits exist only in the AOSP software attestation root,
/// which policy rejects unless software attestation is allowed; they verify with ring's
/// legacy variant.
fn rsa_algorithm(key: &[u8], sha: u16) -> &'static dyn VerificationAlgorithm {
    let legacy = rsa_bits(key).is_some_and(|bits| bits < 2048);
    match (sha, legacy) {
        (256, false) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (384, false) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (512, false) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (512, true) => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        (_, true) => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
        _ => &signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn seconds(time: x509_cert::time::Time) -> UnixTime {
    UnixTime::from_secs(i64::try_from(time.to_unix_duration().as_secs()).unwrap_or(i64::MAX))
}

/// The byte range of the TBSCertificate inside the certificate's DER: what the signature covers.
fn tbs_range(der: &[u8]) -> der::Result<(usize, usize)> {
    let mut reader = SliceReader::new(der)?;
    let outer = Header::decode(&mut reader)?;
    outer.tag().assert_eq(Tag::Sequence)?;
    let start = usize::try_from(reader.position())?;
    let tbs = reader.tlv_bytes()?;
    Ok((start, start + tbs.len()))
}

/// A trusted public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    pub name: String,
    /// DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

impl TrustAnchor {
    pub fn new(name: impl Into<String>, spki: Vec<u8>) -> Self {
        TrustAnchor {
            name: name.into(),
            spki,
        }
    }

    /// The anchor for a root certificate (its key; its dates are not used).
    pub fn from_certificate(name: impl Into<String>, cert: &Certificate) -> Self {
        TrustAnchor::new(name, cert.spki_der())
    }
}

/// Where a verified chain is anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchored {
    /// Index into the anchors given.
    pub anchor: usize,
    /// Whether the chain included the anchor's own (self-signed) certificate.
    pub includes_root: bool,
}

/// Steps 2–4 for an already parsed chain (step 1).
pub fn verify_chain(
    chain: &[Certificate],
    anchors: &[TrustAnchor],
    now: UnixTime,
) -> Result<Anchored, X509Error> {
    let last = chain.last().ok_or(X509Error::Empty)?;
    if chain.len() > MAX_CHAIN {
        return Err(X509Error::TooLong(chain.len()));
    }
    // Step 2: anchored by the last certificate's key, or by the key that signed it.
    let last_spki = last.spki_der();
    let last_index = chain.len() - 1;
    let (anchor, includes_root) = match anchors.iter().position(|a| a.spki == last_spki) {
        Some(index) => {
            // Step 2a.
            if chain.len() < 2 {
                return Err(X509Error::AnchorOnly);
            }
            // Step 2b.
            let key = PublicKey::from_spki_der(&last_spki).map_err(|_| X509Error::UntrustedRoot)?;
            last.verify_signed_by(&key, last_index)?;
            (index, true)
        }
        None => {
            let signer = anchors.iter().position(|anchor| {
                PublicKey::from_spki_der(&anchor.spki)
                    .is_ok_and(|key| last.verify_signed_by(&key, last_index).is_ok())
            });
            (signer.ok_or(X509Error::UntrustedRoot)?, false)
        }
    };
    let below_anchor = if includes_root {
        &chain[..last_index]
    } else {
        chain
    };
    // Step 2c.
    if let Some(index) = below_anchor.iter().position(|cert| {
        let spki = cert.spki_der();
        anchors.iter().any(|a| a.spki == spki)
    }) {
        return Err(X509Error::AnchorKeyBelowRoot { index });
    }
    // Step 3: each link. When the chain stops below the root, step 2 has already verified its
    // top certificate's signature with the anchor key.
    for (index, cert) in below_anchor.iter().enumerate() {
        if let Some(issuer) = chain.get(index + 1) {
            if !cert.issued_by_name(issuer) {
                return Err(X509Error::NameMismatch { index });
            }
            cert.verify_signed_by(&issuer.public_key(), index)?;
        }
        // Step 4.
        if now < cert.not_before() {
            return Err(X509Error::NotYetValid { index });
        }
        if now > cert.not_after() {
            return Err(X509Error::Expired { index });
        }
    }
    Ok(Anchored {
        anchor,
        includes_root,
    })
}

/// Lenient PEM: any number of `-----BEGIN <label>-----` blocks, any line length, CRLF or LF,
/// with or without a final newline. Returns the DER of each block with the given label.
pub fn pem_blocks(text: &str, label: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body_start = start + begin.len();
        let Some(stop) = rest[body_start..].find(&end) else {
            return Err(format!("unterminated {label} block"));
        };
        let body: String = rest[body_start..body_start + stop]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|_| format!("a {label} block is not base64"))?;
        blocks.push(der);
        if blocks.len() > MAX_CHAIN {
            return Err(format!("more than {MAX_CHAIN} {label} blocks"));
        }
        rest = &rest[body_start + stop + end.len()..];
    }
    Ok(blocks)
}

/// Splits DER values saved back to back (a chain as concatenated certificates) without parsing
/// them: each is its TLV header and content, the last one possibly cut short (the certificate
/// parser reports that). At most [`MAX_CHAIN`] values.
pub fn split_der(mut bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut values = Vec::new();
    while !bytes.is_empty() {
        if values.len() == MAX_CHAIN {
            return Err(format!("more than {MAX_CHAIN} certificates"));
        }
        let first = *bytes.get(1).ok_or("a DER value is cut short")?;
        let (header, length) = if first < 0x80 {
            (2, usize::from(first))
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 {
                return Err("not DER: bad length form".into());
            }
            let digits = bytes.get(2..2 + count).ok_or("a DER value is cut short")?;
            let length = digits
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + count, length)
        };
        let end = header.saturating_add(length).min(bytes.len());
        let (value, rest) = bytes.split_at(end);
        values.push(value);
        bytes = rest;
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_values_split_back_to_back() {
        let two = [0x30, 0x01, 0xAA, 0x30, 0x81, 0x02, 0xBB, 0xCC];
        assert_eq!(split_der(&two).unwrap(), vec![&two[..3], &two[3..]],);
        assert_eq!(split_der(&[]).unwrap(), Vec::<&[u8]>::new());
        // The last value may be cut short; the certificate parser reports it.
        assert_eq!(
            split_der(&[0x30, 0x05, 0x01]).unwrap(),
            vec![&[0x30u8, 0x05, 0x01][..]]
        );
        assert!(split_der(&[0x30]).is_err());
        assert!(split_der(&[0x30, 0x80]).is_err());
        assert!(split_der(&[0x30, 0x85, 1, 2, 3, 4, 5]).is_err());
        assert!(split_der(&[0x30, 0x82, 0x01]).is_err());
        let eleven = [0x30u8, 0x00].repeat(MAX_CHAIN + 1);
        assert!(split_der(&eleven).is_err());
        assert_eq!(split_der(&eleven[2..]).unwrap().len(), MAX_CHAIN);
    }

    #[test]
    fn lenient_pem_reads_any_line_length_and_several_blocks() {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode([7u8; 100]);
        let text = format!(
            "junk\r\n-----BEGIN CERTIFICATE-----\r\n{}\r\n{}\r\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----{}-----END CERTIFICATE-----",
            &encoded[..76],
            &encoded[76..],
            encoded
        );
        let blocks = pem_blocks(&text, "CERTIFICATE").unwrap();
        assert_eq!(blocks, vec![vec![7u8; 100], vec![7u8; 100]]);
        assert!(pem_blocks("-----BEGIN CERTIFICATE-----AAAA", "CERTIFICATE").is_err());
        assert!(
            pem_blocks(
                "-----BEGIN CERTIFICATE-----!!!-----END CERTIFICATE-----",
                "CERTIFICATE"
            )
            .is_err()
        );
        assert!(pem_blocks("nothing", "CERTIFICATE").unwrap().is_empty());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x80\x00\x00",
            b"\x30\x03\x02\x01\x01",
            &[0xff; 40],
        ] {
            assert!(matches!(
                Certificate::from_der(bytes, 3),
                Err(X509Error::Malformed { index: 3, .. })
            ));
        }
        assert_eq!(
            Certificate::from_der(&vec![0x30; MAX_CERT_LEN + 1], 0).unwrap_err(),
            X509Error::TooLarge { index: 0 }
        );
        let empty: [&[u8]; 0] = [];
        assert_eq!(
            Certificate::chain_from_der(&empty).unwrap_err(),
            X509Error::Empty
        );
        assert_eq!(
            Certificate::chain_from_der(&[&b""[..]; 11]).unwrap_err(),
            X509Error::TooLong(11)
        );
    }
}
