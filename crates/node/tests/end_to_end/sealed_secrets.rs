//! `GET /v1/secrets/{name}`: an operator secret sealed (JWE, ECDH-ES+A256KW / A256GCM) to the
//! key-agreement key an installation attested, delivered only with a full `allow`, the scope,
//! a fresh proof and an unrevoked installation. (npm `jose` opens one in `interop.rs`.)

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use medgate_proto::wire::{Decision, Signal, problem_type};
use medgate_sdk::client::{ClientError, MedgateClient};
use medgate_service::Clock as _;
use medgate_trust::jwe::{self, EcdhSecret, KeyAgreement, KeyManagement};

use crate::common::{Reply, Stack};

const SEALED_APP: &str = "org.example.sealed";
const NAME: &str = "partner_key";
const VALUE: &str = "the-partner-api-key-no-app-should-ship";

/// A client of the sealed app, with a fresh installation key and, if `encryption`, a fresh
/// key-agreement key.
fn client(stack: &Stack, encryption: Option<Arc<EcdhSecret>>) -> MedgateClient {
    let mut config = stack.client().config().clone();
    config.app.app_id = SEALED_APP.into();
    let key = medgate_sdk::key::InstallationKey::generate().unwrap();
    let clock = Arc::clone(&stack.clock);
    let client = MedgateClient::new(config, key).with_clock(Arc::new(move || clock.now().secs()));
    match encryption {
        Some(key) => client.with_encryption_key(key),
        None => client,
    }
}

fn secret_url(stack: &Stack, name: &str) -> String {
    format!("{}/v1/secrets/{name}", stack.node.server_url())
}

/// The headers of one request for `name`: the client's token and a fresh proof.
async fn headers_for(stack: &Stack, client: &MedgateClient, name: &str) -> HeaderMap {
    stack
        .server_get_headers(client, &secret_url(stack, name))
        .await
}

async fn get(stack: &Stack, name: &str, headers: HeaderMap) -> Reply {
    stack
        .raw(Method::GET, &secret_url(stack, name), headers, Bytes::new())
        .await
}

async fn sealed_stack() -> Stack {
    let stack = Stack::start().await;
    stack.app_with_secret(SEALED_APP, NAME, VALUE).await;
    stack
}

#[tokio::test]
async fn an_attested_installation_opens_the_secret_sealed_to_its_key() {
    let stack = sealed_stack().await;
    let key = Arc::new(EcdhSecret::generate().unwrap());
    let client = client(&stack, Some(Arc::clone(&key)));
    assert_eq!(client.attest().await.unwrap().decision, Decision::Allow);

    // Through the SDK.
    let value = client.secret(NAME).await.unwrap();
    assert_eq!(value.as_slice(), VALUE.as_bytes());

    // On the wire: a compact JWE that is not to be cached, sealed to the attested key only.
    let reply = get(&stack, NAME, headers_for(&stack, &client, NAME).await).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/jose")
    );
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let body = String::from_utf8(reply.0.body.to_vec()).unwrap();
    assert!(!body.contains(VALUE));
    let opened = jwe::decrypt(&body, KeyManagement::EcdhEsA256Kw(key.as_ref())).unwrap();
    assert_eq!(opened.plaintext.as_slice(), VALUE.as_bytes());
    assert_eq!(opened.header["alg"], "ECDH-ES+A256KW");
    assert_eq!(opened.header["enc"], "A256GCM");
    assert_eq!(opened.header["kid"], key.public_jwk().thumbprint().as_str());
    assert_eq!(opened.header["medgate_secret"], NAME);
    assert_eq!(opened.header["medgate_version"], 1);
    let stranger = EcdhSecret::generate().unwrap();
    assert_eq!(
        jwe::decrypt(&body, KeyManagement::EcdhEsA256Kw(&stranger)).unwrap_err(),
        jwe::JweError::KeyUnwrapFailed
    );

    // The listing says installations fetch it.
    let listed = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{SEALED_APP}/secrets"),
            serde_json::Value::Null,
        )
        .await
        .json();
    assert_eq!(listed[0]["sealed_to_installations"], true);

    // Audited by name and version, never by value.
    let entries = stack
        .admin(
            Method::GET,
            "/v1/admin/audit?limit=1000",
            serde_json::Value::Null,
        )
        .await;
    let text = entries.json().to_string();
    assert!(text.contains("secret.delivered"), "{text}");
    assert!(text.contains(&format!("{SEALED_APP}/{NAME}")), "{text}");
    assert!(!text.contains(VALUE));
}

#[tokio::test]
async fn every_refusal_is_a_problem_and_gives_nothing_away() {
    let stack = sealed_stack().await;
    let genuine = client(&stack, Some(Arc::new(EcdhSecret::generate().unwrap())));
    genuine.attest().await.unwrap();

    // A replayed proof.
    let headers = headers_for(&stack, &genuine, NAME).await;
    get(&stack, NAME, headers.clone())
        .await
        .assert_status(StatusCode::OK);
    let challenge = get(&stack, NAME, headers)
        .await
        .assert_dpop_error("invalid_dpop_proof");
    assert!(challenge.contains("already used"), "{challenge}");

    // No token; a bearer token; no proof; a proof for another secret's URL.
    get(&stack, NAME, HeaderMap::new())
        .await
        .assert_problem(StatusCode::UNAUTHORIZED, problem_type::INVALID_TOKEN);
    let mut bearer = headers_for(&stack, &genuine, NAME).await;
    let token = bearer[AUTHORIZATION]
        .to_str()
        .unwrap()
        .replacen("DPoP", "Bearer", 1);
    bearer.insert(AUTHORIZATION, HeaderValue::from_str(&token).unwrap());
    get(&stack, NAME, bearer)
        .await
        .assert_dpop_error("invalid_token");
    let mut no_proof = headers_for(&stack, &genuine, NAME).await;
    no_proof.remove("dpop");
    get(&stack, NAME, no_proof)
        .await
        .assert_dpop_error("invalid_dpop_proof");
    let elsewhere = headers_for(&stack, &genuine, "other_key").await;
    get(&stack, NAME, elsewhere)
        .await
        .assert_dpop_error("invalid_dpop_proof");

    // A secret the token has no scope for.
    let reply = get(
        &stack,
        "other_key",
        headers_for(&stack, &genuine, "other_key").await,
    )
    .await;
    let problem = reply.assert_problem(StatusCode::FORBIDDEN, problem_type::INSUFFICIENT_SCOPE);
    assert!(
        problem.to_string().contains("secret:other_key"),
        "{problem}"
    );

    // A limited token carries the scope (the policy grants it) and is still refused.
    let limited = client(&stack, Some(Arc::new(EcdhSecret::generate().unwrap())));
    limited.set_signals(vec![Signal::new(
        medgate_proto::wire::SignalKind::Root,
        "seen in test",
    )]);
    assert_eq!(
        limited.attest().await.unwrap().decision,
        Decision::AllowLimited
    );
    let challenge = get(&stack, NAME, headers_for(&stack, &limited, NAME).await)
        .await
        .assert_dpop_error("invalid_token");
    assert!(challenge.contains("allowed in full"), "{challenge}");
    match limited.secret(NAME).await.unwrap_err() {
        ClientError::Refused { status: 401, .. } => {}
        other => panic!("{other:?}"),
    }

    // An installation that attested no key-agreement key has nothing to seal to.
    let keyless = client(&stack, None);
    keyless.attest().await.unwrap();
    get(&stack, NAME, headers_for(&stack, &keyless, NAME).await)
        .await
        .assert_status(StatusCode::CONFLICT);

    // A revoked installation, at once (the control plane reads the store, not a feed).
    stack
        .revoke_installation(genuine.installation_id().as_str())
        .await;
    let challenge = get(&stack, NAME, headers_for(&stack, &genuine, NAME).await)
        .await
        .assert_dpop_error("invalid_token");
    assert!(challenge.contains("revoked"), "{challenge}");

    // A name that is not a secret name is refused before any credential is read.
    get(&stack, "NotAName", HeaderMap::new())
        .await
        .assert_status(StatusCode::NOT_FOUND);
}
