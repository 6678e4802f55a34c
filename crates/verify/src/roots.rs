//! The trust anchors medgate ships with: public keys, not certificates.
//!
//! Attestation roots are anchored by key (Google re-issues its RSA root certificate with the
//! same key, and real chains end at older issuances). Each constant is the DER
//! SubjectPublicKeyInfo, base64; its SHA-256 is given so it can be checked against the
//! published certificate (`tests/roots.rs` does, against the copies in the vectors).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::x509::TrustAnchor;

/// Apple App Attestation Root CA (EC P-384), published at
/// <https://www.apple.com/certificateauthority/Apple_App_Attestation_Root_CA.pem>.
/// SPKI SHA-256 `1ae751fd29896d0f1f13fe226c063f445d40d8938acc6245c251ecc0679330bd`.
pub const APPLE_APP_ATTESTATION_ROOT: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAERTHhmLW07ATaFQIEVwTtT4dyctdhNbJhFs/Ii2FdCgAHGbpphY3+d8qjuDngIN3WVhQUBHAoMeQ/cLiP1sOUtgjqK9auYen1mMEvRq9Sk3Jm5X8U62H+xTD3FE9TgS41";

/// Google hardware attestation root (RSA-4096, subject `serialNumber=f92009e853b6b045`; issued
/// 2016, 2019 and 2022 with this key), from <https://android.googleapis.com/attestation/root>.
/// SPKI SHA-256 `feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae`.
pub const GOOGLE_HARDWARE_ROOT_RSA: &str = "MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAr7bHgiuxpwHsK7Qui8xUFmOr75gvMsd/dTEDDJdSSxtf6An7xyqpRR90PL2abxM1dEqlXnf2tqw1Ne4Xwl5jlRfdnJLmN0pTy/4lj4/7tv0Sk3iiKkypnEUtR6WfMgH0QZfKHM1+di+y9TFRtv6y//0rb+T+W8a9nsNL/ggjnar86461qO0rOs2cXjp3kOG1FEJ5MVmFmBGtnrKpa73XpXyTqRxB/M0n1n/W9nGqC4FSYa04T6N5RIZGBN2z2MT5IKGbFlbC8UrW0DxW7AYImQQcHtGl/m00QLVWutHQoVJYnFPlXTcHYvASLu+RhhsbDmxMgJJ0mcDpvsC4PjvB+TxywElgS70vE0XmLD+OJtvsBslHZvPBKCOdT0MS+tgSOIfga+z1Z1g7+DVagf7quvmag8jfPioyKvxnK/EgsTUVi2ghzq8wm27ud/mIM7AY2qEORR8Go3TVB4HzWQgpZrt3i5MIlCaY504LzSRiigHCzAPlHws+W0rB5N+er5/2pJKnfBSDiCiFAVtCLOZ7gLiMm0jhO2B6tUXHI/+MRPjy02i59lINMRRev56GKtcd9qO/0kUJWdZTdA2XoS82ixPvZtXQpUpuL12ab+9EaDK8Z4RHJYYfCT3Q5vNAXaiWQ+8PTWm2QgBR/bkwSWc+NpUFgNPN9PvQi8WEg5UmAGMCAwEAAQ==";

/// Google "Key Attestation CA1" (EC P-384, 2025), the root of newer RKP chains, from the same
/// published root list. SPKI SHA-256 `3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec`.
pub const GOOGLE_KEY_ATTESTATION_CA1: &str = "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEI9ojcU7fPlsFCjxy6IRqzgeOoK0b+YsV9FPQywiyw8EQRTkJ9u3qwfnI4DGoSLlBqClTXJfgfCcZvs60FikNMHnu4fkRzObfgDkU2KNXezT9/RQ+XvNslxPHrHCowhGr";

/// AOSP "Android Keystore Software Attestation Root" (EC P-256): chains ending here were
/// produced in software, not in secure hardware. SPKI SHA-256
/// `d5100c7942ef2e8310dc30ef82729680cf48d690735c3f68179a33c7c370f286`.
pub const AOSP_SOFTWARE_ROOT_EC: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7l1ex+HA220Dpn7mthvsTWpdamguD/9/SQ59dx9EIm29sa/6FsvHrcV30lacqrewLVQBXT5DKyqO107sSHVBpA==";

/// AOSP software attestation root (RSA-1024). SPKI SHA-256
/// `f2c4746f545946c100e72297f8f946344d7052f03a2f694221f9c893b0e6f711`.
pub const AOSP_SOFTWARE_ROOT_RSA: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCia63rbi5EYe/VDoLmt5TRdSMfd5tjkWP/96r/C3JHTsAsQ+wzfNes7UA+jCigZtX3hwszl94OuE4TQKuvpSe/lWmgMdsGUmX4RFlXYfC78hdLt0GAZMAoDo9Sd47b0ke2RekZyOmLw9vCkT/X11DEHTVm+Vfkl5YLCazOkjWFmwIDAQAB";

fn anchor(name: &str, spki_b64: &str) -> TrustAnchor {
    // The constants above are valid base64; an empty key would simply never match.
    TrustAnchor::new(name, STANDARD.decode(spki_b64).unwrap_or_default())
}

/// The anchors for Apple App Attest.
pub fn apple_app_attest() -> Vec<TrustAnchor> {
    vec![anchor(
        "Apple App Attestation Root CA",
        APPLE_APP_ATTESTATION_ROOT,
    )]
}

/// The anchors for hardware-backed Android key attestation.
pub fn google_hardware() -> Vec<TrustAnchor> {
    vec![
        anchor(
            "Google hardware attestation root (RSA)",
            GOOGLE_HARDWARE_ROOT_RSA,
        ),
        anchor(
            "Google Key Attestation CA1 (EC P-384)",
            GOOGLE_KEY_ATTESTATION_CA1,
        ),
    ]
}

/// The AOSP software attestation roots: recognised so a software chain is named as such.
pub fn aosp_software() -> Vec<TrustAnchor> {
    vec![
        anchor("AOSP software attestation root (EC)", AOSP_SOFTWARE_ROOT_EC),
        anchor(
            "AOSP software attestation root (RSA)",
            AOSP_SOFTWARE_ROOT_RSA,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_anchor_decodes_to_a_key_and_has_its_stated_hash() {
        let expected = [
            (
                APPLE_APP_ATTESTATION_ROOT,
                "1ae751fd29896d0f1f13fe226c063f445d40d8938acc6245c251ecc0679330bd",
                "EC P-384",
            ),
            (
                GOOGLE_HARDWARE_ROOT_RSA,
                "feb2ea7551ee316ed4bb443c8293b884dbfdea40b603ee3e4f4a897e4580fbae",
                "RSA-4096",
            ),
            (
                GOOGLE_KEY_ATTESTATION_CA1,
                "3ee44512a1af2beb39c889490c60ea3f82e43f5d5a5532f5ab9419f676cd07ec",
                "EC P-384",
            ),
            (
                AOSP_SOFTWARE_ROOT_EC,
                "d5100c7942ef2e8310dc30ef82729680cf48d690735c3f68179a33c7c370f286",
                "EC P-256",
            ),
            (
                AOSP_SOFTWARE_ROOT_RSA,
                "f2c4746f545946c100e72297f8f946344d7052f03a2f694221f9c893b0e6f711",
                "RSA-1024",
            ),
        ];
        for (b64, sha256, key) in expected {
            let der = STANDARD.decode(b64).unwrap();
            assert_eq!(
                medgate_proto::hex::encode(
                    ring::digest::digest(&ring::digest::SHA256, &der).as_ref()
                ),
                sha256
            );
            assert_eq!(
                crate::x509::PublicKey::from_spki_der(&der)
                    .unwrap()
                    .describe(),
                key
            );
        }
    }
}
