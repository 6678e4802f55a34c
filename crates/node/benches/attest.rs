//! Attestation throughput on each store, side by side in one run: a whole node (SQLite in a
//! temporary folder, then PostgreSQL on a fresh database of `MEDGATE_TEST_POSTGRES`), its
//! control plane called in-process (no sockets, no client in the measured CPU), SDK evidence
//! for challenges fetched and signed beforehand. Prints, per backend, the process's CPU time
//! per attestation (`/proc/self/stat`: every thread, the store's included) and what that makes
//! per core-second, and the wall time with `CONCURRENCY` attestations in flight.
//!
//! Run: `cargo bench -p medgate-node --bench attest` (`MEDGATE_BENCH_ATTESTATIONS`, default
//! 2000). To profile only the measured phase, start `perf record` disabled with a control FIFO
//! and name it in `MEDGATE_BENCH_PERF_CTL`: the bench writes `enable` and `disable` to it around
//! each measurement, e.g.
//! `mkfifo ctl; MEDGATE_BENCH_PERF_CTL=ctl perf record -g -D -1 --control fifo:ctl -- BENCH`.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use medgate_node::config::Config;
use medgate_node::{Node, NodeOptions};
use medgate_proto::wire::MEDIA_JOSE;
use medgate_sdk::evidence::{AppIdentity, sdk_evidence};
use medgate_sdk::key::InstallationKey;
use medgate_service::Clock;
use medgate_service::ratelimit::RateLimit;
use tower::ServiceExt;

const APP: &str = "org.example.cgm";
const CONCURRENCY: usize = 8;

/// User plus system CPU of this process so far (`/proc/self/stat` fields 14 and 15, in clock
/// ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|field| field.parse().unwrap())
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

async fn call(
    router: &axum::Router,
    method: Method,
    path: &str,
    body: Bytes,
    kind: &str,
) -> (StatusCode, Bytes) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", kind)
        .body(axum::body::Body::from(body))
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    (
        status,
        response.into_body().collect().await.unwrap().to_bytes(),
    )
}

async fn admin(node: &Node, path: &str, body: serde_json::Value) {
    let token = node.admin_token().unwrap();
    let request = Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let response = node.server().admin_router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{path}");
}

/// Tells a `perf record --control fifo:…` started with `-D -1` to start or stop sampling.
fn perf_control(command: &str) {
    if let Some(fifo) = std::env::var_os("MEDGATE_BENCH_PERF_CTL") {
        std::fs::write(fifo, format!("{command}\n")).unwrap();
    }
}

/// CPU and wall time per attestation on the node `customize` configures.
async fn measure(name: &str, count: usize, customize: impl FnOnce(&mut Config)) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.gateway.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.path().join("data");
    config.server.client_rate_limit = RateLimit {
        per_second: 0,
        burst: 0,
    };
    customize(&mut config);
    let node = Node::start(config, NodeOptions::default()).await.unwrap();
    let measurement = "ab".repeat(32);
    admin(
        &node,
        "/v1/admin/apps",
        serde_json::json!({"app_id": APP, "scopes": ["entries:read"], "sdk_evidence": "allow"}),
    )
    .await;
    admin(
        &node,
        &format!("/v1/admin/apps/{APP}/releases"),
        serde_json::json!({"version": "1.0.0", "sdk_binary_sha256": measurement}),
    )
    .await;
    let router = node.server().router();
    let app = AppIdentity {
        app_id: APP.into(),
        app_version: "1.0.0".into(),
        binary_sha256: measurement,
    };
    let now = medgate_service::SystemClock.now().secs();
    let mut evidences = Vec::with_capacity(count);
    for _ in 0..count {
        let body = Bytes::from(serde_json::json!({"app_id": APP}).to_string());
        let (status, answer) = call(
            &router,
            Method::POST,
            "/v1/challenge",
            body,
            "application/json",
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        let challenge: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        let key = InstallationKey::generate().unwrap();
        let challenge = challenge["challenge"].as_str().unwrap();
        evidences.push(Bytes::from(
            sdk_evidence(&key, &app, challenge, vec![], now).unwrap(),
        ));
    }
    let evidences = Arc::new(tokio::sync::Mutex::new(evidences));
    perf_control("enable");
    let (cpu_before, started) = (process_cpu(), Instant::now());
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (router, evidences) = (router.clone(), Arc::clone(&evidences));
        workers.push(tokio::spawn(async move {
            loop {
                let Some(evidence) = evidences.lock().await.pop() else {
                    return;
                };
                let (status, _) =
                    call(&router, Method::POST, "/v1/attest", evidence, MEDIA_JOSE).await;
                assert_eq!(status, StatusCode::OK);
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let (wall, cpu) = (started.elapsed(), process_cpu() - cpu_before);
    perf_control("disable");
    let per = |d: Duration| d.as_secs_f64() * 1e6 / count as f64;
    println!(
        "{name:<12} {:>14.0} {:>22.0} {:>12.0}",
        per(cpu),
        count as f64 / cpu.as_secs_f64(),
        per(wall)
    );
    node.shutdown(Duration::from_secs(5)).await;
}

fn main() {
    let count = std::env::var("MEDGATE_BENCH_ATTESTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("{count} SDK-evidence attestations, {CONCURRENCY} in flight:");
        println!(
            "{:<12} {:>14} {:>22} {:>12}",
            "store", "CPU µs each", "per core-second", "wall µs"
        );
        measure("SQLite", count, |_| {}).await;
        match medgate_store::postgres::testing::fresh().await {
            Some((_store, database)) => {
                let url = database.url();
                measure("PostgreSQL", count, |config| config.store.url = Some(url)).await;
            }
            None => println!("PostgreSQL   skipped: no server"),
        }
    });
}
