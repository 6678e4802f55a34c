//! A real man in the middle: mitmproxy (PyPI) between the SDK client and a node serving TLS,
//! with mitmproxy's CA trusted by the client, as a user-installed or corporate CA would be.
//!
//! The client always dials one loopback port; a forwarder in the test sends its connections
//! either straight to the control plane or through mitmproxy (reverse mode). Same host, same
//! name, so the pins in force are the same either way.
//! 1. WebPKI alone (no pins yet): the attestation goes through mitmproxy. The negative
//!    control: the interception works.
//! 2. Pinned by the over-the-air pin set: the client refuses in the handshake with
//!    `PinMismatch` naming the host and mitmproxy's chain; the control plane sees nothing.
//! 3. Back on the direct path, the next attestation carries a `mitm` signal and is degraded.
//! 4. The operator pins mitmproxy's CA and publishes: after one refresh the pinned client goes
//!    through it. The pins rotated without an app update.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use http::Method;
use medgate_node::config::TlsConfig;
use medgate_proto::wire::{Decision, Reason};
use medgate_sdk::client::{ClientConfig, ClientError, MedgateClient, web_roots};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;
use medgate_sdk::ota::OtaPins;
use medgate_service::Clock;
use medgate_testkit::pki::{TestCa, spki_of};
use medgate_trust::pins::Pin;
use tokio::io::AsyncBufReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{APP, MEASUREMENT, Stack, VERSION};

fn mitmdump() -> Option<PathBuf> {
    medgate_testkit::tool(
        "MEDGATE_MITMDUMP",
        "scripts/venv mitm interop/mitm/requirements.txt",
    )
}

/// mitmproxy in reverse mode in front of `upstream`, with its CA in `confdir`; killed (by its
/// pid, through the child handle) when dropped.
struct Mitm {
    _child: tokio::process::Child,
    port: u16,
    ca_der: Vec<u8>,
}

async fn start_mitm(mitmdump: &PathBuf, upstream: &str, confdir: &std::path::Path) -> Mitm {
    let mut child = tokio::process::Command::new(mitmdump)
        .args(["--listen-host", "127.0.0.1", "-p", "0", "--ssl-insecure"])
        .arg("--mode")
        .arg(format!("reverse:{upstream}"))
        .arg("--set")
        .arg(format!("confdir={}", confdir.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // "reverse proxy to https://… listening at 127.0.0.1:PORT."
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(address) = line.split("listening at ").nth(1) {
                return address
                    .trim_end_matches('.')
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse::<u16>()
                    .unwrap();
            }
        }
        panic!("mitmdump ended before listening");
    })
    .await
    .expect("mitmdump listening within a minute");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let ca = std::fs::read(confdir.join("mitmproxy-ca-cert.pem")).unwrap();
    let ca_der = rustls_pki_types::pem::PemObject::from_pem_slice(&ca)
        .map(|der: rustls_pki_types::CertificateDer<'static>| der.to_vec())
        .unwrap();
    Mitm {
        _child: child,
        port,
        ca_der,
    }
}

/// A loopback port whose connections go to `target`'s current port.
async fn forwarder(target: Arc<AtomicU16>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let port = target.load(Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

/// How many challenges the control plane has issued (its metrics).
async fn challenges(stack: &Stack) -> usize {
    let metrics = stack
        .raw(
            Method::GET,
            &format!("{}/metrics", stack.node.admin_url()),
            http::HeaderMap::new(),
            bytes::Bytes::new(),
        )
        .await;
    let text = String::from_utf8_lossy(&metrics.0.body).into_owned();
    text.lines()
        .filter(|line| line.starts_with("medgate_challenges_issued_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_client_refuses_mitmproxy_reports_it_and_accepts_it_once_pinned_over_the_air() {
    let Some(mitmdump) = mitmdump() else { return };
    let dir = tempfile::tempdir().unwrap();
    let node_ca = TestCa::new("node");
    let leaf = node_ca.issue(&["127.0.0.1"]);
    let files = leaf.write(dir.path(), "node");
    let tls = TlsConfig {
        cert: files.cert,
        key: files.key,
    };
    let stack = Stack::start_with(|config| config.server.tls = Some(tls)).await;
    let server_port = stack.node.server_addr().port();
    let mitm = start_mitm(
        &mitmdump,
        &format!("https://127.0.0.1:{server_port}"),
        &dir.path().join("mitmproxy"),
    )
    .await;

    // The repository: the node's intermediate pinned, with a backup.
    stack.init_trust(&dir.path().join("offline-root")).await;
    let node_pin = Pin::of_spki(&spki_of(&leaf.intermediate_der)).to_string();
    let mitm_pin = Pin::of_spki(&spki_of(&mitm.ca_der)).to_string();
    stack
        .add_pin("127.0.0.1", &node_pin)
        .await
        .assert_status(http::StatusCode::CREATED);
    stack
        .add_pin("127.0.0.1", &Pin::of_spki(b"the backup key").to_string())
        .await
        .assert_status(http::StatusCode::CREATED);
    stack
        .publish_pins()
        .await
        .assert_status(http::StatusCode::OK);
    // The root the app ships (the node serves it as 1.root.json).
    let root = stack
        .node
        .store()
        .trust_metadata("root", Some(1))
        .await
        .unwrap()
        .unwrap()
        .body;

    // The client dials the forwarder; it trusts the node's CA and mitmproxy's.
    let target = Arc::new(AtomicU16::new(server_port));
    let port = forwarder(Arc::clone(&target)).await;
    let roots = Arc::new(web_roots(&[node_ca.root_der(), mitm.ca_der.clone()]).unwrap());
    let ota = Arc::new(OtaPins::new(&root, Some(dir.path().join("pins"))).unwrap());
    let clock = Arc::clone(&stack.clock);
    let client = MedgateClient::new(
        ClientConfig {
            server_url: format!("https://127.0.0.1:{port}"),
            gateway_url: stack.node.public_url().to_string(),
            app: AppIdentity {
                app_id: APP.into(),
                app_version: VERSION.into(),
                binary_sha256: MEASUREMENT.into(),
            },
            refresh_margin_secs: 30,
        },
        InstallationKey::generate().unwrap(),
    )
    .with_clock(Arc::new(move || clock.now().secs()))
    .with_pinning(Arc::clone(&ota), Arc::clone(&roots))
    .unwrap();

    // 1. Nothing pinned yet: WebPKI alone lets mitmproxy through.
    target.store(mitm.port, Ordering::SeqCst);
    let through = client.attest().await.unwrap();
    assert_eq!(through.decision, Decision::Allow);

    // 2. Pins refreshed over the direct channel; through mitmproxy the handshake fails.
    target.store(server_port, Ordering::SeqCst);
    let status = client.refresh_pins().await.unwrap();
    assert_eq!(status.hosts, 1);
    target.store(mitm.port, Ordering::SeqCst);
    let before = challenges(&stack).await;
    client.forget_token().await;
    match client.attest().await {
        Err(ClientError::PinMismatch { host, chain }) => {
            assert_eq!(host, "127.0.0.1");
            assert!(chain.contains(&mitm_pin), "{chain:?} lacks mitmproxy's CA");
            assert!(!chain.contains(&node_pin));
        }
        other => panic!("expected a pin mismatch, got {other:?}"),
    }
    assert_eq!(challenges(&stack).await, before, "nothing reached the node");

    // 3. Direct again: the attestation reports the interception and is degraded.
    target.store(server_port, Ordering::SeqCst);
    let reported = client.attest().await.unwrap();
    assert_eq!(reported.decision, Decision::AllowLimited);
    assert!(
        reported.reasons.contains(&Reason::MitmDetected),
        "{reported:?}"
    );
    // Reported once: the next attestation is clean.
    assert_eq!(client.attest().await.unwrap().decision, Decision::Allow);

    // 4. mitmproxy's CA pinned over the air: after a refresh the client goes through it.
    stack
        .add_pin("127.0.0.1", &mitm_pin)
        .await
        .assert_status(http::StatusCode::CREATED);
    stack
        .publish_pins()
        .await
        .assert_status(http::StatusCode::OK);
    client.refresh_pins().await.unwrap();
    target.store(mitm.port, Ordering::SeqCst);
    assert_eq!(client.attest().await.unwrap().decision, Decision::Allow);
}
