//! `medgate inspect` reproduces every vector case's decoded values and verdict, as support
//! staff would run it.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use medgate_testkit::{apple_vector_bytes, vector_json, vectors_dir};

fn medgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medgate"))
        .args(args)
        .env_remove("MEDGATE_CONFIG")
        .output()
        .unwrap()
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn every_apple_case_through_inspect() {
    let Some(dir) = vectors_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let cases = vector_json(&dir, "apple-app-attest/cases.json");
    for (i, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let file = case["file"].as_str().unwrap();
        let inputs = &case["inputs"];
        // Alternate the input forms: raw CBOR, base64, base64url.
        let bytes = apple_vector_bytes(&dir, file);
        let path = work.path().join(format!("case-{i}"));
        match i % 3 {
            0 => std::fs::write(&path, &bytes).unwrap(),
            1 => std::fs::write(
                &path,
                base64::engine::general_purpose::STANDARD.encode(&bytes),
            )
            .unwrap(),
            _ => std::fs::write(
                &path,
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
            )
            .unwrap(),
        }
        let path = path.to_str().unwrap();
        let hash = inputs["client_data_hash_hex"].as_str().unwrap();
        let app_id = inputs["app_id"].as_str().unwrap();
        let output = match case["kind"].as_str().unwrap() {
            "attestation" => medgate(&[
                "inspect",
                "apple-attestation",
                path,
                "--client-data-hash-hex",
                hash,
                "--app-id",
                app_id,
                "--at",
                inputs["verification_instant"].as_str().unwrap(),
                "--key-id",
                inputs["key_id_b64"].as_str().unwrap(),
                "--environment",
                case["expected"]["environment"].as_str().unwrap(),
            ]),
            _ => {
                let key = work.path().join(format!("key-{i}.pem"));
                std::fs::write(&key, inputs["public_key_spki_pem"].as_str().unwrap()).unwrap();
                let previous = inputs["previous_counter"].to_string();
                medgate(&[
                    "inspect",
                    "apple-assertion",
                    path,
                    "--public-key",
                    key.to_str().unwrap(),
                    "--client-data-hash-hex",
                    hash,
                    "--app-id",
                    app_id,
                    "--previous-counter",
                    &previous,
                ])
            }
        };
        let report = json(&output);
        assert_eq!(report["verdict"], "pass", "{file}: {report}");
        assert!(output.status.success(), "{file}");
        let expected = &case["expected"];
        if case["kind"] == "attestation" {
            assert_eq!(
                report["credential_public_key_x962_hex"],
                expected["credential_public_key_x962_hex"],
                "{file}"
            );
            assert_eq!(
                report["rp_id_hash_hex"], expected["rp_id_hash_hex"],
                "{file}"
            );
            assert_eq!(report["environment"], expected["environment"], "{file}");
            assert_eq!(report["counter"], 0);
            assert_eq!(report["receipt_bytes"], expected["receipt_bytes"]);
            assert_eq!(
                format!(
                    "0x{}",
                    report["certificates"][0]["serial_hex"].as_str().unwrap()
                ),
                expected["leaf_serial"].as_str().unwrap()
            );
        } else {
            assert_eq!(report["counter"], expected["counter"], "{file}");
        }
    }
    // A failing verdict exits 1: the doc sample after its leaf expired.
    let sample = work.path().join("sample.b64");
    std::fs::copy(
        dir.join("apple-app-attest/apple-doc-sample/test_attestation_object.b64"),
        &sample,
    )
    .unwrap();
    let expired = medgate(&[
        "inspect",
        "apple-attestation",
        sample.to_str().unwrap(),
        "--client-data-hash-hex",
        "746573745f7365727665725f6368616c6c656e6765",
        "--app-id",
        "0352187391.com.apple.example_app_attest",
        "--at",
        "2024-04-21T12:00:00Z",
    ]);
    assert_eq!(expired.status.code(), Some(1));
    let report = json(&expired);
    assert_eq!(report["verdict"], "fail");
    assert!(
        report["errors"][0].as_str().unwrap().contains("expired"),
        "{report}"
    );
}

/// The chain file of a case, as a path `medgate inspect` can read (the google folders hold one
/// certificate per file: concatenate them as PEM).
fn chain_file(dir: &Path, work: &Path, file: &str, i: usize) -> String {
    let base = dir.join("android-key-attestation");
    if let Some((folder, _)) = file.split_once("/cert0.pem") {
        let joined: String = (0..4)
            .map(|n| {
                std::fs::read_to_string(base.join(format!("{folder}/cert{n}.pem"))).unwrap() + "\n"
            })
            .collect();
        let path = work.join(format!("chain-{i}.pem"));
        std::fs::write(&path, joined).unwrap();
        return path.to_str().unwrap().to_string();
    }
    base.join(file).to_str().unwrap().to_string()
}

#[test]
fn every_android_case_through_inspect() {
    let Some(dir) = vectors_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let cases = vector_json(&dir, "android-key-attestation/cases.json");
    for (i, case) in cases["cases"].as_array().unwrap().iter().enumerate() {
        let file = case["file"].as_str().unwrap();
        let path = chain_file(&dir, work.path(), file, i);
        let expected = &case["expected"];
        let at = case["verification_instant"]
            .as_str()
            .unwrap_or("2024-10-20T00:00:00Z");
        let mut args = vec!["inspect", "android-chain", path.as_str(), "--at", at];
        let challenge = expected["attestation_challenge_hex"].as_str();
        if let Some(challenge) = challenge {
            args.extend(["--challenge-hex", challenge]);
        }
        // The server's policy for the attested app, relaxed on device state; the strict run
        // below adds it back.
        let package = expected["attestation_application_id"]["packages"][0]["name"].as_str();
        let signer =
            expected["attestation_application_id"]["signature_digests_sha256_hex"][0].as_str();
        if let (Some(package), Some(signer)) = (package, signer) {
            args.extend(["--package", package, "--signing-digest", signer]);
            args.extend(["--min-security-level", "software"]);
        }
        let relaxed = ["--allow-unlocked-bootloader", "--allow-unverified-boot"];
        let strict = args.clone();
        args.extend(relaxed);
        let output = medgate(&args);
        let report = json(&output);
        // The chains cases.json says must be refused, and why.
        let refused = [
            "marlin/",
            "malformed_rot_device_locked",
            "tags_not_in_ascending_order",
            "algorithm_RSA_SecurityLevel_StrongBox",
            "allow_while_on_body",
            "p256_sha384_intermediate",
        ];
        let should_pass = !refused.iter().any(|r| file.contains(r));
        assert_eq!(report["verdict"] == "pass", should_pass, "{file}: {report}");
        assert_eq!(output.status.success(), should_pass, "{file}");
        // Decoded values, where the chain carries a readable KeyDescription.
        if let Some(description) = report["key_description"].as_object() {
            assert_eq!(
                description["attestation_challenge"].as_str(),
                challenge,
                "{file}"
            );
            assert_eq!(
                description["attestation_version"], expected["attestation_version"],
                "{file}"
            );
            assert_eq!(
                description["attestation_security_level"], expected["attestation_security_level"],
                "{file}"
            );
        }
        if should_pass && signer.is_some() {
            // A locked, verified-boot policy passes only where the device reports both.
            let locked = expected["root_of_trust"]["deviceLocked"] == true
                && expected["root_of_trust"]["verifiedBootState"] == "Verified";
            assert_eq!(
                medgate(&strict).status.success(),
                locked,
                "{file} under a locked/verified policy"
            );
        }
    }
    // Software attestation never passes: an AOSP software root's key is public.
    let marlin =
        dir.join("android-key-attestation/android-keyattestation/marlin/sdk29/TEE_EC_NONE.pem");
    let software = medgate(&[
        "inspect",
        "android-chain",
        marlin.to_str().unwrap(),
        "--at",
        "2019-10-29T00:21:52Z",
        "--min-security-level",
        "software",
    ]);
    assert_eq!(software.status.code(), Some(1));
    assert_eq!(json(&software)["anchor"], "software");
}

/// The forgery suite through `medgate inspect android-chain`: every case fails, with the same
/// error and code as the verification core, under the roots the case names.
#[test]
fn every_android_forgery_fails_in_inspect() {
    use medgate_testkit::attestation::{TestAndroidCa, TestKey};
    use medgate_testkit::forgery::{self, AndroidClaims, Roots};
    use medgate_verify::android::attestation::{self as android, AndroidRoots};
    use medgate_verify::x509::{Certificate, TrustAnchor};
    let vectors = vectors_dir();
    let work = tempfile::tempdir().unwrap();
    let test_ca = TestAndroidCa::new();
    let root_pem = work.path().join("test-ca.der");
    std::fs::write(&root_pem, test_ca.root_der()).unwrap();
    let installation = TestKey::generate();
    let challenge = [0x5a; 32];
    let claims = AndroidClaims {
        challenge: &challenge,
        point: &installation.point(),
        package: "org.example.cgm",
        signer: [0xab; 32],
    };
    for (i, case) in forgery::cases("android-key-attestation").iter().enumerate() {
        let Some(chain) = forgery::android_chain(case, &claims, &test_ca, vectors.as_deref())
        else {
            continue;
        };
        let path = work.path().join(format!("forgery-{i}.der"));
        std::fs::write(&path, chain.concat()).unwrap();
        let at = case.at.unwrap_or(1_796_000_000);
        let at_text = time::OffsetDateTime::from_unix_timestamp(at)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let challenge_hex = medgate_proto::hex::encode(&challenge);
        let mut args = vec![
            "inspect",
            "android-chain",
            path.to_str().unwrap(),
            "--at",
            &at_text,
            "--challenge-hex",
            &challenge_hex,
            "--package",
            "org.example.cgm",
            "--signing-digest",
            "abababababababababababababababababababababababababababababababab",
            "--min-security-level",
            "strong_box",
        ];
        let mut roots = AndroidRoots::default();
        if case.roots == Roots::TestCa {
            args.extend(["--root", root_pem.to_str().unwrap()]);
            roots.hardware.push(TrustAnchor::from_certificate(
                "test CA",
                &Certificate::from_der(&test_ca.root_der(), 0).unwrap(),
            ));
        }
        let library = android::verify(
            &chain,
            &roots,
            None,
            Some(&challenge),
            medgate_verify::UnixTime::from_secs(at),
        )
        .unwrap_err();
        let output = medgate(&args);
        let report = json(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {report}", case.id);
        assert_eq!(report["verdict"], "fail", "{}", case.id);
        assert_eq!(report["error_code"], case.expected_code, "{}", case.id);
        assert_eq!(report["errors"][0], library.to_string(), "{}", case.id);
    }
}

#[test]
fn inspect_takes_extra_roots_and_a_revocation_list() {
    use medgate_testkit::attestation::{KeyDescription, TestAndroidCa, TestKey};
    let work = tempfile::tempdir().unwrap();
    let ca = TestAndroidCa::new();
    let chain = ca.chain(
        &TestKey::generate().point(),
        &KeyDescription::genuine(b"challenge", "org.example.cgm", [1; 32], 202601),
    );
    let der = |name: &str, bytes: &[u8]| {
        let path = work.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    let chain_path = der("chain.der", &chain.concat());
    let root_path = der("root.der", &ca.root_der());
    let base = [
        "inspect",
        "android-chain",
        chain_path.as_str(),
        "--at",
        "2026-11-21T00:00:00Z",
        "--challenge-hex",
        "6368616c6c656e6765",
    ];
    // Not trusted without the root; trusted with it.
    assert_eq!(medgate(&base).status.code(), Some(1));
    let mut trusted = base.to_vec();
    trusted.extend(["--root", root_path.as_str()]);
    let passed = medgate(&trusted);
    assert!(
        passed.status.success(),
        "{}",
        String::from_utf8_lossy(&passed.stdout)
    );
    // The same chain with its batch intermediate on a status list.
    let list = der(
        "status.json",
        format!(
            r#"{{"entries": {{"{}": {{"status": "REVOKED"}}}}}}"#,
            TestAndroidCa::INTERMEDIATE_SERIAL_HEX
        )
        .as_bytes(),
    );
    let mut revoked = trusted.clone();
    revoked.extend(["--revocation-list", list.as_str()]);
    let output = medgate(&revoked);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        json(&output)["errors"][0]
            .as_str()
            .unwrap()
            .contains("REVOKED on the revocation status list")
    );
}

#[test]
fn a_play_integrity_token_through_inspect() {
    use medgate_verify::play_integrity::testing::{TestPlayKeys, encrypt_token};
    let work = tempfile::tempdir().unwrap();
    let keys = TestPlayKeys::generate();
    let verdict = br#"{"requestDetails":{"requestPackageName":"org.example.cgm","requestHash":"aGFzaA","timestampMillis":"1800000000000"},
        "appIntegrity":{"appRecognitionVerdict":"PLAY_RECOGNIZED","packageName":"org.example.cgm"},
        "deviceIntegrity":{"deviceRecognitionVerdict":["MEETS_DEVICE_INTEGRITY"]}}"#;
    let token = work.path().join("token");
    std::fs::write(&token, encrypt_token(verdict, &keys)).unwrap();
    let (decryption, verification) = keys.console_strings();
    let token = token.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "inspect",
            "play-integrity",
            token,
            "--decryption-key",
            &decryption,
            "--verification-key",
            &verification,
        ];
        args.extend_from_slice(extra);
        medgate(&args)
    };
    let decoded = run(&[]);
    assert!(decoded.status.success());
    assert_eq!(
        json(&decoded)["device_integrity"]["device_recognition_verdict"][0],
        "MEETS_DEVICE_INTEGRITY"
    );
    let fresh = [
        "--package",
        "org.example.cgm",
        "--request-hash",
        "aGFzaA",
        "--at",
        "2027-01-15T08:00:05Z",
    ];
    assert!(run(&fresh).status.success());
    let stale = [
        "--package",
        "org.example.cgm",
        "--request-hash",
        "aGFzaA",
        "--at",
        "2027-01-15T09:00:00Z",
    ];
    assert_eq!(run(&stale).status.code(), Some(1));
    let (other_decryption, _) = TestPlayKeys::generate().console_strings();
    let wrong = medgate(&[
        "inspect",
        "play-integrity",
        token,
        "--decryption-key",
        &other_decryption,
        "--verification-key",
        &verification,
    ]);
    assert_eq!(wrong.status.code(), Some(1));
}

/// The App Attest forgery cases through `medgate inspect apple-attestation` and
/// `apple-assertion`: each fails with the code the case file gives.
#[test]
fn every_app_attest_forgery_fails_in_inspect() {
    use medgate_testkit::forgery::{self, AppleAssertionForgery};
    let Some(dir) = vectors_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let apple_cases = vector_json(&dir, "apple-app-attest/cases.json");
    let inputs = |file: &str| {
        apple_cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["file"] == file)
            .unwrap()["inputs"]
            .clone()
    };
    let instant = |at: i64| {
        time::OffsetDateTime::from_unix_timestamp(at)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    for (i, case) in forgery::cases("apple-attestation").iter().enumerate() {
        let file = case.vector.as_deref().unwrap();
        let inputs = inputs(file);
        let object = forgery::apple_attestation(case, &apple_vector_bytes(&dir, file));
        let path = work.path().join(format!("attestation-{i}.cbor"));
        std::fs::write(&path, object).unwrap();
        let at = instant(case.at.unwrap());
        let output = medgate(&[
            "inspect",
            "apple-attestation",
            path.to_str().unwrap(),
            "--client-data-hash-hex",
            inputs["client_data_hash_hex"].as_str().unwrap(),
            "--app-id",
            inputs["app_id"].as_str().unwrap(),
            "--key-id",
            inputs["key_id_b64"].as_str().unwrap(),
            "--at",
            &at,
        ]);
        let report = json(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {report}", case.id);
        assert_eq!(report["error_code"], case.expected_code, "{}", case.id);
    }
    for (i, case) in forgery::cases("apple-assertion").iter().enumerate() {
        let file = case.vector.as_deref().unwrap();
        let inputs = inputs(file);
        let spki = medgate_verify::x509::pem_blocks(
            inputs["public_key_spki_pem"].as_str().unwrap(),
            "PUBLIC KEY",
        )
        .unwrap()
        .remove(0);
        let Ok(medgate_verify::x509::PublicKey::P256(public_key)) =
            medgate_verify::x509::PublicKey::from_spki_der(&spki)
        else {
            panic!("{file}: not a P-256 key")
        };
        let forged = forgery::apple_assertion(
            case,
            AppleAssertionForgery {
                assertion: apple_vector_bytes(&dir, file),
                client_data_hash: medgate_proto::hex::decode(
                    inputs["client_data_hash_hex"].as_str().unwrap(),
                )
                .unwrap(),
                app_id: inputs["app_id"].as_str().unwrap().to_string(),
                public_key,
                previous_counter: inputs["previous_counter"].as_u64().unwrap() as u32,
            },
        );
        // The key as the operator has it: an SPKI PEM.
        let mut key_der = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        key_der.extend_from_slice(&forged.public_key);
        let key_path = work.path().join(format!("key-{i}.der"));
        std::fs::write(&key_path, key_der).unwrap();
        let path = work.path().join(format!("assertion-{i}.cbor"));
        std::fs::write(&path, &forged.assertion).unwrap();
        let counter = forged.previous_counter.to_string();
        let hash = medgate_proto::hex::encode(&forged.client_data_hash);
        let output = medgate(&[
            "inspect",
            "apple-assertion",
            path.to_str().unwrap(),
            "--public-key",
            key_path.to_str().unwrap(),
            "--client-data-hash-hex",
            &hash,
            "--app-id",
            &forged.app_id,
            "--previous-counter",
            &counter,
        ]);
        let report = json(&output);
        assert_eq!(output.status.code(), Some(1), "{}: {report}", case.id);
        assert_eq!(report["error_code"], case.expected_code, "{}", case.id);
    }
}
