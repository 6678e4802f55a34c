//! The console in a real browser: Playwright (PyPI, interop/console) drives Debian's Chromium
//! headless against a node loaded with genuine and hostile clients. It signs in, reads the
//! charts, finds and revokes an installation (which the gateway then refuses), checks that a
//! viewer cannot revoke, that a form without its token is refused and that no inline script
//! runs; it saves screenshots (`$MEDGATE_SCREENSHOTS`, else a temporary folder).

use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;

use crate::common::Stack;
use crate::console::add_operator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_signs_in_reads_the_charts_and_revokes_an_installation() {
    let Some(python) = medgate_testkit::tool(
        "MEDGATE_CONSOLE_PYTHON",
        "scripts/venv console interop/console/requirements.txt",
    ) else {
        return;
    };
    let chromium = std::env::var("MEDGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        assert!(
            std::env::var_os("MEDGATE_CI").is_none(),
            "{chromium} is missing in CI: scripts/test installs Debian's chromium"
        );
        eprintln!("skipped: no Chromium at {chromium} (apt-get install chromium)");
        return;
    }
    let stack = Stack::start().await;
    add_operator(&stack, "alice", "operator", "correct horse battery").await;
    add_operator(&stack, "vic", "viewer", "staple of the viewer").await;

    // A minute of genuine and hostile clients, stored in the telemetry series; a second
    // genuine client that nobody may revoke here.
    let (start, revoked) = stack.mixed_minute().await;
    stack.stored_minute(start).await;
    let kept = stack.client();
    kept.attest().await.unwrap();

    let scratch = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("MEDGATE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.path().to_path_buf());
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/console/drive.py");
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .env("MEDGATE_CONSOLE", stack.node.admin_url())
        .env("MEDGATE_CHROMIUM", &chromium)
        .env("MEDGATE_SCREENSHOTS", &shots)
        .env("MEDGATE_REVOKE_ID", revoked.installation_id().as_str())
        .env("MEDGATE_KEEP_ID", kept.installation_id().as_str())
        .env("MEDGATE_OPERATOR", "alice:correct horse battery")
        .env("MEDGATE_VIEWER", "vic:staple of the viewer")
        .env("HOME", scratch.path())
        .current_dir(scratch.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the browser run finishes within three minutes")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the console failed in Chromium:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok: a viewer's revocation"), "{stdout}");
    for shot in [
        "overview.png",
        "installations.png",
        "revoked.png",
        "audit.png",
        "apps.png",
        "keys.png",
        "versions.png",
        "overview-phone.png",
    ] {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{shot}");
    }

    // What the browser revoked, the gateway refuses within 5 s; the other one still passes.
    stack
        .eventually(5, || async {
            revoked.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
    assert_eq!(kept.get("/echo").await.unwrap().status, StatusCode::OK);
}
