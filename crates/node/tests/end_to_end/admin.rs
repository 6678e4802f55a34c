//! The admin API, key rotation, revocation reaching the gateway, the audit log, sealed keys
//! and the public endpoints.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_node::{Node, NodeOptions};
use medgate_proto::wire;
use medgate_service::ManualClock;
use std::sync::Arc;

use crate::common::{APP, Stack, VERSION, test_config};

#[tokio::test]
async fn the_admin_api_requires_the_admin_token() {
    let stack = Stack::start().await;
    let url = format!("{}/v1/admin/apps", stack.node.admin_url());
    for authorization in [None, Some("Bearer wrong"), Some("Basic YWRtaW46YWRtaW4=")] {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
        }
        let reply = stack.raw(Method::GET, &url, headers, Bytes::new()).await;
        reply.assert_problem(StatusCode::UNAUTHORIZED, wire::problem_type::UNAUTHORIZED);
        assert_eq!(
            reply.header("www-authenticate").unwrap(),
            r#"Bearer realm="medgate-admin""#
        );
    }
    let apps = stack
        .admin(Method::GET, "/v1/admin/apps", serde_json::Value::Null)
        .await;
    apps.assert_status(StatusCode::OK);
    assert_eq!(apps.json()[0]["id"], APP);
    // The token file is private.
    let mode = std::fs::metadata(stack.node.data_dir().join("admin.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn admin_input_is_validated() {
    let stack = Stack::start().await;
    let cases = [
        (
            "/v1/admin/apps",
            serde_json::json!({"app_id": APP, "scopes": ["a"]}),
            StatusCode::CONFLICT,
        ),
        (
            "/v1/admin/apps",
            serde_json::json!({"app_id": "bad id", "scopes": ["a"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/apps",
            serde_json::json!({"app_id": "x", "scopes": ["a"], "limited_scopes": ["b"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/apps",
            serde_json::json!({"app_id": "x", "scopes": ["a"], "reject_on": ["teleport"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/apps",
            serde_json::json!({"app_id": "x", "scopes": ["a"], "reject_on": ["root"], "degrade_on": ["root"]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/v1/admin/apps/nope/releases",
            serde_json::json!({"version": "1", "sdk_binary_sha256": "ab".repeat(32)}),
            StatusCode::NOT_FOUND,
        ),
        (
            &format!("/v1/admin/apps/{APP}/releases"),
            serde_json::json!({"version": "1", "sdk_binary_sha256": "xyz"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            &format!("/v1/admin/apps/{APP}/releases/0.0.0/revoke"),
            serde_json::Value::Null,
            StatusCode::NOT_FOUND,
        ),
        (
            "/v1/admin/installations/nobody/revoke",
            serde_json::Value::Null,
            StatusCode::NOT_FOUND,
        ),
    ];
    for (path, body, status) in cases {
        let reply = stack.admin(Method::POST, path, body.clone()).await;
        assert_eq!(
            reply.status(),
            status,
            "{path} {body}: {}",
            String::from_utf8_lossy(&reply.0.body)
        );
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/problem+json")
        );
    }
    // Uppercase hex is accepted and stored in lowercase.
    let release = stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/releases"),
            serde_json::json!({"version": "2.0.0", "sdk_binary_sha256": "AB".repeat(32)}),
        )
        .await;
    release.assert_status(StatusCode::CREATED);
    assert_eq!(release.json()["binary_sha256"], "ab".repeat(32));
}

#[tokio::test]
async fn a_revoked_installation_is_refused_at_the_gateway_within_five_seconds() {
    let stack = Stack::start().await;
    let client = stack.client();
    client.attest().await.unwrap();
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    let listed = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/installations?app_id={APP}"),
            serde_json::Value::Null,
        )
        .await
        .json();
    assert_eq!(listed[0]["id"], client.installation_id().as_str());
    assert!(listed[0]["revoked_at"].is_null());

    stack
        .revoke_installation(client.installation_id().as_str())
        .await;
    // The token is still unexpired; the next request is refused anyway.
    let took = stack
        .eventually(5, || async {
            client.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let refused = crate::common::Reply(client.get("/echo").await.unwrap());
    assert!(
        refused
            .assert_dpop_error("invalid_token")
            .contains("installation has been revoked")
    );
    // Other installations are unaffected.
    let other = stack.client();
    assert_eq!(other.get("/echo").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn a_revoked_release_is_refused_at_the_gateway() {
    let stack = Stack::start().await;
    let client = stack.client();
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/releases/{VERSION}/revoke"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    stack
        .eventually(5, || async {
            client.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
}

#[tokio::test]
async fn rotated_keys_sign_new_tokens_while_old_tokens_stay_valid() {
    let stack = Stack::start().await;
    let jwks_url = format!("{}/.well-known/jwks.json", stack.node.server_url());
    let jwks = || async {
        stack
            .raw(Method::GET, &jwks_url, HeaderMap::new(), Bytes::new())
            .await
            .json()
    };
    let kid_of = |token: &str| -> String {
        let header: serde_json::Value = serde_json::from_slice(
            &medgate_proto::b64::decode(token.split('.').next().unwrap(), 4096).unwrap(),
        )
        .unwrap();
        header["kid"].as_str().unwrap().to_string()
    };
    let before = jwks().await;
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    let old_client = stack.client();
    let old_token = old_client.access_token().await.unwrap().into_inner();

    let rotated = stack
        .admin(
            Method::POST,
            "/v1/admin/keys/rotate",
            serde_json::Value::Null,
        )
        .await;
    rotated.assert_status(StatusCode::OK);
    let new_kid = rotated.json()["kid"].as_str().unwrap().to_string();
    assert_eq!(rotated.json()["retired"], kid_of(&old_token));
    let after = jwks().await;
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&new_kid.as_str()) && kids.contains(&kid_of(&old_token).as_str()),
        "{kids:?}"
    );

    let new_client = stack.client();
    let new_token = new_client.access_token().await.unwrap().into_inner();
    assert_eq!(kid_of(&new_token), new_kid);
    // Both work at the gateway once it has seen the new key (it polls every second).
    stack
        .eventually(5, || async {
            new_client.get("/echo").await.unwrap().status == StatusCode::OK
        })
        .await;
    assert_eq!(
        old_client.get("/echo").await.unwrap().status,
        StatusCode::OK
    );

    // Once every token the old key signed has expired, it leaves the JWKS.
    stack.clock.advance(300 + 60);
    let kids: Vec<String> = jwks().await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kids, std::slice::from_ref(&new_kid));
    let listed = stack
        .admin(Method::GET, "/v1/admin/keys", serde_json::Value::Null)
        .await
        .json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let old = listed
        .iter()
        .find(|k| k["kid"] == kid_of(&old_token))
        .unwrap();
    let new = listed
        .iter()
        .find(|k| k["kid"] == new_kid.as_str())
        .unwrap();
    assert_eq!(
        (&old["active"], &old["published"]),
        (&false.into(), &false.into())
    );
    assert_eq!(
        (&new["active"], &new["published"]),
        (&true.into(), &true.into())
    );
}

#[tokio::test]
async fn every_decision_rejection_and_change_is_in_a_verifiable_log_without_secrets() {
    let stack = Stack::start().await;
    let client = stack.client();
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    let token = client.access_token().await.unwrap().into_inner();
    let _ = stack
        .client_with_signals(&["hook"])
        .attest()
        .await
        .unwrap_err();
    stack
        .gateway(Method::GET, "/echo", None, None)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    stack
        .revoke_installation(client.installation_id().as_str())
        .await;

    let store = stack.node.store();
    let kinds = || async {
        let entries = store.audit_entries(0, 1000).await.unwrap();
        entries.into_iter().map(|e| e.kind).collect::<Vec<_>>()
    };
    // Gateway refusals are counted per minute and written once the minute is over.
    stack.clock.advance(61);
    stack
        .eventually(20, || async {
            kinds().await.contains(&"gateway.refusals".to_string())
        })
        .await;
    let kinds = kinds().await;
    for expected in [
        "admin.app.create",
        "admin.release.add",
        "attest.allow",
        "attest.reject",
        "gateway.refusals",
        "admin.installation.revoke",
    ] {
        assert!(
            kinds.contains(&expected.to_string()),
            "{expected} missing from {kinds:?}"
        );
    }
    let (count, _) = medgate_store::verify_audit_chain(&*store)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count as usize, kinds.len());

    // No token, proof or key material in any entry.
    let admin_token = stack.node.admin_token().unwrap();
    for entry in store.audit_entries(0, 1000).await.unwrap() {
        let text = format!(
            "{} {} {} {}",
            entry.kind, entry.actor, entry.subject, entry.detail
        );
        assert!(
            !text.contains(&token) && !text.contains(token.split('.').nth(2).unwrap()),
            "token in {text}"
        );
        assert!(!text.contains(&admin_token), "admin token in {text}");
    }
    let via_api = stack
        .admin(
            Method::GET,
            "/v1/admin/audit?after=0&limit=2",
            serde_json::Value::Null,
        )
        .await
        .json();
    assert_eq!(via_api.as_array().unwrap().len(), 2);
    assert_eq!(via_api[0]["seq"], 1);
}

#[tokio::test]
async fn signing_keys_are_sealed_under_the_master_key() {
    let dir = tempfile::tempdir().unwrap();
    let master = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=";
    let start = |master_key: Option<&str>| {
        let config = test_config(dir.path(), "http://127.0.0.1:9");
        let options = NodeOptions {
            master_key: master_key.map(str::to_string),
            clock: Arc::new(ManualClock::starting_now()),
            ..NodeOptions::default()
        };
        async move { Node::start(config, options).await }
    };
    let node = start(Some(master)).await.unwrap();
    let records = node.store().signing_keys().await.unwrap();
    assert_eq!(
        records[0].sealed_private_key[0], 1,
        "sealed with AES-256-GCM"
    );
    let database = std::fs::read(node.data_dir().join("medgate.db")).unwrap();
    drop(node);
    assert!(!database.is_empty());

    let error = start(None).await.unwrap_err().to_string();
    assert!(error.contains("MEDGATE_MASTER_KEY"), "{error}");
    let error = start(Some("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("does not open"), "{error}");
    let error = start(Some("too-short")).await.unwrap_err().to_string();
    assert!(error.contains("32 bytes"), "{error}");
    start(Some(master)).await.unwrap();
}

#[tokio::test]
async fn keys_stored_in_the_clear_are_sealed_once_a_master_key_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let options = |master_key: Option<&str>| NodeOptions {
        master_key: master_key.map(str::to_string),
        clock: Arc::new(ManualClock::starting_now()),
        ..NodeOptions::default()
    };
    let node = Node::start(test_config(dir.path(), "http://127.0.0.1:9"), options(None))
        .await
        .unwrap();
    assert_eq!(
        node.store().signing_keys().await.unwrap()[0].sealed_private_key[0],
        0
    );
    drop(node);
    let node = Node::start(
        test_config(dir.path(), "http://127.0.0.1:9"),
        options(Some("3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=")),
    )
    .await
    .unwrap();
    assert_eq!(
        node.store().signing_keys().await.unwrap()[0].sealed_private_key[0],
        1
    );
    // After that one migration, key material in the clear is someone else's doing: a key
    // swapped in with a known private half is refused, and the node does not start on it.
    let kid = node.store().signing_keys().await.unwrap()[0].kid.clone();
    let (planted, pkcs8) = medgate_verify::keys::TokenSigningKey::generate().unwrap();
    drop(planted);
    let clear = medgate_store::seal::Sealer::plain()
        .seal(&medgate_store::seal::signing_key_label(&kid), &pkcs8)
        .unwrap();
    node.store().reseal_signing_key(&kid, &clear).await.unwrap();
    drop(node);
    let Err(refused) = Node::start(
        test_config(dir.path(), "http://127.0.0.1:9"),
        options(Some("3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGho=")),
    )
    .await
    else {
        panic!("a node must not start on a key planted in the clear")
    };
    assert!(refused.to_string().contains("in the clear"), "{refused}");
}

#[tokio::test]
async fn discovery_jwks_metrics_and_health() {
    let stack = Stack::start().await;
    let discovery = stack
        .server_get("/.well-known/medgate-configuration")
        .await
        .json();
    assert_eq!(discovery["issuer"], stack.node.issuer());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/.well-known/jwks.json", stack.node.issuer())
    );
    assert_eq!(discovery["access_token_audience"], stack.node.public_url());
    assert!(
        discovery["reason_codes"]
            .as_array()
            .unwrap()
            .contains(&"hook_detected".into())
    );
    let jwks = stack.server_get("/.well-known/jwks.json").await;
    assert_eq!(
        jwks.header("cache-control").as_deref(),
        Some("public, max-age=60")
    );
    let key = &jwks.json()["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("P-256"), Some("ES256"), Some("sig"))
    );
    assert!(key.get("d").is_none());

    stack.client().attest().await.unwrap();
    // Metrics and the admin API are on the admin listener only.
    assert_eq!(
        stack.server_get("/metrics").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        stack.server_get("/v1/admin/apps").await.status(),
        StatusCode::NOT_FOUND
    );
    let metrics = stack
        .raw(
            Method::GET,
            &format!("{}/metrics", stack.node.admin_url()),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    metrics.assert_status(StatusCode::OK);
    let text = String::from_utf8(metrics.0.body.to_vec()).unwrap();
    assert!(
        text.contains(r#"medgate_attestations_total{decision="allow"} 1"#),
        "{text}"
    );
    assert!(text.contains("medgate_challenges_issued_total 1"), "{text}");
    stack
        .server_get("/healthz")
        .await
        .assert_status(StatusCode::OK);
    stack
        .server_get("/readyz")
        .await
        .assert_status(StatusCode::OK);
    stack
        .server_get("/nope")
        .await
        .assert_problem(StatusCode::NOT_FOUND, wire::problem_type::NOT_FOUND);
}
