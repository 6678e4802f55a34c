//! Routes with `proof = "dpop+signature"`: a write must carry an HTTP Message Signature (RFC
//! 9421) by the installation key over its method, URL, token and `Content-Digest`, and a body
//! that matches the digest. The SDK signs; the gateway checks and forwards the signature with
//! the key's thumbprint for the upstream to keep.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_gateway::routes::{ProofMode, RouteConfig};
use medgate_proto::wire::problem_type;
use medgate_sdk::client::MedgateClient;

use crate::common::{Reply, Stack};

const PATH: &str = "/echo/treatments";
const BODY: &[u8] = br#"[{"eventType": "Correction Bolus", "insulin": 1.5}]"#;

async fn signing_stack(max_signed_body: usize) -> Stack {
    Stack::start_with(|config| {
        let mut route = RouteConfig::new("/echo/treatments", &["POST"], &["entries:write"]);
        route.proof = ProofMode::DpopSignature;
        config.gateway.routes.insert(0, route);
        config.gateway.max_signed_body = max_signed_body;
    })
    .await
}

/// A signed POST of `signed_body`, sent with `sent_body` and the headers `edit` leaves.
async fn post(
    stack: &Stack,
    client: &MedgateClient,
    signed_body: &[u8],
    sent_body: &[u8],
    edit: impl FnOnce(&mut http::HeaderMap),
) -> Reply {
    let mut headers = client
        .headers_for("POST", PATH, Some(signed_body))
        .await
        .unwrap()
        .to_header_map();
    edit(&mut headers);
    stack
        .raw(
            Method::POST,
            &stack.gateway_url(PATH),
            headers,
            Bytes::copy_from_slice(sent_body),
        )
        .await
}

/// A 401 `invalid_signature` whose detail says `why`.
#[track_caller]
fn refused(reply: &Reply, why: &str) {
    let problem = reply.assert_problem(StatusCode::UNAUTHORIZED, problem_type::INVALID_SIGNATURE);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(why), "{detail}");
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="invalid_signature""#),
        "{challenge}"
    );
    assert!(
        reply
            .header("accept-signature")
            .unwrap()
            .contains("content-digest"),
        "{reply:?}"
    );
}

#[tokio::test]
async fn a_signed_write_reaches_the_upstream_with_its_signature_and_key() {
    let stack = signing_stack(1024 * 1024).await;
    let client = stack.client();
    client.attest().await.unwrap();
    let reply = client
        .send_signed(Method::POST, PATH, Bytes::from_static(BODY))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let seen: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(seen["body_bytes"], BODY.len());
    let headers = &seen["headers"];
    assert_eq!(
        headers["x-medgate-key"],
        client.installation_id().as_str(),
        "{seen}"
    );
    for name in ["signature-input", "signature", "content-digest"] {
        assert!(headers[name].is_string(), "{name}: {seen}");
    }
    assert!(
        headers["signature-input"]
            .as_str()
            .unwrap()
            .starts_with(r#"medgate=("@method" "@target-uri" "content-digest" "authorization")"#)
    );
    // A route without the signature requirement forwards no X-Medgate-Key, whatever the
    // client sent as one.
    let mut forged = client
        .request_headers("GET", "/echo")
        .await
        .unwrap()
        .to_header_map();
    forged.insert(
        HeaderName::from_static("x-medgate-key"),
        HeaderValue::from_static("someone-else"),
    );
    let plain = stack
        .raw(
            Method::GET,
            &stack.gateway_url("/echo"),
            forged,
            Bytes::new(),
        )
        .await;
    plain.assert_status(StatusCode::OK);
    assert!(plain.json()["headers"].get("x-medgate-key").is_none());
}

#[tokio::test]
async fn every_forgery_of_a_signed_write_is_refused_for_its_reason() {
    let stack = signing_stack(4096).await;
    let client = stack.client();
    client.attest().await.unwrap();

    // The body changed after signing (a proxy raised the dose).
    let changed = br#"[{"eventType": "Correction Bolus", "insulin": 15}]"#;
    let reply = post(&stack, &client, BODY, changed, |_| {}).await;
    refused(&reply, "not the one its Content-Digest names");
    // The digest rewritten to match the changed body: the signature no longer verifies.
    let reply = post(&stack, &client, BODY, changed, |headers| {
        headers.insert(
            HeaderName::from_static("content-digest"),
            HeaderValue::from_str(&medgate_proto::httpsig::content_digest(
                medgate_proto::httpsig::DigestAlg::Sha256,
                changed,
            ))
            .unwrap(),
        );
    })
    .await;
    refused(&reply, "does not verify");
    // No signature at all on a route that needs one (DPoP alone is not enough).
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        headers.remove("signature");
        headers.remove("signature-input");
    })
    .await;
    refused(&reply, "needs an HTTP Message Signature");
    // A signature without a DPoP token on a route that needs both.
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        headers.remove("dpop");
    })
    .await;
    reply.assert_dpop_error("invalid_dpop_proof");
    // The same signed request twice: its DPoP proof (and nonce) are spent.
    let headers = client
        .headers_for("POST", PATH, Some(BODY))
        .await
        .unwrap()
        .to_header_map();
    let url = stack.gateway_url(PATH);
    let send =
        |headers: http::HeaderMap| stack.raw(Method::POST, &url, headers, Bytes::from_static(BODY));
    send(headers.clone()).await.assert_status(StatusCode::OK);
    send(headers.clone())
        .await
        .assert_dpop_error("invalid_dpop_proof");
    // The same signature (its nonce) with a fresh proof: the nonce is spent too.
    let reply = post(&stack, &client, BODY, BODY, |fresh| {
        for name in ["signature", "signature-input", "content-digest"] {
            fresh.insert(
                HeaderName::from_static(name),
                headers.get(name).unwrap().clone(),
            );
        }
    })
    .await;
    refused(&reply, "nonce was already used");
    // Signed by another installation's key, presented with this one's token and proof.
    let other = stack.client();
    other.attest().await.unwrap();
    let theirs = other
        .headers_for("POST", PATH, Some(BODY))
        .await
        .unwrap()
        .to_header_map();
    let reply = post(&stack, &client, BODY, BODY, |headers| {
        for name in ["signature", "signature-input"] {
            headers.insert(
                HeaderName::from_static(name),
                theirs.get(name).unwrap().clone(),
            );
        }
    })
    .await;
    refused(&reply, "keyid");
    // A body over the route's limit: 413, declared or not.
    let large = vec![b'1'; 5000];
    let reply = post(&stack, &client, &large, &large, |_| {}).await;
    reply.assert_problem(
        StatusCode::PAYLOAD_TOO_LARGE,
        problem_type::PAYLOAD_TOO_LARGE,
    );
    // And the genuine write still goes through.
    post(&stack, &client, BODY, BODY, |_| {})
        .await
        .assert_status(StatusCode::OK);
}
