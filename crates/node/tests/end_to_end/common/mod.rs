//! The harness for end-to-end tests: a node, a sample upstream and clients, all in-process on
//! loopback ports, on a manual clock shared by node and clients.

#![allow(dead_code)]

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_gateway::routes::RouteConfig;
use medgate_node::config::Config;
use medgate_node::sample_upstream::SampleUpstream;
use medgate_node::{Node, NodeOptions};
use medgate_proto::wire::Signal;
use medgate_sdk::client::{ClientConfig, HttpResponse, MedgateClient};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;
use medgate_server::AttestationRoots;
use medgate_service::ratelimit::RateLimit;
use medgate_service::{Clock, ManualClock};
use medgate_testkit::attestation::{TestAndroidCa, TestAppleCa};
use medgate_verify::x509::{Certificate, TrustAnchor};

pub const APP: &str = "org.example.cgm";
pub const VERSION: &str = "1.2.3";
pub const MEASUREMENT: &str = "5d5b09f6dcb2d53a5fffc60c4ac0d55fabdf556069d6631545f42aa6e3500f2e";

pub struct Stack {
    pub node: Node,
    pub upstream: SampleUpstream,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    /// Test CAs, trusted by this node only (shared with test attesters).
    pub apple_ca: Arc<TestAppleCa>,
    pub android_ca: Arc<TestAndroidCa>,
    /// A client used only for raw HTTP (admin calls, hostile requests).
    raw: MedgateClient,
}

pub fn test_config(dir: &std::path::Path, upstream: &str) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.data_dir = dir.join("data");
    config.server.client_rate_limit = RateLimit {
        per_second: 0,
        burst: 0,
    };
    config.gateway.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    config.gateway.upstream = Some(upstream.to_string());
    config.gateway.routes = vec![
        RouteConfig::new("/api/v1/entries*", &["GET"], &["entries:read"]),
        RouteConfig::new("/api/v1/treatments", &["POST"], &["entries:write"]),
        RouteConfig::new("/echo", &[], &["entries:read"]),
        RouteConfig::new("/stream", &[], &["entries:read"]),
        RouteConfig::new("/large", &["GET"], &["entries:read"]),
    ];
    config
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(customize: impl FnOnce(&mut Config)) -> Stack {
        Self::start_trusting(customize, true, &["entries:read", "entries:write"]).await
    }

    /// A node whose app [`APP`] grants `scopes` (its limited scopes: the first of them).
    pub async fn start_with_scopes(customize: impl FnOnce(&mut Config), scopes: &[&str]) -> Stack {
        Self::start_trusting(customize, true, scopes).await
    }

    /// A node that trusts only the roots medgate ships: no test CA.
    pub async fn start_with_production_roots() -> Stack {
        Self::start_trusting(|_| {}, false, &["entries:read", "entries:write"]).await
    }

    async fn start_trusting(
        customize: impl FnOnce(&mut Config),
        test_cas: bool,
        scopes: &[&str],
    ) -> Stack {
        let clock = Arc::new(ManualClock::starting_now());
        let apple_ca = Arc::new(TestAppleCa::new());
        let android_ca = Arc::new(TestAndroidCa::new());
        let stack = Self::boot(customize, test_cas, clock, apple_ca, android_ca).await;
        stack
            .admin(
                Method::POST,
                "/v1/admin/apps",
                serde_json::json!({
                    "app_id": APP,
                    "scopes": scopes,
                    "limited_scopes": &scopes[..1],
                    "sdk_evidence": "allow",
                }),
            )
            .await
            .assert_status(StatusCode::CREATED);
        stack
            .admin(
                Method::POST,
                &format!("/v1/admin/apps/{APP}/releases"),
                serde_json::json!({
                    "version": VERSION, "sdk_binary_sha256": MEASUREMENT,
                    "version_code": medgate_testkit::attestation::KeyDescription::VERSION_CODE,
                }),
            )
            .await
            .assert_status(StatusCode::CREATED);
        stack
    }

    /// An app `app_id` (release [`VERSION`], [`MEASUREMENT`]) whose tokens carry
    /// `secret:<name>`, full or limited, and its secret `name` set to `value`.
    pub async fn app_with_secret(&self, app_id: &str, name: &str, value: &str) {
        use base64::Engine as _;
        let scope = format!("secret:{name}");
        self.admin(
            Method::POST,
            "/v1/admin/apps",
            serde_json::json!({
                "app_id": app_id,
                "scopes": ["entries:read", scope],
                "limited_scopes": ["entries:read", scope],
                "sdk_evidence": "allow",
            }),
        )
        .await
        .assert_status(StatusCode::CREATED);
        self.admin(
            Method::POST,
            &format!("/v1/admin/apps/{app_id}/releases"),
            serde_json::json!({"version": VERSION, "sdk_binary_sha256": MEASUREMENT}),
        )
        .await
        .assert_status(StatusCode::CREATED);
        let value = base64::engine::general_purpose::STANDARD.encode(value);
        self.admin(
            Method::POST,
            &format!("/v1/admin/apps/{app_id}/secrets"),
            serde_json::json!({"name": name, "value": value}),
        )
        .await
        .assert_status(StatusCode::CREATED);
    }

    /// `Authorization` and a fresh `DPoP` proof of `client` for a GET of `url` (a control-plane
    /// URL: the SDK's own helpers make gateway URLs).
    pub async fn server_get_headers(&self, client: &MedgateClient, url: &str) -> HeaderMap {
        let token = client.access_token().await.unwrap();
        let proof = medgate_sdk::proof::dpop_proof(
            client.key(),
            "GET",
            url,
            Some(token.expose()),
            self.now(),
        )
        .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("DPoP {}", token.expose())).unwrap(),
        );
        headers.insert(
            HeaderName::from_static("dpop"),
            HeaderValue::from_str(&proof).unwrap(),
        );
        headers
    }

    /// Another node beside this one, on the same clock and test CAs, its own folder, ports and
    /// upstream; `customize` points it at the shared store. The app and release are this
    /// one's, already in that store.
    pub async fn replica(&self, customize: impl FnOnce(&mut Config)) -> Stack {
        Self::boot(
            customize,
            true,
            Arc::clone(&self.clock),
            Arc::clone(&self.apple_ca),
            Arc::clone(&self.android_ca),
        )
        .await
    }

    async fn boot(
        customize: impl FnOnce(&mut Config),
        test_cas: bool,
        clock: Arc<ManualClock>,
        apple_ca: Arc<TestAppleCa>,
        android_ca: Arc<TestAndroidCa>,
    ) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let upstream = SampleUpstream::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut config = test_config(dir.path(), &upstream.url());
        customize(&mut config);
        let mut roots = AttestationRoots::production();
        let anchor = |der: Vec<u8>| {
            TrustAnchor::from_certificate("test CA", &Certificate::from_der(&der, 0).unwrap())
        };
        if test_cas {
            roots.apple_roots.push(anchor(apple_ca.root_der()));
            roots
                .android_roots
                .hardware
                .push(anchor(android_ca.root_der()));
        }
        let options = NodeOptions {
            master_key: None,
            clock: clock.clone(),
            attestation_roots: roots,
        };
        let node = Node::start(config, options).await.unwrap();
        let raw = client_for(
            &node,
            &clock,
            InstallationKey::generate().unwrap(),
            VERSION,
            MEASUREMENT,
        );
        Stack {
            node,
            upstream,
            clock,
            dir,
            apple_ca,
            android_ca,
            raw,
        }
    }

    /// A genuine client of the registered release, with a fresh key.
    pub fn client(&self) -> MedgateClient {
        self.client_with(VERSION, MEASUREMENT)
    }

    pub fn client_with(&self, version: &str, measurement: &str) -> MedgateClient {
        client_for(
            &self.node,
            &self.clock,
            InstallationKey::generate().unwrap(),
            version,
            measurement,
        )
    }

    pub fn client_with_signals(&self, kinds: &[&str]) -> MedgateClient {
        let client = self.client();
        client.set_signals(
            kinds
                .iter()
                .map(|k| Signal {
                    kind: k.to_string(),
                    detail: "seen in test".into(),
                    confidence: None,
                })
                .collect(),
        );
        client
    }

    pub fn now(&self) -> i64 {
        self.clock.now().secs()
    }

    pub async fn admin(&self, method: Method, path: &str, body: serde_json::Value) -> Reply {
        let token = self.node.admin_token().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(body.to_string())
        };
        self.raw(
            method,
            &format!("{}{path}", self.node.admin_url()),
            headers,
            body,
        )
        .await
    }

    /// A request sent exactly as given.
    pub async fn raw(&self, method: Method, url: &str, headers: HeaderMap, body: Bytes) -> Reply {
        Reply(self.raw.send_raw(method, url, headers, body).await.unwrap())
    }

    /// Revokes an installation through the admin API.
    pub async fn revoke_installation(&self, id: &str) {
        let path = format!("/v1/admin/installations/{id}/revoke");
        self.admin(Method::POST, &path, serde_json::Value::Null)
            .await
            .assert_status(StatusCode::OK);
    }

    /// A plain GET to the control plane.
    pub async fn server_get(&self, path: &str) -> Reply {
        self.raw(
            Method::GET,
            &format!("{}{path}", self.node.server_url()),
            HeaderMap::new(),
            Bytes::new(),
        )
        .await
    }

    /// A gateway request with the given Authorization and DPoP values (either may be absent).
    pub async fn gateway(
        &self,
        method: Method,
        path: &str,
        authorization: Option<&str>,
        dpop: Option<&str>,
    ) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        if let Some(value) = dpop {
            headers.insert(
                HeaderName::from_static("dpop"),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        self.raw(
            method,
            &format!("{}{path}", self.node.public_url()),
            headers,
            Bytes::new(),
        )
        .await
    }

    pub fn gateway_url(&self, path: &str) -> String {
        format!("{}{path}", self.node.public_url())
    }

    /// An audit entry for a change an operator makes with a command-line tool (`medgate trust`).
    pub fn operator_entry(&self, kind: &str) -> medgate_store::NewAuditEntry {
        medgate_store::NewAuditEntry {
            at: self.clock.now(),
            kind: kind.into(),
            actor: "operator".into(),
            subject: "trust".into(),
            detail: serde_json::json!({}),
        }
    }

    /// `medgate trust init`: the TUF repository, its root key written to `offline`.
    pub async fn init_trust(&self, offline: &std::path::Path) {
        medgate_server::trust::init(
            &*self.node.store(),
            &medgate_store::seal::Sealer::plain(),
            &medgate_server::trust::OfflineRoot::new(offline),
            self.clock.now(),
            &self.operator_entry("trust.init"),
        )
        .await
        .unwrap();
    }

    /// Pins `pin` for the host pattern `host` through the admin API.
    pub async fn add_pin(&self, host: &str, pin: &str) -> Reply {
        self.admin(
            Method::POST,
            "/v1/admin/pins",
            serde_json::json!({"host": host, "spki_sha256": pin}),
        )
        .await
    }

    /// Publishes the pins as a new TUF release through the admin API.
    pub async fn publish_pins(&self) -> Reply {
        self.admin(
            Method::POST,
            "/v1/admin/trust/publish",
            serde_json::Value::Null,
        )
        .await
    }

    /// A minute of genuine and hostile clients, from a minute's start (so it is one period of
    /// the telemetry series): a genuine client attests and makes three requests, a hooked one
    /// is rejected, a rooted one limited, and one request comes without a token. The clock then
    /// moves past the minute. Returns the minute's start and the genuine client.
    pub async fn mixed_minute(&self) -> (i64, MedgateClient) {
        self.clock.advance(60 - self.now().rem_euclid(60));
        let start = self.now();
        let genuine = self.client();
        genuine.attest().await.unwrap();
        for _ in 0..3 {
            assert_eq!(genuine.get("/echo").await.unwrap().status, StatusCode::OK);
        }
        self.client_with_signals(&["hook"])
            .attest()
            .await
            .unwrap_err();
        self.client_with_signals(&["root"]).attest().await.unwrap();
        self.gateway(Method::GET, "/echo", None, None)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        self.clock.advance(60);
        (start, genuine)
    }

    /// The telemetry series per minute from `start` for two minutes, once the audit writer
    /// (every few seconds) has stored the finished minute; at most 20 s.
    pub async fn stored_minute(&self, start: i64) -> serde_json::Value {
        let query = format!(
            "/v1/admin/telemetry?from={start}&to={}&step=60",
            start + 120
        );
        let started = std::time::Instant::now();
        loop {
            let counts = self
                .admin(Method::GET, &query, serde_json::Value::Null)
                .await
                .json();
            if counts.as_array().is_some_and(|rows| !rows.is_empty()) {
                return counts;
            }
            assert!(
                started.elapsed().as_secs() < 20,
                "the minute was not stored within 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Waits (real time, polling) until `check` holds, for at most `secs` seconds.
    pub async fn eventually<F, Fut>(&self, secs: u64, mut check: F) -> std::time::Duration
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = std::time::Instant::now();
        while !check().await {
            assert!(
                started.elapsed().as_secs() < secs,
                "condition not reached within {secs} s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        started.elapsed()
    }
}

pub fn client_for(
    node: &Node,
    clock: &Arc<ManualClock>,
    key: InstallationKey,
    version: &str,
    measurement: &str,
) -> MedgateClient {
    let config = ClientConfig {
        server_url: node.server_url(),
        gateway_url: node.public_url().to_string(),
        app: AppIdentity {
            app_id: APP.into(),
            app_version: version.into(),
            binary_sha256: measurement.into(),
        },
        refresh_margin_secs: 30,
    };
    let clock = Arc::clone(clock);
    MedgateClient::new(config, key).with_clock(Arc::new(move || clock.now().secs()))
}

/// What an external judge (a script of a library nobody here wrote) printed, one JSON value
/// per line; what it wrote goes to the test's log first.
pub fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// A response with assertion helpers.
#[derive(Debug)]
pub struct Reply(pub HttpResponse);

impl Reply {
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.0.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.0.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.0
            .headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) -> &Self {
        assert_eq!(
            self.0.status,
            expected,
            "body: {}",
            String::from_utf8_lossy(&self.0.body)
        );
        self
    }

    /// Asserts a problem+json body of the given type; returns it.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, problem_type: &str) -> serde_json::Value {
        self.assert_status(status);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json")
        );
        let problem = self.json();
        assert_eq!(problem["type"], problem_type, "{problem}");
        assert_eq!(problem["status"], status.as_u16());
        problem
    }

    /// Asserts a 429 rate-limit problem with a `Retry-After` of at least one second.
    #[track_caller]
    pub fn assert_rate_limited(&self) {
        self.assert_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "urn:medgate:problem:rate-limited",
        );
        let retry_after: u64 = self.header("retry-after").unwrap().parse().unwrap();
        assert!(retry_after >= 1);
    }

    /// Asserts a 401 `invalid-signature` problem whose detail says `why`, with its
    /// `WWW-Authenticate` challenge and the `Accept-Signature` saying what to sign.
    #[track_caller]
    pub fn assert_signature_refused(&self, why: &str) {
        self.assert_refused_asking_for(why, r#"medgate=("@method" "@target-uri" "content-digest" "authorization");alg="ecdsa-p256-sha256""#);
    }

    /// As [`assert_signature_refused`](Self::assert_signature_refused), on a `session-mac`
    /// route: what it asks for is an `hmac-sha256` signature without a digest.
    #[track_caller]
    pub fn assert_session_signature_refused(&self, why: &str) {
        self.assert_refused_asking_for(
            why,
            r#"medgate=("@method" "@target-uri" "authorization");alg="hmac-sha256""#,
        );
    }

    #[track_caller]
    fn assert_refused_asking_for(&self, why: &str, accepted: &str) {
        let problem = self.assert_problem(
            StatusCode::UNAUTHORIZED,
            medgate_proto::wire::problem_type::INVALID_SIGNATURE,
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(why), "{detail}");
        let challenge = self.header("www-authenticate").unwrap();
        assert!(
            challenge.contains(r#"error="invalid_signature""#),
            "{challenge}"
        );
        assert_eq!(self.header("accept-signature").as_deref(), Some(accepted));
    }

    /// Asserts a 401 with the DPoP challenge carrying `error`.
    #[track_caller]
    pub fn assert_dpop_error(&self, error: &str) -> String {
        let problem_type = match error {
            "invalid_token" => "urn:medgate:problem:invalid-token",
            _ => "urn:medgate:problem:invalid-dpop-proof",
        };
        self.assert_problem(StatusCode::UNAUTHORIZED, problem_type);
        let challenge = self.header("www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(
            challenge.contains(&format!(r#"error="{error}""#)),
            "{challenge}"
        );
        challenge
    }
}
