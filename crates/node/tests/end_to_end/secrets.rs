//! Operator secrets: set, listed (never shown), rotated and deleted through the admin API, and
//! injected by the gateway into what a route forwards, in place of anything the app sent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_gateway::inject::{Encoding, InjectConfig};
use medgate_gateway::routes::RouteConfig;
use medgate_sdk::client::MedgateClient;

use crate::common::{APP, Reply, Stack};

const SECRET: &str = "nightscout-api-secret-of-the-clinic";
const ROTATED: &str = "a-new-api-secret-after-rotation";

fn sha1_hex(text: &str) -> String {
    use sha1::{Digest, Sha1};
    medgate_proto::hex::encode(&Sha1::digest(text.as_bytes()))
}

/// A node whose `/echo` route injects the app's `nightscout` secret twice: as Nightscout's
/// `api-secret` header (SHA-1 hex) and as a `token` query parameter (as stored).
async fn injecting_stack() -> Stack {
    Stack::start_with(|config| {
        let mut route = RouteConfig::new("/echo", &["GET"], &["entries:read"]);
        route.inject = vec![
            InjectConfig {
                header: Some("api-secret".into()),
                query: None,
                secret: "nightscout".into(),
                encoding: Encoding::Sha1Hex,
            },
            InjectConfig {
                header: None,
                query: Some("token".into()),
                secret: "nightscout".into(),
                encoding: Encoding::Plain,
            },
        ];
        config.gateway.routes.insert(0, route);
    })
    .await
}

/// GET /echo?token=forged with a forged `api-secret` header: what the app could try.
async fn echo(stack: &Stack, client: &MedgateClient) -> Reply {
    let mut headers = client
        .request_headers("GET", "/echo")
        .await
        .unwrap()
        .to_header_map();
    headers.insert(
        HeaderName::from_static("api-secret"),
        HeaderValue::from_static("forged-by-the-app"),
    );
    stack
        .raw(
            Method::GET,
            &stack.gateway_url("/echo?token=forged&count=3"),
            headers,
            Bytes::new(),
        )
        .await
}

async fn set(stack: &Stack, name: &str, value: &str) -> Reply {
    stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/secrets"),
            serde_json::json!({"name": name, "value": STANDARD.encode(value)}),
        )
        .await
}

/// Waits until the upstream sees `value` injected (the gateway refreshes in the background)
/// and returns what it saw.
async fn upstream_sees(stack: &Stack, client: &MedgateClient, value: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = echo(stack, client).await;
        if reply.status() == StatusCode::OK {
            let seen = reply.json();
            if seen["headers"]["api-secret"] == sha1_hex(value) {
                return seen;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream never saw the secret"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_gateway_injects_the_apps_secret_and_the_app_never_holds_it() {
    let stack = injecting_stack().await;
    let client = stack.client();
    client.attest().await.unwrap();

    // No secret yet: the route refuses rather than forward without the credential.
    let reply = echo(&stack, &client).await;
    reply.assert_problem(
        StatusCode::SERVICE_UNAVAILABLE,
        medgate_proto::wire::problem_type::UPSTREAM_UNAVAILABLE,
    );

    set(&stack, "nightscout", SECRET)
        .await
        .assert_status(StatusCode::CREATED);
    let seen = upstream_sees(&stack, &client, SECRET).await;
    // The app's copies were removed; the upstream got the secret only in its two places.
    assert_eq!(seen["query"], format!("count=3&token={SECRET}"));
    let text = seen.to_string();
    assert!(!text.contains("forged"), "{text}");

    // Rotated: the next requests carry the new value.
    stack
        .admin(
            Method::PUT,
            &format!("/v1/admin/apps/{APP}/secrets/nightscout"),
            serde_json::json!({"value": STANDARD.encode(ROTATED)}),
        )
        .await
        .assert_status(StatusCode::OK);
    let seen = upstream_sees(&stack, &client, ROTATED).await;
    assert_eq!(seen["query"], format!("count=3&token={ROTATED}"));

    // Deleted: refused again.
    stack
        .admin(
            Method::DELETE,
            &format!("/v1/admin/apps/{APP}/secrets/nightscout"),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    stack
        .eventually(10, || async {
            echo(&stack, &client).await.status() == StatusCode::SERVICE_UNAVAILABLE
        })
        .await;
}

#[tokio::test]
async fn secrets_are_listed_and_audited_by_name_only() {
    let stack = injecting_stack().await;
    set(&stack, "nightscout", SECRET)
        .await
        .assert_status(StatusCode::CREATED);
    // The same name again is a conflict; a bad name, an unknown app and bad base64 are refused.
    set(&stack, "nightscout", SECRET)
        .await
        .assert_status(StatusCode::CONFLICT);
    set(&stack, "Bad Name", SECRET)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    let not_base64 = stack
        .admin(
            Method::POST,
            &format!("/v1/admin/apps/{APP}/secrets"),
            serde_json::json!({"name": "x", "value": "%%% not base64 %%%"}),
        )
        .await;
    not_base64.assert_status(StatusCode::BAD_REQUEST);
    assert!(!String::from_utf8_lossy(&not_base64.0.body).contains("%%%"));
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps/org.example.unknown/secrets",
            serde_json::json!({"name": "x", "value": STANDARD.encode("v")}),
        )
        .await
        .assert_status(StatusCode::NOT_FOUND);

    let listed = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/apps/{APP}/secrets"),
            serde_json::Value::Null,
        )
        .await;
    listed.assert_status(StatusCode::OK);
    let listed = listed.json();
    assert_eq!(listed[0]["name"], "nightscout");
    assert_eq!(listed[0]["version"], 1);
    assert_eq!(
        listed[0]["injected_by_routes"],
        serde_json::json!(["/echo"])
    );
    // The app's policy does not grant `secret:nightscout`: no installation fetches it.
    assert_eq!(listed[0]["sealed_to_installations"], false);

    let audit = stack
        .admin(Method::GET, "/v1/admin/audit", serde_json::Value::Null)
        .await;
    let audit = String::from_utf8_lossy(&audit.0.body).into_owned();
    assert!(audit.contains("admin.secret.set"), "{audit}");
    for text in [listed.to_string(), audit] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains(&STANDARD.encode(SECRET)), "{text}");
        assert!(!text.contains(&sha1_hex(SECRET)), "{text}");
    }
}
