//! The forgery suite through `/v1/attest`: every Android and App Attest case of
//! `tests/forgeries/cases.json`, bound to a real challenge and installation key, is sent by a
//! real client to a node that trusts only the roots medgate ships (or, for the `test-ca` cases,
//! those plus the test CA), under the strictest policy. Each must be refused as
//! `evidence_invalid` with the same error the verification core gives for it.

use http::{Method, StatusCode};
use medgate_proto::wire::Reason;
use medgate_sdk::client::{Attestation, ClientError};
use medgate_sdk::evidence::PlatformEvidence;
use medgate_service::Clock;
use medgate_testkit::forgery::{self, AndroidClaims, Case, Roots};
use medgate_testkit::{apple_vector_bytes, vector_json, vectors_dir};
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self as android, AndroidRoots};
use medgate_verify::apple::{self, AttestationExpectations, DecodedAttestation};
use medgate_verify::x509::{Certificate, TrustAnchor};

use crate::common::{APP, Stack};

const SIGNER: [u8; 32] = [0xab; 32];

async fn strictest_android_policy(stack: &Stack) {
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/platforms/android-key-attestation"),
            serde_json::json!({
                "package_name": APP,
                "signing_cert_digests": ["ab".repeat(32)],
                "min_security_level": "strong_box",
                "max_patch_age_months": 1200,
            }),
        )
        .await
        .assert_status(StatusCode::OK);
}

/// The refusal's problem detail; panics on anything but a 403 `evidence_invalid`.
fn refused(case: &Case, result: Result<Attestation, ClientError>) -> String {
    match result {
        Err(ClientError::Refused { problem, .. }) => {
            assert_eq!(
                (problem.status, problem.reasons.as_slice()),
                (403, [Reason::EvidenceInvalid].as_slice()),
                "{}",
                case.id
            );
            problem.detail.unwrap_or_default()
        }
        other => panic!("{}: expected a refusal, got {other:?}", case.id),
    }
}

#[tokio::test]
async fn every_android_forgery_is_refused_by_the_server() {
    let vectors = vectors_dir();
    let production = Stack::start_with_production_roots().await;
    let with_test_ca = Stack::start().await;
    for stack in [&production, &with_test_ca] {
        strictest_android_policy(stack).await;
    }
    let cases = forgery::cases("android-key-attestation");
    let mut ran = 0;
    for case in &cases {
        let stack = match case.roots {
            Roots::Production => &production,
            Roots::TestCa => &with_test_ca,
        };
        let at = UnixTime::from_secs(
            case.at
                .unwrap_or_else(|| medgate_service::SystemClock.now().secs()),
        );
        stack.clock.set(at);
        let client = stack.client();
        let challenge = client.challenge().await.unwrap();
        let point = client.key().public_jwk().public_key_bytes();
        let claims = AndroidClaims {
            challenge: &challenge.binding,
            point: &point,
            package: APP,
            signer: SIGNER,
        };
        let Some(chain) =
            forgery::android_chain(case, &claims, &stack.android_ca, vectors.as_deref())
        else {
            continue;
        };
        // What the verification core says of the same chain, under the same roots.
        let mut roots = AndroidRoots::default();
        if case.roots == Roots::TestCa {
            roots.hardware.push(TrustAnchor::from_certificate(
                "test CA",
                &Certificate::from_der(&stack.android_ca.root_der(), 0).unwrap(),
            ));
        }
        let library = android::verify(&chain, &roots, None, Some(&challenge.binding), at)
            .expect_err("the core refuses every forgery");
        assert_eq!(library.code(), case.expected_code, "{}", case.id);
        let evidence = PlatformEvidence::AndroidKeyAttestation {
            certificate_chain: chain,
        };
        let detail = refused(
            case,
            client.attest_platform(&challenge, &evidence, None).await,
        );
        assert_eq!(detail, library.to_string(), "{}", case.id);
        ran += 1;
    }
    if vectors.is_some() {
        assert_eq!(ran, cases.len(), "every case ran");
    }
}

#[tokio::test]
async fn every_app_attest_forgery_is_refused_by_the_server() {
    let Some(vectors) = vectors_dir() else { return };
    let stack = Stack::start_with_production_roots().await;
    let apple_cases = vector_json(&vectors, "apple-app-attest/cases.json");
    for case in &forgery::cases("apple-attestation") {
        let file = case.vector.as_deref().unwrap();
        let inputs = &apple_cases["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["file"] == file)
            .unwrap()["inputs"];
        let app_id = inputs["app_id"].as_str().unwrap();
        stack
            .admin(
                Method::PUT,
                &format!("/v1/admin/apps/{APP}/platforms/apple-app-attest"),
                serde_json::json!({"app_ids": [app_id]}),
            )
            .await
            .assert_status(StatusCode::OK);
        let at = UnixTime::from_secs(case.at.unwrap());
        stack.clock.set(at);
        let client = stack.client();
        let challenge = client.challenge().await.unwrap();
        let object = forgery::apple_attestation(case, &apple_vector_bytes(&vectors, file));
        let key_id = medgate_proto::b64::decode(
            inputs["key_id_b64"]
                .as_str()
                .unwrap()
                .trim_end_matches('=')
                .replace('+', "-")
                .replace('/', "_")
                .as_str(),
            64,
        )
        .unwrap();
        let expect = AttestationExpectations {
            app_id,
            client_data_hash: &challenge.binding,
            key_id: &key_id,
        };
        let library = DecodedAttestation::decode(&object)
            .and_then(|decoded| {
                apple::verify_attestation(
                    &decoded,
                    &expect,
                    &medgate_verify::roots::apple_app_attest(),
                    at,
                )
            })
            .expect_err("the core refuses every forgery");
        assert_eq!(library.code(), case.expected_code, "{}", case.id);
        let evidence = PlatformEvidence::AppleAttestation {
            key_id,
            attestation_object: object,
            app_id: Some(app_id.to_string()),
        };
        let detail = refused(
            case,
            client.attest_platform(&challenge, &evidence, None).await,
        );
        assert_eq!(detail, library.to_string(), "{}", case.id);
    }
}
