//! The embedded trust anchors are the keys of the published root certificates (copies of which
//! are in the vectors).

#![allow(clippy::unwrap_used)]

use medgate_testkit::vectors_dir;
use medgate_verify::roots;
use medgate_verify::x509::{Certificate, pem_blocks};

fn spkis(path: &std::path::Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    pem_blocks(&text, "CERTIFICATE")
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, der)| Certificate::from_der(der, i).unwrap().spki_der())
        .collect()
}

#[test]
fn embedded_anchors_are_the_published_root_keys() {
    let Some(dir) = vectors_dir() else { return };
    let apple = spkis(&dir.join("apple-app-attest/roots/Apple_App_Attestation_Root_CA.pem"));
    assert_eq!(apple, vec![roots::apple_app_attest()[0].spki.clone()]);
    let google = roots::google_hardware();
    let android = dir.join("android-key-attestation/roots");
    for rsa in [
        "google-hw-root-rsa-2016-e8fa196314d2fa18.pem",
        "google-hw-root-rsa-2019-d50ff25ba3f2d6b3.pem",
        "google-hw-root-rsa-2022-f1c172a699eaf51d.pem",
    ] {
        assert_eq!(
            spkis(&android.join(rsa)),
            vec![google[0].spki.clone()],
            "{rsa}"
        );
    }
    assert_eq!(
        spkis(&android.join("google-key-attestation-ca1-ec-p384-2025.pem")),
        vec![google[1].spki.clone()]
    );
    let software: Vec<Vec<u8>> = roots::aosp_software().into_iter().map(|a| a.spki).collect();
    assert_eq!(
        spkis(&android.join("aosp-software-attestation-roots.pem")),
        software
    );
}

#[test]
fn revocation_vectors_resolve_as_documented() {
    use medgate_verify::android::revocation::RevocationList;
    let Some(dir) = vectors_dir() else { return };
    let status = dir.join("android-revocation-status");
    let test_list = RevocationList::parse(
        &std::fs::read(status.join("google-android-key-attestation-test-status.json")).unwrap(),
    )
    .unwrap();
    let pem = std::fs::read_to_string(
        status.join("suspended-tee-intermediate-cc66e9a93713b6e643b26c15879786f7.pem"),
    )
    .unwrap();
    let cert = Certificate::from_der(&pem_blocks(&pem, "CERTIFICATE").unwrap()[0], 0).unwrap();
    assert_eq!(cert.serial_hex(), "cc66e9a93713b6e643b26c15879786f7");
    let entry = test_list.lookup(&cert.serial_hex()).unwrap();
    assert_eq!(
        (entry.status.as_str(), entry.reason.as_deref()),
        ("SUSPENDED", Some("KEY_COMPROMISE"))
    );
    assert!(test_list.lookup("badbeef").is_none());
    let docs = RevocationList::parse(
        &std::fs::read(status.join("google-docs-example-status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(docs.lookup("2c8cdddfd5e03bfc").unwrap().status, "REVOKED");
    assert_eq!(docs.lookup("c8966fcb2fbb0d7a").unwrap().status, "SUSPENDED");
    assert_eq!(docs.lookup("1").unwrap().status, "REVOKED");
}
