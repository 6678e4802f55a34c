//! Alerts to a webhook, judged by a receiver built on the Standard Webhooks reference library
//! (PyPI `standardwebhooks`, interop/alerts): a threat spike and new kinds of threat after a
//! burst of hooked clients, a revoked release still in use, an audit chain edited behind the
//! node's back. Every delivery must verify; one signed with another secret must not.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use http::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::common::Stack;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_verifies_every_alert_and_refuses_a_forged_one() {
    let Some(python) = medgate_testkit::tool(
        "MEDGATE_ALERTS_PYTHON",
        "scripts/venv alerts interop/alerts/requirements.txt",
    ) else {
        return;
    };
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([0x5a; 32])
    );
    let scratch = tempfile::tempdir().unwrap();
    let secret_file = scratch.path().join("alerts.secret");
    std::fs::write(&secret_file, &secret).unwrap();

    // The receiver: its port on the first line, then one line per delivery.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/alerts/receiver.py");
    let mut receiver = Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python runs");
    let mut stdin = receiver.stdin.take().unwrap();
    stdin
        .write_all(format!("{secret}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let mut lines = BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let port: u16 = first.strip_prefix("listening ").unwrap().parse().unwrap();
    let url = format!("http://127.0.0.1:{port}/medgate");

    let stack = Stack::start_with(|config| {
        config.alerts.url = Some(url.clone());
        config.alerts.secret_file = Some(secret_file.clone());
        config.alerts.interval = Duration::from_secs(1);
        config.alerts.chain_check_interval = Duration::from_secs(1);
        config.alerts.spike_threshold = 3;
    })
    .await;

    // A burst in one minute: three hooked clients rejected, a rooted one limited.
    stack.clock.advance(60 - stack.now().rem_euclid(60));
    for _ in 0..3 {
        stack
            .client_with_signals(&["hook"])
            .attest()
            .await
            .unwrap_err();
    }
    stack.client_with_signals(&["root"]).attest().await.unwrap();
    stack.clock.advance(60);
    // A release revoked while an installation is still on it.
    let on_it = stack.client();
    on_it.attest().await.unwrap();
    stack
        .admin(
            Method::POST,
            "/v1/admin/apps/org.example.cgm/releases/1.2.3/revoke",
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);

    let mut seen: Vec<serde_json::Value> = Vec::new();
    let mut wait_for = async |kind: &str, seen: &mut Vec<serde_json::Value>| -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = seen.iter().find(|line| line["type"] == kind) {
                return found.clone();
            }
            let line = tokio::time::timeout_at(deadline, lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {kind} alert within 30 s; seen {seen:#?}"))
                .unwrap()
                .unwrap();
            let line: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(line["verified"], true, "a delivery did not verify: {line}");
            seen.push(line);
        }
    };
    let spike = wait_for("threat.spike", &mut seen).await;
    assert_eq!(spike["data"]["threats"], 4, "{spike}");
    assert_eq!(spike["data"]["usual_per_minute"], 0, "{spike}");
    let revoked = wait_for("release.revoked_in_use", &mut seen).await;
    assert_eq!(revoked["data"]["version"], "1.2.3", "{revoked}");
    assert!(
        revoked["data"]["installations"].as_u64().unwrap() >= 1,
        "{revoked}"
    );
    wait_for("threat.new_kind", &mut seen).await;

    // The audit log edited in the database, behind the node's back.
    let database = rusqlite::Connection::open(stack.node.data_dir().join("medgate.db")).unwrap();
    database
        .execute(
            "UPDATE audit_log SET detail = '{\"edited\":true}' WHERE seq = 2",
            [],
        )
        .unwrap();
    let broken = wait_for("audit.chain_broken", &mut seen).await;
    assert_eq!(broken["data"]["seq"], 2, "{broken}");
    // New kinds: hook and root on the SDK platform, each once.
    let mut kinds: Vec<String> = seen
        .iter()
        .filter(|line| line["type"] == "threat.new_kind")
        .map(|line| line["data"]["reason"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["hook_detected", "root_detected"], "{seen:#?}");

    // The judge refuses what medgate's secret did not sign.
    let forged_body =
        br#"{"type":"audit.chain_broken","timestamp":"2026-12-08T00:00:00Z","data":{}}"#;
    let timestamp = stack.now();
    let forged =
        medgate_node::alerts::webhook::sign(&[0xa5; 32], "msg_forged", timestamp, forged_body);
    let reply = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let request = format!(
            "POST /medgate HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             webhook-id: msg_forged\r\nwebhook-timestamp: {timestamp}\r\n\
             webhook-signature: {forged}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            forged_body.len()
        );
        use std::io::{Read, Write};
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(forged_body).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.0 401"), "{reply}");
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = lines.next_line().await.unwrap().unwrap();
            let line: serde_json::Value = serde_json::from_str(&line).unwrap();
            if line["verified"] == false {
                return line;
            }
        }
    })
    .await
    .expect("the receiver reports the forged delivery");
    assert!(
        refused["error"].as_str().unwrap().contains("signature"),
        "{refused}"
    );
}
