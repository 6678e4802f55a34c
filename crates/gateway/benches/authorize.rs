//! The gateway's per-request check, side by side in one run (compare ratios, not absolute
//! times: the machine is shared).
//!
//! - `token_verify`: one access token signature and claims check (what the cache saves).
//! - `proof_verify_bound`: one DPoP proof checked against an already verified token.
//! - `authorize/cached_token`: the full `Gateway::authorize` for a token seen before — the
//!   steady state: proof signature, replay cache, route, scopes, rate limit.
//! - `authorize/new_token`: the same for a token the gateway has not seen yet.
//!
//! Then, not through criterion, `Gateway::admit` (all nine steps) for the same pre-made
//! requests one after another, with only the gateway's own replay cache and limits, and with
//! Redis (`MEDGATE_BENCH_REDIS`, default `redis://127.0.0.1:6379`, over TCP as in production)
//! making them cluster-wide: wall time, the gateway thread's own CPU time
//! (`/proc/thread-self/schedstat`) and Redis's (`INFO cpu`), per request, side by side.
//!
//! Run: `cargo bench -p medgate-gateway --bench authorize`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group};
use http::Request;
use http::request::Parts;
use medgate_gateway::routes::{Route, RouteConfig};
use medgate_gateway::{Gateway, GatewayParams};
use medgate_proto::Alg;
use medgate_sdk::evidence::{AppIdentity, sdk_evidence};
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::dpop_proof;
use medgate_service::audit::AuditSink;
use medgate_service::metrics::Metrics;
use medgate_service::ratelimit::RateLimit;
use medgate_service::shared::{SharedParams, SharedState};
use medgate_service::{Clock, SystemClock};
use medgate_store::seal::Sealer;
use medgate_store::sqlite::SqliteStore;
use medgate_store::{NewAuditEntry, SigningKeyRecord, Store};
use medgate_verify::dpop::{self, ProofPolicy, RequestTarget};
use medgate_verify::evidence::{self, EvidenceLimits};
use medgate_verify::keys::{KeySet, TokenSigningKey};
use medgate_verify::platform::PlatformOutcome;
use medgate_verify::policy::{
    AppPolicy, ConsumedChallenge, FreshChallenge, InstallationCheck, ReleaseCheck, Verdict, decide,
};
use medgate_verify::time::IatWindow;
use medgate_verify::token::{self, IssueParams, TokenExpectations};

const PUBLIC_URL: &str = "https://api.example";
const ISSUER: &str = "https://attest.example";
const PATH: &str = "/api/v1/entries.json";

struct Bench {
    gateway: Gateway,
    signing: TokenSigningKey,
    keys: KeySet,
    installation: InstallationKey,
    _dir: tempfile::TempDir,
}

impl Bench {
    fn new() -> Bench {
        Self::with(
            None,
            RateLimit {
                per_second: 0,
                burst: 0,
            },
        )
    }

    fn with(shared: Option<SharedState>, limit: RateLimit) -> Bench {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (signing, pkcs8) = TokenSigningKey::generate().unwrap();
        let now = SystemClock.now();
        let record = SigningKeyRecord {
            kid: signing.kid().to_string(),
            public_jwk: signing.public_jwk().clone(),
            sealed_private_key: Sealer::plain().seal(signing.kid(), &pkcs8).unwrap(),
            created_at: now,
            retired_at: None,
        };
        let entry = NewAuditEntry {
            at: now,
            kind: "keys.create".into(),
            actor: "bench".into(),
            subject: record.kid.clone(),
            detail: serde_json::json!({}),
        };
        runtime
            .block_on(store.rotate_signing_key(&record, &entry))
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (audit, _writer) =
            AuditSink::new(Arc::clone(&store), Arc::clone(&clock), Arc::clone(&metrics));
        let route = Route::compile(&RouteConfig::new(
            "/api/v1/entries*",
            &["GET"],
            &["entries:read"],
        ))
        .unwrap();
        let gateway = Gateway::new(
            GatewayParams {
                public_url: PUBLIC_URL.into(),
                issuer: ISSUER.into(),
                audience: PUBLIC_URL.into(),
                upstream: None,
                upstream_tls: medgate_service::tls::no_trust_client_config().unwrap(),
                routes: vec![route],
                rate_limit: limit,
                address_rate_limit: limit,
                proof: ProofPolicy {
                    window: IatWindow {
                        max_age_secs: 60,
                        max_skew_secs: 5,
                    },
                    algs: vec![Alg::Es256],
                },
                token_leeway_secs: 5,
                token_cache_capacity: 100_000,
                replay_capacity: 10_000_000,
                replay_share: 10_000_000,
                upstream_timeout: Duration::from_secs(30),
                key_retention_secs: 360,
                connections: medgate_service::listen::ConnectionLimits::default(),
                max_signed_body: 1024 * 1024,
                strip: Default::default(),
                session_secret: None,
                credentials: None,
                partners: None,
            },
            medgate_store::seal::Sealer::plain(),
            clock,
            metrics,
            audit,
            shared,
        );
        runtime.block_on(gateway.refresh(&*store)).unwrap();
        let keys = KeySet::new([(signing.kid().to_string(), signing.public_jwk().clone())]);
        Bench {
            gateway,
            signing,
            keys,
            installation: InstallationKey::generate().unwrap(),
            _dir: dir,
        }
    }

    fn token(&self) -> String {
        let now = SystemClock.now();
        let app = AppIdentity {
            app_id: "org.example.cgm".into(),
            app_version: "1.0.0".into(),
            binary_sha256: "ab".repeat(32),
        };
        let evidence =
            sdk_evidence(&self.installation, &app, "challenge", vec![], now.secs()).unwrap();
        let verified = evidence::verify(&evidence, &EvidenceLimits::default(), now).unwrap();
        let consumed = ConsumedChallenge {
            app_id: "org.example.cgm",
            expires_at: now.plus(60),
        };
        let fresh = FreshChallenge::check(Some(consumed), &verified, now).unwrap();
        let policy = AppPolicy {
            scopes: vec!["entries:read".into()],
            limited_scopes: vec![],
            reject_on: Default::default(),
            degrade_on: Default::default(),
            sdk_evidence: medgate_verify::policy::SdkEvidence::Allow,
            require_coverage: false,
        };
        let Verdict::Granted(grant) = decide(
            &verified,
            &fresh,
            Some(&policy),
            ReleaseCheck::Matched,
            InstallationCheck::New,
            &PlatformOutcome::sdk(),
        ) else {
            panic!("granted")
        };
        let jti = next_jti();
        let params = IssueParams {
            issuer: ISSUER,
            audience: PUBLIC_URL,
            ttl_secs: 300,
            jti: &jti,
        };
        token::issue(&grant, &self.signing, &params, now)
            .unwrap()
            .token
            .into_inner()
    }

    fn request(&self, token: &str) -> Parts {
        let proof = dpop_proof(
            &self.installation,
            "GET",
            &format!("{PUBLIC_URL}{PATH}"),
            Some(token),
            SystemClock.now().secs(),
        )
        .unwrap();
        let request = Request::get(PATH)
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(())
            .unwrap();
        request.into_parts().0
    }
}

/// Token ids only need to be distinct.
fn next_jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("bench-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn per_request(c: &mut Criterion) {
    let bench = Bench::new();
    let now = || SystemClock.now();
    let token = bench.token();
    let expect = TokenExpectations {
        issuer: ISSUER,
        audience: PUBLIC_URL,
        leeway_secs: 5,
    };
    let verified = token::verify(&token, &bench.keys, &expect, now()).unwrap();
    let uri = dpop::target_uri(PUBLIC_URL, PATH).unwrap();
    let policy = ProofPolicy {
        algs: vec![Alg::Es256],
        ..ProofPolicy::default()
    };

    let mut group = c.benchmark_group("per_request");
    group.bench_function("token_verify", |b| {
        b.iter(|| token::verify(&token, &bench.keys, &expect, now()).unwrap());
    });
    let proof = dpop_proof(&bench.installation, "GET", &uri, Some(&token), now().secs()).unwrap();
    group.bench_function("proof_verify_bound", |b| {
        b.iter(|| {
            let target = RequestTarget {
                method: "GET",
                uri: &uri,
            };
            dpop::verify_bound(&proof, &verified, target, &policy, now()).unwrap();
        });
    });
    // Warm the cache with this token, then measure fresh proofs against it.
    bench
        .gateway
        .authorize(&bench.request(&token), now())
        .unwrap();
    group.bench_function("authorize/cached_token", |b| {
        b.iter_batched(
            || bench.request(&token),
            |parts| bench.gateway.authorize(&parts, now()).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("authorize/new_token", |b| {
        b.iter_batched(
            || bench.request(&bench.token()),
            |parts| bench.gateway.authorize(&parts, now()).unwrap(),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, per_request);

/// This thread's CPU time so far (the first field of `/proc/thread-self/schedstat`, in ns).
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    Duration::from_nanos(text.split_whitespace().next().unwrap().parse().unwrap())
}

/// Redis's own CPU time so far (`used_cpu_sys` + `used_cpu_user`, from `INFO cpu`).
fn redis_cpu(runtime: &tokio::runtime::Runtime, client: &redis::Client) -> Duration {
    let info: String = runtime.block_on(async {
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("INFO")
            .arg("cpu")
            .query_async(&mut connection)
            .await
            .unwrap()
    });
    let secs: f64 = info
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user").then(|| value.parse::<f64>().ok())?
        })
        .sum();
    Duration::from_secs_f64(secs)
}

/// `Gateway::admit` without and with Redis, on one thread, for the same number of requests.
fn shared_state_side_by_side() {
    const REQUESTS: usize = 5_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("MEDGATE_BENCH_REDIS").unwrap_or("redis://127.0.0.1:6379".into());
    let params = SharedParams {
        url: url.clone(),
        prefix: format!("medgate-bench-{}:", std::process::id()),
        timeout: Duration::from_secs(1),
    };
    let Ok(shared) = runtime.block_on(SharedState::connect(params)) else {
        println!("shared_state: no Redis at {url}; skipped");
        return;
    };
    let client = redis::Client::open(url.as_str()).unwrap();
    // Limits on (so the cells are computed and written), high enough never to refuse.
    let limit = RateLimit {
        per_second: 1_000_000,
        burst: 1_000_000,
    };
    let address = IpAddr::V4(Ipv4Addr::LOCALHOST);
    println!("\nGateway::admit, {REQUESTS} requests one after another (cached token):");
    println!(
        "{:<30} {:>10} {:>14} {:>14}",
        "", "wall µs", "gateway CPU µs", "Redis CPU µs"
    );
    let off = RateLimit {
        per_second: 0,
        burst: 0,
    };
    let rows = [
        ("local replay cache, limits", None, limit),
        ("+ Redis SET NX", Some(shared.clone()), off),
        ("+ Redis SET NX, 2 GCRA cells", Some(shared), limit),
    ];
    for (name, shared, limit) in rows {
        let with_redis = shared.is_some();
        let bench = Bench::with(shared, limit);
        let token = bench.token();
        let requests: Vec<Parts> = (0..REQUESTS).map(|_| bench.request(&token)).collect();
        let now = SystemClock.now();
        runtime
            .block_on(bench.gateway.admit(&bench.request(&token), address, now))
            .unwrap();
        let (redis_before, cpu_before, started) =
            (redis_cpu(&runtime, &client), thread_cpu(), Instant::now());
        for parts in &requests {
            runtime
                .block_on(bench.gateway.admit(parts, address, now))
                .unwrap();
        }
        let (wall, cpu) = (started.elapsed(), thread_cpu() - cpu_before);
        let redis = redis_cpu(&runtime, &client) - redis_before;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / REQUESTS as f64;
        let redis = if with_redis {
            format!("{:.1}", per(redis))
        } else {
            "-".into()
        };
        println!(
            "{name:<30} {:>10.1} {:>14.1} {redis:>14}",
            per(wall),
            per(cpu)
        );
    }
}

fn main() {
    benches();
    shared_state_side_by_side();
    Criterion::default().configure_from_args().final_summary();
}
