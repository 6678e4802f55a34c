//! The node's TUF repository at `/v1/trust/`: initialised with an offline root key, pins added
//! and published through the admin API, refreshed by python-tuf's ngclient (the reference
//! client) and by medgate's own `TrustedSet`, then a root rotation both clients walk.

use std::path::{Path, PathBuf};

use http::{Method, StatusCode};
use medgate_server::trust::{self, OfflineRoot, RootChange};
use medgate_service::Clock;
use medgate_store::seal::Sealer;
use medgate_trust::tuf::TufError;
use medgate_trust::tuf::client::TrustedSet;

use crate::common::{Reply, Stack};

const PIN_A: &str = "XNJS+wzokyQ2+vjM0QQJgbie5K1rn+niorfnGqyyfNM=";
const PIN_B: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn tuf_python() -> Option<PathBuf> {
    medgate_testkit::tool(
        "MEDGATE_TUF_PYTHON",
        "scripts/venv tuf interop/tuf/requirements.txt",
    )
}

/// python-tuf's refresh of the node's repository from `trusted_root` (a child process awaited
/// without blocking the runtime that serves the node).
async fn python_refresh(python: &Path, base: &str, trusted_root: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/tuf/tuf_interop.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .args(["refresh-url", base])
        .arg(trusted_root)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn get(stack: &Stack, file: &str) -> Reply {
    stack.server_get(&format!("/v1/trust/{file}")).await
}

/// medgate's client, refreshing from the node's files as an app would.
async fn medgate_refresh(
    stack: &Stack,
    trusted_root: &[u8],
) -> Result<(TrustedSet, Vec<u8>), TufError> {
    let now = stack.now();
    let mut set = TrustedSet::new(trusted_root)?;
    loop {
        let next = format!("{}.root.json", set.root().common.version + 1);
        let reply = get(stack, &next).await;
        if reply.status() != StatusCode::OK {
            break;
        }
        set.update_root(&reply.0.body)?;
    }
    set.check_root_not_expired(now)?;
    set.update_timestamp(&get(stack, "timestamp.json").await.0.body, now)?;
    set.update_snapshot(&get(stack, "snapshot.json").await.0.body, now)?;
    set.update_targets(&get(stack, "targets.json").await.0.body, now)?;
    let pins = get(stack, "targets/pins.json").await.0.body.to_vec();
    set.verify_target("pins.json", &pins)?;
    Ok((set, pins))
}

#[tokio::test]
async fn pins_published_by_the_node_reach_python_tuf_and_medgates_client_through_a_root_rotation() {
    let stack = Stack::start().await;
    let offline = tempfile::tempdir().unwrap();
    let offline_dir = offline.path().join("root-keys");
    let store = stack.node.store();
    let sealer = Sealer::plain();

    // Nothing before init; publishing needs a repository (a conflict with the node's state,
    // not a malformed request).
    get(&stack, "1.root.json")
        .await
        .assert_status(StatusCode::NOT_FOUND);
    stack
        .publish_pins()
        .await
        .assert_status(StatusCode::CONFLICT);

    stack.init_trust(&offline_dir).await;
    use std::os::unix::fs::PermissionsExt;
    let key_file = std::fs::read_dir(&offline_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(
        key_file.metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A host with one pin cannot be published: its backup is missing.
    stack
        .add_pin("**.example.org", PIN_A)
        .await
        .assert_status(StatusCode::CREATED);
    // The request is well formed: the pin set is not ready to publish.
    let refused = stack.publish_pins().await;
    refused.assert_status(StatusCode::CONFLICT);
    assert!(String::from_utf8_lossy(&refused.0.body).contains("backup pin"));
    stack
        .add_pin("**.example.org", &format!("sha256/{PIN_B}"))
        .await
        .assert_status(StatusCode::CREATED);
    stack
        .add_pin("bad host/", PIN_A)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    stack
        .add_pin("api.example.org", "not-a-pin")
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    stack.publish_pins().await.assert_status(StatusCode::OK);

    let root1 = get(&stack, "1.root.json").await.0.body.to_vec();
    let (set, pins) = medgate_refresh(&stack, &root1).await.unwrap();
    let document: serde_json::Value = serde_json::from_slice(&pins).unwrap();
    assert_eq!(
        document,
        serde_json::json!({"pins": [{"host": "**.example.org", "spki_sha256": [PIN_B, PIN_A]}]})
    );
    assert_eq!(set.root().common.version, 1);

    let base = format!("{}/v1/trust", stack.node.server_url());
    let root1_file = offline.path().join("1.root.json");
    std::fs::write(&root1_file, &root1).unwrap();
    let python = tuf_python();
    if let Some(python) = &python {
        let result = python_refresh(python, &base, &root1_file).await;
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["pins"].as_str().unwrap().as_bytes(), &pins[..]);
        assert!(result.get("roots_pem").is_none(), "{result}");
    }

    // Managed roots: an ordinary target to python-tuf, its hosts in the target's custom.
    let ca = medgate_testkit::pki::TestCa::new("managed").root_pem();
    stack
        .admin(
            Method::PUT,
            "/v1/admin/trust/roots",
            serde_json::json!({"pem": ca, "hosts": ["**.example.org"]}),
        )
        .await
        .assert_status(StatusCode::OK);
    stack.publish_pins().await.assert_status(StatusCode::OK);
    if let Some(python) = &python {
        let result = python_refresh(python, &base, &root1_file).await;
        assert_eq!(result["roots_pem"], ca.as_str(), "{result}");
        assert_eq!(result["roots_hosts"], serde_json::json!(["**.example.org"]));
    }

    // A new root key and a new timestamp key: root 2, signed by the old and the new root key,
    // and the release signed again with the new timestamp key.
    trust::sign_root(
        &*store,
        &sealer,
        &OfflineRoot::new(&offline_dir),
        RootChange {
            new_root_key: true,
            rotate_timestamp: true,
            ..RootChange::default()
        },
        stack.clock.now(),
        &stack.operator_entry("trust.root"),
    )
    .await
    .unwrap();
    stack.node.server().refresh_trust().await.unwrap();
    let (set, _) = medgate_refresh(&stack, &root1).await.unwrap();
    assert_eq!(set.root().common.version, 2);
    if let Some(python) = &python {
        let result = python_refresh(python, &base, &root1_file).await;
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["root_version"], 2);
        // The release signed again carries the same roots.
        assert_eq!(result["roots_pem"], ca.as_str(), "{result}");
    }

    // Without the offline key nothing can sign root 3.
    let empty = offline.path().join("elsewhere");
    std::fs::create_dir(&empty).unwrap();
    assert!(matches!(
        trust::sign_root(
            &*store,
            &sealer,
            &OfflineRoot::new(&empty),
            RootChange::default(),
            stack.clock.now(),
            &stack.operator_entry("trust.root"),
        )
        .await,
        Err(trust::TrustError::NoRootKey)
    ));

    // Every change is in the audit log.
    let audit = stack
        .admin(Method::GET, "/v1/admin/audit", serde_json::Value::Null)
        .await;
    let audit = String::from_utf8_lossy(&audit.0.body).into_owned();
    for kind in [
        "trust.init",
        "admin.pin.add",
        "admin.trust.publish",
        "admin.trust.roots.set",
        "trust.root",
    ] {
        assert!(audit.contains(kind), "{kind}: {audit}");
    }
}

#[tokio::test]
async fn the_timestamp_is_renewed_before_it_expires() {
    let stack = Stack::start().await;
    let offline = tempfile::tempdir().unwrap();
    stack.init_trust(offline.path()).await;
    stack.add_pin("api.example.org", PIN_A).await;
    stack.add_pin("api.example.org", PIN_B).await;
    stack.publish_pins().await.assert_status(StatusCode::OK);
    let server = stack.node.server();
    assert!(!server.renew_trust().await.unwrap(), "fresh: nothing to do");
    // Two thirds of a day later the timestamp is re-signed; the release is not.
    stack.clock.advance(16 * 3600);
    assert!(server.renew_trust().await.unwrap());
    let timestamp: serde_json::Value =
        serde_json::from_slice(&get(&stack, "timestamp.json").await.0.body).unwrap();
    assert_eq!(timestamp["signed"]["version"], 2);
    let targets: serde_json::Value =
        serde_json::from_slice(&get(&stack, "targets.json").await.0.body).unwrap();
    assert_eq!(targets["signed"]["version"], 1);
    // A host pinned since, with no backup yet: not publishable, and not the renewal's business.
    stack.add_pin("new.example.org", PIN_A).await;
    // Three weeks on, the release itself is signed again, with the pins it published.
    stack.clock.advance(21 * 86_400);
    assert!(server.renew_trust().await.unwrap());
    let targets: serde_json::Value =
        serde_json::from_slice(&get(&stack, "targets.json").await.0.body).unwrap();
    assert_eq!(targets["signed"]["version"], 2);
    let root1 = get(&stack, "1.root.json").await.0.body.to_vec();
    let (_, pins) = medgate_refresh(&stack, &root1).await.unwrap();
    assert!(!String::from_utf8_lossy(&pins).contains("new.example.org"));
}

#[tokio::test]
async fn a_client_refreshes_its_pins_at_start_and_every_interval() {
    use std::sync::Arc;
    let stack = Stack::start().await;
    let offline = tempfile::tempdir().unwrap();
    stack.init_trust(offline.path()).await;
    stack.add_pin("api.example.org", PIN_A).await;
    stack.add_pin("api.example.org", PIN_B).await;
    stack.publish_pins().await.assert_status(StatusCode::OK);
    let root1 = get(&stack, "1.root.json").await.0.body.to_vec();
    let ota = Arc::new(medgate_sdk::ota::OtaPins::new(&root1, None).unwrap());
    let roots = Arc::new(medgate_sdk::client::web_roots(&[]).unwrap());
    let client = Arc::new(
        stack
            .client()
            .with_pinning(Arc::clone(&ota), roots)
            .unwrap(),
    );
    let (handle, mut events) = client.spawn_pin_refresh(std::time::Duration::from_millis(100));
    // At start.
    let first = events.recv().await.unwrap().unwrap();
    assert_eq!((first.targets_version, first.hosts), (Some(1), 1));
    // A new release reaches the client within an interval or two.
    stack.add_pin("**.example.net", PIN_A).await;
    stack.add_pin("**.example.net", PIN_B).await;
    stack.publish_pins().await.assert_status(StatusCode::OK);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status = events.recv().await.unwrap().unwrap();
        if status.targets_version == Some(2) {
            assert_eq!(status.hosts, 2);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status:?}");
    }
    assert_eq!(ota.pins_for("x.example.net").len(), 2);
    handle.abort();
}
