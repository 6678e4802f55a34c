//! Verifications per second for each platform, side by side in one run (compare ratios; the
//! machine is shared). Evidence is minted by the test CAs; the real Android RKP chain from the
//! vectors is added when `../shared/vectors` is present.
//!
//! Run: `cargo bench -p medgate-verify --bench platforms`

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use medgate_sdk::evidence::{AppIdentity, sdk_evidence};
use medgate_sdk::key::InstallationKey;
use medgate_testkit::attestation::{
    AppleEnvironment, KeyDescription, TestAndroidCa, TestAppleCa, TestKey,
};
use medgate_testkit::{unix_seconds, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self as android, AndroidRoots};
use medgate_verify::apple::{self, AttestationExpectations, DecodedAttestation};
use medgate_verify::evidence::{self, EvidenceLimits};
use medgate_verify::play_integrity::{
    self,
    testing::{TestPlayKeys, encrypt_token},
};
use medgate_verify::x509::{Certificate, TrustAnchor, pem_blocks};

const NOW: i64 = 1_800_000_000;
const APP_ID: &str = "ABCDE12345.org.example.cgm";

fn anchor(der: &[u8]) -> Vec<TrustAnchor> {
    vec![TrustAnchor::from_certificate(
        "test",
        &Certificate::from_der(der, 0).unwrap(),
    )]
}

fn platforms(c: &mut Criterion) {
    let now = UnixTime::from_secs(NOW);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));

    // SDK evidence: one ES256 JWS.
    let key = InstallationKey::generate().unwrap();
    let app = AppIdentity {
        app_id: "org.example.cgm".into(),
        app_version: "1.0".into(),
        binary_sha256: "ab".repeat(32),
    };
    let evidence = sdk_evidence(&key, &app, "Y2hhbGxlbmdl", vec![], NOW).unwrap();
    group.bench_function("sdk_evidence", |b| {
        b.iter(|| evidence::verify(&evidence, &EvidenceLimits::default(), now).unwrap())
    });

    // App Attest attestation: CBOR, a P-384 chain, nonce, ids.
    let apple_ca = TestAppleCa::new();
    let hash = [7u8; 32];
    let attested = apple_ca.attest(APP_ID, &hash, AppleEnvironment::Production);
    let apple_roots = anchor(&apple_ca.root_der());
    group.bench_function("apple_attestation", |b| {
        b.iter(|| {
            let decoded = DecodedAttestation::decode(&attested.attestation_object).unwrap();
            let expect = AttestationExpectations {
                app_id: APP_ID,
                client_data_hash: &hash,
                key_id: &attested.key_id,
            };
            apple::verify_attestation(&decoded, &expect, &apple_roots, now).unwrap()
        })
    });
    // App Attest assertion: CBOR and one P-256 verification.
    let assertion = attested.assert(APP_ID, &hash, 5);
    let point = attested.key.point();
    group.bench_function("apple_assertion", |b| {
        b.iter(|| apple::verify_assertion(&assertion, &point, APP_ID, &hash, 4).unwrap())
    });

    // Android key attestation with the test CA (P-384 root and intermediate).
    let android_ca = TestAndroidCa::new();
    let challenge = [9u8; 32];
    let chain = android_ca.chain(
        &TestKey::generate().point(),
        &KeyDescription::genuine(&challenge, "org.example.cgm", [1; 32], 202612),
    );
    let roots = AndroidRoots {
        hardware: anchor(&android_ca.root_der()),
        software: vec![],
    };
    group.bench_function("android_test_chain", |b| {
        b.iter(|| android::verify(&chain, &roots, None, Some(&challenge), now).unwrap())
    });
    // A real RKP chain (Pixel 9 Pro) anchored at Google's RSA-4096 root.
    if let Some(dir) = vectors_dir() {
        let text = std::fs::read_to_string(
            dir.join("android-key-attestation/android-keyattestation/caiman/sdk36/TEE_EC_RKP.pem"),
        )
        .unwrap();
        let real = pem_blocks(&text, "CERTIFICATE").unwrap();
        let at = UnixTime::from_secs(unix_seconds("2025-09-26T15:31:20Z"));
        let google = AndroidRoots::default();
        group.bench_function("android_real_rkp_chain", |b| {
            b.iter(|| android::verify(&real, &google, None, None, at).unwrap())
        });
    }

    // Play Integrity: AES key unwrap, AES-GCM, one ES256 verification, JSON.
    let play_keys = TestPlayKeys::generate();
    let verdict = br#"{"requestDetails":{"requestPackageName":"p","nonce":"n","timestampMillis":"1800000000000"},"appIntegrity":{"appRecognitionVerdict":"PLAY_RECOGNIZED"},"deviceIntegrity":{"deviceRecognitionVerdict":["MEETS_DEVICE_INTEGRITY"]}}"#;
    let token = encrypt_token(verdict, &play_keys);
    let keys = play_keys.keys();
    group.bench_function("play_integrity", |b| {
        b.iter(|| play_integrity::decrypt_and_verify(&token, &keys).unwrap())
    });
    group.finish();
}

criterion_group!(benches, platforms);
criterion_main!(benches);
