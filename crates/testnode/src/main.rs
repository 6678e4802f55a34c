//! `medgate-testnode --config FILE`: the node `medgate serve` runs, from the same config
//! file, that also trusts a throw-away App Attest CA and Android attestation CA made at start.
//! A production node trusts only the roots compiled into medgate (`AttestationRoots::
//! production`); hardware evidence for a key the test holds can only be minted under roots
//! the test owns, so the binding tests drive hardware flows through this node.
//!
//! It prints one JSON line when it serves (`{"ready": true}`), then answers one JSON request
//! per stdin line with one JSON line, playing the platform's part:
//!
//! ```text
//! {"op":"android_chain","public_key":B64URL,"challenge":B64URL,"package":P,"signing_digest":HEX}
//!     -> {"certificate_chain":[B64URL…]}      leaf (the key, a KeyDescription) … root
//! {"op":"app_attest_key","app_id":"TEAM.bundle","client_data_hash":B64URL}
//!     -> {"key_id":B64URL,"attestation_object":B64URL}
//! {"op":"app_attest_assert","key_id":B64URL,"app_id":…,"client_data_hash":B64URL,"counter":N}
//!     -> {"assertion":B64URL}
//! ```
//!
//! A request it cannot serve gets `{"error": "..."}`. It stops at the end of stdin or on
//! SIGTERM.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use medgate_node::config::Config;
use medgate_node::{Node, NodeOptions};
use medgate_proto::b64;
use medgate_server::AttestationRoots;
use medgate_testkit::attestation::{
    AppleEnvironment, AppleKey, KeyDescription, TestAndroidCa, TestAppleCa,
};
use medgate_verify::x509::{Certificate, TrustAnchor};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The OS patch level minted chains claim (YYYYMM, far in the future so no policy finds it old).
const PATCH_LEVEL: i64 = 209912;
const MAX_FIELD: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    AndroidChain {
        public_key: String,
        challenge: String,
        package: String,
        signing_digest: String,
    },
    AppAttestKey {
        app_id: String,
        client_data_hash: String,
    },
    AppAttestAssert {
        key_id: String,
        app_id: String,
        client_data_hash: String,
        counter: u32,
    },
}

struct Platform {
    apple: TestAppleCa,
    android: TestAndroidCa,
    apple_keys: HashMap<Vec<u8>, AppleKey>,
}

impl Platform {
    fn answer(&mut self, request: Request) -> anyhow::Result<Value> {
        let bytes = |text: &str| b64::decode(text, MAX_FIELD).map_err(|_| anyhow!("not base64url"));
        Ok(match request {
            Request::AndroidChain {
                public_key,
                challenge,
                package,
                signing_digest,
            } => {
                let digest: [u8; 32] = medgate_proto::hex::decode(&signing_digest)
                    .and_then(|digest| digest.try_into().ok())
                    .context("signing_digest is 32 bytes of hex")?;
                let description =
                    KeyDescription::genuine(&bytes(&challenge)?, &package, digest, PATCH_LEVEL);
                let chain = self.android.chain(&bytes(&public_key)?, &description);
                json!({"certificate_chain": chain.iter().map(b64::encode).collect::<Vec<_>>()})
            }
            Request::AppAttestKey {
                app_id,
                client_data_hash,
            } => {
                let key = self.apple.attest(
                    &app_id,
                    &bytes(&client_data_hash)?,
                    AppleEnvironment::Production,
                );
                let answer = json!({
                    "key_id": b64::encode(key.key_id),
                    "attestation_object": b64::encode(&key.attestation_object),
                });
                self.apple_keys.insert(key.key_id.to_vec(), key);
                answer
            }
            Request::AppAttestAssert {
                key_id,
                app_id,
                client_data_hash,
                counter,
            } => {
                let key = self
                    .apple_keys
                    .get(&bytes(&key_id)?)
                    .context("no such App Attest key")?;
                json!({"assertion": b64::encode(key.assert(&app_id, &bytes(&client_data_hash)?, counter))})
            }
        })
    }
}

fn anchor(name: &str, der: &[u8]) -> anyhow::Result<TrustAnchor> {
    let certificate = Certificate::from_der(der, 0).map_err(|e| anyhow!("{name}: {e}"))?;
    Ok(TrustAnchor::from_certificate(name, &certificate))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config_path = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(path)) => PathBuf::from(path),
        _ => anyhow::bail!("usage: medgate-testnode --config FILE"),
    };
    let config = Config::load(&config_path)?;
    let mut platform = Platform {
        apple: TestAppleCa::new(),
        android: TestAndroidCa::new(),
        apple_keys: HashMap::new(),
    };
    let mut roots = AttestationRoots::production();
    roots
        .apple_roots
        .push(anchor("test App Attest CA", &platform.apple.root_der())?);
    roots.android_roots.hardware.push(anchor(
        "test Android attestation CA",
        &platform.android.root_der(),
    )?);
    let node = Node::start(
        config,
        NodeOptions {
            attestation_roots: roots,
            ..NodeOptions::default()
        },
    )
    .await?;

    let mut stdout = tokio::io::stdout();
    let mut write = async |value: Value| -> anyhow::Result<()> {
        stdout.write_all(format!("{value}\n").as_bytes()).await?;
        Ok(stdout.flush().await?)
    };
    write(json!({"ready": true, "server_url": node.server_url()})).await?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line?,
            _ = terminate.recv() => None,
        };
        let Some(line) = line else { break };
        let answer = serde_json::from_str::<Request>(&line)
            .map_err(|_| anyhow!("not a request this node knows"))
            .and_then(|request| platform.answer(request))
            .unwrap_or_else(|error| json!({"error": error.to_string()}));
        write(answer).await?;
    }
    node.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
