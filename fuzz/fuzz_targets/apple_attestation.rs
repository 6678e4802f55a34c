//! App Attest attestation objects (CBOR + X.509 + authData): decode, report, verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::apple::{AttestationExpectations, DecodedAttestation, verify_attestation};
use medgate_verify::roots;

fuzz_target!(|data: &[u8]| {
    let Ok(decoded) = DecodedAttestation::decode(data) else { return };
    let report = decoded.report();
    let _ = serde_json::to_vec(&report);
    let _ = decoded.rp_id_hash_is("0352187391.com.apple.example_app_attest");
    let expect = AttestationExpectations {
        app_id: "0352187391.com.apple.example_app_attest",
        client_data_hash: b"test_server_challenge",
        key_id: &[0u8; 32],
    };
    let _ = verify_attestation(&decoded, &expect, &roots::apple_app_attest(), UnixTime::from_secs(1_713_441_600));
});
