//! Faults under load, with real processes: two `medgate serve` replicas on one PostgreSQL and
//! one Redis of this test's own, behind one public gateway URL, and a bounded load generator
//! (four installations, each attesting at both control planes and sending reads and writes
//! through both gateways). Then, one after the other:
//!
//! 1. `kill -9` of replica A (its control plane and its gateway) — B keeps serving; A starts
//!    again on the same ports;
//! 2. PostgreSQL restarted — attestations fail cleanly (5xx, never a hang or a token without a
//!    record) while it is down, and succeed again after;
//! 3. Redis stopped — reads pass on the gateways' own replay caches, writes are refused with
//!    503 (the routes' defaults), and both pass again once it is back.
//!
//! Counted at the end, each must be zero: granted tokens whose decision is not in the audit
//! log, and acknowledged admin changes (revocations made during the faults) that are not in
//! it. The audit chain both replicas appended to verifies.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, StatusCode};
use medgate_node::sample_upstream::SampleUpstream;
use medgate_proto::b64;
use medgate_sdk::client::{ClientConfig, MedgateClient};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;
use medgate_store::AuditStore;
use medgate_store::postgres::{PostgresOptions, PostgresStore};
use medgate_testkit::postgres::PostgresServer;
use medgate_testkit::redis::RedisServer;

const APP: &str = "org.example.cgm";
const VERSION: &str = "1.0.0";
const PUBLIC_URL: &str = "http://gateway.medgate.test";
const ISSUER: &str = "http://medgate.test";

fn measurement() -> String {
    "ab".repeat(32)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `medgate serve` process and where it listens (fixed ports, so a restart keeps them).
struct Replica {
    config: PathBuf,
    server: u16,
    gateway: u16,
    admin: u16,
    child: Option<Child>,
}

impl Replica {
    fn new(dir: &Path, name: &str, store: &str, redis: &str, upstream: &str) -> Replica {
        let data = dir.join(name);
        let (server, gateway, admin) = (free_port(), free_port(), free_port());
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"[server]
listen = "127.0.0.1:{server}"
issuer = "{ISSUER}"
data_dir = "{data}"
client_rate_limit = {{ per_second = 0, burst = 0 }}
[admin]
listen = "127.0.0.1:{admin}"
[gateway]
listen = "127.0.0.1:{gateway}"
public_url = "{PUBLIC_URL}"
upstream = "{upstream}"
refresh_interval = "30s"
[[gateway.routes]]
path = "/api/v1/entries*"
methods = ["GET"]
scopes = ["entries:read"]
[[gateway.routes]]
path = "/api/v1/treatments"
methods = ["POST"]
scopes = ["entries:write"]
[store]
url = "{store}"
pool_size = 4
statement_timeout = "5s"
[redis]
url = "{redis}"
"#,
                data = data.display()
            ),
        )
        .unwrap();
        let mut replica = Replica {
            config,
            server,
            gateway,
            admin,
            child: None,
        };
        replica.start();
        replica
    }

    /// Starts the process and waits for it to print that every listener is up.
    fn start(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_medgate"))
            .env_remove("MEDGATE_MASTER_KEY")
            .env("MEDGATE_LOG", "warn")
            .arg("--config")
            .arg(&self.config)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert!(
            lines
                .by_ref()
                .map_while(Result::ok)
                .any(|line| line.starts_with("medgate admin API")),
            "medgate serve did not start"
        );
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush, what a crash or an OOM kill does.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn server_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server)
    }

    fn gateway_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway)
    }

    fn admin(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_medgate"))
            .env_remove("MEDGATE_SERVER")
            .arg("--config")
            .arg(&self.config)
            .args([
                "admin",
                "--server",
                &format!("http://127.0.0.1:{}", self.admin),
            ])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the load saw, per outcome.
#[derive(Default)]
struct Tally {
    /// `jti`s of granted tokens: each must have its decision in the audit log.
    granted: Mutex<HashSet<String>>,
    attest_failed: AtomicU64,
    reads_ok: AtomicU64,
    writes_ok: AtomicU64,
    writes_refused_503: AtomicU64,
    other: AtomicU64,
}

impl Tally {
    fn writes_ok(&self) -> u64 {
        self.writes_ok.load(Ordering::Relaxed)
    }
}

fn client(server_url: String, key: InstallationKey) -> MedgateClient {
    MedgateClient::new(
        ClientConfig {
            server_url,
            gateway_url: PUBLIC_URL.into(),
            app: AppIdentity {
                app_id: APP.into(),
                app_version: VERSION.into(),
                binary_sha256: measurement(),
            },
            refresh_margin_secs: 30,
        },
        key,
    )
}

fn token_jti(token: &str) -> String {
    let claims = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&b64::decode(claims, 8192).unwrap()).unwrap();
    claims["jti"].as_str().unwrap().to_string()
}

/// One installation: attests at `control` (one of the two control planes), then a read and a
/// write through each gateway, again and again until `stop`.
async fn installation(
    clients: [MedgateClient; 2],
    gateways: [String; 2],
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let client = &clients[round % 2];
        match client.attest().await {
            Ok(_) => {
                let token = client.access_token().await.unwrap();
                tally
                    .granted
                    .lock()
                    .unwrap()
                    .insert(token_jti(token.expose()));
            }
            Err(_) => {
                tally.attest_failed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        for gateway in &gateways {
            for (method, path) in [
                (Method::GET, "/api/v1/entries.json"),
                (Method::POST, "/api/v1/treatments"),
            ] {
                let headers = client.request_headers(method.as_str(), path).await.unwrap();
                let map = headers.to_header_map();
                let body = if method == Method::POST {
                    Bytes::from_static(b"{\"carbs\":12}")
                } else {
                    Bytes::new()
                };
                let url = format!("{gateway}{path}");
                let counter = match client.send_raw(method.clone(), &url, map, body).await {
                    Ok(reply) if reply.status.is_success() && method == Method::GET => {
                        &tally.reads_ok
                    }
                    Ok(reply) if reply.status.is_success() => &tally.writes_ok,
                    Ok(reply)
                        if reply.status == StatusCode::SERVICE_UNAVAILABLE
                            && method == Method::POST =>
                    {
                        &tally.writes_refused_503
                    }
                    _ => &tally.other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Polls `condition` (every 50 ms) for up to `secs`.
async fn until(secs: u64, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !condition() {
        assert!(Instant::now() < deadline, "not within {secs} s: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_lose_nothing_through_kills_and_restarts() {
    let Some(mut postgres) = tokio::task::spawn_blocking(|| PostgresServer::start(false))
        .await
        .unwrap()
    else {
        return;
    };
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let upstream = SampleUpstream::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store_url = postgres.url();
    let mut a = Replica::new(dir.path(), "a", &store_url, &redis.url(), &upstream.url());
    let measurement = measurement();
    for args in [
        vec![
            "app",
            "create",
            APP,
            "--sdk-evidence",
            "allow",
            "--scopes",
            "entries:read entries:write",
        ],
        vec![
            "release",
            "add",
            APP,
            "--version",
            VERSION,
            "--sdk-binary-sha256",
            &measurement,
        ],
    ] {
        let output = a.admin(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let b = Replica::new(dir.path(), "b", &store_url, &redis.url(), &upstream.url());

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    let mut installations = Vec::new();
    for n in 0..4 {
        let path = dir.path().join(format!("installation-{n}.jwk"));
        let key = || InstallationKey::load_or_create(&path).unwrap();
        installations.push(key().thumbprint().as_str().to_string());
        let clients = [client(a.server_url(), key()), client(b.server_url(), key())];
        let gateways = [a.gateway_url(""), b.gateway_url("")];
        load.push(tokio::spawn(installation(
            clients,
            gateways,
            Arc::clone(&tally),
            Arc::clone(&stop),
        )));
    }
    let granted = || tally.granted.lock().unwrap().len();
    until(30, "load running", || {
        granted() >= 8 && tally.writes_ok() >= 8
    })
    .await;

    // 1. kill -9 of replica A while it serves; B carries the load; A comes back.
    a.kill();
    let (before, writes) = (granted(), tally.writes_ok());
    until(30, "B serves alone", || {
        granted() >= before + 8 && tally.writes_ok() >= writes + 8
    })
    .await;
    // An admin change acknowledged by B while A is down.
    let revoked = &installations[3];
    let output = b.admin(&["installation", "revoke", revoked]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    a = tokio::task::spawn_blocking(move || {
        a.start();
        a
    })
    .await
    .unwrap();
    let before = granted();
    until(30, "A serves again", || granted() >= before + 8).await;

    // 2. PostgreSQL restarted under load.
    let failed = tally.attest_failed.load(Ordering::Relaxed);
    postgres = tokio::task::spawn_blocking(move || {
        postgres.restart();
        postgres
    })
    .await
    .unwrap();
    let before = granted();
    until(60, "attestations recover after the restart", || {
        granted() >= before + 8
    })
    .await;
    eprintln!(
        "attestations refused while PostgreSQL restarted: {}",
        tally.attest_failed.load(Ordering::Relaxed) - failed
    );

    // 3. Redis stopped: writes refused with 503, reads go on; then back.
    let (refused, reads) = (
        tally.writes_refused_503.load(Ordering::Relaxed),
        tally.reads_ok.load(Ordering::Relaxed),
    );
    redis.stop();
    until(30, "writes refused, reads served without Redis", || {
        tally.writes_refused_503.load(Ordering::Relaxed) >= refused + 4
            && tally.reads_ok.load(Ordering::Relaxed) >= reads + 4
    })
    .await;
    redis.restart();
    let writes = tally.writes_ok();
    until(30, "writes pass once Redis is back", || {
        tally.writes_ok() >= writes + 4
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    // What was lost: granted tokens and acknowledged admin changes without an audit entry.
    let store = PostgresStore::open(&PostgresOptions {
        url: postgres.url(),
        pool_size: 1,
        statement_timeout_ms: 30_000,
        ca: None,
    })
    .await
    .unwrap();
    let mut recorded = HashSet::new();
    let mut revocation_recorded = false;
    let mut after = 0;
    loop {
        let page = store.audit_entries(after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        for entry in &page {
            let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap();
            if let Some(jti) = detail["token_jti"].as_str() {
                recorded.insert(jti.to_string());
            }
            if entry.kind == "admin.installation.revoke" && entry.subject == *revoked {
                revocation_recorded = true;
            }
        }
    }
    let granted = tally.granted.lock().unwrap().clone();
    let lost: Vec<&String> = granted.difference(&recorded).collect();
    eprintln!(
        "granted {} tokens, {} without an audit entry; reads {}, writes {}, writes refused 503 {}, attestations failed {}, other {}",
        granted.len(),
        lost.len(),
        tally.reads_ok.load(Ordering::Relaxed),
        tally.writes_ok(),
        tally.writes_refused_503.load(Ordering::Relaxed),
        tally.attest_failed.load(Ordering::Relaxed),
        tally.other.load(Ordering::Relaxed),
    );
    assert!(lost.is_empty(), "grants lost: {}", lost.len());
    assert!(revocation_recorded, "the acknowledged revocation was lost");
    assert!(
        medgate_store::verify_audit_chain(&store)
            .await
            .unwrap()
            .is_ok(),
        "the audit chain forked or broke"
    );
    drop((a, b));
}
