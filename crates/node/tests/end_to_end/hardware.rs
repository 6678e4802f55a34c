//! Hardware-backed evidence through `/v1/attest`: Apple App Attest, Android Key Attestation,
//! Play Integrity, enrolment of self-built apps, and platform policy, with evidence minted by
//! test CAs that only this test node trusts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::b64;
use medgate_proto::wire::{Decision, IntegrityLevel, Reason, problem_type};
use medgate_sdk::client::{ClientError, MedgateClient};
use medgate_sdk::evidence::{EvidenceContext, PlatformEvidence};
use medgate_testkit::attestation::{AppleEnvironment, KeyDescription};
use medgate_verify::play_integrity::testing::{TestPlayKeys, encrypt_token};

use crate::common::{APP, Reply, Stack, VERSION};

pub(crate) const APPLE_APP_ID: &str = "ABCDE12345.org.example.cgm";
pub(crate) const SIGNER: [u8; 32] = [0xab; 32];
const PATCH: i64 = 209912;

fn reasons(result: Result<medgate_sdk::client::Attestation, ClientError>) -> Vec<Reason> {
    match result {
        Err(ClientError::Refused { problem, .. }) => problem.reasons,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

pub(crate) async fn set_platform(stack: &Stack, platform: &str, policy: serde_json::Value) {
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/platforms/{platform}"),
            policy,
        )
        .await
        .assert_status(StatusCode::OK);
}

async fn enrolment_code(stack: &Stack) -> String {
    let reply = stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/enrolments"),
            serde_json::json!({}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    reply.json()["code"].as_str().unwrap().to_string()
}

fn token_claims(token: &str) -> serde_json::Value {
    serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap(), 8192).unwrap()).unwrap()
}

pub(crate) async fn apple_attest(
    stack: &Stack,
    client: &MedgateClient,
    app_id: &str,
    environment: AppleEnvironment,
    claimed: Option<&str>,
    code: Option<String>,
) -> (
    Result<medgate_sdk::client::Attestation, ClientError>,
    medgate_testkit::attestation::AppleKey,
) {
    let challenge = client.challenge().await.unwrap();
    let key = stack
        .apple_ca
        .attest(app_id, &challenge.binding, environment);
    let evidence = PlatformEvidence::AppleAttestation {
        key_id: key.key_id.to_vec(),
        attestation_object: key.attestation_object.clone(),
        app_id: claimed.map(str::to_string),
    };
    (
        client.attest_platform(&challenge, &evidence, code).await,
        key,
    )
}

#[tokio::test]
async fn app_attest_first_contact_then_assertions_with_a_growing_counter() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID]}),
    )
    .await;
    let client = stack.client();
    let (granted, key) = apple_attest(
        &stack,
        &client,
        APPLE_APP_ID,
        AppleEnvironment::Production,
        None,
        None,
    )
    .await;
    let granted = granted.unwrap();
    assert_eq!(
        (
            granted.decision,
            granted.integrity_level,
            granted.hardware_key
        ),
        (Decision::Allow, IntegrityLevel::Hardware, false)
    );
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    let claims = token_claims(client.access_token().await.unwrap().expose());
    assert_eq!(
        (
            claims["platform"].as_str(),
            claims["integrity_level"].as_str()
        ),
        (Some("apple-app-attest"), Some("hardware"))
    );
    let installation = stack
        .node
        .store()
        .get_installation(client.installation_id().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        installation.identity.as_deref(),
        Some(format!("apple-app-attest:{APPLE_APP_ID}").as_str())
    );
    assert_eq!(
        stack
            .node
            .store()
            .apple_key(client.installation_id().as_str())
            .await
            .unwrap()
            .unwrap()
            .receipt,
        b"test receipt"
    );

    // Later contacts assert with the attested key.
    let assert_with = |counter: u32| {
        let client = &client;
        let key = &key;
        async move {
            let challenge = client.challenge().await.unwrap();
            let assertion = key.assert(APPLE_APP_ID, &challenge.binding, counter);
            let evidence = PlatformEvidence::AppleAssertion {
                key_id: key.key_id.to_vec(),
                assertion,
            };
            client.attest_platform(&challenge, &evidence, None).await
        }
    };
    assert_eq!(assert_with(1).await.unwrap().decision, Decision::Allow);
    assert_eq!(assert_with(5).await.unwrap().decision, Decision::Allow);
    // A counter that does not grow is refused.
    assert_eq!(reasons(assert_with(5).await), [Reason::EvidenceInvalid]);
    assert_eq!(reasons(assert_with(2).await), [Reason::EvidenceInvalid]);
    // An assertion for one challenge does not answer another.
    let first = client.challenge().await.unwrap();
    let second = client.challenge().await.unwrap();
    let assertion = key.assert(APPLE_APP_ID, &first.binding, 9);
    let evidence = PlatformEvidence::AppleAssertion {
        key_id: key.key_id.to_vec(),
        assertion,
    };
    assert_eq!(
        reasons(client.attest_platform(&second, &evidence, None).await),
        [Reason::EvidenceInvalid]
    );
    // A new attestation object for the same installation (a reinstalled app, a key id lost
    // with an unread answer) replaces its key: the old key's assertions are refused from
    // then on, and the new key's counter starts again.
    let (again, replacement) = apple_attest(
        &stack,
        &client,
        APPLE_APP_ID,
        AppleEnvironment::Production,
        None,
        None,
    )
    .await;
    assert_eq!(again.unwrap().decision, Decision::Allow);
    assert_eq!(reasons(assert_with(10).await), [Reason::EvidenceInvalid]);
    let challenge = client.challenge().await.unwrap();
    let evidence = PlatformEvidence::AppleAssertion {
        key_id: replacement.key_id.to_vec(),
        assertion: replacement.assert(APPLE_APP_ID, &challenge.binding, 1),
    };
    assert_eq!(
        client
            .attest_platform(&challenge, &evidence, None)
            .await
            .unwrap()
            .decision,
        Decision::Allow
    );
}

/// A stored App Attest key whose environment is neither production nor development (an
/// edited row) fails closed, before its counter moves.
#[tokio::test]
async fn an_edited_app_attest_environment_fails_closed() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID]}),
    )
    .await;
    let client = stack.client();
    let (granted, key) = apple_attest(
        &stack,
        &client,
        APPLE_APP_ID,
        AppleEnvironment::Production,
        None,
        None,
    )
    .await;
    granted.unwrap();
    let edit = |environment: &str| {
        let database =
            rusqlite::Connection::open(stack.node.data_dir().join("medgate.db")).unwrap();
        database
            .execute("UPDATE apple_keys SET environment = ?1", [environment])
            .unwrap();
    };
    let assert_with = |counter: u32| {
        let (client, key) = (&client, &key);
        async move {
            let challenge = client.challenge().await.unwrap();
            let evidence = PlatformEvidence::AppleAssertion {
                key_id: key.key_id.to_vec(),
                assertion: key.assert(APPLE_APP_ID, &challenge.binding, counter),
            };
            client.attest_platform(&challenge, &evidence, None).await
        }
    };
    edit("staging");
    match assert_with(1).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, 500),
        other => panic!("expected a 500, got {other:?}"),
    }
    let stored = stack
        .node
        .store()
        .apple_key(client.installation_id().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.counter, 0, "nothing was written for the edited row");
    edit("production");
    assert_eq!(assert_with(1).await.unwrap().decision, Decision::Allow);
}

#[tokio::test]
async fn two_concurrent_assertions_with_one_counter_cannot_both_pass() {
    let stack = Arc::new(Stack::start().await);
    set_platform(
        &stack,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID]}),
    )
    .await;
    let client = Arc::new(stack.client());
    let (granted, key) = apple_attest(
        &stack,
        &client,
        APPLE_APP_ID,
        AppleEnvironment::Production,
        None,
        None,
    )
    .await;
    granted.unwrap();
    let clients = vec![client; 6];
    assert_eq!(race_assertions(clients, Arc::new(key), 3).await, 1);
}

/// One assertion with `counter` from each client at once (each fetches its own challenge);
/// how many were granted.
pub(crate) async fn race_assertions(
    clients: Vec<Arc<MedgateClient>>,
    key: Arc<medgate_testkit::attestation::AppleKey>,
    counter: u32,
) -> usize {
    let mut racers = Vec::new();
    for client in clients {
        let key = Arc::clone(&key);
        racers.push(tokio::spawn(async move {
            let challenge = client.challenge().await.unwrap();
            let assertion = key.assert(APPLE_APP_ID, &challenge.binding, counter);
            let evidence = PlatformEvidence::AppleAssertion {
                key_id: key.key_id.to_vec(),
                assertion,
            };
            client
                .attest_platform(&challenge, &evidence, None)
                .await
                .is_ok()
        }));
    }
    let mut passed = 0;
    for racer in racers {
        passed += usize::from(racer.await.unwrap());
    }
    passed
}

#[tokio::test]
async fn app_attest_policy_development_keys_and_unregistered_builds() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID], "on_failure": "degrade"}),
    )
    .await;
    let (development, _) = apple_attest(
        &stack,
        &stack.client(),
        APPLE_APP_ID,
        AppleEnvironment::Development,
        None,
        None,
    )
    .await;
    let development = development.unwrap();
    assert_eq!(
        (development.decision, development.scope.as_str()),
        (Decision::AllowLimited, "entries:read")
    );
    assert_eq!(development.reasons, [Reason::DevelopmentEnvironment]);
    // Another team's build of the same bundle: not this app.
    let (other, _) = apple_attest(
        &stack,
        &stack.client(),
        "ZZZZZ99999.org.example.cgm",
        AppleEnvironment::Production,
        Some("ZZZZZ99999.org.example.cgm"),
        None,
    )
    .await;
    assert_eq!(reasons(other), [Reason::AppIdentityMismatch]);
    // An attestation that is not for any of the app's ids.
    let (unclaimed, _) = apple_attest(
        &stack,
        &stack.client(),
        "ZZZZZ99999.org.example.cgm",
        AppleEnvironment::Production,
        None,
        None,
    )
    .await;
    assert_eq!(reasons(unclaimed), [Reason::AppIdentityMismatch]);
}

#[tokio::test]
async fn a_self_built_ios_app_is_enrolled_once_with_a_code_and_recognised_after() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID], "allow_enrolment": true}),
    )
    .await;
    let patient_build = "PATIENT123.com.PATIENT123.loopkit.Loop";
    // Without a code: an unknown build (and, under this policy, a development key); every
    // reason is reported at once.
    let (refused, _) = apple_attest(
        &stack,
        &stack.client(),
        patient_build,
        AppleEnvironment::Development,
        Some(patient_build),
        None,
    )
    .await;
    assert_eq!(
        reasons(refused),
        [Reason::AppIdentityMismatch, Reason::DevelopmentEnvironment]
    );
    // A code no one created.
    let (bogus, _) = apple_attest(
        &stack,
        &stack.client(),
        patient_build,
        AppleEnvironment::Development,
        Some(patient_build),
        Some("mge_bogus".into()),
    )
    .await;
    assert_eq!(reasons(bogus), [Reason::EnrolmentInvalid]);
    // With a fresh code: enrolled (development keys are what Xcode builds get; the policy here
    // rejects them, so allow them for this app first).
    set_platform(&stack, "apple-app-attest", serde_json::json!({"app_ids": [APPLE_APP_ID], "allow_enrolment": true, "allow_development": true})).await;
    let code = enrolment_code(&stack).await;
    let (enrolled, _) = apple_attest(
        &stack,
        &stack.client(),
        patient_build,
        AppleEnvironment::Development,
        Some(patient_build),
        Some(code.clone()),
    )
    .await;
    assert_eq!(enrolled.unwrap().decision, Decision::Allow);
    let enrolments = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{APP}/enrolments"),
            serde_json::Value::Null,
        )
        .await
        .json();
    assert_eq!(
        enrolments[0]["identity"],
        format!("apple-app-attest:{patient_build}")
    );
    assert!(enrolments[0]["used_at"].is_number());
    // The code is spent.
    let (reused, _) = apple_attest(
        &stack,
        &stack.client(),
        patient_build,
        AppleEnvironment::Development,
        Some(patient_build),
        Some(code),
    )
    .await;
    assert_eq!(reasons(reused), [Reason::EnrolmentInvalid]);
    // The enrolled build is recognised without a code from now on; another team still is not.
    let (later, _) = apple_attest(
        &stack,
        &stack.client(),
        patient_build,
        AppleEnvironment::Development,
        Some(patient_build),
        None,
    )
    .await;
    assert_eq!(later.unwrap().decision, Decision::Allow);
    let stranger = "OTHER55555.com.OTHER55555.loopkit.Loop";
    let (other, _) = apple_attest(
        &stack,
        &stack.client(),
        stranger,
        AppleEnvironment::Development,
        Some(stranger),
        None,
    )
    .await;
    assert_eq!(reasons(other), [Reason::AppIdentityMismatch]);
}

fn android_policy(extra: serde_json::Value) -> serde_json::Value {
    let mut policy =
        serde_json::json!({"package_name": APP, "signing_cert_digests": ["ab".repeat(32)]});
    for (key, value) in extra.as_object().unwrap() {
        policy[key] = value.clone();
    }
    policy
}

async fn android_attest(
    stack: &Stack,
    client: &MedgateClient,
    change: impl Fn(&mut KeyDescription),
    code: Option<String>,
) -> Result<medgate_sdk::client::Attestation, ClientError> {
    let challenge = client.challenge().await.unwrap();
    let mut description = KeyDescription::genuine(&challenge.binding, APP, SIGNER, PATCH);
    change(&mut description);
    let point = client.key().public_jwk().public_key_bytes();
    let chain = stack.android_ca.chain(&point, &description);
    client
        .attest_platform(
            &challenge,
            &PlatformEvidence::AndroidKeyAttestation {
                certificate_chain: chain,
            },
            code,
        )
        .await
}

#[tokio::test]
async fn android_key_attestation_of_the_installation_key_itself() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "android-key-attestation",
        android_policy(serde_json::json!({"max_patch_age_months": 120})),
    )
    .await;
    let client = stack.client();
    let granted = android_attest(&stack, &client, |_| {}, None).await.unwrap();
    assert_eq!(
        (
            granted.decision,
            granted.integrity_level,
            granted.hardware_key
        ),
        (Decision::Allow, IntegrityLevel::Hardware, true)
    );
    let claims = token_claims(client.access_token().await.unwrap().expose());
    assert_eq!(claims["hardware_key"], true);
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);

    let refused = |change: fn(&mut KeyDescription)| {
        let stack = &stack;
        async move { reasons(android_attest(stack, &stack.client(), change, None).await) }
    };
    assert_eq!(
        refused(|d| d.device_locked = false).await,
        [Reason::BootloaderUnlocked]
    );
    assert_eq!(
        refused(|d| d.verified_boot_state = 2).await,
        [Reason::VerifiedBootFailed]
    );
    assert_eq!(
        refused(|d| d.security_level = 0).await,
        [Reason::SecurityLevelInsufficient]
    );
    assert_eq!(
        refused(|d| d.signing_digests = vec![[0xcd; 32]]).await,
        [Reason::AppIdentityMismatch]
    );
    assert_eq!(
        refused(|d| d.package = "org.example.clone".into()).await,
        [Reason::AppIdentityMismatch]
    );
    assert_eq!(
        refused(|d| d.challenge = vec![0; 32]).await,
        [Reason::EvidenceInvalid]
    );
    assert_eq!(
        refused(|d| d.os_patch_level = 200001).await,
        [Reason::PatchLevelOutdated]
    );
}

#[tokio::test]
async fn android_degrades_where_policy_says_and_enrols_a_self_signed_build() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "android-key-attestation",
        android_policy(serde_json::json!({"on_failure": "degrade", "allow_enrolment": true})),
    )
    .await;
    let unlocked = android_attest(&stack, &stack.client(), |d| d.device_locked = false, None)
        .await
        .unwrap();
    assert_eq!(
        (unlocked.decision, unlocked.reasons.as_slice()),
        (
            Decision::AllowLimited,
            [Reason::BootloaderUnlocked].as_slice()
        )
    );
    // AndroidAPS built and signed by the patient: a different signer.
    let self_signed = |d: &mut KeyDescription| d.signing_digests = vec![[0x5e; 32]];
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), self_signed, None).await),
        [Reason::AppIdentityMismatch]
    );
    let code = enrolment_code(&stack).await;
    assert_eq!(
        android_attest(&stack, &stack.client(), self_signed, Some(code.clone()))
            .await
            .unwrap()
            .decision,
        Decision::Allow
    );
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), self_signed, Some(code)).await),
        [Reason::EnrolmentInvalid]
    );
    assert_eq!(
        android_attest(&stack, &stack.client(), self_signed, None)
            .await
            .unwrap()
            .decision,
        Decision::Allow
    );
}

#[tokio::test]
async fn a_revoked_attestation_certificate_is_refused() {
    let list = tempfile::NamedTempFile::new().unwrap();
    let serial = medgate_testkit::attestation::TestAndroidCa::INTERMEDIATE_SERIAL_HEX;
    std::fs::write(
        list.path(),
        format!(r#"{{"entries": {{"{serial}": {{"status": "SUSPENDED"}}}}}}"#),
    )
    .unwrap();
    let path = list.path().display().to_string();
    let stack =
        Stack::start_with(move |config| config.attestation.revocation_list = Some(path)).await;
    set_platform(
        &stack,
        "android-key-attestation",
        android_policy(serde_json::json!({})),
    )
    .await;
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), |_| {}, None).await),
        [Reason::AttestationRevoked]
    );
}

/// A genuine Android attestation sent as raw HTTP, so the reply's headers can be checked.
async fn android_attest_raw(stack: &Stack, client: &MedgateClient) -> Reply {
    let challenge = client.challenge().await.unwrap();
    let description = KeyDescription::genuine(&challenge.binding, APP, SIGNER, PATCH);
    let point = client.key().public_jwk().public_key_bytes();
    let platform = PlatformEvidence::AndroidKeyAttestation {
        certificate_chain: stack.android_ca.chain(&point, &description),
    };
    let context = EvidenceContext {
        app_id: APP,
        app_version: VERSION,
        challenge: &challenge.value,
        signals: Vec::new(),
        coverage: None,
        enrolment_code: None,
        encryption_key: None,
        iat: stack.now(),
    };
    let compact = medgate_sdk::evidence::evidence(client.key(), context, &platform).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/jose"));
    stack
        .raw(
            Method::POST,
            &format!("{}/v1/attest", stack.node.server_url()),
            headers,
            Bytes::from(compact),
        )
        .await
}

#[tokio::test]
async fn an_expired_revocation_list_refuses_android_attestations_until_it_reloads() {
    const EMPTY_LIST: &str = r#"{"entries": {}}"#;
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), EMPTY_LIST).unwrap();
    let path = list.path().display().to_string();
    // The background refresh would wait an hour of real time: within this test only the
    // explicit reloads below load the list.
    let stack = Stack::start_with(move |config| {
        config.attestation.revocation_list = Some(path);
        config.attestation.revocation_refresh = Duration::from_secs(3600);
        config.attestation.revocation_max_age = Duration::from_secs(7200);
    })
    .await;
    set_platform(
        &stack,
        "android-key-attestation",
        android_policy(serde_json::json!({})),
    )
    .await;
    let client = stack.client();
    android_attest_raw(&stack, &client)
        .await
        .assert_status(StatusCode::OK);
    stack
        .server_get("/readyz")
        .await
        .assert_status(StatusCode::OK);

    // Exactly the maximum age: still used.
    stack.clock.advance(7200);
    android_attest_raw(&stack, &client)
        .await
        .assert_status(StatusCode::OK);

    // Older: refused as unavailable, not checked against the stale list, and not ready.
    stack.clock.advance(1);
    let assert_expired = |reply: Reply| {
        let problem =
            reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, problem_type::UNAVAILABLE);
        assert_eq!(
            problem["detail"],
            "the attestation revocation status list is older than its maximum age"
        );
        let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!(retry_after >= 1);
    };
    assert_expired(android_attest_raw(&stack, &client).await);
    let not_ready = stack.server_get("/readyz").await;
    let problem =
        not_ready.assert_problem(StatusCode::SERVICE_UNAVAILABLE, problem_type::UNAVAILABLE);
    assert_eq!(
        problem["detail"],
        "the attestation revocation status list is older than its maximum age"
    );
    // SDK evidence does not depend on the list.
    stack.client().attest().await.unwrap();

    // A failed reload (what an attacker blocking the fetch causes) changes nothing.
    std::fs::write(list.path(), "not a status list").unwrap();
    assert!(stack.node.reload_revocation_list().await.is_err());
    assert_expired(android_attest_raw(&stack, &client).await);

    // A successful reload restores the check, with a new maximum age from now.
    std::fs::write(list.path(), EMPTY_LIST).unwrap();
    assert_eq!(stack.node.reload_revocation_list().await, Ok(0));
    android_attest_raw(&stack, &client)
        .await
        .assert_status(StatusCode::OK);
    stack
        .server_get("/readyz")
        .await
        .assert_status(StatusCode::OK);
    stack.clock.advance(7201);
    assert_expired(android_attest_raw(&stack, &client).await);
}

fn play_verdict(binding: &[u8], timestamp_ms: i64, labels: &[&str]) -> Vec<u8> {
    serde_json::json!({
        "requestDetails": {"requestPackageName": APP, "requestHash": b64::encode(binding), "timestampMillis": timestamp_ms.to_string()},
        "appIntegrity": {"appRecognitionVerdict": "PLAY_RECOGNIZED", "packageName": APP, "certificateSha256Digest": [b64::encode(SIGNER)], "versionCode": "42"},
        "deviceIntegrity": {"deviceRecognitionVerdict": labels},
        "accountDetails": {"appLicensingVerdict": "LICENSED"},
    })
    .to_string()
    .into_bytes()
}

#[tokio::test]
async fn play_integrity_tokens_decrypted_with_the_apps_own_keys() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "play-integrity",
        serde_json::json!({"package_name": APP, "signing_cert_digests": ["ab".repeat(32)]}),
    )
    .await;
    let keys = TestPlayKeys::generate();
    let client = stack.client();
    let attest = |labels: &'static [&'static str], age_ms: i64| {
        let (stack, client, keys) = (&stack, &client, &keys);
        async move {
            let challenge = client.challenge().await.unwrap();
            let now_ms = stack.now() * 1000;
            let token = encrypt_token(
                &play_verdict(&challenge.binding, now_ms - age_ms, labels),
                keys,
            );
            client
                .attest_platform(&challenge, &PlatformEvidence::PlayIntegrity { token }, None)
                .await
        }
    };
    // No keys stored yet.
    assert_eq!(
        reasons(attest(&["MEETS_DEVICE_INTEGRITY"], 0).await),
        [Reason::PlatformNotAllowed]
    );
    let (decryption, verification) = keys.console_strings();
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/play-integrity-keys"),
            serde_json::json!({"decryption_key": decryption, "verification_key": verification}),
        )
        .await
        .assert_status(StatusCode::OK);
    let granted = attest(&["MEETS_DEVICE_INTEGRITY"], 1000).await.unwrap();
    assert_eq!(
        (granted.decision, granted.integrity_level),
        (Decision::Allow, IntegrityLevel::Device)
    );
    let strong = attest(&["MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"], 0)
        .await
        .unwrap();
    assert_eq!(strong.integrity_level, IntegrityLevel::Hardware);
    assert_eq!(
        reasons(attest(&["MEETS_BASIC_INTEGRITY"], 0).await),
        [Reason::DeviceIntegrityInsufficient]
    );
    // Stale: older than the policy's five minutes.
    assert_eq!(
        reasons(attest(&["MEETS_DEVICE_INTEGRITY"], 301_000).await),
        [Reason::EvidenceInvalid]
    );
    // A token encrypted for another app's keys.
    let challenge = client.challenge().await.unwrap();
    let foreign = encrypt_token(
        &play_verdict(
            &challenge.binding,
            stack.now() * 1000,
            &["MEETS_DEVICE_INTEGRITY"],
        ),
        &TestPlayKeys::generate(),
    );
    assert_eq!(
        reasons(
            client
                .attest_platform(
                    &challenge,
                    &PlatformEvidence::PlayIntegrity { token: foreign },
                    None
                )
                .await
        ),
        [Reason::EvidenceInvalid]
    );
    // The sealed keys never come back out of the admin API.
    let shown = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{APP}/platforms"),
            serde_json::Value::Null,
        )
        .await;
    assert!(!String::from_utf8_lossy(&shown.0.body).contains(&decryption));
    assert_eq!(shown.json()["play_integrity_keys_configured"], true);
}

#[tokio::test]
async fn platforms_an_app_does_not_accept_are_refused() {
    let stack = Stack::start().await;
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), |_| {}, None).await),
        [Reason::PlatformNotAllowed]
    );
    stack
        .admin(Method::POST, "/v1/admin/apps", serde_json::json!({"app_id": "org.example.hardware", "scopes": ["a"], "sdk_evidence": "deny"}))
        .await
        .assert_status(StatusCode::CREATED);
    let mut config = stack.client().config().clone();
    config.app.app_id = "org.example.hardware".into();
    let client = MedgateClient::new(
        config,
        medgate_sdk::key::InstallationKey::generate().unwrap(),
    );
    assert_eq!(reasons(client.attest().await), [Reason::PlatformNotAllowed]);
    // Policies are validated when set.
    for (platform, bad) in [
        (
            "apple-app-attest",
            serde_json::json!({"app_ids": ["no-team-id"]}),
        ),
        (
            "android-key-attestation",
            serde_json::json!({"package_name": APP, "signing_cert_digests": ["xyz"]}),
        ),
        (
            "play-integrity",
            serde_json::json!({"package_name": "", "signing_cert_digests": []}),
        ),
        (
            "android-key-attestation",
            serde_json::json!({"package_name": APP, "surprise": true}),
        ),
    ] {
        stack
            .admin(
                Method::PUT,
                &format!("/v1/admin/apps/{APP}/platforms/{platform}"),
                bad,
            )
            .await
            .assert_status(StatusCode::BAD_REQUEST);
    }
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/platforms/windows-phone"),
            serde_json::json!({}),
        )
        .await
        .assert_status(StatusCode::NOT_FOUND);
    // Signing digests are stored lowercase, whatever case the admin typed.
    let stored = stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/platforms/play-integrity"),
            serde_json::json!({"package_name": APP, "signing_cert_digests": ["AB".repeat(32)]}),
        )
        .await
        .json();
    assert_eq!(
        stored["policy"]["signing_cert_digests"],
        serde_json::json!(["ab".repeat(32)])
    );
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/play-integrity-keys"),
            serde_json::json!({"decryption_key": "short", "verification_key": "x"}),
        )
        .await
        .assert_status(StatusCode::BAD_REQUEST);
}

// Claims no stronger than the evidence (issue: forged Android attestation, point 3).

async fn store_play_keys(stack: &Stack, keys: &TestPlayKeys) {
    let (decryption, verification) = keys.console_strings();
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/play-integrity-keys"),
            serde_json::json!({"decryption_key": decryption, "verification_key": verification}),
        )
        .await
        .assert_status(StatusCode::OK);
}

async fn play_attest(
    stack: &Stack,
    keys: &TestPlayKeys,
    change: impl Fn(&mut serde_json::Value),
) -> Result<medgate_sdk::client::Attestation, ClientError> {
    let client = stack.client();
    let challenge = client.challenge().await.unwrap();
    let mut verdict: serde_json::Value = serde_json::from_slice(&play_verdict(
        &challenge.binding,
        stack.now() * 1000,
        &["MEETS_DEVICE_INTEGRITY", "MEETS_STRONG_INTEGRITY"],
    ))
    .unwrap();
    change(&mut verdict);
    let token = encrypt_token(verdict.to_string().as_bytes(), keys);
    client
        .attest_platform(&challenge, &PlatformEvidence::PlayIntegrity { token }, None)
        .await
}

#[tokio::test]
async fn play_test_responses_are_refused_unless_admitted_and_then_only_degrade() {
    let stack = Stack::start().await;
    let keys = TestPlayKeys::generate();
    store_play_keys(&stack, &keys).await;
    let policy = |allow: bool| {
        serde_json::json!({"package_name": APP, "signing_cert_digests": ["ab".repeat(32)],
            "allow_test_responses": allow})
    };
    set_platform(&stack, "play-integrity", policy(false)).await;
    let testing = |v: &mut serde_json::Value| {
        v["testingDetails"] = serde_json::json!({"isTestingResponse": true});
    };
    // A license tester's response claims strong integrity, and is refused.
    assert_eq!(
        reasons(play_attest(&stack, &keys, testing).await),
        [Reason::TestResponse]
    );
    set_platform(&stack, "play-integrity", policy(true)).await;
    let admitted = play_attest(&stack, &keys, testing).await.unwrap();
    assert_eq!(
        (
            admitted.decision,
            admitted.integrity_level,
            admitted.reasons.clone()
        ),
        (
            Decision::AllowLimited,
            IntegrityLevel::SelfReported,
            vec![Reason::TestResponse]
        )
    );
    // A real response is unaffected by the flag.
    let real = play_attest(&stack, &keys, |_| {}).await.unwrap();
    assert_eq!(
        (real.decision, real.integrity_level),
        (Decision::Allow, IntegrityLevel::Hardware)
    );
}

#[tokio::test]
async fn attested_version_codes_must_be_the_claimed_releases() {
    let stack = Stack::start().await;
    set_platform(
        &stack,
        "android-key-attestation",
        android_policy(serde_json::json!({})),
    )
    .await;
    // Version 0.9.0 (versionCode 40) was revoked.
    let add = |version: &'static str, code: i64| {
        let stack = &stack;
        async move {
            stack
                .admin(
                    Method::POST,
                    &format!("/v1/admin/apps/{APP}/releases"),
                    serde_json::json!({"version": version, "version_code": code}),
                )
                .await
        }
    };
    add("0.9.0", 40).await.assert_status(StatusCode::CREATED);
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/releases/0.9.0/revoke"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    // The registered release (code 42) passes; the revoked build (code 40) cannot pass by
    // claiming the current version, nor can a build nobody registered (code 43).
    let granted = android_attest(&stack, &stack.client(), |_| {}, None)
        .await
        .unwrap();
    assert_eq!(granted.decision, Decision::Allow);
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), |d| d.version_code = 40, None).await),
        [Reason::VersionMismatch]
    );
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), |d| d.version_code = 43, None).await),
        [Reason::VersionMismatch]
    );
    // Re-adding a build of the revoked version is refused, so attestation and the gateway's
    // revocation feed keep agreeing.
    add("0.9.0", 41).await.assert_status(StatusCode::CONFLICT);
}

#[tokio::test]
async fn enrolment_is_per_platform_needs_its_policy_and_can_be_revoked() {
    let stack = Stack::start().await;
    let keys = TestPlayKeys::generate();
    store_play_keys(&stack, &keys).await;
    let android = |allow: bool| android_policy(serde_json::json!({"allow_enrolment": allow}));
    set_platform(&stack, "android-key-attestation", android(true)).await;
    set_platform(
        &stack,
        "play-integrity",
        serde_json::json!({"package_name": APP, "signing_cert_digests": ["ab".repeat(32)],
            "allow_enrolment": true, "require_play_recognized": false}),
    )
    .await;
    const PATIENT: [u8; 32] = [0x5e; 32];
    let self_signed = |d: &mut KeyDescription| d.signing_digests = vec![PATIENT];
    let code = enrolment_code(&stack).await;
    let client = stack.client();
    let enrolled = android_attest(&stack, &client, self_signed, Some(code))
        .await
        .unwrap();
    assert_eq!(enrolled.decision, Decision::Allow);
    let listed = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{APP}/enrolments"),
            serde_json::Value::Null,
        )
        .await
        .json();
    assert_eq!(
        listed[0]["identity"],
        format!("android-key-attestation:{APP}:{}", "5e".repeat(32))
    );
    // The same package and signer through Play is not enrolled there.
    let patient_play = |v: &mut serde_json::Value| {
        v["appIntegrity"]["certificateSha256Digest"] = serde_json::json!([b64::encode(PATIENT)]);
        v["appIntegrity"]["appRecognitionVerdict"] = "UNRECOGNIZED_VERSION".into();
    };
    assert_eq!(
        reasons(play_attest(&stack, &keys, patient_play).await),
        [Reason::AppIdentityMismatch]
    );
    // A policy without allow_enrolment admits no enrolled identity.
    set_platform(&stack, "android-key-attestation", android(false)).await;
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), self_signed, None).await),
        [Reason::AppIdentityMismatch]
    );
    set_platform(&stack, "android-key-attestation", android(true)).await;
    assert_eq!(
        android_attest(&stack, &stack.client(), self_signed, None)
            .await
            .unwrap()
            .decision,
        Decision::Allow
    );
    // The operator revokes the enrolment: the build is refused and the installation revoked.
    let code_sha256 = listed[0]["code_sha256"].as_str().unwrap();
    let revoked = stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/enrolments/{code_sha256}/revoke"),
            serde_json::Value::Null,
        )
        .await;
    revoked.assert_status(StatusCode::OK);
    assert_eq!(
        revoked.json()["installation_id"],
        client.installation_id().as_str()
    );
    assert_eq!(
        reasons(android_attest(&stack, &stack.client(), self_signed, None).await),
        [Reason::AppIdentityMismatch]
    );
    let installation = stack
        .node
        .store()
        .get_installation(client.installation_id().as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(installation.revoked_at.is_some());
}
