//! Routes with `proof = "session-mac"`: a request carries an RFC 9421 `hmac-sha256` signature
//! by its token's session key (sealed to the installation's key-agreement key at attestation,
//! derived again by the gateway) instead of a DPoP proof.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};
use http::{Method, StatusCode};
use medgate_gateway::routes::{ProofMode, RouteConfig};
use medgate_sdk::client::{ClientError, MedgateClient};
use medgate_trust::jwe::EcdhSecret;

use crate::common::{Reply, Stack};

const PATH: &str = "/echo/readings";

async fn session_stack() -> Stack {
    Stack::start_with(|config| {
        let mut route = RouteConfig::new(PATH, &["GET"], &["entries:read"]);
        route.proof = ProofMode::SessionMac;
        config.gateway.routes.insert(0, route);
    })
    .await
}

fn client(stack: &Stack) -> MedgateClient {
    stack
        .client()
        .with_encryption_key(Arc::new(EcdhSecret::generate().unwrap()))
}

async fn get(stack: &Stack, path: &str, headers: HeaderMap) -> Reply {
    stack
        .raw(Method::GET, &stack.gateway_url(path), headers, Bytes::new())
        .await
}

#[track_caller]
fn refused(reply: &Reply, why: &str) {
    reply.assert_session_signature_refused(why);
}

#[tokio::test]
async fn a_read_signed_with_the_session_key_passes_without_a_dpop_proof() {
    let stack = session_stack().await;
    let client = client(&stack);
    client.attest().await.unwrap();
    let reply = client
        .send_session(Method::GET, PATH, Bytes::new())
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        seen["headers"]["x-medgate-installation"],
        client.installation_id().as_str()
    );
    assert!(seen["headers"].get("authorization").is_none());
    // The session signature goes no further than the gateway.
    assert!(seen["headers"].get("signature").is_none(), "{seen}");
    assert!(seen["headers"].get("signature-input").is_none(), "{seen}");
    // Many reads, each its own nonce.
    for _ in 0..3 {
        let reply = client
            .send_session(Method::GET, PATH, Bytes::new())
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
    }
    // An installation without a key-agreement key has no session key.
    let keyless = stack.client();
    keyless.attest().await.unwrap();
    match keyless.session_headers("GET", PATH).await.unwrap_err() {
        ClientError::Protocol { reason, .. } => assert!(reason.contains("session key")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_forgery_of_a_session_signature_is_refused_for_its_reason() {
    let stack = session_stack().await;
    let client = client(&stack);
    client.attest().await.unwrap();

    // Only the token.
    let mut bare = client.session_headers("GET", PATH).await.unwrap();
    bare.remove("signature");
    bare.remove("signature-input");
    refused(
        &get(&stack, PATH, bare).await,
        "Signature-Input and Signature",
    );
    // A DPoP proof instead: not what this route takes.
    let dpop = client
        .request_headers("GET", PATH)
        .await
        .unwrap()
        .to_header_map();
    refused(
        &get(&stack, PATH, dpop).await,
        "Signature-Input and Signature",
    );
    // The same signed request twice.
    let headers = client.session_headers("GET", PATH).await.unwrap();
    get(&stack, PATH, headers.clone())
        .await
        .assert_status(StatusCode::OK);
    refused(&get(&stack, PATH, headers).await, "nonce was already used");
    // Signed for one URL, sent to another.
    let headers = client.session_headers("GET", PATH).await.unwrap();
    refused(
        &get(&stack, &format!("{PATH}?count=1000"), headers).await,
        "does not verify",
    );
    // Another installation's session signature with this one's token.
    let other = self::client(&stack);
    other.attest().await.unwrap();
    let theirs = other.session_headers("GET", PATH).await.unwrap();
    let mut mixed = client.session_headers("GET", PATH).await.unwrap();
    for name in ["signature", "signature-input"] {
        mixed.insert(
            HeaderName::from_static(name),
            theirs.get(name).unwrap().clone(),
        );
    }
    refused(&get(&stack, PATH, mixed).await, "keyid");
    // Too old.
    let old = client.session_headers("GET", PATH).await.unwrap();
    stack.clock.advance(61);
    refused(&get(&stack, PATH, old).await, "created");
    // Session headers on a DPoP route: the proof is missing.
    let elsewhere = client.session_headers("GET", "/echo").await.unwrap();
    get(&stack, "/echo", elsewhere)
        .await
        .assert_dpop_error("invalid_dpop_proof");
    // A revoked installation's session ends with it.
    stack
        .revoke_installation(client.installation_id().as_str())
        .await;
    stack
        .eventually(10, || async {
            let headers = client.session_headers("GET", PATH).await.unwrap();
            get(&stack, PATH, headers).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
}
