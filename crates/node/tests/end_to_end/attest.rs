//! `/v1/challenge` and `/v1/attest`: the genuine flow and every rejection.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::jws::HeaderFields;
use medgate_proto::wire::{self, Coverage, Decision, Reason, Signal, SignalKind};
use medgate_sdk::client::ClientError;
use medgate_sdk::evidence::{AppIdentity, EvidenceContext, PlatformEvidence, sdk_evidence};
use medgate_sdk::key::InstallationKey;
use medgate_sdk::signer::sign_compact;

use crate::common::{APP, MEASUREMENT, Reply, Stack, VERSION};

fn reasons(error: ClientError) -> Vec<Reason> {
    match error {
        ClientError::Refused { status, problem } => {
            assert_eq!(status, 403);
            assert_eq!(
                problem.problem_type,
                wire::problem_type::ATTESTATION_REJECTED
            );
            problem.reasons
        }
        other => panic!("expected a refusal, got {other}"),
    }
}

async fn challenge(stack: &Stack, app_id: &str) -> String {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = serde_json::json!({"app_id": app_id}).to_string();
    let reply = stack
        .raw(
            Method::POST,
            &format!("{}/v1/challenge", stack.node.server_url()),
            headers,
            Bytes::from(body),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let json = reply.json();
    let value = json["challenge"].as_str().unwrap().to_string();
    assert_eq!(medgate_proto::b64::decode(&value, 64).unwrap().len(), 32);
    assert!(json["expires_at"].as_str().unwrap().ends_with('Z'));
    value
}

async fn post_evidence(stack: &Stack, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    stack
        .raw(
            Method::POST,
            &format!("{}/v1/attest", stack.node.server_url()),
            headers,
            body.into(),
        )
        .await
}

fn identity(version: &str, measurement: &str) -> AppIdentity {
    AppIdentity {
        app_id: APP.into(),
        app_version: version.into(),
        binary_sha256: measurement.into(),
    }
}

#[tokio::test]
async fn a_genuine_installation_gets_a_bound_token_with_every_scope() {
    let stack = Stack::start().await;
    let client = stack.client();
    let granted = client.attest().await.unwrap();
    assert_eq!(granted.decision, Decision::Allow);
    assert_eq!(granted.scope, "entries:read entries:write");
    assert!(granted.reasons.is_empty());
    assert_eq!(granted.installation_id, client.installation_id().as_str());
    assert_eq!(granted.expires_in, 300);

    // The token is an at+jwt bound to the installation key (RFC 9068, RFC 9449 §6).
    let token = client.access_token().await.unwrap();
    let parts: Vec<&str> = token.expose().split('.').collect();
    let header: serde_json::Value =
        serde_json::from_slice(&medgate_proto::b64::decode(parts[0], 4096).unwrap()).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&medgate_proto::b64::decode(parts[1], 8192).unwrap()).unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], stack.node.issuer());
    assert_eq!(claims["aud"], stack.node.public_url());
    assert_eq!(claims["sub"], client.installation_id().as_str());
    assert_eq!(claims["cnf"]["jkt"], client.installation_id().as_str());
    assert_eq!(claims["client_id"], APP);
    assert_eq!(claims["app_version"], VERSION);
    assert_eq!(claims["platform"], "sdk");
    assert_eq!(claims["decision"], "allow");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    let installation = stack
        .node
        .store()
        .get_installation(client.installation_id().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(installation.last_decision, Decision::Allow);
}

#[tokio::test]
async fn degrade_signals_grant_only_the_limited_scopes() {
    let stack = Stack::start().await;
    let granted = stack.client_with_signals(&["root"]).attest().await.unwrap();
    assert_eq!(granted.decision, Decision::AllowLimited);
    assert_eq!(granted.scope, "entries:read");
    assert_eq!(granted.reasons, [Reason::RootDetected]);
    let emulated = stack
        .client_with_signals(&["emulator"])
        .attest()
        .await
        .unwrap();
    assert_eq!(emulated.reasons, [Reason::EmulatorDetected]);
}

#[tokio::test]
async fn each_rejecting_signal_has_its_reason_code() {
    let stack = Stack::start().await;
    for (kind, reason) in [
        ("debugger", Reason::DebuggerDetected),
        ("hook", Reason::HookDetected),
        ("injected_library", Reason::InjectedLibraryDetected),
        ("tamper", Reason::TamperDetected),
    ] {
        let error = stack
            .client_with_signals(&[kind])
            .attest()
            .await
            .unwrap_err();
        assert_eq!(reasons(error), [reason], "{kind}");
    }
    // Policy decides: an app that rejects root and emulators gets those codes too.
    stack.admin(Method::POST, "/v1/admin/apps", serde_json::json!({
        "app_id": "org.example.strict", "scopes": ["entries:read"], "reject_on": ["root", "emulator", "hook"],
    })).await.assert_status(StatusCode::CREATED);
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps/org.example.strict/releases",
            serde_json::json!({
                "version": VERSION, "sdk_binary_sha256": MEASUREMENT,
            }),
        )
        .await
        .assert_status(StatusCode::CREATED);
    let mut config = stack.client().config().clone();
    config.app.app_id = "org.example.strict".into();
    let strict =
        medgate_sdk::client::MedgateClient::new(config, InstallationKey::generate().unwrap());
    strict.set_signals(vec![
        Signal::new(SignalKind::Root, ""),
        Signal::new(SignalKind::Emulator, ""),
    ]);
    assert_eq!(
        reasons(strict.attest().await.unwrap_err()),
        [Reason::RootDetected, Reason::EmulatorDetected]
    );
}

/// An app that requires coverage: evidence from a pass that examined something plausible is
/// granted; none, or a silenced pass's, is refused as a hook, and the audit entry says why.
#[tokio::test]
async fn evidence_without_plausible_coverage_is_a_hook_where_the_app_requires_it() {
    let stack = Stack::start().await;
    let covered = "org.example.covered";
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps",
            serde_json::json!({"app_id": covered, "scopes": ["entries:read"],
                "sdk_evidence": "allow", "require_coverage": true}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{covered}/releases"),
            serde_json::json!({"version": VERSION, "sdk_binary_sha256": MEASUREMENT}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    let real = Coverage {
        maps_lines: 412,
        threads: 6,
        modules: 9,
        code_bytes: 7_340_032,
        got_slots: 230,
        code_sha256: "3c".repeat(32),
    };
    let silenced = Coverage {
        modules: 0,
        code_bytes: 0,
        ..real.clone()
    };
    let attest = |coverage: Option<Coverage>| {
        let stack = &stack;
        async move {
            let key = InstallationKey::generate().unwrap();
            let value = challenge(stack, covered).await;
            let context = EvidenceContext {
                app_id: covered,
                app_version: VERSION,
                challenge: &value,
                signals: Vec::new(),
                coverage,
                enrolment_code: None,
                encryption_key: None,
                iat: stack.now(),
            };
            let platform = PlatformEvidence::Sdk {
                binary_sha256: MEASUREMENT.into(),
            };
            let compact = medgate_sdk::evidence::evidence(&key, context, &platform).unwrap();
            post_evidence(stack, wire::MEDIA_JOSE, compact).await
        }
    };
    attest(Some(real)).await.assert_status(StatusCode::OK);
    for (coverage, finding) in [(None, "missing"), (Some(silenced), "implausible")] {
        let problem = attest(coverage).await.assert_problem(
            StatusCode::FORBIDDEN,
            wire::problem_type::ATTESTATION_REJECTED,
        );
        assert_eq!(problem["reasons"], serde_json::json!(["hook_detected"]));
        let entries = stack.node.store().audit_entries(0, 1000).await.unwrap();
        let last = entries
            .iter()
            .rev()
            .find(|entry| entry.kind == "attest.reject")
            .unwrap();
        let detail: serde_json::Value = serde_json::from_str(&last.detail).unwrap();
        assert_eq!(detail["coverage"], finding, "{detail}");
    }
}

#[tokio::test]
async fn unknown_apps_releases_and_builds_are_rejected() {
    let stack = Stack::start().await;
    // Unknown build (version never registered).
    let unknown = stack.client_with("9.9.9", MEASUREMENT);
    assert_eq!(
        reasons(unknown.attest().await.unwrap_err()),
        [Reason::ReleaseUnknown]
    );
    // Registered version, different binary.
    let modified = stack.client_with(VERSION, &"0".repeat(64));
    assert_eq!(
        reasons(modified.attest().await.unwrap_err()),
        [Reason::TamperDetected]
    );
    // Unknown app.
    let key = InstallationKey::generate().unwrap();
    let value = challenge(&stack, "org.example.unknown").await;
    let evidence = sdk_evidence(
        &key,
        &AppIdentity {
            app_id: "org.example.unknown".into(),
            ..identity(VERSION, MEASUREMENT)
        },
        &value,
        vec![],
        stack.now(),
    )
    .unwrap();
    let problem = post_evidence(&stack, wire::MEDIA_JOSE, evidence)
        .await
        .assert_problem(
            StatusCode::FORBIDDEN,
            wire::problem_type::ATTESTATION_REJECTED,
        );
    assert_eq!(problem["reasons"], serde_json::json!(["app_unknown"]));
    // Revoked release.
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/releases/{VERSION}/revoke"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        reasons(stack.client().attest().await.unwrap_err()),
        [Reason::ReleaseRevoked]
    );
}

#[tokio::test]
async fn a_revoked_installation_cannot_attest_again() {
    let stack = Stack::start().await;
    let client = stack.client();
    client.attest().await.unwrap();
    stack
        .revoke_installation(client.installation_id().as_str())
        .await;
    assert_eq!(
        reasons(client.attest().await.unwrap_err()),
        [Reason::InstallationRevoked]
    );
}

#[tokio::test]
async fn challenges_are_single_use_unexpired_and_per_app() {
    let stack = Stack::start().await;
    let key = InstallationKey::generate().unwrap();
    let app = identity(VERSION, MEASUREMENT);
    let attest_with = |value: String| {
        let evidence = sdk_evidence(&key, &app, &value, vec![], stack.now()).unwrap();
        post_evidence(&stack, wire::MEDIA_JOSE, evidence)
    };
    let rejected = |reply: Reply| {
        let problem = reply.assert_problem(
            StatusCode::FORBIDDEN,
            wire::problem_type::ATTESTATION_REJECTED,
        );
        assert_eq!(problem["reasons"], serde_json::json!(["challenge_invalid"]));
    };
    // Used twice.
    let value = challenge(&stack, APP).await;
    attest_with(value.clone())
        .await
        .assert_status(StatusCode::OK);
    rejected(attest_with(value).await);
    // Never issued.
    rejected(attest_with(medgate_proto::b64::encode([7u8; 32])).await);
    // Expired (60 s by default).
    let value = challenge(&stack, APP).await;
    stack.clock.advance(61);
    rejected(attest_with(value).await);
    // Issued for another app.
    let value = challenge(&stack, "org.example.other").await;
    rejected(attest_with(value).await);
}

/// The claims of a compact JWS.
fn claims_of(jws: &str) -> serde_json::Value {
    serde_json::from_slice(
        &medgate_proto::b64::decode(jws.split('.').nth(1).unwrap(), 65536).unwrap(),
    )
    .unwrap()
}

/// Evidence with `claims`, carrying `header_key` in its header but signed by `signer`.
fn evidence_signed_by(
    claims: &serde_json::Value,
    header_key: &InstallationKey,
    signer: &InstallationKey,
) -> String {
    let header = HeaderFields {
        typ: Some(wire::TYP_EVIDENCE),
        kid: None,
        jwk: Some(header_key.public_jwk()),
    };
    sign_compact(header, claims, signer).unwrap()
}

#[tokio::test]
async fn invalid_evidence_is_rejected_with_evidence_invalid() {
    let stack = Stack::start().await;
    let key = InstallationKey::generate().unwrap();
    let other = InstallationKey::generate().unwrap();
    let app = identity(VERSION, MEASUREMENT);
    let invalid = |reply: Reply| {
        let problem = reply.assert_problem(
            StatusCode::FORBIDDEN,
            wire::problem_type::ATTESTATION_REJECTED,
        );
        assert_eq!(
            problem["reasons"],
            serde_json::json!(["evidence_invalid"]),
            "{problem}"
        );
        problem
    };
    let value = challenge(&stack, APP).await;
    let genuine = sdk_evidence(&key, &app, &value, vec![], stack.now()).unwrap();
    // Signed by a key other than the one in the header.
    invalid(
        post_evidence(
            &stack,
            wire::MEDIA_JOSE,
            evidence_signed_by(&claims_of(&genuine), &key, &other),
        )
        .await,
    );
    // The payload changed after signing.
    let mut tampered = claims_of(&genuine);
    tampered["app_version"] = "6.6.6".into();
    let mut parts: Vec<String> = genuine.split('.').map(str::to_string).collect();
    parts[1] = medgate_proto::b64::encode(tampered.to_string());
    invalid(post_evidence(&stack, wire::MEDIA_JOSE, parts.join(".")).await);
    // HS256 instead of ES256.
    let hs = format!(
        "{}.{}.AAAA",
        medgate_proto::b64::encode(r#"{"alg":"HS256","typ":"medgate-evidence+jwt"}"#),
        parts[1]
    );
    invalid(post_evidence(&stack, wire::MEDIA_JOSE, hs).await);
    // Stale iat.
    let stale = sdk_evidence(
        &key,
        &app,
        &challenge(&stack, APP).await,
        vec![],
        stack.now() - 301,
    )
    .unwrap();
    let problem = invalid(post_evidence(&stack, wire::MEDIA_JOSE, stale).await);
    assert!(problem["detail"].as_str().unwrap().contains("iat"));
    // None of the failed attempts consumed the challenge they named.
    post_evidence(&stack, wire::MEDIA_JOSE, genuine)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn malformed_oversize_and_mistyped_requests_get_clear_errors() {
    let stack = Stack::start().await;
    let malformed = wire::problem_type::MALFORMED_REQUEST;
    post_evidence(&stack, wire::MEDIA_JOSE, "not a jws")
        .await
        .assert_problem(StatusCode::BAD_REQUEST, malformed);
    let key = InstallationKey::generate().unwrap();
    let no_fields = sign_compact(
        HeaderFields {
            typ: Some(wire::TYP_EVIDENCE),
            kid: None,
            jwk: Some(key.public_jwk()),
        },
        &serde_json::json!({"app_id": APP}),
        &key,
    )
    .unwrap();
    let problem = post_evidence(&stack, wire::MEDIA_JOSE, no_fields)
        .await
        .assert_problem(StatusCode::BAD_REQUEST, malformed);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("missing member"),
        "{problem}"
    );
    post_evidence(&stack, "application/json", "{}")
        .await
        .assert_problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            wire::problem_type::UNSUPPORTED_MEDIA_TYPE,
        );
    post_evidence(&stack, wire::MEDIA_JOSE, vec![b'a'; 64 * 1024 + 1])
        .await
        .assert_problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            wire::problem_type::PAYLOAD_TOO_LARGE,
        );
    post_evidence(&stack, wire::MEDIA_JOSE, vec![0xff, 0xfe])
        .await
        .assert_problem(StatusCode::BAD_REQUEST, malformed);

    let url = format!("{}/v1/challenge", stack.node.server_url());
    for body in [
        "",
        "[]",
        r#"{"app_id": "has spaces"}"#,
        r#"{"app_id": "a", "extra": 1}"#,
    ] {
        stack
            .raw(Method::POST, &url, HeaderMap::new(), Bytes::from(body))
            .await
            .assert_problem(StatusCode::BAD_REQUEST, malformed);
    }
    stack
        .raw(
            Method::POST,
            &url,
            HeaderMap::new(),
            Bytes::from(vec![b'{'; 5000]),
        )
        .await
        .assert_problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            wire::problem_type::PAYLOAD_TOO_LARGE,
        );
}

#[tokio::test]
async fn attempts_per_client_address_are_rate_limited() {
    let stack = Stack::start_with(|config| {
        config.server.client_rate_limit = medgate_service::ratelimit::RateLimit {
            per_second: 1,
            burst: 3,
        };
    })
    .await;
    let url = format!("{}/v1/challenge", stack.node.server_url());
    let body = || Bytes::from(serde_json::json!({"app_id": APP}).to_string());
    for _ in 0..3 {
        stack
            .raw(Method::POST, &url, HeaderMap::new(), body())
            .await
            .assert_status(StatusCode::CREATED);
    }
    let limited = stack
        .raw(Method::POST, &url, HeaderMap::new(), body())
        .await;
    limited.assert_rate_limited();
}
