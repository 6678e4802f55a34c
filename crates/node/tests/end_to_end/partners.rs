//! Partner backends (SMART Backend Services): a registered partner gets a short-lived, scoped
//! token for a signed client assertion and reads through the gateway on its routes only; every
//! forged or misused assertion, token and proof is refused, each differing from an accepted
//! request in exactly the one thing named.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_gateway::routes::RouteConfig;
use medgate_node::config::{Config, PartnerScopeConfig, PartnersConfig};
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::dpop_proof;
use medgate_service::ratelimit::RateLimit;
use medgate_testkit::partner::{PartnerSigner, jwks};

use crate::common::{Reply, Stack};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Routes for a FHIR-shaped upstream (the sample upstream echoes any path with `/echo`), and
/// what SMART scopes give on them.
pub fn partner_config(config: &mut Config) {
    for (path, scope) in [
        ("/fhir/Observation*", "observations:read"),
        ("/fhir/Patient*", "patients:read"),
    ] {
        config.gateway.routes.push(RouteConfig {
            partners: true,
            ..RouteConfig::new(path, &["GET"], &[scope])
        });
    }
    config.gateway.partners = Some(PartnersConfig {
        rate_limit: RateLimit {
            per_second: 100,
            burst: 200,
        },
        scopes: vec![
            PartnerScopeConfig {
                smart: "system/Observation.rs".into(),
                grants: vec!["observations:read".into()],
            },
            PartnerScopeConfig {
                smart: "system/Patient.rs".into(),
                grants: vec!["patients:read".into()],
            },
        ],
    });
}

/// A partner may send `burst` requests at once, then one a second.
fn partner_limit(config: &mut Config, burst: u32) {
    if let Some(partners) = config.gateway.partners.as_mut() {
        partners.rate_limit = RateLimit {
            per_second: 1,
            burst,
        };
    }
}

/// Registers a partner through the admin API; its id, once the gateway knows it (a gateway
/// learns of partners at its refresh, here run at once).
pub async fn register(stack: &Stack, body: serde_json::Value) -> String {
    let reply = stack.admin(Method::POST, "/v1/admin/partners", body).await;
    reply.assert_status(StatusCode::CREATED);
    let created = reply.json();
    assert_eq!(created["client_id"], created["id"]);
    stack
        .node
        .gateway()
        .refresh(&*stack.node.store())
        .await
        .unwrap();
    created["id"].as_str().unwrap().to_string()
}

/// The token endpoint, as discovery announces it.
pub async fn token_endpoint(stack: &Stack) -> String {
    let smart = stack.server_get("/.well-known/smart-configuration").await;
    smart.assert_status(StatusCode::OK);
    let smart = smart.json();
    assert_eq!(
        smart["grant_types_supported"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        smart["token_endpoint_auth_methods_supported"],
        serde_json::json!(["private_key_jwt"])
    );
    assert_eq!(
        smart["token_endpoint_auth_signing_alg_values_supported"],
        serde_json::json!(["RS384", "ES384", "ES256"])
    );
    let oauth = stack
        .server_get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(oauth["token_endpoint"], smart["token_endpoint"]);
    assert_eq!(oauth["issuer"], smart["issuer"]);
    smart["token_endpoint"].as_str().unwrap().to_string()
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// Claims SMART asks for: `iss` = `sub` = the client, `aud` the token endpoint, four minutes.
fn claims(stack: &Stack, client: &str, aud: &str) -> serde_json::Value {
    let jti = format!(
        "jti-{}-{}",
        stack.now(),
        JTI.fetch_add(1, Ordering::Relaxed)
    );
    serde_json::json!({"iss": client, "sub": client, "aud": aud, "iat": stack.now(),
        "exp": stack.now() + 240, "jti": jti})
}

async fn token_request(
    stack: &Stack,
    endpoint: &str,
    form: &[(&str, &str)],
    dpop: Option<&str>,
) -> Reply {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Some(proof) = dpop {
        headers.insert(
            HeaderName::from_static("dpop"),
            HeaderValue::from_str(proof).unwrap(),
        );
    }
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    stack
        .raw(Method::POST, endpoint, headers, Bytes::from(body))
        .await
}

/// A client credentials request for `scope`, authenticated by `signer`'s key `kid` for
/// `client`, with a fresh assertion for the endpoint.
async fn ask(
    stack: &Stack,
    endpoint: &str,
    (signer, kid): (&PartnerSigner, &str),
    client: &str,
    scope: &str,
) -> Reply {
    let assertion = signer.assertion(kid, &claims(stack, client, endpoint));
    token_request(
        stack,
        endpoint,
        &client_credentials(&assertion, scope),
        None,
    )
    .await
}

fn client_credentials<'a>(assertion: &'a str, scope: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("scope", scope),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ]
}

#[track_caller]
fn assert_oauth_error(reply: &Reply, status: StatusCode, error: &str) {
    reply.assert_status(status);
    assert_eq!(reply.json()["error"], error, "{:?}", reply.json());
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
}

async fn bearer_get(stack: &Stack, path: &str, token: &str) -> Reply {
    stack
        .gateway(Method::GET, path, Some(&format!("Bearer {token}")), None)
        .await
}

/// A partner registered with an RS384 and an ES384 key, granted Observation reads.
async fn partner_with_keys(stack: &Stack, rsa: &PartnerSigner, ec: &PartnerSigner) -> String {
    register(
        stack,
        serde_json::json!({
            "name": "St. Elsewhere clinic EHR",
            "jwks": jwks(&[(rsa, "rsa-1"), (ec, "ec-1")]),
            "scopes": ["system/Observation.rs"],
        }),
    )
    .await
}

#[tokio::test]
async fn a_partner_gets_a_scoped_token_and_reads_its_routes_only() {
    let stack = Stack::start_with(partner_config).await;
    let (rsa, ec) = (PartnerSigner::rs384(), PartnerSigner::es384());
    let id = partner_with_keys(&stack, &rsa, &ec).await;
    let endpoint = token_endpoint(&stack).await;
    // Asked for more than it was registered for: granted the intersection.
    let asked = "system/Observation.read system/Patient.rs";
    let reply = ask(&stack, &endpoint, (&rsa, "rsa-1"), &id, asked).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let answer = reply.json();
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["scope"], "system/Observation.read");
    assert_eq!(answer["expires_in"], 300);
    let token = answer["access_token"].as_str().unwrap();

    // Its route: the upstream learns the partner and the route scopes, never the token.
    let read = bearer_get(&stack, "/fhir/Observation/echo", token).await;
    read.assert_status(StatusCode::OK);
    let seen = read.json();
    let headers = &seen["headers"];
    assert_eq!(headers["x-medgate-partner"], id.as_str());
    assert_eq!(headers["x-medgate-scope"], "observations:read");
    assert!(headers.get("authorization").is_none());
    assert!(headers.get("x-medgate-installation").is_none());
    // A partner route its scopes do not give, an app's route, the DPoP scheme for an unbound
    // token.
    bearer_get(&stack, "/fhir/Patient/echo", token)
        .await
        .assert_problem(
            StatusCode::FORBIDDEN,
            "urn:medgate:problem:insufficient-scope",
        );
    bearer_get(&stack, "/echo", token)
        .await
        .assert_status(StatusCode::FORBIDDEN);
    bearer_get(&stack, "/api/v1/entries", token)
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let key = InstallationKey::generate().unwrap();
    let proof = dpop_proof(
        &key,
        "GET",
        &stack.gateway_url("/fhir/Observation/echo"),
        Some(token),
        stack.now(),
    )
    .unwrap();
    stack
        .gateway(
            Method::GET,
            "/fhir/Observation/echo",
            Some(&format!("DPoP {token}")),
            Some(&proof),
        )
        .await
        .assert_dpop_error("invalid_token");

    // The ES384 key works too, with aud the issuer (as openid-client sends it).
    let issuer = stack
        .server_get("/.well-known/smart-configuration")
        .await
        .json()["issuer"]
        .as_str()
        .unwrap()
        .to_string();
    let assertion = ec.assertion("ec-1", &claims(&stack, &id, &issuer));
    let reply = token_request(
        &stack,
        &endpoint,
        &client_credentials(&assertion, "system/Observation.rs"),
        None,
    )
    .await;
    reply.assert_status(StatusCode::OK);

    // Issued tokens are audited, and the gateway's accepted requests counted per partner and
    // minute.
    stack.clock.advance(61);
    let store = stack.node.store();
    let entries = || async { store.audit_entries(0, 1000).await.unwrap() };
    stack
        .eventually(20, || async {
            entries()
                .await
                .iter()
                .any(|e| e.kind == "gateway.partner_uses")
        })
        .await;
    let entries = entries().await;
    let issued: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == "partner.token")
        .collect();
    assert_eq!(issued.len(), 2);
    assert!(
        issued
            .iter()
            .all(|e| e.subject == id && !e.detail.contains(token))
    );
    let uses = entries
        .iter()
        .find(|e| e.kind == "gateway.partner_uses")
        .unwrap();
    assert_eq!(uses.subject, id);
    let detail: serde_json::Value = serde_json::from_str(&uses.detail).unwrap();
    assert_eq!(detail["count"], 1);
    assert_eq!(detail["route"], "/fhir/Observation*");
    assert_eq!(detail["name"], "St. Elsewhere clinic EHR");
}

#[tokio::test]
async fn every_forged_or_misused_token_request_is_refused() {
    let stack = Stack::start_with(partner_config).await;
    let (rsa, ec) = (PartnerSigner::rs384(), PartnerSigner::es384());
    let id = partner_with_keys(&stack, &rsa, &ec).await;
    let endpoint = token_endpoint(&stack).await;
    let scope = "system/Observation.rs";
    let request = |assertion: String| {
        let stack = &stack;
        let endpoint = endpoint.clone();
        async move {
            token_request(
                stack,
                &endpoint,
                &client_credentials(&assertion, scope),
                None,
            )
            .await
        }
    };
    let good = |stack: &Stack| claims(stack, &id, &endpoint);
    let with = |name: &str, value: serde_json::Value| {
        let mut claims = good(&stack);
        claims[name] = value;
        rsa.assertion("rsa-1", &claims)
    };
    // The control: accepted.
    request(rsa.assertion("rsa-1", &good(&stack)))
        .await
        .assert_status(StatusCode::OK);

    let refused = [
        // Signed by a key not in the partner's JWKS, under one of its kids.
        (
            "foreign key",
            PartnerSigner::es384().assertion("ec-1", &good(&stack)),
        ),
        ("kid not in the JWKS", rsa.assertion("rsa-2", &good(&stack))),
        ("wrong aud", with("aud", format!("{endpoint}/other").into())),
        ("expired", with("exp", (stack.now() - 1).into())),
        ("exp far ahead", with("exp", (stack.now() + 3600).into())),
        (
            "iss not the client",
            with("iss", "ptn_ffffffffffffffff".into()),
        ),
        ("sub not the client", with("sub", "someone".into())),
        (
            "alg not allowed",
            rsa.sign(
                &serde_json::json!({"alg": "RS256", "kid": "rsa-1"}),
                &good(&stack),
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                medgate_proto::b64::encode(r#"{"alg":"none","kid":"rsa-1"}"#),
                medgate_proto::b64::encode(good(&stack).to_string())
            ),
        ),
    ];
    for (why, assertion) in refused {
        let reply = request(assertion).await;
        reply.assert_status(StatusCode::UNAUTHORIZED);
        assert_eq!(reply.json()["error"], "invalid_client", "{why}");
    }
    // A reused jti.
    let once = rsa.assertion("rsa-1", &good(&stack));
    request(once.clone()).await.assert_status(StatusCode::OK);
    assert_oauth_error(
        &request(once).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // A scope not granted.
    let reply = ask(&stack, &endpoint, (&rsa, "rsa-1"), &id, "system/Patient.rs").await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_scope");
    // Another grant type; a parameter twice; a client_id that is not the assertion's.
    let assertion = rsa.assertion("rsa-1", &good(&stack));
    let mut form = client_credentials(&assertion, scope);
    form[0] = ("grant_type", "authorization_code");
    let reply = token_request(&stack, &endpoint, &form, None).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let mut form = client_credentials(&assertion, scope);
    form.push(("scope", "system/Patient.rs"));
    let reply = token_request(&stack, &endpoint, &form, None).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let mut form = client_credentials(&assertion, scope);
    form.push(("client_id", "ptn_0000000000000000"));
    let reply = token_request(&stack, &endpoint, &form, None).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");

    // A partner that may only come from elsewhere; one that must send DPoP.
    let elsewhere = register(
        &stack,
        serde_json::json!({"name": "Research partner", "jwks": jwks(&[(&ec, "ec-1")]),
            "scopes": [scope], "ip_allow": ["192.0.2.0/24"]}),
    )
    .await;
    let reply = ask(&stack, &endpoint, (&ec, "ec-1"), &elsewhere, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    let strict = register(
        &stack,
        serde_json::json!({"name": "Insurer", "jwks": jwks(&[(&ec, "ec-1")]),
            "scopes": [scope], "require_dpop": true}),
    )
    .await;
    let reply = ask(&stack, &endpoint, (&ec, "ec-1"), &strict, scope).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");

    // Disabled: no token, and the tokens it has are refused by the gateway.
    let reply = ask(&stack, &endpoint, (&rsa, "rsa-1"), &id, scope).await;
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    bearer_get(&stack, "/fhir/Observation/echo", &token)
        .await
        .assert_status(StatusCode::OK);
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/partners/{id}/disable"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    let reply = ask(&stack, &endpoint, (&rsa, "rsa-1"), &id, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    stack
        .eventually(5, || async {
            bearer_get(&stack, "/fhir/Observation/echo", &token)
                .await
                .status()
                == StatusCode::UNAUTHORIZED
        })
        .await;
    // Nothing a client sent is repeated in an answer.
    assert!(!reply.json().to_string().contains(&id));
}

#[tokio::test]
async fn a_dpop_bound_partner_token_needs_its_proof() {
    let stack = Stack::start_with(partner_config).await;
    let ec = PartnerSigner::es256();
    let id = register(
        &stack,
        serde_json::json!({"name": "Insurer", "jwks": jwks(&[(&ec, "k")]),
            "scopes": ["system/*.rs"], "require_dpop": true}),
    )
    .await;
    let endpoint = token_endpoint(&stack).await;
    let key = InstallationKey::generate().unwrap();
    let assertion = ec.assertion("k", &claims(&stack, &id, &endpoint));
    let form = client_credentials(&assertion, "system/Observation.rs system/Patient.rs");
    // A proof for another URL is refused; one for the endpoint binds the token.
    let elsewhere = dpop_proof(&key, "POST", &format!("{endpoint}x"), None, stack.now()).unwrap();
    let reply = token_request(&stack, &endpoint, &form, Some(&elsewhere)).await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
    let assertion = ec.assertion("k", &claims(&stack, &id, &endpoint));
    let form = client_credentials(&assertion, "system/Observation.rs system/Patient.rs");
    let proof = dpop_proof(&key, "POST", &endpoint, None, stack.now()).unwrap();
    let reply = token_request(&stack, &endpoint, &form, Some(&proof)).await;
    reply.assert_status(StatusCode::OK);
    let answer = reply.json();
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap().to_string();

    let path = "/fhir/Patient/echo";
    let proof_for = |token: &str| {
        dpop_proof(
            &key,
            "GET",
            &stack.gateway_url(path),
            Some(token),
            stack.now(),
        )
        .unwrap()
    };
    let proof = proof_for(&token);
    let authorization = format!("DPoP {token}");
    let read = stack
        .gateway(Method::GET, path, Some(&authorization), Some(&proof))
        .await;
    read.assert_status(StatusCode::OK);
    assert_eq!(
        read.json()["headers"]["x-medgate-scope"],
        "observations:read patients:read"
    );
    // The same proof again; no proof; a proof by another key; the Bearer scheme.
    stack
        .gateway(Method::GET, path, Some(&authorization), Some(&proof))
        .await
        .assert_dpop_error("invalid_dpop_proof");
    stack
        .gateway(Method::GET, path, Some(&authorization), None)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let other = InstallationKey::generate().unwrap();
    let foreign = dpop_proof(
        &other,
        "GET",
        &stack.gateway_url(path),
        Some(&token),
        stack.now(),
    )
    .unwrap();
    stack
        .gateway(Method::GET, path, Some(&authorization), Some(&foreign))
        .await
        .assert_dpop_error("invalid_dpop_proof");
    bearer_get(&stack, path, &token)
        .await
        .assert_dpop_error("invalid_token");
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&authorization).unwrap(),
    );
    headers.insert(
        HeaderName::from_static("dpop"),
        HeaderValue::from_str(&proof_for(&token)).unwrap(),
    );
    stack
        .raw(Method::GET, &stack.gateway_url(path), headers, Bytes::new())
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_token_for_another_audience_is_not_this_gateways() {
    let stack = Stack::start_with(partner_config).await;
    let ec = PartnerSigner::es256();
    let id = register(
        &stack,
        serde_json::json!({"name": "Other API", "jwks": jwks(&[(&ec, "k")]),
            "scopes": ["system/Observation.rs"], "audience": "https://fhir.other.example"}),
    )
    .await;
    let endpoint = token_endpoint(&stack).await;
    let reply = ask(&stack, &endpoint, (&ec, "k"), &id, "system/Observation.rs").await;
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    let refused = bearer_get(&stack, "/fhir/Observation/echo", &token).await;
    refused.assert_status(StatusCode::UNAUTHORIZED);
    // Refused for what it is (a token of ours for another audience), not as no token at all.
    assert!(
        refused.json()["detail"]
            .as_str()
            .unwrap()
            .contains("audience"),
        "{:?}",
        refused.json()
    );
}

#[tokio::test]
async fn registration_refuses_what_it_cannot_use() {
    let stack = Stack::start_with(partner_config).await;
    let ec = PartnerSigner::es256();
    let mut private = jwks(&[(&ec, "k")]);
    private["keys"][0]["d"] = "AAAA".into();
    for body in [
        // Both key sources, neither, a private key, plain http elsewhere, a patient scope, a
        // bad address block.
        serde_json::json!({"name": "x", "jwks": jwks(&[(&ec, "k")]),
            "jwks_url": "https://keys.example/jwks.json", "scopes": ["system/Observation.rs"]}),
        serde_json::json!({"name": "x", "scopes": ["system/Observation.rs"]}),
        serde_json::json!({"name": "x", "jwks": private, "scopes": ["system/Observation.rs"]}),
        serde_json::json!({"name": "x", "jwks_url": "http://keys.example/jwks.json",
            "scopes": ["system/Observation.rs"]}),
        serde_json::json!({"name": "x", "jwks": jwks(&[(&ec, "k")]),
            "scopes": ["patient/Observation.rs"]}),
        serde_json::json!({"name": "x", "jwks": jwks(&[(&ec, "k")]),
            "scopes": ["system/Observation.rs"], "ip_allow": ["10.0.0.0/33"]}),
    ] {
        stack
            .admin(Method::POST, "/v1/admin/partners", body)
            .await
            .assert_status(StatusCode::BAD_REQUEST);
    }
    assert_eq!(
        stack
            .admin(Method::GET, "/v1/admin/partners", serde_json::Value::Null)
            .await
            .json(),
        serde_json::json!([])
    );
    // A JWKS URL's query (which may carry a token) is never shown or audited.
    register(
        &stack,
        serde_json::json!({"name": "Lab", "jwks_url": "https://keys.example/jwks.json?access=s3cr3t",
            "scopes": ["system/Observation.rs"]}),
    )
    .await;
    let listed = stack
        .admin(Method::GET, "/v1/admin/partners", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(
        listed[0]["keys"]["jwks_url"],
        "https://keys.example/jwks.json?…"
    );
    let audit = stack.node.store().audit_entries(0, 1000).await.unwrap();
    assert!(audit.iter().any(|e| e.kind == "admin.partner.create"));
    assert!(audit.iter().all(|e| !e.detail.contains("s3cr3t")));
}

/// A partner's JWKS served over http on loopback, as its own server would: what it serves can
/// change, and it counts the fetches.
struct JwksServer {
    url: String,
    served: std::sync::Arc<parking_lot::Mutex<Option<serde_json::Value>>>,
    fetches: std::sync::Arc<AtomicU64>,
}

impl JwksServer {
    async fn start(jwks: serde_json::Value) -> JwksServer {
        let served = std::sync::Arc::new(parking_lot::Mutex::new(Some(jwks)));
        let fetches = std::sync::Arc::new(AtomicU64::new(0));
        let (state, count) = (served.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (state, count) = (state.clone(), count.clone());
                async move {
                    count.fetch_add(1, Ordering::SeqCst);
                    match state.lock().clone() {
                        Some(jwks) => (StatusCode::OK, jwks.to_string()),
                        None => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url,
            served,
            fetches,
        }
    }
}

#[tokio::test]
async fn keys_by_url_are_fetched_kept_and_refetched_for_a_new_kid() {
    let stack = Stack::start_with(partner_config).await;
    let (first, second) = (PartnerSigner::es384(), PartnerSigner::es384());
    let keys = JwksServer::start(jwks(&[(&first, "2026-01")])).await;
    let id = register(
        &stack,
        serde_json::json!({"name": "Clinic", "jwks_url": keys.url,
            "scopes": ["system/Observation.rs"]}),
    )
    .await;
    let endpoint = token_endpoint(&stack).await;
    let scope = "system/Observation.rs";
    ask(&stack, &endpoint, (&first, "2026-01"), &id, scope)
        .await
        .assert_status(StatusCode::OK);
    ask(&stack, &endpoint, (&first, "2026-01"), &id, scope)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        keys.fetches.load(Ordering::SeqCst),
        1,
        "kept, not fetched again"
    );
    // The partner rotates: its new key is fetched once the kept set is 30 s old.
    *keys.served.lock() = Some(jwks(&[(&first, "2026-01"), (&second, "2026-07")]));
    let reply = ask(&stack, &endpoint, (&second, "2026-07"), &id, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    stack.clock.advance(31);
    ask(&stack, &endpoint, (&second, "2026-07"), &id, scope)
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(keys.fetches.load(Ordering::SeqCst), 2);
    // Its server fails: the kept keys still serve, until a day past their freshness.
    *keys.served.lock() = None;
    stack.clock.advance(300);
    ask(&stack, &endpoint, (&second, "2026-07"), &id, scope)
        .await
        .assert_status(StatusCode::OK);
    stack.clock.advance(24 * 3600);
    let reply = ask(&stack, &endpoint, (&second, "2026-07"), &id, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    // Back; then it answers with nothing usable: the kept keys stop serving at once, and do
    // not come back when it next cannot be reached.
    *keys.served.lock() = Some(jwks(&[(&second, "2026-07")]));
    stack.clock.advance(31);
    ask(&stack, &endpoint, (&second, "2026-07"), &id, scope)
        .await
        .assert_status(StatusCode::OK);
    *keys.served.lock() = Some(serde_json::json!({"keys": [
        {"kty": "RSA", "kid": "2026-07", "n": "AAAA", "e": "AQAB"}]}));
    stack.clock.advance(300);
    let reply = ask(&stack, &endpoint, (&second, "2026-07"), &id, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    *keys.served.lock() = None;
    stack.clock.advance(31);
    let reply = ask(&stack, &endpoint, (&second, "2026-07"), &id, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    // A URL that failed is not asked again within 30 s, however many requests name it.
    let before = keys.fetches.load(Ordering::SeqCst);
    for _ in 0..5 {
        let reply = ask(&stack, &endpoint, (&second, "2026-07"), &id, scope).await;
        assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    assert_eq!(keys.fetches.load(Ordering::SeqCst), before);
    // A partner whose keys were never fetched is refused while they cannot be.
    let never = register(
        &stack,
        serde_json::json!({"name": "Lab", "jwks_url": keys.url, "scopes": [scope]}),
    )
    .await;
    let reply = ask(&stack, &endpoint, (&first, "2026-01"), &never, scope).await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn a_partner_has_its_own_rate_limit() {
    let stack = Stack::start_with(|config| {
        partner_config(config);
        partner_limit(config, 3);
    })
    .await;
    let ec = PartnerSigner::es256();
    let scope = "system/Observation.rs";
    let id = register(
        &stack,
        serde_json::json!({"name": "Research partner", "jwks": jwks(&[(&ec, "k")]),
            "scopes": [scope]}),
    )
    .await;
    let endpoint = token_endpoint(&stack).await;
    let reply = ask(&stack, &endpoint, (&ec, "k"), &id, scope).await;
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    // Its burst passes; within the same few seconds the rest are held back (429), while an
    // app's installations, under their own limit, are not.
    let mut statuses = Vec::new();
    // Twelve requests: only if they took nine seconds would none be held back.
    for _ in 0..12 {
        statuses.push(
            bearer_get(&stack, "/fhir/Observation/echo", &token)
                .await
                .status(),
        );
    }
    assert_eq!(&statuses[..3], [StatusCode::OK; 3]);
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let client = stack.client();
    client.attest().await.unwrap();
    for _ in 0..4 {
        assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    }
}

#[tokio::test]
async fn the_gateway_holds_a_partner_to_its_addresses_before_it_spends_anything() {
    // Both listeners believe the loopback proxy's X-Forwarded-For.
    let stack = Stack::start_with(|config| {
        partner_config(config);
        config.server.connections.trusted_proxies = vec!["127.0.0.1/32".into()];
        config.gateway.connections.trusted_proxies = vec!["127.0.0.1/32".into()];
        partner_limit(config, 2);
    })
    .await;
    let ec = PartnerSigner::es256();
    let scope = "system/Observation.rs";
    let id = register(
        &stack,
        serde_json::json!({"name": "Clinic", "jwks": jwks(&[(&ec, "k")]), "scopes": [scope],
            "ip_allow": ["198.51.100.0/24"]}),
    )
    .await;
    let endpoint = token_endpoint(&stack).await;
    let form_for = |assertion: &str| {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(client_credentials(assertion, scope))
            .finish()
    };
    let from = |address: &str, content_type: &'static str| {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_str(address).unwrap(),
        );
        headers
    };
    let ask_from = |address: &'static str| {
        let assertion = ec.assertion("k", &claims(&stack, &id, &endpoint));
        let headers = from(address, "application/x-www-form-urlencoded");
        let (stack, endpoint) = (&stack, endpoint.clone());
        async move {
            stack
                .raw(
                    Method::POST,
                    &endpoint,
                    headers,
                    Bytes::from(form_for(&assertion)),
                )
                .await
        }
    };
    let reply = ask_from("203.0.113.9").await;
    assert_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
    let reply = ask_from("198.51.100.7").await;
    reply.assert_status(StatusCode::OK);
    let token = reply.json()["access_token"].as_str().unwrap().to_string();
    let read = |address: &'static str| {
        let mut headers = from(address, "application/json");
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let stack = &stack;
        async move {
            stack
                .raw(
                    Method::GET,
                    &stack.gateway_url("/fhir/Observation/echo"),
                    headers,
                    Bytes::new(),
                )
                .await
        }
    };
    // A stolen token used from elsewhere, many times: refused, and none of it comes out of
    // the partner's own rate (burst 2), nor counts as its use.
    for _ in 0..5 {
        let refused = read("203.0.113.9").await;
        refused.assert_status(StatusCode::UNAUTHORIZED);
        assert!(
            refused.json()["detail"]
                .as_str()
                .unwrap()
                .contains("address")
        );
    }
    read("198.51.100.7").await.assert_status(StatusCode::OK);
    read("198.51.100.7").await.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn malformed_token_requests_get_their_own_errors() {
    let stack = Stack::start_with(partner_config).await;
    let ec = PartnerSigner::es256();
    let scope = "system/Observation.rs";
    let id = register(
        &stack,
        serde_json::json!({"name": "Lab", "jwks": jwks(&[(&ec, "k")]), "scopes": [scope]}),
    )
    .await;
    let endpoint = token_endpoint(&stack).await;
    let assertion = ec.assertion("k", &claims(&stack, &id, &endpoint));
    let without = |name: &str| {
        let mut form = client_credentials(&assertion, scope);
        form.retain(|(field, _)| *field != name);
        form
    };
    for (form, status, error) in [
        (
            without("grant_type"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            without("client_assertion_type"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            without("client_assertion"),
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (without("scope"), StatusCode::BAD_REQUEST, "invalid_scope"),
    ] {
        let reply = token_request(&stack, &endpoint, &form, None).await;
        assert_oauth_error(&reply, status, error);
    }
    // Not a form; two DPoP headers.
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let reply = stack
        .raw(Method::POST, &endpoint, headers, Bytes::from_static(b"{}"))
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_request");
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.append("dpop", HeaderValue::from_static("a.b.c"));
    headers.append("dpop", HeaderValue::from_static("d.e.f"));
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(client_credentials(&assertion, scope))
        .finish();
    let reply = stack
        .raw(Method::POST, &endpoint, headers, Bytes::from(body))
        .await;
    assert_oauth_error(&reply, StatusCode::BAD_REQUEST, "invalid_dpop_proof");
}
