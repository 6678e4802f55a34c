//! The `medgate` binary, run as a user runs it.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn medgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medgate"));
    command
        .env_remove("MEDGATE_CONFIG")
        .env_remove("MEDGATE_SERVER")
        .env_remove("MEDGATE_MASTER_KEY");
    command
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    eprintln!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_nightscout_demo_tells_the_whole_story() {
    let output = run(medgate().args(["demo", "--nightscout", "--exit"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    for scenario in [
        "attested uploader posts a reading",
        "caregiver's follower link reads",
        "the link posts carbs",
        "Frida-hooked uploader attests",
        "bolus without a signature",
        "signed bolus from the attested app",
        "revoked follower link",
        "what the site saw",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("{scenario} missing"));
        assert!(line.contains(" yes "), "{line}");
    }
}

#[test]
fn the_demo_runs_every_scenario_as_expected() {
    let output = run(medgate().args(["demo", "--exit"]));
    assert!(output.status.success());
    let table = stdout(&output);
    for scenario in [
        "genuine app",
        "no token",
        "stolen token",
        "replayed proof",
        "unknown build",
        "modified binary",
        "hooked app",
        "rooted phone",
        "upstream secret injected",
        "secret sealed to the app",
        "MitM, WebPKI only",
        "MitM, pinned client",
        "revoked installation",
    ] {
        let line = table
            .lines()
            .find(|l| l.starts_with(scenario))
            .unwrap_or_else(|| panic!("{scenario} missing"));
        assert!(line.contains(" yes "), "{line}");
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `medgate serve` and returns it with its admin API's URL (read from its output).
fn serve(config: &Path) -> (Server, String) {
    let (server, announced) = serve_announcing(config);
    let admin_line = announced.last().unwrap();
    let url = admin_line.split_whitespace().last().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{admin_line}");
    (server, url)
}

/// Starts `medgate serve` and returns it with the lines it printed up to the admin API's.
fn serve_announcing(config: &Path) -> (Server, Vec<String>) {
    let mut child = medgate()
        .arg("--config")
        .arg(config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut announced = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let last = line.starts_with("medgate admin API");
        announced.push(line);
        if last {
            break;
        }
    }
    assert!(
        announced
            .last()
            .is_some_and(|l| l.starts_with("medgate admin API")),
        "{announced:?}"
    );
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Server(child), announced)
}

/// A config in `dir` with every listener on an ephemeral loopback port and `extra` appended.
fn loopback_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let config = dir.join("medgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[gateway]\nlisten = \"127.0.0.1:0\"\n{extra}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    config
}

/// A graceful stop on SIGTERM, which must succeed.
fn stop(mut server: Server) {
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(server.0.wait().unwrap().success());
}

/// `medgate admin ARGS` against the server at `url`.
fn admin_command(config: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = medgate();
    command
        .arg("--config")
        .arg(config)
        .args(["admin", "--server", url])
        .args(args);
    command
}

#[test]
fn serve_admin_and_audit_verify_work_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(
        dir.path(),
        "[[gateway.routes]]\npath = \"/api/\"\nscopes = [\"a\"]\n",
    );
    let (server, url) = serve(&config);
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));

    let created = admin(&[
        "app",
        "create",
        "org.example.cgm",
        "--scopes",
        "a b",
        "--limited-scopes",
        "a",
        "--reject-on",
        "debugger,hook,root",
    ]);
    assert!(created.status.success());
    assert_eq!(
        stdout(&created).trim(),
        "created app org.example.cgm (scopes: a b)"
    );
    let added = admin(&[
        "release",
        "add",
        "org.example.cgm",
        "--version",
        "1.0.0",
        "--sdk-binary-sha256",
        &"ab".repeat(32),
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let apps = admin(&["app", "list", "--json"]);
    let apps: serde_json::Value = serde_json::from_str(&stdout(&apps)).unwrap();
    assert_eq!(
        apps[0]["policy"]["reject_on"],
        serde_json::json!(["debugger", "hook", "root"])
    );
    assert_eq!(
        apps[0]["policy"]["degrade_on"],
        serde_json::json!(["emulator", "mitm"])
    );
    assert!(stdout(&admin(&["installation", "list"])).contains("(none)"));
    // Nothing has attested or passed the gateway yet: the series is empty, the table says so.
    let telemetry = admin(&["telemetry", "--since", "2h", "--step", "10m"]);
    assert_eq!(
        stdout(&telemetry).trim(),
        "at  series  outcome  reason  platform  count\n(none)"
    );
    let refused = admin(&["telemetry", "--step", "90s"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stderr(&refused).contains("step is a whole number of minutes"));
    let rotated = admin(&["keys", "rotate"]);
    assert!(stdout(&rotated).starts_with("new signing key"));
    let keys = admin(&["keys", "list"]);
    assert_eq!(stdout(&keys).lines().count(), 3, "header and two keys");
    assert!(
        admin(&["release", "revoke", "org.example.cgm", "1.0.0"])
            .status
            .success()
    );

    // Refusals exit 1 and say why.
    let conflict = admin(&["app", "create", "org.example.cgm", "--scopes", "a"]);
    assert_eq!(conflict.status.code(), Some(1));
    assert!(stderr(&conflict).contains("409 Conflict: app already exists"));
    std::fs::write(dir.path().join("wrong.token"), "not-the-token").unwrap();
    let mut wrong = medgate();
    wrong
        .arg("--config")
        .arg(&config)
        .args(["admin", "--server", &url, "--token-file"])
        .arg(dir.path().join("wrong.token"))
        .args(["app", "list"]);
    let wrong = run(&mut wrong);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stderr(&wrong).contains("401"));

    // A graceful stop on SIGTERM.
    stop(server);

    let verified = run(medgate()
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"]));
    assert!(verified.status.success());
    assert!(
        // The first signing key's creation, and the admin changes above.
        stdout(&verified).starts_with("audit log verifies: 5 entries, head "),
        "{}",
        stdout(&verified)
    );

    // The operator keeps the head elsewhere. Someone cuts the tail off: the shorter chain still
    // verifies on its own, but no longer contains the recorded head.
    let head = stdout(&verified)
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let with_head = run(medgate().arg("--config").arg(&config).args([
        "audit",
        "verify",
        "--expect-head",
        &head,
    ]));
    assert!(with_head.status.success(), "{}", stderr(&with_head));
    let database = rusqlite::Connection::open(dir.path().join("data/medgate.db")).unwrap();
    database
        .execute(
            "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
            [],
        )
        .unwrap();
    drop(database);
    let truncated = run(medgate()
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"]));
    assert!(
        truncated.status.success(),
        "a cut tail alone is not detectable"
    );
    let caught = run(medgate().arg("--config").arg(&config).args([
        "audit",
        "verify",
        "--expect-head",
        &head,
    ]));
    assert_eq!(caught.status.code(), Some(1));
    assert!(stderr(&caught).contains("no longer contains the expected head"));
    // The same with the signed checkpoint the node wrote as it stopped, pinned to its key.
    let checkpoints = dir.path().join("data/audit-checkpoints");
    let written = std::fs::read_to_string(&checkpoints).unwrap();
    let last = written.lines().last().unwrap();
    let signed = medgate_verify::checkpoint::verify(last, None).unwrap();
    assert_eq!(medgate_proto::hex::encode(&signed.hash()), head);
    let thumbprint = signed.key().as_str().to_string();
    let by_checkpoint = |pin: &str| {
        run(medgate()
            .arg("--config")
            .arg(&config)
            .args(["audit", "verify", "--checkpoint"])
            .arg(&checkpoints)
            .args(["--checkpoint-key", pin]))
    };
    let cut = by_checkpoint(&thumbprint);
    assert_eq!(cut.status.code(), Some(1), "{}", stderr(&cut));
    assert!(stderr(&cut).contains("no longer contains the expected head"));
    let wrong_key = by_checkpoint("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
    assert_eq!(wrong_key.status.code(), Some(1));
    assert!(stderr(&wrong_key).contains("other than the pinned one"));

    // Someone edits the second entry in the database file.
    let database = rusqlite::Connection::open(dir.path().join("data/medgate.db")).unwrap();
    database
        .execute("UPDATE audit_log SET detail = '{}' WHERE seq = 2", [])
        .unwrap();
    drop(database);
    let broken = run(medgate()
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"]));
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stderr(&broken).contains("audit entry 2 does not verify: content does not match its hash")
    );
    let json = run(medgate()
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify", "--json"]));
    let json: serde_json::Value = serde_json::from_str(stdout(&json).trim()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"ok": false, "first_bad_entry": 2, "problem": "content does not match its hash"})
    );
}

/// A node in `dir` that registered three apps and stopped: its config and the last checkpoint
/// it signed (at shutdown, of the head).
fn node_with_three_apps(
    dir: &Path,
) -> (
    std::path::PathBuf,
    medgate_verify::checkpoint::VerifiedCheckpoint,
) {
    let config = loopback_config(dir, "");
    let (server, url) = serve(&config);
    for app in ["org.example.one", "org.example.two", "org.example.three"] {
        let created = run(medgate().arg("--config").arg(&config).args([
            "admin", "--server", &url, "app", "create", app, "--scopes", "a",
        ]));
        assert!(created.status.success(), "{}", stderr(&created));
    }
    stop(server);
    let written = std::fs::read_to_string(dir.join("data/audit-checkpoints")).unwrap();
    let signed = medgate_verify::checkpoint::verify(written.lines().last().unwrap(), None).unwrap();
    (config, signed)
}

/// `medgate --config CONFIG audit ARGS…`.
fn audit(config: &Path, args: &[&str]) -> Output {
    run(medgate()
        .arg("--config")
        .arg(config)
        .arg("audit")
        .args(args))
}

/// Old entries are pruned up to a signed checkpoint; what remains still verifies against it.
#[test]
fn the_audit_log_is_pruned_up_to_a_signed_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (config, signed) = node_with_three_apps(dir.path());
    let checkpoints = dir.path().join("data/audit-checkpoints");
    let key = signed.key().as_str().to_string();
    let audit = |args: &[&str]| audit(&config, args);
    // A checkpoint under another key prunes nothing.
    let refused = audit(&[
        "prune",
        "--checkpoint",
        checkpoints.to_str().unwrap(),
        "--checkpoint-key",
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    ]);
    assert_eq!(refused.status.code(), Some(1));
    let pruned = audit(&[
        "prune",
        "--checkpoint",
        checkpoints.to_str().unwrap(),
        "--checkpoint-key",
        &key,
    ]);
    assert!(pruned.status.success(), "{}", stderr(&pruned));
    assert!(stdout(&pruned).starts_with(&format!("pruned {} audit entries", signed.seq() - 1)));
    let verified = audit(&[
        "verify",
        "--checkpoint",
        checkpoints.to_str().unwrap(),
        "--checkpoint-key",
        &key,
    ]);
    assert!(verified.status.success(), "{}", stderr(&verified));
    assert!(stdout(&verified).contains("were pruned"));
}

/// An export of a time range verifies offline, in both formats, under the pinned checkpoint key
/// (with medgate and with an auditor's own verifier written from the README in Python, which
/// checks the checkpoint with joserfc); a changed line, a cut tail or another key does not.
#[test]
fn an_audit_export_verifies_offline_and_a_changed_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let (config, signed) = node_with_three_apps(dir.path());
    let key = signed.key().as_str().to_string();
    let other = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let audit = |args: &[&str]| audit(&config, args);
    let python = medgate_testkit::tool(
        "MEDGATE_PARTNER_PYTHON",
        "scripts/venv partner interop/partner/requirements.txt",
    );
    let judge = |file: &Path, key: &str| {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/audit/verify_export.py");
        python.as_ref().map(|python| {
            let output = run(std::process::Command::new(python)
                .arg(script)
                .arg(file)
                .args(["--checkpoint-key", key]));
            let answer: serde_json::Value = serde_json::from_str(stdout(&output).trim())
                .unwrap_or_else(|_| panic!("{} {}", stdout(&output), stderr(&output)));
            // 0 verifies, 1 does not; anything else is the judge failing, never a verdict.
            assert!(
                matches!(output.status.code(), Some(0 | 1)),
                "{}",
                stderr(&output)
            );
            (output.status.success(), answer)
        })
    };
    for format in ["jsonl", "cef"] {
        let file = dir.path().join(format!("export.{format}"));
        // From the first moment to one far ahead: every entry, the checkpoint inside.
        let exported = audit(&[
            "export",
            "--from",
            "1970-01-01T00:00:00Z",
            "--to",
            "4000000000",
            "--format",
            format,
            "--out",
            file.to_str().unwrap(),
        ]);
        assert!(exported.status.success(), "{}", stderr(&exported));
        assert!(stderr(&exported).contains("with a signed checkpoint inside the range"));
        let verified = audit(&[
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--checkpoint-key",
            &key,
        ]);
        assert!(verified.status.success(), "{}", stderr(&verified));
        assert!(
            stdout(&verified).contains("vouched for by a checkpoint signed with the pinned key"),
            "{}",
            stdout(&verified)
        );
        if let Some((ok, answer)) = judge(&file, &key) {
            assert!(ok, "{answer}");
            assert_eq!(answer["checkpoint_seq"], signed.seq());
        }
        // Another key, a changed subject, a cut tail: refused by both.
        let refused = audit(&[
            "verify",
            "--file",
            file.to_str().unwrap(),
            "--checkpoint-key",
            other,
        ]);
        assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
        let text = std::fs::read_to_string(&file).unwrap();
        let changed = dir.path().join(format!("changed.{format}"));
        std::fs::write(
            &changed,
            text.replacen("org.example.two", "org.example.tw0", 1),
        )
        .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = dir.path().join(format!("cut.{format}"));
        std::fs::write(&cut, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
        for bad in [&changed, &cut] {
            let refused = audit(&["verify", "--file", bad.to_str().unwrap(), "--json"]);
            assert_eq!(refused.status.code(), Some(1));
            assert!(
                stdout(&refused).contains("\"ok\":false"),
                "{}",
                stdout(&refused)
            );
            if let Some((ok, answer)) = judge(bad, &key) {
                assert!(!ok, "{answer}");
            }
        }
        if let Some((ok, _)) = judge(&file, other) {
            assert!(!ok);
        }
    }
    // A range with nothing in it is refused, not an empty file.
    let empty = audit(&["export", "--from", "1000", "--to", "2000"]);
    assert_eq!(empty.status.code(), Some(1));
}

/// The postmarket report is built from the store and a verified audit chain: releases with
/// their registration and revocation, the checkpoint the chain contains; a broken chain builds
/// no report.
#[test]
fn the_postmarket_report_is_built_from_a_verified_chain_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let (server, announced) = serve_announcing(&config);
    let url = announced
        .last()
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    let control_plane = announced
        .iter()
        .find_map(|line| line.strip_prefix("medgate control plane on "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .to_string();
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));
    assert!(
        admin(&[
            "app",
            "create",
            "org.example.cgm",
            "--scopes",
            "a",
            "--sdk-evidence",
            "allow"
        ])
        .status
        .success()
    );
    for version in ["1.0.0", "1.1.0"] {
        let added = admin(&[
            "release",
            "add",
            "org.example.cgm",
            "--version",
            version,
            "--sdk-binary-sha256",
            &"ab".repeat(32),
        ]);
        assert!(added.status.success(), "{}", stderr(&added));
    }
    // Real attestations through the SDK, as the server audits them: one granted on 1.1.0, one
    // refused (a version never registered).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (version, granted) in [("1.1.0", true), ("9.9.9", false)] {
        let client = medgate_sdk::client::MedgateClient::new(
            medgate_sdk::client::ClientConfig {
                server_url: control_plane.clone(),
                gateway_url: control_plane.clone(),
                app: medgate_sdk::evidence::AppIdentity {
                    app_id: "org.example.cgm".into(),
                    app_version: version.into(),
                    binary_sha256: "ab".repeat(32),
                },
                refresh_margin_secs: 30,
            },
            medgate_sdk::key::InstallationKey::generate().unwrap(),
        );
        assert_eq!(
            runtime.block_on(client.attest()).is_ok(),
            granted,
            "{version}"
        );
    }
    assert!(
        admin(&["release", "revoke", "org.example.cgm", "1.0.0"])
            .status
            .success()
    );
    // Revoked again: audited, but it changes nothing and counts once.
    admin(&["release", "revoke", "org.example.cgm", "1.0.0"]);
    stop(server);
    let out = dir.path().join("report");
    // An SBOM as scripts/sbom makes one (its schema validation is that script's; here, the
    // report carries it).
    let sbom = dir.path().join("medgate.cdx.json");
    std::fs::write(
        &sbom,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[{"type":"library","name":"a","version":"1"},{"type":"library","name":"b","version":"2"}]}"#,
    )
    .unwrap();
    let report = |out: &Path| {
        run(medgate().arg("--config").arg(&config).args([
            "report",
            "postmarket",
            "--out",
            out.to_str().unwrap(),
            "--sbom",
            sbom.to_str().unwrap(),
        ]))
    };
    let built = report(&out);
    assert!(built.status.success(), "{}", stderr(&built));
    assert!(stdout(&built).contains("2 releases"), "{}", stdout(&built));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let releases = metrics["report"]["releases"].as_array().unwrap();
    assert_eq!(releases.len(), 2);
    assert!(releases[0]["revoked_at"].is_i64() && releases[1]["revoked_at"].is_null());
    assert_eq!(metrics["report"]["releases_revoked"][0]["version"], "1.0.0");
    assert_eq!(
        metrics["report"]["releases_revoked"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let attestations = &metrics["report"]["attestations"];
    assert_eq!(
        (
            attestations["allow"].as_u64(),
            attestations["reject"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(metrics["report"]["reasons"][0][0], "release_unknown");
    assert_eq!(releases[1]["version"], "1.1.0");
    assert_eq!(
        (
            releases[1]["population"].as_u64(),
            releases[1]["adopted"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert!(releases[1]["seconds_to_50_percent"].is_i64());
    assert!(metrics["audit"]["checkpoint"]["seq"].is_i64(), "{metrics}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for expected in [
        "<h1>Postmarket report</h1>",
        "<svg",
        "org.example.cgm",
        "The chain contains the signed checkpoint",
    ] {
        assert!(html.contains(expected), "{expected}");
    }
    assert!(!html.contains("<script"));
    assert!(html.contains("CycloneDX 1.5, 2 components"));
    assert_eq!(metrics["sbom"]["components"], 2);
    assert!(out.join("sbom.cdx.json").exists());
    // Printed to PDF by Debian's Chromium (scripts/test installs it; CI must have it).
    let chromium = std::env::var("MEDGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if Path::new(&chromium).exists() {
        let printed = dir.path().join("printed");
        let pdf = run(medgate()
            .arg("--config")
            .arg(&config)
            .args([
                "report",
                "postmarket",
                "--pdf",
                "--chromium",
                &chromium,
                "--out",
            ])
            .arg(&printed));
        assert!(pdf.status.success(), "{}", stderr(&pdf));
        let bytes = std::fs::read(printed.join("report.pdf")).unwrap();
        assert!(
            bytes.starts_with(b"%PDF-") && bytes.len() > 1000,
            "{} bytes",
            bytes.len()
        );
    } else {
        assert!(
            std::env::var_os("MEDGATE_CI").is_none(),
            "{chromium} is missing in CI: scripts/test installs Debian's chromium"
        );
        eprintln!("skipped: the PDF (no Chromium at {chromium}; apt-get install chromium)");
    }
    // A PDF asked of a browser that is not there: a usage error, before any work.
    let no_browser = run(medgate().arg("--config").arg(&config).args([
        "report",
        "postmarket",
        "--pdf",
        "--chromium",
        "/nonexistent/chromium",
        "--out",
        dir.path().join("unprinted").to_str().unwrap(),
    ]));
    assert_eq!(no_browser.status.code(), Some(2), "{}", stderr(&no_browser));
    // Pinned to another checkpoint key: refused.
    let other = run(medgate().arg("--config").arg(&config).args([
        "report",
        "postmarket",
        "--out",
        dir.path().join("other").to_str().unwrap(),
        "--checkpoint-key",
        "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
    ]));
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    // The tail cut off (the last checkpoint signed the head at shutdown): refused.
    let database = rusqlite::Connection::open(dir.path().join("data/medgate.db")).unwrap();
    database
        .execute(
            "DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)",
            [],
        )
        .unwrap();
    let cut = report(&dir.path().join("cut"));
    assert_eq!(cut.status.code(), Some(1));
    assert!(
        stderr(&cut).contains("no longer contains the checkpoint's entry"),
        "{}",
        stderr(&cut)
    );
    // Someone edits an entry: no report is built on that log.
    database
        .execute("UPDATE audit_log SET detail = '{}' WHERE seq = 2", [])
        .unwrap();
    drop(database);
    let refused = report(&dir.path().join("refused"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("does not verify"),
        "{}",
        stderr(&refused)
    );
    for refused in ["other", "cut", "refused"] {
        assert!(!dir.path().join(refused).join("report.html").exists());
    }
}

#[test]
fn configuration_errors_exit_2_with_the_reason() {
    let missing = run(medgate().args(["--config", "/nonexistent/medgate.toml", "serve"]));
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("cannot read config file /nonexistent/medgate.toml"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("medgate.toml");
    std::fs::write(&config, "[server]\nlisten_address = \"x\"\n").unwrap();
    let typo = run(medgate().arg("--config").arg(&config).arg("serve"));
    assert_eq!(typo.status.code(), Some(2));
    assert!(stderr(&typo).contains("unknown field `listen_address`"));
    std::fs::write(
        &config,
        format!(
            "[server]\ndata_dir = \"{}\"\n",
            dir.path().join("none").display()
        ),
    )
    .unwrap();
    let no_db = run(medgate()
        .arg("--config")
        .arg(&config)
        .args(["audit", "verify"]));
    assert_eq!(no_db.status.code(), Some(2));
    assert!(stderr(&no_db).contains("no medgate database"));
    let no_token = run(medgate()
        .arg("--config")
        .arg(&config)
        .args(["admin", "app", "list"]));
    assert_eq!(no_token.status.code(), Some(2));
    assert!(stderr(&no_token).contains("cannot read the admin token"));
}

#[test]
fn migrate_applies_the_schema_and_a_bad_store_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let migrated = run(medgate().arg("--config").arg(&config).arg("migrate"));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(stdout(&migrated).contains("current schema (SQLite)"));
    assert!(dir.path().join("data/medgate.db").exists());
    let bad = loopback_config(dir.path(), "[store]\nurl = \"mysql://db\"\n");
    let refused = run(medgate().arg("--config").arg(&bad).arg("migrate"));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("store.url"),
        "{}",
        stderr(&refused)
    );
}

#[test]
fn store_copy_moves_a_sqlite_deployment_to_postgres_once() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some((_store, database)) = runtime.block_on(medgate_store::postgres::testing::fresh())
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let (server, url) = serve(&config);
    let created = run(medgate()
        .arg("--config")
        .arg(&config)
        .args([
            "admin",
            "--server",
            &url,
            "app",
            "create",
            "org.example.cgm",
        ])
        .args(["--scopes", "a"]));
    assert!(created.status.success(), "{}", stderr(&created));
    stop(server);

    let from = format!("sqlite://{}", dir.path().join("data").display());
    let copy = || run(medgate().args(["store", "copy", "--from", &from, "--to", &database.url()]));
    let copied = copy();
    assert!(copied.status.success(), "{}", stderr(&copied));
    let report = stdout(&copied);
    assert!(report.contains("apps: 1 rows"), "{report}");
    assert!(report.contains("verified on both sides"), "{report}");
    // The PostgreSQL store now holds the deployment: a second copy is refused.
    let again = copy();
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));
    // And a node on it serves with the copied keys and admin token.
    let moved = loopback_config(
        dir.path(),
        &format!("[store]\nurl = \"{}\"\n", database.url()),
    );
    let (server, url) = serve(&moved);
    let apps = run(medgate()
        .arg("--config")
        .arg(&moved)
        .args(["admin", "--server", &url, "app", "list"]));
    assert!(
        stdout(&apps).contains("org.example.cgm"),
        "{}",
        stdout(&apps)
    );
    stop(server);
}

/// A TLS connection to `addr` that trusts `cert` (a self-signed DER certificate) and requires
/// its key's `pin`: what a pinned client does, through medgate's own verifier.
fn pinned_connection(
    addr: &str,
    cert: &[u8],
    pin: medgate_trust::pins::Pin,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    use medgate_trust::pins::{HostPattern, PinRule, PinSet};
    use std::sync::Arc;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(cert.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pins = PinSet::new(vec![PinRule {
        pattern: HostPattern::parse("127.0.0.1").unwrap(),
        pins: vec![pin],
    }])
    .unwrap();
    let config = medgate_trust::pins::client_config(provider, Arc::new(roots), None, pins).unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    // Finish the handshake now, so a refused certificate is an error here.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// One GET on a kept-alive connection; the status line.
fn get_status(stream: &mut (impl std::io::Read + std::io::Write)) -> String {
    stream
        .write_all(b"GET /api/v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    head.lines().next().unwrap().to_string()
}

/// `medgate tls self-signed`: the files it wrote, and the pin it printed.
fn self_signed(out: &Path) -> (Vec<u8>, medgate_trust::pins::Pin) {
    let output = run(medgate()
        .args(["tls", "self-signed", "--host", "127.0.0.1", "--out"])
        .arg(out));
    assert!(output.status.success());
    let printed = stdout(&output);
    let pin = printed
        .lines()
        .find_map(|l| l.strip_prefix("SPKI SHA-256 pin: "))
        .unwrap();
    let pin = medgate_trust::pins::Pin::parse(pin).unwrap();
    let cert = rustls_pki_types::pem::PemObject::from_pem_file(out.join("cert.pem"))
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
        .unwrap();
    // The printed pin is the certificate's key's, as OkHttp would compute it.
    assert_eq!(
        pin,
        medgate_trust::pins::Pin::of_spki(&medgate_testkit::pki::spki_of(&cert))
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    (cert, pin)
}

#[test]
fn a_self_signed_gateway_certificate_is_replaced_on_sighup_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (first, first_pin) = self_signed(&dir.path().join("a"));
    // The same folder again: refused, nothing overwritten.
    let again = run(medgate()
        .args(["tls", "self-signed", "--host", "127.0.0.1", "--out"])
        .arg(dir.path().join("a")));
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));

    let (cert, key) = (dir.path().join("a/cert.pem"), dir.path().join("a/key.pem"));
    let config = loopback_config(
        dir.path(),
        &format!(
            "[gateway.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let (server, announced) = serve_announcing(&config);
    let gateway_line = announced
        .iter()
        .find(|l| l.starts_with("medgate gateway on "))
        .unwrap();
    let addr = gateway_line
        .strip_prefix("medgate gateway on https://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{gateway_line}"))
        .to_string();

    let mut open = pinned_connection(&addr, &first, first_pin).unwrap();
    assert_eq!(get_status(&mut open), "HTTP/1.1 401 Unauthorized");

    // A new pair in place of the old, then SIGHUP.
    let (second, second_pin) = self_signed(&dir.path().join("b"));
    std::fs::copy(dir.path().join("b/cert.pem"), &cert).unwrap();
    std::fs::copy(dir.path().join("b/key.pem"), &key).unwrap();
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );

    // New handshakes present the new certificate once the signal is handled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut fresh = loop {
        match pinned_connection(&addr, &second, second_pin) {
            Ok(stream) => break stream,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::yield_now();
            }
            Err(error) => panic!("the new certificate was not served: {error}"),
        }
    };
    assert_eq!(get_status(&mut fresh), "HTTP/1.1 401 Unauthorized");
    // A client that trusts only the old certificate does not complete a new handshake.
    let refused = pinned_connection(&addr, &first, first_pin).unwrap_err();
    assert!(refused.to_string().contains("certificate"), "{refused}");
    // The connection opened before the reload carries on.
    assert_eq!(get_status(&mut open), "HTTP/1.1 401 Unauthorized");
    drop((open, fresh));
    stop(server);
}

#[test]
fn admin_secrets_are_read_from_a_file_or_the_environment_and_never_printed() {
    const VALUE: &str = "the-upstream-api-key-0123456789";
    const ROTATED: &str = "the-rotated-api-key-9876543210";
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(
        dir.path(),
        "[[gateway.routes]]\npath = \"/api/\"\nscopes = [\"a\"]\ninject = [{ header = \"api-secret\", secret = \"nightscout\", encoding = \"sha1-hex\" }]\n",
    );
    let (server, url) = serve(&config);
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));
    assert!(
        admin(&["app", "create", "org.example.cgm", "--scopes", "a"])
            .status
            .success()
    );

    let set = run(admin_command(
        &config,
        &url,
        &[
            "secret",
            "set",
            "org.example.cgm",
            "nightscout",
            "--from-env",
            "NS_SECRET",
        ],
    )
    .env("NS_SECRET", VALUE));
    assert!(set.status.success(), "{}", stderr(&set));
    assert!(stdout(&set).contains("version 1"), "{}", stdout(&set));
    let file = dir.path().join("rotated");
    std::fs::write(&file, ROTATED).unwrap();
    let rotated = admin(&[
        "secret",
        "rotate",
        "org.example.cgm",
        "nightscout",
        "--from-file",
        file.to_str().unwrap(),
    ]);
    assert!(
        stdout(&rotated).contains("version 2"),
        "{}",
        stdout(&rotated)
    );
    let listed = admin(&["secret", "list", "org.example.cgm"]);
    let table = stdout(&listed);
    assert!(
        table.lines().any(|l| l.starts_with("nightscout")
            && l.contains(" 2 ")
            && l.contains(" /api/ ")
            && l.ends_with(" false")),
        "{table}"
    );
    // A value on the command line is not an option; neither is none.
    let refused = admin(&["secret", "set", "org.example.cgm", "other", VALUE]);
    assert_eq!(refused.status.code(), Some(2));
    let none = admin(&["secret", "set", "org.example.cgm", "other"]);
    assert_eq!(none.status.code(), Some(2));
    let deleted = admin(&["secret", "delete", "org.example.cgm", "nightscout"]);
    assert!(deleted.status.success());
    let again = admin(&["secret", "delete", "org.example.cgm", "nightscout"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("404"), "{}", stderr(&again));
    stop(server);

    for output in [set, rotated, listed, deleted, again] {
        for text in [stdout(&output), stderr(&output)] {
            assert!(!text.contains(VALUE) && !text.contains(ROTATED), "{text}");
        }
    }
}

#[test]
fn operators_are_added_listed_and_removed_from_the_command_line_without_echoing_a_password() {
    const PASSWORD: &str = "correct horse battery staple";
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let (server, url) = serve(&config);
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));
    let added = run(admin_command(
        &config,
        &url,
        &[
            "operator",
            "add",
            "alice",
            "--role",
            "operator",
            "--password-env",
            "PW",
        ],
    )
    .env("PW", PASSWORD));
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(
        stdout(&added).contains("operator alice added as operator"),
        "{}",
        stdout(&added)
    );
    let file = dir.path().join("bob.pass");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let from_file = admin(&[
        "operator",
        "add",
        "bob",
        "--role",
        "viewer",
        "--password-file",
        file.to_str().unwrap(),
    ]);
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    // No terminal to ask on, and no file or variable: a usage error, nothing added.
    let unasked = admin(&["operator", "add", "carol", "--role", "viewer"]);
    assert_eq!(unasked.status.code(), Some(2), "{}", stderr(&unasked));
    // A password on the command line is not an option; a short one is refused.
    assert_eq!(
        admin(&["operator", "add", "carol", "--role", "viewer", PASSWORD])
            .status
            .code(),
        Some(2)
    );
    let short = run(admin_command(
        &config,
        &url,
        &[
            "operator",
            "add",
            "carol",
            "--role",
            "viewer",
            "--password-env",
            "PW",
        ],
    )
    .env("PW", "short"));
    assert_eq!(short.status.code(), Some(2), "{}", stderr(&short));
    let listed = admin(&["operator", "list"]);
    let table = stdout(&listed);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("alice") && l.contains("operator")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("bob") && l.contains("viewer")),
        "{table}"
    );
    assert!(!table.contains("carol"), "{table}");
    let removed = admin(&["operator", "remove", "bob"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let again = admin(&["operator", "remove", "bob"]);
    assert_eq!(again.status.code(), Some(1));
    // A name that is none is not sent as a path.
    let traversal = admin(&["operator", "remove", "../apps/x"]);
    assert_eq!(traversal.status.code(), Some(2), "{}", stderr(&traversal));
    stop(server);
    for output in [added, from_file, listed, removed, again] {
        for text in [stdout(&output), stderr(&output)] {
            assert!(
                !text.contains(PASSWORD) && !text.contains("argon2"),
                "{text}"
            );
        }
    }
}

#[test]
fn the_trust_repository_is_initialised_offline_and_published_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let (server, url) = serve(&config);
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));
    let trust = |args: &[&str]| {
        run(medgate()
            .arg("--config")
            .arg(&config)
            .arg("trust")
            .args(args))
    };
    let offline = dir.path().join("offline-root");
    let offline_arg = offline.to_str().unwrap();

    let init = trust(&["init", "--offline-root", offline_arg]);
    assert!(init.status.success(), "{}", stderr(&init));
    assert!(stdout(&init).contains("root version 1"));
    assert_eq!(
        trust(&["init", "--offline-root", offline_arg])
            .status
            .code(),
        Some(1)
    );

    // The pins of a certificate, as `from-cert` prints them, then pinned with a backup.
    let (_, pin) = self_signed(&dir.path().join("tls"));
    let from_cert = admin(&[
        "pins",
        "from-cert",
        dir.path().join("tls/cert.pem").to_str().unwrap(),
    ]);
    assert_eq!(stdout(&from_cert).trim(), pin.to_string());
    for key in [
        pin.to_string(),
        medgate_trust::pins::Pin::of_spki(b"backup").to_string(),
    ] {
        let added = admin(&[
            "pins",
            "add",
            "--host",
            "**.example.org",
            "--spki-sha256",
            &key,
        ]);
        assert!(added.status.success(), "{}", stderr(&added));
    }
    assert_eq!(stdout(&admin(&["pins", "list"])).lines().count(), 3);
    let published = admin(&["trust", "publish"]);
    assert!(
        stdout(&published).contains("targets version 1"),
        "{}",
        stdout(&published)
    );

    let signed = trust(&[
        "sign-root",
        "--offline-root",
        offline_arg,
        "--new-root-key",
        "--rotate",
        "timestamp,targets",
    ]);
    assert!(signed.status.success(), "{}", stderr(&signed));
    assert!(stdout(&signed).contains("root version 2"));
    let status = stdout(&admin(&["trust", "status"]));
    assert!(status.contains("root       version 2"), "{status}");
    // The rotation re-signed the release with the new keys.
    assert!(status.contains("targets    version 2"), "{status}");
    assert_eq!(
        std::fs::read_dir(&offline).unwrap().count(),
        2,
        "the old and the new root key"
    );
    let removed = admin(&["pins", "remove", "--host", "**.example.org"]);
    assert!(
        stdout(&removed).contains("removed 2"),
        "{}",
        stdout(&removed)
    );
    stop(server);
}

#[test]
fn verify_provenance_accepts_a_stored_signed_write_and_refuses_a_changed_one() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let key = medgate_sdk::key::InstallationKey::generate().unwrap();
    let url = "https://gw.example.org/api/v1/treatments";
    let body = br#"[{"insulin": 1.5}]"#;
    let authorization = "DPoP eyJ.token.sig";
    let signed =
        medgate_sdk::proof::signature_headers(&key, "POST", url, authorization, body, 1).unwrap();
    let stored = |body: &[u8]| {
        serde_json::json!({
            "method": "POST",
            "target_uri": url,
            "headers": {
                "signature-input": signed.signature_input,
                "signature": signed.signature,
                "content-digest": signed.content_digest,
                "x-medgate-key": medgate_sdk::signer::Signer::thumbprint(&key).as_str(),
                "x-medgate-authorization": authorization,
            },
            "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
        })
        .to_string()
    };
    let request = dir.path().join("request.json");
    let jwk = dir.path().join("key.json");
    std::fs::write(&request, stored(body)).unwrap();
    std::fs::write(
        &jwk,
        serde_json::json!({"jwk": key.public_jwk()}).to_string(),
    )
    .unwrap();
    let verify = |request: &Path| {
        run(medgate()
            .arg("verify-provenance")
            .arg("--request")
            .arg(request)
            .arg("--jwk")
            .arg(&jwk))
    };
    let ok = verify(&request);
    assert!(ok.status.success());
    let report: serde_json::Value = serde_json::from_str(&stdout(&ok)).unwrap();
    assert_eq!(report["verified"], true);
    assert_eq!(report["created"], 1);
    // The dose changed in the record: refused, exit 1, and why.
    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, stored(br#"[{"insulin": 15}]"#)).unwrap();
    let refused = verify(&changed);
    assert_eq!(refused.status.code(), Some(1));
    assert!(stdout(&refused).contains("Content-Digest"));
    // The control plane says the installation has been revoked since: not to be trusted.
    std::fs::write(
        &jwk,
        serde_json::json!({"jwk": key.public_jwk(), "revoked": true}).to_string(),
    )
    .unwrap();
    let revoked = verify(&request);
    assert_eq!(revoked.status.code(), Some(1));
    assert!(stdout(&revoked).contains("revoked"));
}

#[test]
fn nightscout_init_writes_a_profile_the_node_accepts_and_never_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("medgate.toml");
    const SECRET: &str = "a-nightscout-api-secret";
    let init = |env: Option<&str>, upstream: &str| {
        let mut command = medgate();
        command.env_remove("NS_SECRET");
        if let Some(value) = env {
            command.env("NS_SECRET", value);
        }
        run(command
            .args(["nightscout", "init", "--upstream", upstream])
            .args(["--api-secret-from-env", "NS_SECRET", "--out"])
            .arg(&out))
    };
    // What init refuses, each with its reason and exit 2, writing nothing.
    for (env, upstream, why) in [
        (None, "http://127.0.0.1:1337", "NS_SECRET is not set"),
        (
            Some("too-short"),
            "http://127.0.0.1:1337",
            "at least 12 characters",
        ),
        (Some(SECRET), "ftp://ns.example.org", "http:// or https://"),
        (
            Some(SECRET),
            "https://secret@ns.example.org",
            "must not carry a secret",
        ),
    ] {
        let refused = init(env, upstream);
        assert_eq!(refused.status.code(), Some(2), "{upstream}");
        assert!(stderr(&refused).contains(why), "{}", stderr(&refused));
        assert!(!out.exists());
    }
    let written = init(Some(SECRET), "http://127.0.0.1:1337");
    assert!(written.status.success(), "{}", stderr(&written));
    assert!(
        stdout(&written)
            .contains("medgate admin secret set <APP_ID> nightscout --from-env NS_SECRET")
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains(SECRET));
    assert!(text.contains("upstream = \"http://127.0.0.1:1337/\""));
    // The node reads it: `migrate` loads the whole file (the profile's unit tests compile
    // every route rule in it).
    let with_data = format!(
        "{text}\n[server]\ndata_dir = \"{}\"\n",
        dir.path().join("data").display()
    );
    std::fs::write(&out, with_data).unwrap();
    let migrated = run(medgate().arg("--config").arg(&out).arg("migrate"));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    // An existing file is never overwritten.
    let again = init(Some(SECRET), "http://127.0.0.1:1337");
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn follower_and_uploader_credentials_are_made_listed_and_revoked_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let (server, url) = serve(&config);
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));
    let app = "org.example.ns";
    assert!(
        admin(&["app", "create", app, "--scopes", "nightscout:read"])
            .status
            .success()
    );
    let created = admin(&[
        "follower",
        "create",
        app,
        "--name",
        "School nurse",
        "--classes",
        "read",
        "--expires",
        "30d",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let text = stdout(&created);
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret (shown once): "))
        .unwrap()
        .to_string();
    assert!(
        secret.starts_with("follower-") && secret.len() == 41,
        "{text}"
    );
    assert!(text.contains(&format!("/?token={secret}")), "{text}");
    let id = text.split_whitespace().nth(1).unwrap().to_string();
    assert!(id.starts_with("cred_"), "{text}");
    // Classes an unattested app must never hold are refused before anything is sent.
    for (kind, class) in [("follower", "data-write"), ("uploader", "therapy-write")] {
        let refused = admin(&[kind, "create", app, "--name", "x", "--classes", class]);
        assert_eq!(refused.status.code(), Some(2), "{kind} {class}");
        assert!(
            stderr(&refused).contains("attested app"),
            "{}",
            stderr(&refused)
        );
    }
    let uploader = admin(&[
        "uploader",
        "create",
        app,
        "--name",
        "xDrip+",
        "--classes",
        "read,data-write",
    ]);
    assert!(uploader.status.success(), "{}", stderr(&uploader));
    let listed = admin(&["follower", "list", app]);
    let table = stdout(&listed);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("School nurse") && l.contains("active")),
        "{table}"
    );
    assert!(
        !table.contains("xDrip+"),
        "uploaders are listed apart: {table}"
    );
    let revoked = admin(&["follower", "revoke", &id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(stdout(&admin(&["follower", "list", app])).contains("revoked"));
    let again = admin(&["follower", "revoke", &id]);
    assert_eq!(again.status.code(), Some(1));
    stop(server);
    for output in [listed, revoked, again, uploader] {
        for text in [stdout(&output), stderr(&output)] {
            assert!(!text.contains(&secret), "{text}");
        }
    }
}

#[test]
fn partners_are_registered_listed_rotated_and_disabled_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = loopback_config(dir.path(), "");
    let (server, url) = serve(&config);
    let admin = |args: &[&str]| run(&mut admin_command(&config, &url, args));
    let jwks_file = dir.path().join("jwks.json");
    let signer = medgate_testkit::partner::PartnerSigner::es384();
    let jwks = medgate_testkit::partner::jwks(&[(&signer, "2026-01")]);
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let jwks_path = jwks_file.to_str().unwrap();
    let created = admin(&[
        "partner",
        "create",
        "St. Elsewhere EHR",
        "--jwks-file",
        jwks_path,
        "--scopes",
        "system/Observation.rs system/Patient.read",
        "--ip-allow",
        "198.51.100.0/24",
        "--require-dpop",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let text = stdout(&created);
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("client_id: "))
        .unwrap()
        .to_string();
    assert!(id.starts_with("ptn_") && id.len() == 20, "{text}");
    assert!(text.contains("token endpoint: http://"), "{text}");
    assert!(text.contains("/v1/oauth/token"), "{text}");
    // Refused before or by the server: both key sources, a patient scope, a URL over plain
    // http to another machine.
    for args in [
        &[
            "partner",
            "create",
            "x",
            "--jwks-file",
            jwks_path,
            "--jwks-url",
            "https://k.example/j",
            "--scopes",
            "system/Patient.rs",
        ][..],
        &[
            "partner",
            "create",
            "x",
            "--jwks-file",
            jwks_path,
            "--scopes",
            "patient/Patient.rs",
        ][..],
        &[
            "partner",
            "create",
            "x",
            "--jwks-url",
            "http://k.example/j",
            "--scopes",
            "system/Patient.rs",
        ][..],
    ] {
        let refused = admin(args);
        assert!(!refused.status.success(), "{args:?}");
    }
    let listed = stdout(&admin(&["partner", "list"]));
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("St. Elsewhere EHR") && l.contains("active")),
        "{listed}"
    );
    assert!(listed.contains("2026-01"), "key ids are listed: {listed}");
    let rotated = admin(&[
        "partner",
        "rotate",
        &id,
        "--jwks-url",
        "https://ehr.example/jwks.json",
    ]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    assert!(stdout(&admin(&["partner", "list"])).contains("https://ehr.example/jwks.json"));
    let disabled = admin(&["partner", "disable", &id]);
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    assert!(stdout(&admin(&["partner", "list"])).contains("disabled"));
    let again = admin(&["partner", "disable", &id]);
    assert_eq!(again.status.code(), Some(1));
    stop(server);
}
