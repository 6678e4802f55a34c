//! Forged attestation evidence for the forgery suite.
//!
//! `tests/forgeries/cases.json` (at the top of the repository) lists every forgery a verifier
//! must refuse, each with the reason it must fail, in the spirit of x509-limbo's `limbo.json`.
//! This module reads that file and builds each forgery from public material only: Google's and
//! Apple's published root keys, real chains from the vectors, the test CAs, and throwaway keys.
//! What an attacker without a phone or a secret can make, in other words. The suites that run
//! the cases (the verification core, `/v1/attest`, `medgate inspect`) live beside the code they
//! test; this module decides nothing.

pub mod jose;

use std::path::Path;

use base64::Engine;
use ciborium::Value;
use rcgen::CustomExtension;

use crate::attestation::{
    KeyDescription, TestAndroidCa, TestKey, octets, sequence, sha256_of, tlv,
};

/// The case file, compiled in so that a case cannot go missing at run time.
pub const CASES_JSON: &str = include_str!("../../../tests/forgeries/cases.json");

/// OID 1.3.6.1.4.1.11129.2.1.17, the Android KeyDescription extension, as rcgen takes it.
const KEY_DESCRIPTION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 1, 17];
/// The same OID as DER content bytes.
const KEY_DESCRIPTION_OID_DER: &[u8] =
    &[0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x01, 0x11];
/// AlgorithmIdentifier ecdsa-with-SHA256.
const ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// Which trust anchors the verifier runs with for a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roots {
    /// The roots medgate ships, nothing else.
    Production,
    /// The shipped roots plus the test CA of the verifier's platform (cases that need a signing
    /// CA the attacker does not have, such as a key description in an intermediate).
    TestCa,
}

/// One row of the case file.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    /// `android-key-attestation`, `apple-attestation`, `apple-assertion`, `access-token`,
    /// `dpop-proof`, `sdk-evidence` or `play-integrity`.
    pub verifier: String,
    /// The name of the recipe below that builds the forgery.
    pub forge: String,
    pub description: String,
    pub roots: Roots,
    /// A real vector the forgery starts from, relative to the vectors folder.
    pub vector: Option<String>,
    /// The verification instant, when the case needs one (Unix seconds).
    pub at: Option<i64>,
    /// A published root key (DER SubjectPublicKeyInfo) the forgery carries.
    pub anchor_spki: Option<Vec<u8>>,
    /// The refusal's stable code (`X509Error::code` and friends).
    pub expected_code: String,
    /// The certificate the refusal names (0 is the leaf), where it names one.
    pub expected_index: Option<usize>,
    /// JOSE cases: merge patches for the protected header and the claims.
    pub header_patch: Option<serde_json::Value>,
    pub claims_patch: Option<serde_json::Value>,
}

fn text(row: &serde_json::Value, key: &str) -> Option<String> {
    row.get(key)?.as_str().map(str::to_string)
}

/// Every case of the file, for one verifier.
pub fn cases(verifier: &str) -> Vec<Case> {
    let file: serde_json::Value =
        serde_json::from_str(CASES_JSON).expect("tests/forgeries/cases.json is JSON");
    let rows = file["cases"].as_array().expect("cases is an array");
    let mut out = Vec::new();
    for row in rows {
        let id = text(row, "id").expect("every case has an id");
        let expected = &row["expected"];
        assert_eq!(
            expected["result"], "FAILURE",
            "{id}: the forgery suite only holds forgeries"
        );
        let case = Case {
            verifier: text(row, "verifier").expect("verifier"),
            forge: text(row, "forge").expect("forge"),
            description: text(row, "description").expect("description"),
            roots: match row["roots"].as_str() {
                Some("production") => Roots::Production,
                Some("test-ca") => Roots::TestCa,
                other => panic!("{id}: roots {other:?}"),
            },
            vector: text(row, "vector"),
            at: text(row, "at").map(|at| {
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("{id}: at {at:?}: {e}"))
                    .unix_timestamp()
            }),
            anchor_spki: text(row, "anchor_spki_b64").map(|b64| {
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap_or_else(|e| panic!("{id}: anchor_spki_b64: {e}"))
            }),
            expected_code: text(expected, "code").expect("expected.code"),
            expected_index: expected["index"].as_u64().map(|i| i as usize),
            header_patch: row.get("header").cloned(),
            claims_patch: row.get("claims").cloned(),
            id,
        };
        assert!(
            !case.description.is_empty(),
            "{}: every case says why it must fail",
            case.id
        );
        if case.verifier == verifier {
            out.push(case);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// DER: just enough to take a certificate apart and put it back together.

/// Splits `bytes` into whole TLVs.
fn children(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (header, length) = header(bytes);
        let (value, rest) = bytes.split_at(header + length);
        out.push(value.to_vec());
        bytes = rest;
    }
    out
}

/// The header length and content length of the TLV at the start of `bytes` (one-byte tags).
fn header(bytes: &[u8]) -> (usize, usize) {
    let first = bytes[1];
    if first < 0x80 {
        (2, usize::from(first))
    } else {
        let count = usize::from(first & 0x7f);
        let length = bytes[2..2 + count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (2 + count, length)
    }
}

fn content(tlv_bytes: &[u8]) -> &[u8] {
    let (header, length) = header(tlv_bytes);
    &tlv_bytes[header..header + length]
}

/// A certificate taken apart into the fields of its TBSCertificate, to be changed and signed
/// again by a key the forger holds.
#[derive(Debug, Clone)]
pub struct CertEditor {
    fields: Vec<Vec<u8>>,
    /// 1 when the certificate has an explicit version, so `fields[offset]` is the serial.
    offset: usize,
}

impl CertEditor {
    pub fn of(cert: &[u8]) -> CertEditor {
        let parts = children(content(cert));
        let fields = children(content(&parts[0]));
        let offset = usize::from(fields[0][0] == 0xa0);
        CertEditor { fields, offset }
    }

    fn at(&self, field: usize) -> &[u8] {
        &self.fields[self.offset + field]
    }

    fn set(mut self, field: usize, value: Vec<u8>) -> Self {
        self.fields[self.offset + field] = value;
        self
    }

    /// The subject Name, DER.
    pub fn subject(&self) -> Vec<u8> {
        self.at(4).to_vec()
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki(&self) -> Vec<u8> {
        self.at(5).to_vec()
    }

    pub fn with_spki(self, spki: &[u8]) -> Self {
        self.set(5, spki.to_vec())
    }

    pub fn with_issuer(self, name: &[u8]) -> Self {
        self.set(2, name.to_vec())
    }

    /// The KeyDescription extension's value replaced (or added).
    pub fn with_key_description(mut self, value: &[u8]) -> Self {
        let extension = sequence(&[tlv(&[0x06], KEY_DESCRIPTION_OID_DER), octets(value)]);
        let position = self.fields.iter().position(|f| f[0] == 0xa3);
        let mut list = match position {
            Some(index) => children(content(content(&self.fields[index]))),
            None => Vec::new(),
        };
        let existing = list
            .iter()
            .position(|e| children(content(e))[0] == tlv(&[0x06], KEY_DESCRIPTION_OID_DER));
        match existing {
            Some(index) => list[index] = extension,
            None => list.push(extension),
        }
        let wrapped = tlv(&[0xa3], &sequence(&list));
        match position {
            Some(index) => self.fields[index] = wrapped,
            None => self.fields.push(wrapped),
        }
        self
    }

    /// Signs the TBSCertificate, declared ecdsa-with-SHA256, with `key`.
    pub fn signed_by(self, key: &TestKey) -> Vec<u8> {
        let edited = self.set(1, ECDSA_SHA256.to_vec());
        let tbs = sequence(&edited.fields);
        let mut bits = vec![0u8];
        bits.extend(key.sign(&tbs));
        sequence(&[tbs, ECDSA_SHA256.to_vec(), tlv(&[0x03], &bits)])
    }
}

/// The DER SubjectPublicKeyInfo of a P-256 point.
pub fn p256_spki(point: &[u8]) -> Vec<u8> {
    let algorithm = sequence(&[
        tlv(&[0x06], &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]),
        tlv(&[0x06], &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
    ]);
    let mut bits = vec![0u8];
    bits.extend_from_slice(point);
    sequence(&[algorithm, tlv(&[0x03], &bits)])
}

/// The same certificate with one bit of its signature flipped.
pub fn flip_signature_bit(cert: &[u8]) -> Vec<u8> {
    let mut out = cert.to_vec();
    let last = out.len() - 1;
    out[last] ^= 0x01;
    out
}

/// The DER certificates of a PEM file below the vectors folder.
pub fn pem_chain(vectors: &Path, relative: &str) -> Vec<Vec<u8>> {
    let path = vectors.join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.split("-----BEGIN CERTIFICATE-----")
        .skip(1)
        .map(|block| {
            let body: String = block
                .split("-----END CERTIFICATE-----")
                .next()
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap_or_else(|e| panic!("{relative}: {e}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Android key attestation.

/// What a forged Android chain should claim: the attacker wants a perfect device, the right
/// challenge binding and the registered app, bound to their own installation key.
#[derive(Debug, Clone, Copy)]
pub struct AndroidClaims<'a> {
    pub challenge: &'a [u8],
    /// The installation key, an uncompressed P-256 point.
    pub point: &'a [u8],
    pub package: &'a str,
    pub signer: [u8; 32],
}

impl AndroidClaims<'_> {
    /// StrongBox, locked, verified boot, a patch from the far future.
    fn strongbox(&self) -> KeyDescription {
        let mut description =
            KeyDescription::genuine(self.challenge, self.package, self.signer, 209912);
        description.security_level = 2;
        description
    }

    fn key_description(&self) -> Vec<u8> {
        self.strongbox().to_der()
    }
}

/// Builds the chain of an Android case, leaf first. `None` when the case starts from a real
/// vector and `vectors` is absent.
pub fn android_chain(
    case: &Case,
    claims: &AndroidClaims<'_>,
    test_ca: &TestAndroidCa,
    vectors: Option<&Path>,
) -> Option<Vec<Vec<u8>>> {
    let throwaway = TestKey::generate();
    let real = match &case.vector {
        Some(relative) => pem_chain(vectors?, relative),
        None => Vec::new(),
    };
    let anchor = || {
        case.anchor_spki
            .clone()
            .unwrap_or_else(|| panic!("{}: needs anchor_spki_b64", case.id))
    };
    // A template certificate: the test CA's leaf, with the attacker's key description.
    let template = || CertEditor::of(&test_ca.chain(claims.point, &claims.strongbox())[0]);
    // The real leaf, rekeyed to the attacker's installation key and given their claims.
    let forged_real_leaf = |spki: Vec<u8>| {
        CertEditor::of(&real[0])
            .with_spki(&spki)
            .with_key_description(&claims.key_description())
    };
    let chain = match case.forge.as_str() {
        // One certificate carrying a published root key, signed by anyone.
        "anchor_key_alone" => {
            let editor = template().with_spki(&anchor());
            let name = editor.subject();
            vec![editor.with_issuer(&name).signed_by(&throwaway)]
        }
        // The genuine root certificate, alone.
        "genuine_root_alone" => vec![real.last().expect("a chain").clone()],
        // A forged leaf under a forged certificate carrying the root key.
        "forged_root_above_forged_leaf" => {
            let root = template().with_spki(&anchor());
            let root_name = root.subject();
            let root = root.with_issuer(&root_name).signed_by(&throwaway);
            let leaf = template().with_issuer(&root_name).signed_by(&throwaway);
            vec![leaf, root]
        }
        // The root's key in a forged leaf, with the real chain above it.
        "anchor_key_in_leaf_with_chain" => {
            let mut chain = real.clone();
            chain[0] = forged_real_leaf(anchor()).signed_by(&throwaway);
            chain
        }
        // An intermediate's key in a forged leaf, with and without the real chain above it.
        "intermediate_key_in_leaf_with_chain" => {
            let mut chain = real.clone();
            chain[0] = forged_real_leaf(CertEditor::of(&real[1]).spki()).signed_by(&throwaway);
            chain
        }
        "intermediate_key_in_leaf_alone" => {
            vec![forged_real_leaf(CertEditor::of(&real[1]).spki()).signed_by(&throwaway)]
        }
        // A leaf naming the real intermediate as its issuer, signed by the forger.
        "forged_leaf_claims_real_issuer" => {
            let mut chain = real.clone();
            chain[0] = forged_real_leaf(p256_spki(claims.point)).signed_by(&throwaway);
            chain
        }
        // A real device's KeyDescription, unchanged, in a certificate for the attacker's key.
        "copied_key_description_with_chain" => {
            let mut chain = real.clone();
            chain[0] = CertEditor::of(&real[0])
                .with_spki(&p256_spki(claims.point))
                .signed_by(&throwaway);
            chain
        }
        "copied_key_description_alone" => {
            let editor = CertEditor::of(&real[0]).with_spki(&p256_spki(claims.point));
            let name = editor.subject();
            vec![editor.with_issuer(&name).signed_by(&throwaway)]
        }
        // The real leaf's own content, signed again by the forger.
        "leaf_resigned" => {
            let mut chain = real.clone();
            chain[0] = CertEditor::of(&real[0]).signed_by(&throwaway);
            chain
        }
        "leaf_signature_flipped" => {
            let mut chain = real.clone();
            chain[0] = flip_signature_bit(&real[0]);
            chain
        }
        "links_swapped" => {
            let mut chain = real.clone();
            chain.swap(1, 2);
            chain
        }
        "link_duplicated" => {
            let mut chain = real.clone();
            chain.insert(2, real[1].clone());
            chain
        }
        "link_missing" => {
            let mut chain = real.clone();
            chain.remove(1);
            chain
        }
        "root_missing_top_intermediate_missing" => real[..real.len() - 2].to_vec(),
        "leaf_alone" => vec![real[0].clone()],
        // Real chains, judged at an instant outside a link's validity (`at`).
        "real_chain" => real.clone(),
        // With the test CA as an extra root: what an attacker could do with a signing CA.
        "test_ca_description_in_intermediate" => {
            test_ca.chain_with_description_in_intermediate(claims.point, &claims.strongbox())
        }
        "test_ca_attested_key_as_ca" => {
            // A genuine attestation of a signing key the attacker holds (their own app's), and
            // a certificate that key signed, claiming another app and the installation key.
            let attested = TestKey::generate();
            let own = KeyDescription::genuine(
                b"their own challenge",
                "org.attacker.app",
                [0x66; 32],
                202401,
            );
            let genuine = test_ca.chain(&attested.point(), &own);
            let issuer = CertEditor::of(&genuine[0]).subject();
            let forged = template().with_issuer(&issuer).signed_by(&attested);
            let mut chain = vec![forged];
            chain.extend(genuine);
            chain
        }
        "test_ca_key_description_twice" => {
            let description = claims.key_description();
            let extension =
                || CustomExtension::from_oid_content(KEY_DESCRIPTION_OID, description.clone());
            test_ca.chain_with_extensions(claims.point, vec![extension(), extension()])
        }
        "test_ca_no_key_description" => test_ca.chain_with_extensions(claims.point, vec![]),
        "test_ca_leaf_expired" => {
            test_ca.chain_with(claims.point, &claims.strongbox(), Some((0, 86_400)))
        }
        "test_ca_leaf_not_yet_valid" => test_ca.chain_with(
            claims.point,
            &claims.strongbox(),
            Some((4_000_000_000, 4_100_000_000)),
        ),
        other => panic!("{}: no recipe {other:?}", case.id),
    };
    Some(chain)
}

// ---------------------------------------------------------------------------------------------
// Apple App Attest.

/// An App Attest attestation object with its x5c replaced.
fn with_x5c(object: &[u8], x5c: Vec<Vec<u8>>) -> Vec<u8> {
    let value: Value = ciborium::de::from_reader(object).expect("a vector decodes");
    let Value::Map(mut top) = value else {
        panic!("an attestation object is a map")
    };
    for (key, value) in top.iter_mut() {
        if key == &Value::Text("attStmt".into())
            && let Value::Map(statement) = value
        {
            for (inner_key, inner) in statement.iter_mut() {
                if inner_key == &Value::Text("x5c".into()) {
                    *inner = Value::Array(x5c.iter().cloned().map(Value::Bytes).collect());
                }
            }
        }
    }
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Map(top), &mut out).expect("CBOR encodes");
    out
}

/// The x5c of an attestation object.
pub fn apple_x5c(object: &[u8]) -> Vec<Vec<u8>> {
    let value: Value = ciborium::de::from_reader(object).expect("a vector decodes");
    let statement = value
        .as_map()
        .and_then(|m| m.iter().find(|(k, _)| k == &Value::Text("attStmt".into())))
        .and_then(|(_, v)| v.as_map())
        .expect("attStmt");
    let x5c = statement
        .iter()
        .find(|(k, _)| k == &Value::Text("x5c".into()))
        .and_then(|(_, v)| v.as_array())
        .expect("x5c");
    x5c.iter()
        .map(|c| c.as_bytes().expect("x5c holds bytes").clone())
        .collect()
}

/// Builds the attestation object of an `apple-attestation` case from the real `object`.
pub fn apple_attestation(case: &Case, object: &[u8]) -> Vec<u8> {
    let throwaway = TestKey::generate();
    let attacker = TestKey::generate();
    let real = apple_x5c(object);
    let x5c = match case.forge.as_str() {
        "anchor_key_alone" => {
            let editor = CertEditor::of(&real[0]).with_spki(
                case.anchor_spki
                    .as_deref()
                    .unwrap_or_else(|| panic!("{}: needs anchor_spki_b64", case.id)),
            );
            let name = editor.subject();
            vec![editor.with_issuer(&name).signed_by(&throwaway)]
        }
        "anchor_key_in_leaf_with_chain" => vec![
            CertEditor::of(&real[0])
                .with_spki(case.anchor_spki.as_deref().expect("anchor_spki_b64"))
                .signed_by(&throwaway),
            real[1].clone(),
        ],
        "forged_leaf_claims_real_issuer" => vec![
            CertEditor::of(&real[0])
                .with_spki(&p256_spki(&attacker.point()))
                .signed_by(&throwaway),
            real[1].clone(),
        ],
        "leaf_resigned" => vec![
            CertEditor::of(&real[0]).signed_by(&throwaway),
            real[1].clone(),
        ],
        "leaf_signature_flipped" => vec![flip_signature_bit(&real[0]), real[1].clone()],
        "links_swapped" => vec![real[1].clone(), real[0].clone()],
        "link_duplicated" => vec![real[0].clone(), real[1].clone(), real[1].clone()],
        "leaf_alone" => vec![real[0].clone()],
        "intermediate_alone" => vec![real[1].clone()],
        "real_chain" => real,
        other => panic!("{}: no recipe {other:?}", case.id),
    };
    with_x5c(object, x5c)
}

/// What an `apple-assertion` case changes about a real assertion and its check.
#[derive(Debug, Clone)]
pub struct AppleAssertionForgery {
    pub assertion: Vec<u8>,
    pub client_data_hash: Vec<u8>,
    pub app_id: String,
    /// The attested key the verifier checks with (uncompressed P-256 point).
    pub public_key: Vec<u8>,
    pub previous_counter: u32,
}

/// Builds an `apple-assertion` case from a real assertion and what it was made for.
pub fn apple_assertion(case: &Case, genuine: AppleAssertionForgery) -> AppleAssertionForgery {
    let mut forged = genuine;
    match case.forge.as_str() {
        "assertion_other_client_data" => {
            forged.client_data_hash = sha256_of(b"another request").to_vec()
        }
        "assertion_signature_flipped" => {
            let value: Value =
                ciborium::de::from_reader(forged.assertion.as_slice()).expect("CBOR");
            let Value::Map(mut entries) = value else {
                panic!("a map")
            };
            for (key, value) in entries.iter_mut() {
                if key == &Value::Text("signature".into())
                    && let Value::Bytes(signature) = value
                {
                    let last = signature.len() - 1;
                    signature[last] ^= 1;
                }
            }
            forged.assertion.clear();
            ciborium::ser::into_writer(&Value::Map(entries), &mut forged.assertion).expect("CBOR");
        }
        "assertion_other_key" => forged.public_key = TestKey::generate().point(),
        "assertion_replayed_counter" => {
            // The counter the assertion carries, as if it had been accepted once already.
            let value: Value =
                ciborium::de::from_reader(forged.assertion.as_slice()).expect("CBOR");
            let data = value
                .as_map()
                .and_then(|m| {
                    m.iter()
                        .find(|(k, _)| k == &Value::Text("authenticatorData".into()))
                })
                .and_then(|(_, v)| v.as_bytes())
                .expect("authenticatorData")
                .clone();
            forged.previous_counter = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
        }
        "assertion_other_app" => forged.app_id = "ABCDE12345.org.attacker.app".into(),
        other => panic!("{}: no recipe {other:?}", case.id),
    }
    forged
}
