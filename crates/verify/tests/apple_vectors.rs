//! Every case in ../shared/vectors/apple-app-attest/cases.json, at its pinned instant.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use medgate_testkit::{apple_vector_bytes, unhex, unix_seconds, vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::apple::{
    AppAttestError, AttestationExpectations, DecodedAttestation, Environment, verify_assertion,
    verify_attestation,
};
use medgate_verify::roots;
use medgate_verify::x509::{PublicKey, X509Error, pem_blocks};

fn spki_point(pem: &str) -> Vec<u8> {
    let der = pem_blocks(pem, "PUBLIC KEY").unwrap().remove(0);
    match PublicKey::from_spki_der(&der).unwrap() {
        PublicKey::P256(point) => point,
        other => panic!("not P-256: {other:?}"),
    }
}

#[test]
fn every_apple_case_reproduces_its_expected_values_and_verdict() {
    let Some(dir) = vectors_dir() else { return };
    let cases = vector_json(&dir, "apple-app-attest/cases.json");
    let cases = cases["cases"].as_array().unwrap();
    let (mut attestations, mut assertions) = (0, 0);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let inputs = &case["inputs"];
        let expected = &case["expected"];
        let object = apple_vector_bytes(&dir, file);
        let client_data_hash = unhex(inputs["client_data_hash_hex"].as_str().unwrap());
        let app_id = inputs["app_id"].as_str().unwrap();
        match case["kind"].as_str().unwrap() {
            "attestation" => {
                attestations += 1;
                let decoded = DecodedAttestation::decode(&object).unwrap();
                let report = decoded.report();
                assert_eq!(report.fmt, expected["fmt"], "{file}");
                assert_eq!(report.counter, Some(0), "{file}");
                assert_eq!(
                    report.credential_public_key_x962_hex.as_deref(),
                    expected["credential_public_key_x962_hex"].as_str(),
                    "{file}"
                );
                assert_eq!(
                    report.rp_id_hash_hex.as_deref(),
                    expected["rp_id_hash_hex"].as_str(),
                    "{file}"
                );
                assert_eq!(
                    report.receipt_bytes as u64,
                    expected["receipt_bytes"].as_u64().unwrap(),
                    "{file}"
                );
                let leaf = &report.certificates[0];
                assert_eq!(
                    format!("0x{}", leaf.serial_hex),
                    expected["leaf_serial"].as_str().unwrap(),
                    "{file}"
                );
                assert_eq!(
                    leaf.not_before,
                    unix_seconds(expected["leaf_not_before"].as_str().unwrap()),
                    "{file}"
                );
                assert_eq!(
                    leaf.not_after,
                    unix_seconds(expected["leaf_not_after"].as_str().unwrap()),
                    "{file}"
                );
                let key_id = STANDARD
                    .decode(inputs["key_id_b64"].as_str().unwrap())
                    .unwrap();
                assert_eq!(
                    STANDARD.encode(unhex(report.key_id_sha256_hex.as_deref().unwrap())),
                    expected["key_id_b64_computed"].as_str().unwrap()
                );

                let at = UnixTime::from_secs(unix_seconds(
                    inputs["verification_instant"].as_str().unwrap(),
                ));
                let expect = AttestationExpectations {
                    app_id,
                    client_data_hash: &client_data_hash,
                    key_id: &key_id,
                };
                let verified =
                    verify_attestation(&decoded, &expect, &roots::apple_app_attest(), at)
                        .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(expected["verdict"], "VALID");
                let environment = match expected["environment"].as_str().unwrap() {
                    "production" => Environment::Production,
                    _ => Environment::Development,
                };
                assert_eq!(verified.environment(), environment, "{file}");
                assert_eq!(verified.key_id().as_slice(), key_id.as_slice());
                assert_eq!(
                    verified.receipt().len() as u64,
                    expected["receipt_bytes"].as_u64().unwrap()
                );
            }
            "assertion" => {
                assertions += 1;
                let public_key = spki_point(inputs["public_key_spki_pem"].as_str().unwrap());
                let previous = inputs["previous_counter"].as_u64().unwrap() as u32;
                let verified =
                    verify_assertion(&object, &public_key, app_id, &client_data_hash, previous)
                        .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(
                    u64::from(verified.counter()),
                    expected["counter"].as_u64().unwrap(),
                    "{file}"
                );
                assert_eq!(expected["verdict"], "VALID");
                // The same assertion again is a replay: its counter is no longer greater.
                let replay = verify_assertion(
                    &object,
                    &public_key,
                    app_id,
                    &client_data_hash,
                    verified.counter(),
                );
                assert_eq!(
                    replay.unwrap_err(),
                    AppAttestError::CounterNotIncreasing {
                        got: verified.counter(),
                        stored: verified.counter()
                    }
                );
            }
            other => panic!("unknown kind {other}"),
        }
    }
    assert_eq!(
        (attestations, assertions),
        (8, 6),
        "every case in cases.json was exercised"
    );
}

/// The negative variants listed for Apple's documentation sample.
#[test]
fn the_apple_sample_fails_each_way_its_upstream_tests_say() {
    let Some(dir) = vectors_dir() else { return };
    let object = apple_vector_bytes(&dir, "apple-doc-sample/test_attestation_object.b64");
    let decoded = DecodedAttestation::decode(&object).unwrap();
    let key_id = STANDARD
        .decode("bSrEhF8TIzIvWSPwvZ0i2+UOBre4ASH84rK15m6emNY=")
        .unwrap();
    let app_id = "0352187391.com.apple.example_app_attest";
    let at = |rfc3339| UnixTime::from_secs(unix_seconds(rfc3339));
    let verify = |app_id: &str, client_data_hash: &[u8], now| {
        let expect = AttestationExpectations {
            app_id,
            client_data_hash,
            key_id: &key_id,
        };
        verify_attestation(&decoded, &expect, &roots::apple_app_attest(), now)
    };
    // The quirk: the sample uses the raw challenge bytes as clientDataHash.
    let raw = b"test_server_challenge";
    assert!(verify(app_id, raw, at("2024-04-18T12:00:00Z")).is_ok());
    let hashed = ring::digest::digest(&ring::digest::SHA256, raw);
    assert_eq!(
        verify(app_id, hashed.as_ref(), at("2024-04-18T12:00:00Z")).unwrap_err(),
        AppAttestError::NonceMismatch
    );
    assert_eq!(
        verify(app_id, raw, at("2024-04-21T12:00:00Z")).unwrap_err(),
        AppAttestError::Chain(X509Error::Expired { index: 0 })
    );
    assert_eq!(
        verify(
            app_id,
            b"invalid_server_challenge",
            at("2024-04-18T12:00:00Z")
        )
        .unwrap_err(),
        AppAttestError::NonceMismatch
    );
    assert_eq!(
        verify(
            "0352187391.com.apple.different_app_attest",
            raw,
            at("2024-04-18T12:00:00Z")
        )
        .unwrap_err(),
        AppAttestError::AppIdMismatch
    );
    // Anchored only by Apple's key: another anchor refuses the chain.
    let expect = AttestationExpectations {
        app_id,
        client_data_hash: raw,
        key_id: &key_id,
    };
    assert_eq!(
        verify_attestation(
            &decoded,
            &expect,
            &roots::google_hardware(),
            at("2024-04-18T12:00:00Z")
        )
        .unwrap_err(),
        AppAttestError::Chain(X509Error::UntrustedRoot)
    );
}
