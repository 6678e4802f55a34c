//! TLS: medgate's own listeners (`[server.tls]`, `[gateway.tls]`), and the gateway's hop to an
//! https upstream (system roots, `upstream_ca`, `upstream_pins`), with real handshakes on
//! loopback.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use medgate_node::config::TlsConfig;
use medgate_node::sample_upstream::SampleUpstream;
use medgate_service::tls::{ServerTls, TlsFiles};
use medgate_testkit::pki::{TestCa, spki_of};
use medgate_trust::pins::Pin;

use crate::common::Stack;

/// The sample upstream over TLS, with a certificate for 127.0.0.1 from a CA of its own.
struct TlsUpstream {
    upstream: SampleUpstream,
    /// The CA's root, PEM: what `gateway.upstream_ca` names.
    root: PathBuf,
    leaf_pin: Pin,
    intermediate_pin: Pin,
    _dir: tempfile::TempDir,
}

async fn tls_upstream() -> TlsUpstream {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("upstream");
    let leaf = ca.issue(&["127.0.0.1"]);
    let files = leaf.write(dir.path(), "upstream");
    let tls = ServerTls::load(TlsFiles {
        cert: files.cert,
        key: files.key,
    })
    .unwrap();
    let upstream = SampleUpstream::start_tls("127.0.0.1:0".parse().unwrap(), Arc::new(tls))
        .await
        .unwrap();
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    TlsUpstream {
        upstream,
        root,
        leaf_pin: Pin::of_spki(&leaf.spki_der),
        intermediate_pin: Pin::of_spki(&spki_of(&leaf.intermediate_der)),
        _dir: dir,
    }
}

/// A node forwarding to `upstream`, configured by `customize`; an attested client's GET of
/// the entries, and the node's metrics text.
async fn forward(
    upstream: &TlsUpstream,
    customize: impl FnOnce(&mut medgate_node::config::Config),
) -> (StatusCode, String) {
    let url = upstream.upstream.url();
    let stack = Stack::start_with(|config| {
        config.gateway.upstream = Some(url);
        customize(config);
    })
    .await;
    let client = stack.client();
    client.attest().await.unwrap();
    let status = client.get("/api/v1/entries.json").await.unwrap().status;
    let metrics = stack
        .raw(
            Method::GET,
            &format!("{}/metrics", stack.node.admin_url()),
            http::HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    (
        status,
        String::from_utf8_lossy(&metrics.0.body).into_owned(),
    )
}

fn pin_text(pin: Pin) -> String {
    pin.to_string()
}

#[tokio::test]
async fn an_https_upstream_is_reached_through_its_ca_and_its_pins() {
    let upstream = tls_upstream().await;
    assert!(upstream.upstream.url().starts_with("https://"));

    // The upstream's CA named: forwarded.
    let root = upstream.root.clone();
    let (status, _) = forward(&upstream, |config| {
        config.gateway.upstream_ca = Some(root);
    })
    .await;
    assert_eq!(status, StatusCode::OK);

    // Pinned by its intermediate beside a backup key: forwarded.
    let (root, pins) = (
        upstream.root.clone(),
        vec![
            pin_text(Pin::of_spki(b"backup key")),
            pin_text(upstream.intermediate_pin),
        ],
    );
    let (status, _) = forward(&upstream, |config| {
        config.gateway.upstream_ca = Some(root);
        config.gateway.upstream_pins = pins;
    })
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_upstream_whose_chain_matches_no_pin_is_not_sent_the_request() {
    let upstream = tls_upstream().await;
    let (root, pins) = (
        upstream.root.clone(),
        vec![
            pin_text(Pin::of_spki(b"the key we expected")),
            pin_text(Pin::of_spki(b"its backup")),
        ],
    );
    let (status, metrics) = forward(&upstream, |config| {
        config.gateway.upstream_ca = Some(root);
        config.gateway.upstream_pins = pins;
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        metrics.contains(r#"medgate_gateway_requests_total{outcome="upstream_pin_mismatch"} 1"#),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"outcome="forwarded""#), "{metrics}");
    // The leaf's pin is what a correct configuration would have named.
    assert_ne!(upstream.leaf_pin, Pin::of_spki(b"the key we expected"));
}

#[tokio::test]
async fn an_upstream_ca_the_system_does_not_trust_is_refused_without_upstream_ca() {
    let upstream = tls_upstream().await;
    // A pin of the upstream's own leaf does not make an untrusted chain acceptable.
    let pins = vec![
        pin_text(upstream.leaf_pin),
        pin_text(Pin::of_spki(b"backup")),
    ];
    let (status, metrics) = forward(&upstream, |config| {
        config.gateway.upstream_pins = pins;
    })
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        metrics.contains(r#"medgate_gateway_requests_total{outcome="upstream_error"} 1"#),
        "{metrics}"
    );
}

/// A change to a test config.
type Customize = Box<dyn FnOnce(&mut medgate_node::config::Config)>;

#[tokio::test]
async fn upstream_trust_settings_that_cannot_apply_stop_the_node_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let start = |customize: Customize| {
        let mut config = crate::common::test_config(dir.path(), "http://127.0.0.1:9");
        customize(&mut config);
        async move {
            medgate_node::Node::start(config, medgate_node::NodeOptions::default())
                .await
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        }
    };
    let secret_looking = "c2VjcmV0LWxvb2tpbmctdGV4dC10aGF0LWlzLW5vdC1hLXBpbg==";
    let cases: Vec<(Customize, &str)> = vec![
        (
            Box::new(|c| c.gateway.upstream_pins = vec![pin_text(Pin::of_spki(b"k"))]),
            "need https",
        ),
        (
            Box::new(|c| {
                c.gateway.upstream = Some("https://127.0.0.1:9".into());
                c.gateway.upstream_pins = vec![secret_looking.into()];
            }),
            "a pin is the standard base64 of 32 bytes",
        ),
        (
            Box::new(|c| {
                c.gateway.upstream = Some("https://127.0.0.1:9".into());
                c.gateway.upstream_ca = Some("/nonexistent/ca.pem".into());
            }),
            "cannot read /nonexistent/ca.pem",
        ),
        (
            Box::new(|c| c.gateway.upstream = Some("ftp://127.0.0.1:9".into())),
            "must be an http:// or https:// URL",
        ),
    ];
    for (customize, expected) in cases {
        let error = start(customize).await;
        assert!(error.contains(expected), "{error}");
        assert!(!error.contains(secret_looking), "{error}");
    }
}

/// A rustls HTTP client trusting only `root` (PEM).
fn https_client(
    root: &std::path::Path,
) -> Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Empty<Bytes>,
> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_file_iter(root).unwrap() {
        let cert: rustls_pki_types::CertificateDer<'static> = cert.unwrap();
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

#[tokio::test]
async fn both_planes_serve_https_when_configured_and_urls_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("listeners");
    let files = ca.issue(&["127.0.0.1"]).write(dir.path(), "node");
    let root = dir.path().join("root.pem");
    ca.write_root(&root);
    let tls = TlsConfig {
        cert: files.cert,
        key: files.key,
    };
    let stack = Stack::start_with(|config| {
        config.server.tls = Some(tls.clone());
        config.gateway.tls = Some(tls);
    })
    .await;
    assert!(stack.node.server_url().starts_with("https://127.0.0.1:"));
    assert!(stack.node.public_url().starts_with("https://127.0.0.1:"));
    assert_eq!(stack.node.issuer(), stack.node.server_url());

    let client = https_client(&root);
    let discovery = client
        .get(
            format!("{}/.well-known/jwks.json", stack.node.server_url())
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(discovery.status(), StatusCode::OK);
    let body = discovery.into_body().collect().await.unwrap().to_bytes();
    assert!(serde_json::from_slice::<serde_json::Value>(&body).unwrap()["keys"].is_array());

    // The gateway answers over TLS: an unauthenticated request gets its 401.
    let gateway = client
        .get(
            format!("{}/api/v1/entries.json", stack.node.public_url())
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(gateway.status(), StatusCode::UNAUTHORIZED);

    // A client that does not trust the node's CA does not get through the handshake.
    let stranger = TestCa::new("stranger");
    let stranger_root = dir.path().join("stranger.pem");
    stranger.write_root(&stranger_root);
    let refused = https_client(&stranger_root)
        .get(stack.node.server_url().parse().unwrap())
        .await;
    assert!(refused.is_err());
}
