//! Interop: npm `jose` and `dpop` (panva), which nobody here wrote, against a running node.
//! See interop/check.mjs. Needs `npm ci --prefix interop` (the test command runs it).

use std::path::PathBuf;
use std::process::Command;

use crate::common::{MEASUREMENT, Stack, VERSION};

fn interop_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    if dir.join("node_modules/jose").is_dir() && dir.join("node_modules/dpop").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("MEDGATE_CI").is_none(),
        "interop/node_modules is missing; the test command installs it with `npm ci --prefix interop`"
    );
    eprintln!("skipped: interop needs `npm ci --prefix interop` (and Node.js)");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_jose_and_dpop_libraries_interoperate() {
    let Some(dir) = interop_dir() else { return };
    // Node's clock is the system clock, as is this stack's (the manual clock starts at now).
    let stack = Stack::start().await;
    // The script's installation is of an app whose tokens may fetch a sealed secret.
    const INTEROP_APP: &str = "org.example.interop";
    const SECRET: &str = "value-only-the-installation-opens";
    stack
        .app_with_secret(INTEROP_APP, "upstream_key", SECRET)
        .await;
    let node = &stack.node;
    let output = tokio::process::Command::from({
        let mut command = Command::new("node");
        command
            .arg(dir.join("check.mjs"))
            .env("MEDGATE_SERVER", node.server_url())
            .env("MEDGATE_GATEWAY", node.public_url())
            .env("MEDGATE_ISSUER", node.issuer())
            .env("MEDGATE_APP_ID", INTEROP_APP)
            .env("MEDGATE_SECRET_NAME", "upstream_key")
            .env("MEDGATE_SECRET_VALUE", SECRET)
            .env("MEDGATE_APP_VERSION", VERSION)
            .env("MEDGATE_MEASUREMENT", MEASUREMENT);
        command
    })
    .output()
    .await
    .expect("node runs");
    let checks = crate::common::json_lines(&output);
    assert!(checks.len() >= 15, "the script stopped early");
    for check in &checks {
        assert_eq!(check["ok"], true, "{check}");
    }
    assert!(output.status.success());
}
