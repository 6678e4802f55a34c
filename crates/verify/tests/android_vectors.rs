//! Every chain in ../shared/vectors/android-key-attestation/cases.json, verified at its pinned
//! instant against the embedded roots, with the verdict cases.json states.

#![allow(clippy::unwrap_used)]

use medgate_testkit::{unhex, unix_seconds, vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{
    self as android, AnchorKind, AndroidError, AndroidRoots,
};
use medgate_verify::x509::{Certificate, TrustAnchor, X509Error, pem_blocks};

/// The chain a case names (leaf first). The google-android-key-attestation cases name a folder
/// of `cert0.pem`..`cert3.pem`.
fn chain(dir: &std::path::Path, file: &str) -> Vec<Vec<u8>> {
    let base = dir.join("android-key-attestation");
    if let Some((folder, _)) = file.split_once("/cert0.pem") {
        return (0..4)
            .map(|i| {
                pem_blocks(
                    &std::fs::read_to_string(base.join(format!("{folder}/cert{i}.pem"))).unwrap(),
                    "CERTIFICATE",
                )
                .unwrap()
                .remove(0)
            })
            .collect();
    }
    pem_blocks(
        &std::fs::read_to_string(base.join(file)).unwrap(),
        "CERTIFICATE",
    )
    .unwrap()
}

/// What each case must come to, from its `expected_verdict`.
#[derive(Debug, PartialEq)]
enum Verdict {
    Hardware,
    Software,
    Refused(&'static str),
}

fn verdict_for(file: &str) -> Verdict {
    match file {
        f if f.contains("marlin/") => Verdict::Software,
        f if f.contains("malformed_rot_device_locked") => Verdict::Refused("key description"),
        f if f.contains("tags_not_in_ascending_order") => Verdict::Refused("leaf signature"),
        f if f.contains("algorithm_RSA_SecurityLevel_StrongBox") => {
            Verdict::Refused("untrusted root")
        }
        f if f.contains("allow_while_on_body") => Verdict::Refused("untrusted root"),
        f if f.contains("p256_sha384_intermediate") => Verdict::Refused("untrusted root"),
        _ => Verdict::Hardware,
    }
}

#[test]
fn every_android_case_has_its_stated_verdict() {
    let Some(dir) = vectors_dir() else { return };
    let cases = vector_json(&dir, "android-key-attestation/cases.json");
    let roots = AndroidRoots::default();
    let mut counted = 0;
    for case in cases["cases"].as_array().unwrap() {
        counted += 1;
        let file = case["file"].as_str().unwrap();
        let certs = chain(&dir, file);
        // p256_sha384_intermediate has no instant; its upstream test validates at 2024-10-20.
        let at = case["verification_instant"]
            .as_str()
            .unwrap_or("2024-10-20T00:00:00Z");
        let now = UnixTime::from_secs(unix_seconds(at));
        let challenge = case["expected"]["attestation_challenge_hex"]
            .as_str()
            .map(unhex);
        let result = android::verify(&certs, &roots, None, challenge.as_deref(), now);
        match (verdict_for(file), result) {
            (Verdict::Hardware, Ok(verified)) => {
                assert_eq!(verified.anchor(), AnchorKind::Hardware, "{file}");
                let expected = &case["expected"];
                let description = verified.key_description();
                assert_eq!(
                    description.attestation_version,
                    expected["attestation_version"].as_i64().unwrap(),
                    "{file}"
                );
                assert_eq!(
                    description.attestation_security_level.as_str(),
                    expected["attestation_security_level"].as_str().unwrap(),
                    "{file}"
                );
            }
            (Verdict::Software, Ok(verified)) => {
                assert_eq!(verified.anchor(), AnchorKind::Software, "{file}")
            }
            (Verdict::Refused("key description"), Err(AndroidError::KeyDescription(error))) => {
                assert!(
                    error.to_string().contains("deviceLocked"),
                    "{file}: {error}"
                );
            }
            (
                Verdict::Refused("leaf signature"),
                Err(AndroidError::Chain(X509Error::BadSignature { index: 0 })),
            ) => {}
            (
                Verdict::Refused("untrusted root"),
                Err(AndroidError::Chain(X509Error::UntrustedRoot)),
            ) => {}
            (expected, got) => panic!("{file}: expected {expected:?}, got {got:?}"),
        }
    }
    assert_eq!(counted, 23, "every case in cases.json");
}

#[test]
fn rkp_chains_expire_and_the_2025_ec_root_anchors() {
    let Some(dir) = vectors_dir() else { return };
    let roots = AndroidRoots::default();
    let caiman = chain(&dir, "android-keyattestation/caiman/sdk36/TEE_EC_RKP.pem");
    let at = |t| UnixTime::from_secs(unix_seconds(t));
    let verified =
        android::verify(&caiman, &roots, None, None, at("2025-09-26T15:31:20Z")).unwrap();
    assert!(
        verified.remotely_provisioned(),
        "caiman carries the provisioning extension"
    );
    let root = verified.key_description().root_of_trust().unwrap();
    assert!(root.device_locked);
    // Upstream: the same chain checked at 2030-01-01 has expired.
    assert!(matches!(
        android::verify(&caiman, &roots, None, None, at("2030-01-01T00:00:00Z")).unwrap_err(),
        AndroidError::Chain(X509Error::Expired { .. })
    ));
    // tegu/sdk37 ends at the EC P-384 Key Attestation CA1.
    let tegu = chain(
        &dir,
        "android-keyattestation/tegu/sdk37/TEE_MAX_USAGE_COUNT.pem",
    );
    let last = Certificate::from_der(tegu.last().unwrap(), 0).unwrap();
    assert_eq!(last.public_key().describe(), "EC P-384");
    assert!(android::verify(&tegu, &roots, None, None, at("2026-07-06T18:15:16Z")).is_ok());
    // Without the EC root, only the RSA root is left and the chain is refused.
    let rsa_only = AndroidRoots {
        hardware: roots.hardware[..1].to_vec(),
        software: vec![],
    };
    assert_eq!(
        android::verify(&tegu, &rsa_only, None, None, at("2026-07-06T18:15:16Z")).unwrap_err(),
        AndroidError::Chain(X509Error::UntrustedRoot)
    );
}

#[test]
fn a_chain_ending_at_an_older_issuance_of_the_rsa_root_is_anchored_by_key() {
    let Some(dir) = vectors_dir() else { return };
    // blueline ends at the 2016 certificate, expired since 2026-05-24; the key is what counts.
    let blueline = chain(
        &dir,
        "android-keyattestation/blueline/sdk28/TEE_EC_NONE.pem",
    );
    let terminal = Certificate::from_der(blueline.last().unwrap(), 0).unwrap();
    assert_eq!(terminal.serial_hex(), "e8fa196314d2fa18");
    let today = UnixTime::from_secs(unix_seconds("2026-11-21T00:00:00Z"));
    assert!(today > terminal.not_after());
    let created = UnixTime::from_secs(unix_seconds("2018-09-28T23:40:35Z"));
    assert!(android::verify(&blueline, &AndroidRoots::default(), None, None, created).is_ok());
}

#[test]
fn the_synthetic_sha384_chain_validates_under_its_own_root() {
    let Some(dir) = vectors_dir() else { return };
    let certs = chain(&dir, "android-keyattestation/p256_sha384_intermediate.pem");
    let root = Certificate::from_der(certs.last().unwrap(), 2).unwrap();
    let roots = AndroidRoots {
        hardware: vec![TrustAnchor::from_certificate("own root", &root)],
        software: vec![],
    };
    let now = UnixTime::from_secs(unix_seconds("2024-10-20T00:00:00Z"));
    // The chain (ecdsa-with-SHA384 on P-256 keys) verifies; what it carries in the key
    // description OID is not a KeyDescription.
    assert!(matches!(
        android::verify(&certs, &roots, None, None, now).unwrap_err(),
        AndroidError::KeyDescription(_)
    ));
}
