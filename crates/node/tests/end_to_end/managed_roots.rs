//! Managed trust roots over the air (`roots.pem`): once the deployment publishes them for its
//! hosts, the SDK trusts only them there, so a server with a certificate from another CA the
//! phone trusts (one a user was talked into installing) is refused; cleared, the phone's roots
//! apply again. Real TLS on loopback, the node's own TUF repository.

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, StatusCode};
use medgate_node::config::TlsConfig;
use medgate_node::sample_upstream::SampleUpstream;
use medgate_sdk::client::{ClientError, MedgateClient};
use medgate_sdk::ota::OtaPins;
use medgate_service::tls::{ServerTls, TlsFiles};
use medgate_testkit::pki::TestCa;

use crate::common::Stack;

/// A server for 127.0.0.1 whose certificate `ca` issued.
async fn server_of(ca: &TestCa, dir: &std::path::Path) -> SampleUpstream {
    let files = ca.issue(&["127.0.0.1"]).write(dir, "impostor");
    let tls = ServerTls::load(TlsFiles {
        cert: files.cert,
        key: files.key,
    })
    .unwrap();
    SampleUpstream::start_tls("127.0.0.1:0".parse().unwrap(), Arc::new(tls))
        .await
        .unwrap()
}

async fn get(client: &MedgateClient, url: &str) -> Result<StatusCode, ClientError> {
    client
        .send_raw(Method::GET, url, HeaderMap::new(), Bytes::new())
        .await
        .map(|response| response.status)
}

#[tokio::test]
async fn published_roots_replace_the_phones_for_the_deployments_hosts() {
    let dir = tempfile::tempdir().unwrap();
    // The deployment's CA, and another CA the phone also trusts.
    let own = TestCa::new("deployment");
    let installed = TestCa::new("installed by the user");
    let files = own.issue(&["127.0.0.1"]).write(dir.path(), "node");
    let tls = TlsConfig {
        cert: files.cert,
        key: files.key,
    };
    let stack = Stack::start_with(|config| {
        config.server.tls = Some(tls.clone());
        config.gateway.tls = Some(tls);
    })
    .await;
    let offline = tempfile::tempdir().unwrap();
    stack.init_trust(offline.path()).await;
    stack.publish_pins().await.assert_status(StatusCode::OK);
    let impostor = server_of(&installed, dir.path()).await;
    let impostor_url = format!("{}/api/v1/entries.json", impostor.url());

    // The root the app ships.
    let root1 = stack.node.store().trust_roots().await.unwrap()[0]
        .body
        .clone();
    let ota = Arc::new(OtaPins::new(&root1, None).unwrap());
    let phone_roots =
        Arc::new(medgate_sdk::client::web_roots(&[own.root_der(), installed.root_der()]).unwrap());
    let client = stack
        .client()
        .with_pinning(Arc::clone(&ota), Arc::clone(&phone_roots))
        .unwrap();
    client.refresh_pins().await.unwrap();
    // No managed roots yet: the phone's roots, so the impostor gets the request (the control).
    assert_eq!(get(&client, &impostor_url).await.unwrap(), StatusCode::OK);

    // The operator manages the roots of the deployment's host, and publishes.
    let set = stack
        .admin(
            Method::PUT,
            "/v1/admin/trust/roots",
            serde_json::json!({"pem": own.root_pem(), "hosts": ["127.0.0.1"]}),
        )
        .await;
    set.assert_status(StatusCode::OK);
    assert_eq!(set.json()["certificates"], 1);
    stack.publish_pins().await.assert_status(StatusCode::OK);
    let roots_url = format!("{}/v1/trust/targets/roots.pem", stack.node.server_url());
    let served = client
        .send_raw(Method::GET, &roots_url, HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.headers["content-type"], "application/x-pem-file");
    let status = client.refresh_pins().await.unwrap();
    assert_eq!(status.managed_root_hosts, 1);

    // The impostor's CA no longer counts for 127.0.0.1; the deployment's server still does.
    let refused = get(&client, &impostor_url).await.unwrap_err();
    assert!(
        refused.to_string().to_lowercase().contains("issuer"),
        "{refused}"
    );
    let jwks = format!("{}/.well-known/jwks.json", stack.node.server_url());
    assert_eq!(get(&client, &jwks).await.unwrap(), StatusCode::OK);
    let admin_status = stack
        .admin(Method::GET, "/v1/admin/trust", serde_json::Value::Null)
        .await
        .json();
    assert_eq!(
        admin_status["managed_roots"]["hosts"],
        serde_json::json!(["127.0.0.1"])
    );

    // Roots that do not cover the deployment's own chain (a mistake, a CA change): the
    // client's requests to it fail, but its pin refresh does not (the repository is read
    // with the phone's roots; TUF decides), so the release that fixes it still arrives.
    let wrong = TestCa::new("wrong");
    stack
        .admin(
            Method::PUT,
            "/v1/admin/trust/roots",
            serde_json::json!({"pem": wrong.root_pem(), "hosts": ["127.0.0.1"]}),
        )
        .await
        .assert_status(StatusCode::OK);
    stack.publish_pins().await.assert_status(StatusCode::OK);
    client.refresh_pins().await.unwrap();
    assert!(get(&client, &jwks).await.is_err());
    stack
        .admin(
            Method::PUT,
            "/v1/admin/trust/roots",
            serde_json::json!({"pem": own.root_pem(), "hosts": ["127.0.0.1"]}),
        )
        .await
        .assert_status(StatusCode::OK);
    stack.publish_pins().await.assert_status(StatusCode::OK);
    client.refresh_pins().await.unwrap();
    assert_eq!(get(&client, &jwks).await.unwrap(), StatusCode::OK);

    // Refused roots never reach a publication.
    stack
        .admin(
            Method::PUT,
            "/v1/admin/trust/roots",
            serde_json::json!({"pem": "not a certificate", "hosts": ["127.0.0.1"]}),
        )
        .await
        .assert_status(StatusCode::BAD_REQUEST);

    // Cleared and published: the phone's roots again, without an app update.
    stack
        .admin(
            Method::DELETE,
            "/v1/admin/trust/roots",
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    stack.publish_pins().await.assert_status(StatusCode::OK);
    assert_eq!(client.refresh_pins().await.unwrap().managed_root_hosts, 0);
    assert_eq!(get(&client, &impostor_url).await.unwrap(), StatusCode::OK);
    assert_eq!(
        get(&client, &roots_url).await.unwrap(),
        StatusCode::NOT_FOUND
    );
}
