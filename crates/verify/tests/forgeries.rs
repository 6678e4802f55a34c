//! The forgery suite through the verification core: every case of `tests/forgeries/cases.json`
//! is built (`medgate_testkit::forgery`) and must be refused with exactly the code and
//! certificate index the file gives. Cases that start from a real vector skip, with one line,
//! when the vectors are absent (CI sets `MEDGATE_VECTORS`, so there they fail instead).

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use medgate_testkit::attestation::{TestAndroidCa, TestKey};
use medgate_testkit::forgery::{self, AndroidClaims, AppleAssertionForgery, Case, Roots};
use medgate_testkit::{apple_vector_bytes, vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self as android, AndroidRoots};
use medgate_verify::apple::{self, AttestationExpectations, DecodedAttestation};
use medgate_verify::roots;
use medgate_verify::x509::{Certificate, PublicKey, TrustAnchor, pem_blocks};

/// The instant for cases that name none: within the test CA's validity, after every real one.
const DEFAULT_AT: i64 = 1_796_000_000;

fn check(case: &Case, code: &str, index: Option<usize>, message: &str) {
    assert_eq!(
        (code, index),
        (case.expected_code.as_str(), case.expected_index),
        "{}: refused for another reason than the case file gives: {message}",
        case.id
    );
}

fn test_anchor(der: &[u8]) -> TrustAnchor {
    TrustAnchor::from_certificate("test CA", &Certificate::from_der(der, 0).unwrap())
}

#[test]
fn every_android_forgery_is_refused_for_its_reason() {
    let vectors = vectors_dir();
    let test_ca = TestAndroidCa::new();
    let installation = TestKey::generate();
    let challenge = [0x5a; 32];
    let claims = AndroidClaims {
        challenge: &challenge,
        point: &installation.point(),
        package: "org.example.cgm",
        signer: [0xab; 32],
    };
    let cases = forgery::cases("android-key-attestation");
    assert!(cases.len() >= 25, "the Android suite lost cases");
    let mut ran = 0;
    for case in &cases {
        let Some(chain) = forgery::android_chain(case, &claims, &test_ca, vectors.as_deref())
        else {
            continue;
        };
        let mut roots = AndroidRoots::default();
        if case.roots == Roots::TestCa {
            roots.hardware.push(test_anchor(&test_ca.root_der()));
        }
        let at = UnixTime::from_secs(case.at.unwrap_or(DEFAULT_AT));
        match android::verify(&chain, &roots, None, Some(&challenge), at) {
            Ok(_) => panic!("{}: a forgery was accepted", case.id),
            Err(error) => check(case, error.code(), error.index(), &error.to_string()),
        }
        ran += 1;
    }
    if vectors.is_some() {
        assert_eq!(ran, cases.len());
    }
}

/// The inputs a real App Attest vector was made for, from its `cases.json` entry.
fn apple_inputs(vectors: &std::path::Path, file: &str) -> serde_json::Value {
    let cases = vector_json(vectors, "apple-app-attest/cases.json");
    cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["file"] == file)
        .unwrap_or_else(|| panic!("no apple-app-attest case for {file}"))["inputs"]
        .clone()
}

fn hex(text: &serde_json::Value) -> Vec<u8> {
    medgate_proto::hex::decode(text.as_str().unwrap()).unwrap()
}

#[test]
fn every_apple_attestation_forgery_is_refused_for_its_reason() {
    let Some(vectors) = vectors_dir() else { return };
    let cases = forgery::cases("apple-attestation");
    assert!(cases.len() >= 10, "the App Attest suite lost cases");
    for case in &cases {
        let file = case.vector.as_deref().unwrap();
        let inputs = apple_inputs(&vectors, file);
        let object = forgery::apple_attestation(case, &apple_vector_bytes(&vectors, file));
        let key_id = base64::engine::general_purpose::STANDARD
            .decode(inputs["key_id_b64"].as_str().unwrap())
            .unwrap();
        let client_data_hash = hex(&inputs["client_data_hash_hex"]);
        let expect = AttestationExpectations {
            app_id: inputs["app_id"].as_str().unwrap(),
            client_data_hash: &client_data_hash,
            key_id: &key_id,
        };
        let at = UnixTime::from_secs(case.at.unwrap_or(DEFAULT_AT));
        let result = DecodedAttestation::decode(&object).and_then(|decoded| {
            apple::verify_attestation(&decoded, &expect, &roots::apple_app_attest(), at)
        });
        match result {
            Ok(_) => panic!("{}: a forgery was accepted", case.id),
            Err(error) => check(case, error.code(), error.index(), &error.to_string()),
        }
    }
}

#[test]
fn every_apple_assertion_forgery_is_refused_for_its_reason() {
    let Some(vectors) = vectors_dir() else { return };
    let cases = forgery::cases("apple-assertion");
    assert!(cases.len() >= 5, "the assertion suite lost cases");
    for case in &cases {
        let file = case.vector.as_deref().unwrap();
        let inputs = apple_inputs(&vectors, file);
        let spki = pem_blocks(
            inputs["public_key_spki_pem"].as_str().unwrap(),
            "PUBLIC KEY",
        )
        .unwrap()
        .remove(0);
        let Ok(PublicKey::P256(public_key)) = PublicKey::from_spki_der(&spki) else {
            panic!("{file}: not a P-256 key")
        };
        let genuine = AppleAssertionForgery {
            assertion: apple_vector_bytes(&vectors, file),
            client_data_hash: hex(&inputs["client_data_hash_hex"]),
            app_id: inputs["app_id"].as_str().unwrap().to_string(),
            public_key,
            previous_counter: inputs["previous_counter"].as_u64().unwrap() as u32,
        };
        let check_it = |f: &AppleAssertionForgery| {
            apple::verify_assertion(
                &f.assertion,
                &f.public_key,
                &f.app_id,
                &f.client_data_hash,
                f.previous_counter,
            )
        };
        assert!(
            check_it(&genuine).is_ok(),
            "{}: the genuine assertion must verify before it is forged",
            case.id
        );
        match check_it(&forgery::apple_assertion(case, genuine)) {
            Ok(_) => panic!("{}: a forgery was accepted", case.id),
            Err(error) => check(case, error.code(), error.index(), &error.to_string()),
        }
    }
}

/// Every case id is unique and every case names a verifier this suite runs.
#[test]
fn the_case_file_is_well_formed() {
    let verifiers = [
        "android-key-attestation",
        "apple-attestation",
        "apple-assertion",
    ];
    let all: Vec<Case> = verifiers.iter().flat_map(|v| forgery::cases(v)).collect();
    let file: serde_json::Value = serde_json::from_str(forgery::CASES_JSON).unwrap();
    assert_eq!(
        all.len(),
        file["cases"].as_array().unwrap().len(),
        "a case names a verifier no suite runs"
    );
    let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "case ids are unique");
}

/// A property over a valid chain: flipping any one bit of any certificate (the leaf's
/// KeyDescription, a name, a date, a key, a signature, the root's self-signature) never yields
/// an accepted chain, and never a panic. Exhaustive over every byte, two bits each.
#[test]
fn no_single_bit_flip_of_a_valid_chain_is_accepted() {
    let test_ca = TestAndroidCa::new();
    let installation = TestKey::generate();
    let challenge = [0x5a; 32];
    let description = medgate_testkit::attestation::KeyDescription::genuine(
        &challenge,
        "org.example.cgm",
        [0xab; 32],
        202501,
    );
    let chain = test_ca.chain(&installation.point(), &description);
    let mut roots = AndroidRoots::default();
    roots.hardware.push(test_anchor(&test_ca.root_der()));
    let at = UnixTime::from_secs(DEFAULT_AT);
    assert!(
        android::verify(&chain, &roots, None, Some(&challenge), at).is_ok(),
        "the unmutated chain verifies"
    );
    let mut tried = 0;
    for (index, cert) in chain.iter().enumerate() {
        for position in 0..cert.len() {
            for bit in [0x01u8, 0x80] {
                let mut mutated = chain.clone();
                mutated[index][position] ^= bit;
                let result = android::verify(&mutated, &roots, None, Some(&challenge), at);
                assert!(
                    result.is_err(),
                    "flipping bit {bit:#04x} of byte {position} of certificate {index} was accepted"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 2000, "{tried} mutations");
}
