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
