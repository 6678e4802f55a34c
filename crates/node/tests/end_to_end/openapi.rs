//! The admin API's OpenAPI document: served by the node, naming exactly the operations the
//! router serves, and judged by Schemathesis (PyPI, interop/openapi), which generates requests
//! from the document (valid and invalid) and checks every answer against it.

use std::path::Path;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, StatusCode};

use crate::common::Stack;

/// A documented path with each `{parameter}` filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        out.push('x');
        rest = rest[start..].split_once('}').map_or("", |(_, after)| after);
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_document_names_every_operation_the_node_serves_and_no_other() {
    let stack = Stack::start().await;
    let admin = format!("{}/v1/admin", stack.node.admin_url());
    // Served without the token: it describes the API and grants nothing.
    let reply = stack
        .raw(
            Method::GET,
            &format!("{admin}/openapi.json"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.header("content-type").unwrap(), "application/json");
    let document = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document["servers"][0]["url"], "/v1/admin");
    assert_eq!(
        document["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    // Every documented operation is routed: without the token it is refused as unauthorised,
    // not unknown (404) or of another method (405).
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let verb = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let url = format!("{admin}{}", concrete(path));
            let reply = stack
                .raw(verb.clone(), &url, HeaderMap::new(), Bytes::new())
                .await;
            assert_eq!(
                reply.0.status,
                StatusCode::UNAUTHORIZED,
                "{verb} {path} is documented but not served"
            );
            operations.push(format!("{verb} {path}"));
        }
    }
    // The router is built from the documented handlers (utoipa-axum), so nothing is served
    // that the document does not name; the count changes with the API, on purpose.
    assert_eq!(operations.len(), 40, "{operations:#?}");
    for refused in ["/apps/x/nothing", "/keys/x"] {
        let reply = stack
            .raw(
                Method::GET,
                &format!("{admin}{refused}"),
                HeaderMap::new(),
                Bytes::new(),
            )
            .await;
        assert_eq!(reply.0.status, StatusCode::NOT_FOUND, "{refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_admin_api_as_its_document_says() {
    let Some(st) = medgate_testkit::tool(
        "MEDGATE_SCHEMATHESIS",
        "scripts/venv openapi interop/openapi/requirements.txt",
    ) else {
        return;
    };
    let stack = Stack::start().await;
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop/openapi/schemathesis.toml");
    // Schemathesis keeps a cache where it runs: a folder of this test's own.
    let scratch = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/v1/admin/openapi.json", stack.node.admin_url()))
        .env("MEDGATE_ADMIN_TOKEN", stack.node.admin_token().unwrap())
        .env("NO_COLOR", "1")
        .current_dir(scratch.path())
        .output()
        .await
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found the API at odds with its document:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // It ran: every operation, and a summary with no failure.
    assert!(stdout.contains("Tested: 40"), "{stdout}");
    assert!(stdout.contains(" passed"), "{stdout}");
}

/// The telemetry series after a workload of genuine and hostile clients: counted per minute
/// as they happen, handed to the store once the minute is over, and read per period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_and_gateway_outcomes_reach_the_telemetry_series() {
    let stack = Stack::start().await;
    let (start, _) = stack.mixed_minute().await;
    let counts = stack.stored_minute(start).await;
    let rows: Vec<(String, String, String, String, u64)> = counts
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            assert_eq!(row["at"], start, "{row}");
            (
                row["series"].as_str().unwrap().into(),
                row["outcome"].as_str().unwrap().into(),
                row["reason"].as_str().unwrap().into(),
                row["platform"].as_str().unwrap().into(),
                row["count"].as_u64().unwrap(),
            )
        })
        .collect();
    let row = |series: &str, outcome: &str, reason: &str, platform: &str, count: u64| {
        (
            series.into(),
            outcome.into(),
            reason.into(),
            platform.into(),
            count,
        )
    };
    // The Stack's app trusts SDK evidence fully and degrades on root.
    assert_eq!(
        rows,
        [
            row("attestation", "allow", "", "sdk", 1),
            row("attestation", "allow_limited", "root_detected", "sdk", 1),
            row("attestation", "reject", "hook_detected", "sdk", 1),
            row("gateway", "forwarded", "", "", 3),
            row("gateway", "missing_token", "", "", 1),
        ]
    );
    // Bad ranges are refused, not clamped.
    for bad in [
        format!("?from={start}&to={start}"),
        format!("?from={start}&to={}&step=90", start + 600),
        format!("?from=0&to={}&step=60", 1441 * 60),
        format!("?from=0&to={}&step=60", 1440 * 60 + 59),
        // Over 48 hours, only whole hours.
        format!("?from=0&to={}&step=1800", 49 * 3600),
        format!("?from=60&to={}&step=3600", 72 * 3600 + 60),
    ] {
        stack
            .admin(
                Method::GET,
                &format!("/v1/admin/telemetry{bad}"),
                serde_json::Value::Null,
            )
            .await
            .assert_status(StatusCode::BAD_REQUEST);
    }
    stack
        .admin(
            Method::GET,
            &format!("/v1/admin/telemetry?from=0&to={}&step=3600", 72 * 3600),
            serde_json::Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
}
