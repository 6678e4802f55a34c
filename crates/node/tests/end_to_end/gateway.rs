//! The gateway: what passes, and every way a request is refused.

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::b64;
use medgate_proto::jws::{HeaderFields, sign_compact};
use medgate_proto::wire::{self, AccessTokenClaims};
use medgate_sdk::client::MedgateClient;
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::dpop_proof;
use medgate_sdk::signer::Signer;
use medgate_service::ratelimit::RateLimit;
use medgate_store::seal::Sealer;
use medgate_verify::keys::TokenSigningKey;

use crate::common::{Reply, Stack};

/// An attested client and its token.
async fn attested(stack: &Stack) -> (MedgateClient, String) {
    let client = stack.client();
    client.attest().await.unwrap();
    let token = client.access_token().await.unwrap().into_inner();
    (client, token)
}

fn proof(stack: &Stack, key: &dyn Signer, method: &str, path: &str, token: Option<&str>) -> String {
    dpop_proof(key, method, &stack.gateway_url(path), token, stack.now()).unwrap()
}

/// The issuer's active signing key, read from the store as an attacker with the database
/// file (and no master key configured) could: used here to mint tokens with chosen claims.
async fn issuer_key(stack: &Stack) -> TokenSigningKey {
    let records = stack.node.store().signing_keys().await.unwrap();
    let active = records
        .iter()
        .rev()
        .find(|r| r.retired_at.is_none())
        .unwrap();
    let pkcs8 = Sealer::plain()
        .open(&active.kid, &active.sealed_private_key)
        .unwrap();
    TokenSigningKey::from_pkcs8(&pkcs8).unwrap()
}

fn claims_of(token: &str) -> AccessTokenClaims {
    serde_json::from_slice(&b64::decode(token.split('.').nth(1).unwrap(), 8192).unwrap()).unwrap()
}

fn mint(key: &TokenSigningKey, claims: &AccessTokenClaims) -> String {
    let header = HeaderFields {
        typ: Some(wire::TYP_ACCESS_TOKEN),
        kid: Some(key.kid()),
        jwk: None,
    };
    sign_compact(header, claims, key).unwrap()
}

async fn with_token(stack: &Stack, client: &MedgateClient, token: &str, path: &str) -> Reply {
    let dpop = proof(stack, client.key(), "GET", path, Some(token));
    stack
        .gateway(
            Method::GET,
            path,
            Some(&format!("DPoP {token}")),
            Some(&dpop),
        )
        .await
}

#[tokio::test]
async fn a_genuine_request_reaches_the_upstream_without_credentials() {
    let stack = Stack::start().await;
    let (client, _) = attested(&stack).await;
    let entries = client.get("/api/v1/entries.json").await.unwrap();
    assert_eq!(entries.status, StatusCode::OK);
    let readings: serde_json::Value = serde_json::from_slice(&entries.body).unwrap();
    assert_eq!(readings.as_array().unwrap().len(), 10);

    // The upstream sees who is asking, and never the token or proof. A client cannot pass
    // itself off as another installation through the X-Medgate-* headers.
    let headers = client.request_headers("GET", "/echo").await.unwrap();
    let mut map = headers.to_header_map();
    map.insert(
        HeaderName::from_static("x-medgate-installation"),
        HeaderValue::from_static("someone-else"),
    );
    map.insert(
        HeaderName::from_static("x-medgate-admin"),
        HeaderValue::from_static("true"),
    );
    let echo = stack
        .raw(
            Method::GET,
            &stack.gateway_url("/echo?x=1"),
            map,
            Bytes::new(),
        )
        .await;
    // The proof was made for /echo; the query is not part of htu.
    echo.assert_status(StatusCode::OK);
    let seen = echo.json();
    let seen_headers = seen["headers"].as_object().unwrap();
    assert!(!seen_headers.contains_key("authorization"));
    assert!(!seen_headers.contains_key("dpop"));
    assert!(!seen_headers.contains_key("x-medgate-admin"));
    assert_eq!(
        seen_headers["x-medgate-installation"],
        client.installation_id().as_str()
    );
    assert_eq!(seen_headers["x-medgate-app"], crate::common::APP);
    assert_eq!(
        seen_headers["x-medgate-scope"],
        "entries:read entries:write"
    );
    assert_eq!(seen["query"], "x=1");
    assert_eq!(seen_headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn requests_without_a_usable_token_are_refused() {
    let stack = Stack::start().await;
    let (client, token) = attested(&stack).await;
    // No credentials at all: a challenge without an error code (RFC 6750 §3.1).
    let none = stack.gateway(Method::GET, "/echo", None, None).await;
    none.assert_problem(StatusCode::UNAUTHORIZED, wire::problem_type::INVALID_TOKEN);
    assert_eq!(
        none.header("www-authenticate").unwrap(),
        r#"DPoP algs="ES256""#
    );
    // A DPoP-bound token presented as a bearer token (RFC 9449 §7.2).
    let dpop = proof(&stack, client.key(), "GET", "/echo", Some(&token));
    stack
        .gateway(
            Method::GET,
            "/echo",
            Some(&format!("Bearer {token}")),
            Some(&dpop),
        )
        .await
        .assert_dpop_error("invalid_token");
    // A token and no proof.
    stack
        .gateway(Method::GET, "/echo", Some(&format!("DPoP {token}")), None)
        .await
        .assert_dpop_error("invalid_dpop_proof");
    // Two proofs.
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("DPoP {token}")).unwrap(),
    );
    for _ in 0..2 {
        let value = proof(&stack, client.key(), "GET", "/echo", Some(&token));
        headers.append(
            HeaderName::from_static("dpop"),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    stack
        .raw(
            Method::GET,
            &stack.gateway_url("/echo"),
            headers,
            Bytes::new(),
        )
        .await
        .assert_dpop_error("invalid_dpop_proof");
    // Garbage.
    stack
        .gateway(Method::GET, "/echo", Some("DPoP not.a.token"), Some("x"))
        .await
        .assert_dpop_error("invalid_token");
}

#[tokio::test]
async fn a_stolen_token_is_useless_without_the_installation_key() {
    let stack = Stack::start().await;
    let (_, token) = attested(&stack).await;
    let thief = InstallationKey::generate().unwrap();
    let dpop = proof(&stack, &thief, "GET", "/echo", Some(&token));
    let challenge = stack
        .gateway(
            Method::GET,
            "/echo",
            Some(&format!("DPoP {token}")),
            Some(&dpop),
        )
        .await
        .assert_dpop_error("invalid_dpop_proof");
    assert!(
        challenge.contains("not the key the access token is bound to"),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_replayed_proof_is_refused() {
    let stack = Stack::start().await;
    let (client, token) = attested(&stack).await;
    let dpop = proof(&stack, client.key(), "GET", "/echo", Some(&token));
    let authorization = format!("DPoP {token}");
    stack
        .gateway(Method::GET, "/echo", Some(&authorization), Some(&dpop))
        .await
        .assert_status(StatusCode::OK);
    let challenge = stack
        .gateway(Method::GET, "/echo", Some(&authorization), Some(&dpop))
        .await
        .assert_dpop_error("invalid_dpop_proof");
    assert!(challenge.contains("already used"), "{challenge}");
}

#[tokio::test]
async fn proofs_must_match_the_request_and_be_fresh() {
    let stack = Stack::start().await;
    let (client, token) = attested(&stack).await;
    let key = client.key();
    let authorization = format!("DPoP {token}");
    let cases: Vec<(String, &str)> = vec![
        // htu of another path.
        (
            proof(&stack, key, "GET", "/api/v1/entries", Some(&token)),
            "htu",
        ),
        // htu of another host.
        (
            dpop_proof(
                key,
                "GET",
                "http://evil.example/echo",
                Some(&token),
                stack.now(),
            )
            .unwrap(),
            "htu",
        ),
        // htm of another method.
        (proof(&stack, key, "POST", "/echo", Some(&token)), "htm"),
        // iat too old, and too far ahead.
        (
            dpop_proof(
                key,
                "GET",
                &stack.gateway_url("/echo"),
                Some(&token),
                stack.now() - 61,
            )
            .unwrap(),
            "iat",
        ),
        (
            dpop_proof(
                key,
                "GET",
                &stack.gateway_url("/echo"),
                Some(&token),
                stack.now() + 6,
            )
            .unwrap(),
            "iat",
        ),
        // No ath, and the ath of another token.
        (proof(&stack, key, "GET", "/echo", None), "lacks ath"),
        (
            proof(&stack, key, "GET", "/echo", Some("another-token")),
            "ath does not match",
        ),
    ];
    for (dpop, expected) in cases {
        let challenge = stack
            .gateway(Method::GET, "/echo", Some(&authorization), Some(&dpop))
            .await
            .assert_dpop_error("invalid_dpop_proof");
        assert!(challenge.contains(expected), "{expected}: {challenge}");
    }
    // The genuine proof still works after all that.
    let dpop = proof(&stack, key, "GET", "/echo", Some(&token));
    stack
        .gateway(Method::GET, "/echo", Some(&authorization), Some(&dpop))
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn forged_and_confused_tokens_are_refused() {
    let stack = Stack::start().await;
    let (client, token) = attested(&stack).await;
    let refused = |reply: Reply, expected: &str| {
        let challenge = reply.assert_dpop_error("invalid_token");
        assert!(challenge.contains(expected), "{expected}: {challenge}");
    };
    // A flipped bit in the signature.
    let at = token.len() - 10;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let forged = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    refused(
        with_token(&stack, &client, &forged, "/echo").await,
        "signature",
    );
    // Claims changed after signing (more scopes).
    let mut claims = claims_of(&token);
    claims.scope = "entries:read entries:write admin".into();
    let parts: Vec<&str> = token.split('.').collect();
    let edited = format!(
        "{}.{}.{}",
        parts[0],
        b64::encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    refused(
        with_token(&stack, &client, &edited, "/echo").await,
        "signature",
    );
    // alg none.
    let kid = serde_json::from_slice::<serde_json::Value>(&b64::decode(parts[0], 4096).unwrap())
        .unwrap()["kid"]
        .clone();
    let none = format!(
        "{}.{}.",
        b64::encode(serde_json::json!({"alg": "none", "typ": "at+jwt", "kid": kid}).to_string()),
        parts[1]
    );
    refused(
        with_token(&stack, &client, &none, "/echo").await,
        "algorithm",
    );
    // HS256 keyed with the published public key (the classic key-confusion attack).
    let jwks = stack
        .raw(
            Method::GET,
            &format!("{}/.well-known/jwks.json", stack.node.server_url()),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
        .json();
    let public: medgate_proto::PublicJwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let input = format!(
        "{}.{}",
        b64::encode(serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}).to_string()),
        parts[1]
    );
    for secret in [
        public.public_key_bytes(),
        jwks["keys"][0].to_string().into_bytes(),
    ] {
        let mac = ring::hmac::sign(
            &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        refused(
            with_token(
                &stack,
                &client,
                &format!("{input}.{}", b64::encode(mac)),
                "/echo",
            )
            .await,
            "algorithm",
        );
    }
    // Signed by a key the issuer never published.
    let (stranger, _) = TokenSigningKey::generate().unwrap();
    refused(
        with_token(
            &stack,
            &client,
            &mint(&stranger, &claims_of(&token)),
            "/echo",
        )
        .await,
        "no known signing key",
    );
    // Signed by the issuer's own key but for another audience, or another issuer.
    let issuer = issuer_key(&stack).await;
    let mut claims = claims_of(&token);
    claims.aud = "https://other-api.example".into();
    refused(
        with_token(&stack, &client, &mint(&issuer, &claims), "/echo").await,
        "audience",
    );
    let mut claims = claims_of(&token);
    claims.iss = "https://evil.example".into();
    refused(
        with_token(&stack, &client, &mint(&issuer, &claims), "/echo").await,
        "issuer",
    );
    // The untouched token still works.
    with_token(&stack, &client, &token, "/echo")
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn an_expired_token_is_refused_even_with_a_fresh_proof() {
    let stack = Stack::start().await;
    let (client, token) = attested(&stack).await;
    with_token(&stack, &client, &token, "/echo")
        .await
        .assert_status(StatusCode::OK);
    stack.clock.advance(299);
    with_token(&stack, &client, &token, "/echo")
        .await
        .assert_status(StatusCode::OK);
    stack.clock.advance(1);
    let challenge = with_token(&stack, &client, &token, "/echo")
        .await
        .assert_dpop_error("invalid_token");
    assert!(challenge.contains("expired"), "{challenge}");
    // The SDK refreshes before expiry: its next request attests again and passes.
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    assert_ne!(client.access_token().await.unwrap().into_inner(), token);
}

#[tokio::test]
async fn routes_and_scopes_are_enforced() {
    let stack = Stack::start().await;
    let limited = stack.client_with_signals(&["root"]);
    limited.attest().await.unwrap();
    let refused = limited
        .send(
            Method::POST,
            "/api/v1/treatments",
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    let reply = Reply(refused);
    reply.assert_problem(
        StatusCode::FORBIDDEN,
        wire::problem_type::INSUFFICIENT_SCOPE,
    );
    assert_eq!(
        reply.header("www-authenticate").unwrap(),
        r#"DPoP error="insufficient_scope", scope="entries:write", algs="ES256""#
    );
    // The full client may write.
    let (full, _) = attested(&stack).await;
    assert_eq!(
        full.send(
            Method::POST,
            "/api/v1/treatments",
            Bytes::from_static(b"{}")
        )
        .await
        .unwrap()
        .status,
        StatusCode::CREATED
    );
    // No rule for the path, or for the method: denied.
    Reply(full.get("/admin/users").await.unwrap())
        .assert_problem(StatusCode::FORBIDDEN, wire::problem_type::ROUTE_DENIED);
    Reply(
        full.send(Method::DELETE, "/api/v1/entries", Bytes::new())
            .await
            .unwrap(),
    )
    .assert_problem(StatusCode::FORBIDDEN, wire::problem_type::ROUTE_DENIED);
    // Paths that could be read differently upstream are refused before anything else.
    for path in ["/echo/../admin", "/echo/%2e%2e/admin", "//echo"] {
        stack
            .gateway(Method::GET, path, None, None)
            .await
            .assert_problem(
                StatusCode::BAD_REQUEST,
                wire::problem_type::MALFORMED_REQUEST,
            );
    }
}

#[tokio::test]
async fn each_installation_is_rate_limited() {
    let stack = Stack::start_with(|config| {
        config.gateway.rate_limit = RateLimit {
            per_second: 1,
            burst: 2,
        }
    })
    .await;
    let (client, _) = attested(&stack).await;
    for _ in 0..2 {
        assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    }
    let limited = Reply(client.get("/echo").await.unwrap());
    limited.assert_rate_limited();
    // Another installation has its own budget.
    let (other, _) = attested(&stack).await;
    assert_eq!(other.get("/echo").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let stack = Stack::start().await;
    let (client, _) = attested(&stack).await;
    let upload: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let echoed = client
        .send(Method::POST, "/stream", Bytes::from(upload.clone()))
        .await
        .unwrap();
    assert_eq!(echoed.status, StatusCode::OK);
    assert!(echoed.body == upload, "the streamed body came back changed");
    let large = client.get("/large?bytes=10485760").await.unwrap();
    assert_eq!(large.status, StatusCode::OK);
    assert_eq!(large.body.len(), 10 * 1024 * 1024);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let stack =
        Stack::start_with(|config| config.gateway.upstream = Some(format!("http://{addr}"))).await;
    let (client, _) = attested(&stack).await;
    Reply(client.get("/echo").await.unwrap()).assert_problem(
        StatusCode::BAD_GATEWAY,
        wire::problem_type::UPSTREAM_UNAVAILABLE,
    );
}

#[tokio::test]
async fn a_token_is_verified_once_then_served_from_the_cache() {
    let stack = Stack::start().await;
    let (client, _) = attested(&stack).await;
    for _ in 0..3 {
        assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    }
    let metrics = stack.node.metrics().render();
    assert!(
        metrics.contains(r#"medgate_gateway_token_cache_total{result="miss"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"medgate_gateway_token_cache_total{result="hit"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"medgate_gateway_requests_total{outcome="forwarded"} 3"#),
        "{metrics}"
    );
}
