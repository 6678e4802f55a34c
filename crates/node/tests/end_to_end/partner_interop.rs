//! Partner backends with OAuth clients nobody here wrote (interop/partner): Authlib (PyPI)
//! with its `private_key_jwt` client authentication, Bearer; openid-client (npm, panva) with
//! its own `private_key_jwt`, discovery and DPoP. Each gets a token from the node's token
//! endpoint and reads through the gateway; what a node must refuse of them, it refuses.

use std::path::{Path, PathBuf};
use std::process::Command;

use medgate_service::clock::{Clock, SystemClock};
use medgate_verify::UnixTime;

use crate::common::Stack;
use crate::partners::{partner_config, register, token_endpoint};

const SCOPE: &str = "system/Observation.rs";
const PATH: &str = "/fhir/Observation/echo";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

/// The scripts run on the system clock; the stack's manual clock is put a little ahead of it
/// (within the leeway) so that what they sign is neither stale nor from the future.
fn catch_up(stack: &Stack) {
    stack
        .clock
        .set(UnixTime::from_secs(SystemClock.now().secs() + 2));
}

/// What the sample upstream echoed, as a judge reports it (JSON, or its text).
fn echoed(body: &serde_json::Value) -> serde_json::Value {
    match body.as_str() {
        Some(text) => serde_json::from_str(text).unwrap(),
        None => body.clone(),
    }
}

/// Runs a judge; its last line of JSON.
async fn judge(command: Command) -> serde_json::Value {
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .expect("the judge runs");
    let lines = crate::common::json_lines(&output);
    lines.last().cloned().unwrap_or_else(|| {
        panic!(
            "no JSON from the judge; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlibs_private_key_jwt_client_gets_a_token_and_reads_through_the_gateway() {
    let Some(python) = medgate_testkit::tool(
        "MEDGATE_PARTNER_PYTHON",
        "scripts/venv partner interop/partner/requirements.txt",
    ) else {
        return;
    };
    let script = interop_dir().join("partner/authlib_client.py");
    let stack = Stack::start_with(partner_config).await;
    let endpoint = token_endpoint(&stack).await;
    for alg in ["RS384", "ES384", "ES256"] {
        let dir = tempfile::tempdir().unwrap();
        let (jwks, key) = (dir.path().join("jwks.json"), dir.path().join("key.pem"));
        let mut keygen = Command::new(&python);
        keygen
            .arg(&script)
            .args(["keygen", "--alg", alg, "--out-jwks"])
            .arg(&jwks)
            .arg("--out-key")
            .arg(&key);
        let made = judge(keygen).await;
        let kid = made["kid"].as_str().unwrap().to_string();
        let id = register(
            &stack,
            serde_json::json!({"name": format!("Authlib {alg}"), "jwks": made["jwks"],
                "scopes": [SCOPE]}),
        )
        .await;
        let fetch = |extra: &[&str]| {
            let mut command = Command::new(&python);
            command
                .arg(&script)
                .args(["fetch", "--token-endpoint", &endpoint, "--client-id", &id])
                .arg("--key")
                .arg(&key)
                // `--kid=…`: a thumbprint may start with `-`, which argparse would take for an
                // option.
                .args([&format!("--kid={kid}"), "--alg", alg, "--scope", SCOPE])
                .args(["--get", &stack.gateway_url(PATH)])
                .args(extra);
            command
        };
        catch_up(&stack);
        let answer = judge(fetch(&[])).await;
        assert_eq!(answer["token_status"], 200, "{alg}: {answer}");
        assert_eq!(answer["token_type"], "Bearer", "{alg}: {answer}");
        assert_eq!(answer["scope"], SCOPE);
        assert_eq!(answer["get_status"], 200, "{alg}: {answer}");
        let seen = echoed(&answer["get_body"]);
        assert_eq!(seen["headers"]["x-medgate-partner"], id.as_str());
        // Refused: an assertion for another audience, and one living Authlib's default hour
        // (SMART allows five minutes).
        for extra in [
            &["--expect-error", "--aud", "https://elsewhere.example/token"][..],
            &["--expect-error", "--lifetime", "3600"][..],
        ] {
            catch_up(&stack);
            let refused = judge(fetch(extra)).await;
            assert_eq!(
                refused["error"], "invalid_client",
                "{alg} {extra:?}: {refused}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_discovers_the_server_and_reads_with_and_without_dpop() {
    let dir = interop_dir();
    if !dir.join("node_modules/openid-client").is_dir() {
        assert!(
            std::env::var_os("MEDGATE_CI").is_none(),
            "interop/node_modules is missing; the test command installs it with `npm ci --prefix interop`"
        );
        eprintln!("skipped: partner interop needs `npm ci --prefix interop` (and Node.js)");
        return;
    }
    let script = dir.join("partner/openid_client.mjs");
    let stack = Stack::start_with(partner_config).await;
    token_endpoint(&stack).await;
    let keys = tempfile::tempdir().unwrap();
    let (private, public) = (
        keys.path().join("private.json"),
        keys.path().join("jwks.json"),
    );
    let mut keygen = Command::new("node");
    keygen
        .arg(&script)
        .args(["keygen", "--alg", "ES384", "--out-private"])
        .arg(&private)
        .arg("--out-jwks")
        .arg(&public);
    let made = judge(keygen).await;
    for (name, require_dpop) in [("openid-client", false), ("openid-client DPoP", true)] {
        let id = register(
            &stack,
            serde_json::json!({"name": name, "jwks": made["jwks"], "scopes": [SCOPE],
                "require_dpop": require_dpop}),
        )
        .await;
        let run = |extra: &[&str]| {
            let mut command = Command::new("node");
            command
                .arg(&script)
                .args(["--issuer", stack.node.issuer(), "--client-id", &id])
                .arg("--jwk")
                .arg(&private)
                .args(["--scope", SCOPE, "--get", &stack.gateway_url(PATH)])
                .args(extra);
            command
        };
        // With a DPoP key (bound: the proof goes with the token request and every read).
        catch_up(&stack);
        let answer = judge(run(&["--dpop"])).await;
        assert_eq!(answer["token_type"], "dpop", "{name}: {answer}");
        assert_eq!(answer["get_status"], 200, "{name}: {answer}");
        let seen = echoed(&answer["get_body"]);
        assert_eq!(seen["headers"]["x-medgate-partner"], id.as_str());
        // Without one: a Bearer token, unless the partner must use DPoP.
        catch_up(&stack);
        if require_dpop {
            let refused = judge(run(&["--expect-error"])).await;
            assert_eq!(refused["error"], "invalid_request", "{name}: {refused}");
        } else {
            let answer = judge(run(&[])).await;
            assert_eq!(answer["token_type"], "bearer", "{name}: {answer}");
            assert_eq!(answer["get_status"], 200, "{name}: {answer}");
        }
    }
}
