//! The SDK client attesting through an app's `PlatformAttester`: the first attestation and
//! every refresh go through the platform the client attested with (App Attest by assertion
//! once a key is attested, Android with a fresh chain), and a failing platform step is
//! reported without any evidence being sent in its place.

use std::sync::{Arc, Mutex};

use http::{Method, StatusCode};
use medgate_proto::wire::IntegrityLevel;
use medgate_sdk::client::{ClientError, MedgateClient};
use medgate_sdk::evidence::PlatformEvidence;
use medgate_sdk::platform::{AttestationMethod, PlatformAttester, PlatformStep};
use medgate_testkit::attestation::{
    AppleEnvironment, AppleKey, KeyDescription, TestAndroidCa, TestAppleCa,
};

use crate::common::{APP, Stack};
use crate::hardware::{APPLE_APP_ID, SIGNER, set_platform};

/// Plays the phone: App Attest under the stack's test CA, Android chains for a point it is
/// given, and failure on demand. Records each step.
struct Phone {
    apple: Arc<TestAppleCa>,
    android: Arc<TestAndroidCa>,
    /// The point Android chains certify.
    point: Vec<u8>,
    apple_key: Mutex<Option<AppleKey>>,
    counter: Mutex<u32>,
    steps: Mutex<Vec<PlatformStep>>,
    fail: Mutex<Option<&'static str>>,
}

impl Phone {
    fn new(stack: &Stack, point: Vec<u8>) -> Arc<Phone> {
        Arc::new(Phone {
            apple: stack.apple_ca.clone(),
            android: stack.android_ca.clone(),
            point,
            apple_key: Mutex::new(None),
            counter: Mutex::new(0),
            steps: Mutex::new(Vec::new()),
            fail: Mutex::new(None),
        })
    }

    fn steps(&self) -> Vec<PlatformStep> {
        self.steps.lock().unwrap().clone()
    }
}

impl PlatformAttester for Phone {
    fn attest(&self, step: &PlatformStep) -> Result<PlatformEvidence, String> {
        self.steps.lock().unwrap().push(step.clone());
        if let Some(reason) = *self.fail.lock().unwrap() {
            return Err(reason.to_string());
        }
        Ok(match step {
            PlatformStep::AppAttestKey { client_data_hash } => {
                let key =
                    self.apple
                        .attest(APPLE_APP_ID, client_data_hash, AppleEnvironment::Production);
                let evidence = PlatformEvidence::AppleAttestation {
                    key_id: key.key_id.to_vec(),
                    attestation_object: key.attestation_object.clone(),
                    app_id: None,
                };
                *self.apple_key.lock().unwrap() = Some(key);
                evidence
            }
            PlatformStep::AppAttestAssertion {
                key_id,
                client_data_hash,
            } => {
                let mut counter = self.counter.lock().unwrap();
                *counter += 1;
                let key = self.apple_key.lock().unwrap();
                let key = key.as_ref().ok_or("no App Attest key")?;
                PlatformEvidence::AppleAssertion {
                    key_id: key_id.clone(),
                    assertion: key.assert(APPLE_APP_ID, client_data_hash, *counter),
                }
            }
            PlatformStep::AndroidKeyAttestation { challenge } => {
                let description = KeyDescription::genuine(challenge, APP, SIGNER, 209912);
                PlatformEvidence::AndroidKeyAttestation {
                    certificate_chain: self.android.chain(&self.point, &description),
                }
            }
            PlatformStep::PlayIntegrity { .. } => return Err("no Play services here".into()),
        })
    }
}

fn with_phone(stack: &Stack, method: AttestationMethod) -> (MedgateClient, Arc<Phone>) {
    let client = stack.client();
    let phone = Phone::new(stack, client.key().public_jwk().public_key_bytes());
    let attester: Arc<dyn PlatformAttester> = phone.clone();
    (client.with_platform(method, Some(attester)), phone)
}

#[tokio::test]
async fn app_attest_refreshes_by_assertion_when_the_token_nears_expiry() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID]}),
    )
    .await;
    let (client, phone) = with_phone(&stack, AttestationMethod::AppleAppAttest);
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    // The token expires: the next request refreshes it with an assertion, twice.
    for expected_counter in [1, 2] {
        stack.clock.advance(300);
        assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
        let stored = stack
            .node
            .store()
            .apple_key(client.installation_id().as_str())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.counter, expected_counter);
    }
    let steps = phone.steps();
    assert!(matches!(steps[0], PlatformStep::AppAttestKey { .. }));
    let key_id = phone.apple_key.lock().unwrap().as_ref().unwrap().key_id;
    assert!(steps[1..].iter().all(|step| matches!(step,
        PlatformStep::AppAttestAssertion { key_id: id, .. } if id[..] == key_id[..])));
    assert_eq!(steps.len(), 3);
    assert_eq!(client.app_attest_key(), Some(key_id.to_vec()));
    // A hardware client does not send SDK evidence, even when asked to by hand.
    let challenge = client.challenge().await.unwrap();
    let sdk = PlatformEvidence::Sdk {
        binary_sha256: crate::common::MEASUREMENT.into(),
    };
    assert!(matches!(
        client.attest_platform(&challenge, &sdk, None).await,
        Err(ClientError::Platform { .. })
    ));
    // The platform says the key is gone: the client attests a new one, which replaces it.
    client.forget_app_attest_key();
    client.attest().await.unwrap();
    assert!(matches!(
        phone.steps().last(),
        Some(PlatformStep::AppAttestKey { .. })
    ));
    assert_ne!(client.app_attest_key(), Some(key_id.to_vec()));
}

#[tokio::test]
async fn a_failed_platform_step_is_reported_and_no_sdk_evidence_is_sent() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "android-key-attestation",
        serde_json::json!({"package_name": APP, "signing_cert_digests": ["ab".repeat(32)]}),
    )
    .await;
    let (client, phone) = with_phone(&stack, AttestationMethod::AndroidKeyAttestation);
    let granted = client.attest().await.unwrap();
    assert_eq!(
        (granted.integrity_level, granted.hardware_key),
        (IntegrityLevel::Hardware, true)
    );
    let installation = client.installation_id().as_str().to_string();
    let attestations = || async {
        let reply = stack
            .admin(
                Method::GET,
                "/v1/admin/installations",
                serde_json::Value::Null,
            )
            .await;
        let all = reply.json();
        let record = all
            .as_array()
            .unwrap()
            .iter()
            .find(|record| record["id"] == installation.as_str())
            .cloned()
            .unwrap();
        (record["platform"].clone(), record["last_seen"].clone())
    };
    let before = attestations().await;
    assert_eq!(before.0, "android-key-attestation");

    *phone.fail.lock().unwrap() = Some("Keystore is locked");
    stack.clock.advance(300);
    match client.get("/echo").await {
        Err(ClientError::Platform { method, reason }) => {
            assert_eq!(method, AttestationMethod::AndroidKeyAttestation);
            assert_eq!(reason, "Keystore is locked");
        }
        other => panic!("expected a platform error, got {other:?}"),
    }
    // Nothing reached the server in its place: the installation was not seen again.
    assert_eq!(attestations().await, before);
    assert_eq!(
        client.attestation_method(),
        AttestationMethod::AndroidKeyAttestation
    );
    // Once the platform works again, so does the refresh, with a fresh chain.
    *phone.fail.lock().unwrap() = None;
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    let steps = phone.steps();
    assert_eq!(steps.len(), 3);
    assert_ne!(steps[0], steps[2], "each chain answers its own challenge");
}

#[tokio::test]
async fn a_statement_of_another_step_is_refused_before_it_is_sent() {
    /// Answers every step with SDK evidence: a downgrade the client must not accept.
    struct Downgrading;
    impl PlatformAttester for Downgrading {
        fn attest(&self, _: &PlatformStep) -> Result<PlatformEvidence, String> {
            Ok(PlatformEvidence::Sdk {
                binary_sha256: crate::common::MEASUREMENT.into(),
            })
        }
    }
    let stack = Stack::start().await;
    let client = stack.client().with_platform(
        AttestationMethod::PlayIntegrity,
        Some(Arc::new(Downgrading)),
    );
    assert!(matches!(
        client.attest().await,
        Err(ClientError::Platform {
            method: AttestationMethod::PlayIntegrity,
            ..
        })
    ));
    // Without an attester a hardware client says so rather than attest in software.
    let bare = stack
        .client()
        .with_platform(AttestationMethod::AppleAppAttest, None);
    assert!(matches!(
        bare.attest().await,
        Err(ClientError::Platform { .. })
    ));
}
