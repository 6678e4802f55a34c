//! `medgate demo`: a whole node on loopback with a sample upstream, a genuine client and
//! hostile ones, and a table of what happened.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use base64::Engine as _;
use bytes::Bytes;
use clap::Args;
use http::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use medgate_node::config::{Config, RouteConfig};
use medgate_node::sample_upstream::SampleUpstream;
use medgate_node::{Node, NodeOptions};
use medgate_proto::admin;
use medgate_proto::wire::{Signal, SignalKind};
use medgate_sdk::client::{ClientConfig, ClientError, HttpClient, HttpResponse, MedgateClient};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::dpop_proof;

use crate::admin::AdminApi;
use crate::{Failure, wait_for_shutdown_signal};

mod interceptor;
mod nightscout;

const APP: &str = "org.example.demo-cgm";
const VERSION: &str = "1.0.0";
/// The sample upstream's credential in the demo (a Nightscout `API_SECRET`).
const DEMO_API_SECRET: &str = "demo-nightscout-api-secret";
/// A partner's key the app itself needs, delivered sealed to one installation.
const DEMO_PARTNER_KEY: &str = "demo-partner-key";

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// Run the scenarios, print the table and exit (status 1 if any scenario misbehaved).
    #[arg(long)]
    exit: bool,
    /// Keep the demo's database here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    server_listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    gateway_listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    admin_listen: SocketAddr,
    /// The Nightscout story instead: the gateway with the Nightscout profile in front of a
    /// Nightscout-compatible site, a caregiver's follower link, a hooked uploader, a signed
    /// bolus, a revoked link.
    #[arg(long)]
    nightscout: bool,
}

struct Row {
    scenario: &'static str,
    expected: &'static str,
    observed: String,
    as_expected: bool,
}

struct Demo {
    node: Node,
    http: HttpClient,
    measurement: String,
    app_id: &'static str,
}

impl Demo {
    fn client(&self, version: &str, measurement: &str) -> Result<MedgateClient, Failure> {
        let config = ClientConfig {
            server_url: self.node.server_url(),
            gateway_url: self.node.public_url().to_string(),
            app: AppIdentity {
                app_id: self.app_id.into(),
                app_version: version.into(),
                binary_sha256: measurement.into(),
            },
            refresh_margin_secs: 30,
        };
        Ok(MedgateClient::new(config, InstallationKey::generate()?))
    }

    fn genuine(&self) -> Result<MedgateClient, Failure> {
        self.client(VERSION, &self.measurement)
    }

    async fn gateway(
        &self,
        path: &str,
        authorization: Option<&str>,
        dpop: Option<&str>,
    ) -> Result<HttpResponse, Failure> {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(value)?);
        }
        if let Some(value) = dpop {
            headers.insert(
                HeaderName::from_static("dpop"),
                HeaderValue::from_str(value)?,
            );
        }
        let url = format!("{}{path}", self.node.public_url());
        Ok(self
            .http
            .send(Method::GET, &url, headers, Bytes::new())
            .await?)
    }
}

/// "401 invalid_dpop_proof: <detail>" for a refused gateway answer.
fn describe(response: &HttpResponse) -> String {
    let error = response
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("error=\"").nth(1))
        .and_then(|v| v.split('"').next())
        .map(|e| format!(" {e}"))
        .unwrap_or_default();
    let detail = match response.problem() {
        Some(problem) => format!(": {}", problem.detail.unwrap_or(problem.title)),
        None => String::new(),
    };
    format!("{}{error}{detail}", response.status.as_u16())
}

fn refusal(result: Result<medgate_sdk::client::Attestation, ClientError>) -> (String, Vec<String>) {
    match result {
        Ok(granted) => (format!("200 {}", granted.decision.as_str()), vec![]),
        Err(ClientError::Refused { status, problem }) => {
            let reasons: Vec<String> = problem
                .reasons
                .iter()
                .map(|r| r.as_str().to_string())
                .collect();
            (format!("{status} {}", reasons.join(", ")), reasons)
        }
        Err(other) => (format!("error: {other}"), vec![]),
    }
}

/// A genuine build whose detectors saw Frida's agent mapped in: refused.
async fn hooked_app_attests(demo: &Demo, scenario: &'static str) -> Result<Row, Failure> {
    let hooked = demo.genuine()?;
    hooked.set_signals(vec![Signal::new(
        SignalKind::Hook,
        "frida_maps: /memfd:frida-agent-64.so (deleted)",
    )]);
    let (observed, reasons) = refusal(hooked.attest().await);
    Ok(Row {
        scenario,
        expected: "403 hook_detected",
        observed,
        as_expected: reasons == ["hook_detected"],
    })
}

async fn scenarios(demo: &Demo) -> Result<Vec<Row>, Failure> {
    let mut rows = Vec::new();

    // 1. The genuine app.
    let genuine = demo.genuine()?;
    let granted = genuine.attest().await?;
    let entries = genuine.get("/api/v1/entries.json").await?;
    let readings = serde_json::from_slice::<serde_json::Value>(&entries.body)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0);
    rows.push(Row {
        scenario: "genuine app reads entries",
        expected: "200",
        observed: format!(
            "{} ({readings} synthetic readings; {}, scope \"{}\")",
            entries.status.as_u16(),
            granted.decision.as_str(),
            granted.scope
        ),
        as_expected: entries.status == StatusCode::OK && readings > 0,
    });

    // 2. No token.
    let anonymous = demo.gateway("/api/v1/entries.json", None, None).await?;
    rows.push(Row {
        scenario: "no token",
        expected: "401",
        observed: describe(&anonymous),
        as_expected: anonymous.status == StatusCode::UNAUTHORIZED,
    });

    // 3. A stolen token, used without the installation key.
    let token = genuine.access_token().await?;
    let thief = InstallationKey::generate()?;
    let url = genuine.gateway_url("/api/v1/entries.json");
    let now = medgate_sdk::system_now();
    let stolen_proof = dpop_proof(&thief, "GET", &url, Some(token.expose()), now())?;
    let authorization = format!("DPoP {}", token.expose());
    let stolen = demo
        .gateway(
            "/api/v1/entries.json",
            Some(&authorization),
            Some(&stolen_proof),
        )
        .await?;
    rows.push(Row {
        scenario: "stolen token, no key",
        expected: "401 invalid_dpop_proof",
        observed: describe(&stolen),
        as_expected: stolen.status == StatusCode::UNAUTHORIZED,
    });

    // 4. A captured request, replayed.
    let proof = dpop_proof(genuine.key(), "GET", &url, Some(token.expose()), now())?;
    let first = demo
        .gateway("/api/v1/entries.json", Some(&authorization), Some(&proof))
        .await?;
    let replay = demo
        .gateway("/api/v1/entries.json", Some(&authorization), Some(&proof))
        .await?;
    rows.push(Row {
        scenario: "replayed proof",
        expected: "200 then 401",
        observed: format!("{} then {}", first.status.as_u16(), describe(&replay)),
        as_expected: first.status == StatusCode::OK && replay.status == StatusCode::UNAUTHORIZED,
    });

    // 5–7. Builds and devices the policy refuses.
    let (observed, reasons) = refusal(demo.client("9.9.9", &demo.measurement)?.attest().await);
    rows.push(Row {
        scenario: "unknown build (9.9.9)",
        expected: "403 release_unknown",
        observed,
        as_expected: reasons == ["release_unknown"],
    });
    let (observed, reasons) = refusal(demo.client(VERSION, &"0".repeat(64))?.attest().await);
    rows.push(Row {
        scenario: "modified binary",
        expected: "403 tamper_detected",
        observed,
        as_expected: reasons == ["tamper_detected"],
    });
    rows.push(hooked_app_attests(demo, "hooked app").await?);

    // 8. A rooted phone: may read, may not write.
    let rooted = demo.genuine()?;
    rooted.set_signals(vec![Signal::new(
        SignalKind::Root,
        "android_root: /system/xbin/su",
    )]);
    let limited = rooted.attest().await?;
    let write = rooted
        .send(
            Method::POST,
            "/api/v1/treatments",
            Bytes::from_static(b"{\"insulin\":1}"),
        )
        .await?;
    rows.push(Row {
        scenario: "rooted phone writes",
        expected: "allow_limited, 403",
        observed: format!(
            "{} \"{}\", {}",
            limited.decision.as_str(),
            limited.scope,
            describe(&write)
        ),
        as_expected: write.status == StatusCode::FORBIDDEN,
    });

    // 9. The upstream's own credential (Nightscout's API_SECRET), which the app never holds:
    // stored once by the operator, added by the gateway to what the `/echo` route forwards,
    // in place of the copy a hooked app might send.
    let admin = AdminApi::new(demo.node.admin_url(), demo.node.admin_token()?);
    let _: admin::SecretVersion = admin
        .send(
            Method::POST,
            &format!("/apps/{APP}/secrets"),
            &admin::SetSecret {
                name: "nightscout".into(),
                value: base64::engine::general_purpose::STANDARD.encode(DEMO_API_SECRET),
            },
        )
        .await?;
    let expected_header = medgate_proto::hex::encode(&{
        use sha1::Digest;
        sha1::Sha1::digest(DEMO_API_SECRET.as_bytes())
    });
    let started = Instant::now();
    let seen = loop {
        let echo = genuine.get("/echo").await?;
        let header = serde_json::from_slice::<serde_json::Value>(&echo.body)
            .ok()
            .and_then(|v| v["headers"]["api-secret"].as_str().map(str::to_string));
        // The gateway picks the secret up at its next refresh.
        if header.is_some() || started.elapsed() > Duration::from_secs(5) {
            break header;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    rows.push(Row {
        scenario: "upstream secret injected",
        expected: "sha1(API_SECRET) upstream",
        observed: match &seen {
            Some(header) => format!(
                "upstream got api-secret {}…; the app never had it",
                &header[..12.min(header.len())]
            ),
            None => "the upstream got no api-secret".into(),
        },
        as_expected: seen.as_deref() == Some(expected_header.as_str()),
    });

    // 10. A secret the app itself needs, sealed to the key-agreement key its evidence named:
    // only that installation opens it.
    let _: admin::SecretVersion = admin
        .send(
            Method::POST,
            &format!("/apps/{APP}/secrets"),
            &admin::SetSecret {
                name: "partner_key".into(),
                value: base64::engine::general_purpose::STANDARD.encode(DEMO_PARTNER_KEY),
            },
        )
        .await?;
    let sealed_to = demo.genuine()?.with_encryption_key(Arc::new(
        medgate_trust::jwe::EcdhSecret::generate().context("a key-agreement key")?,
    ));
    let opened = sealed_to.secret("partner_key").await;
    rows.push(Row {
        scenario: "secret sealed to the app",
        expected: "JWE only it opens",
        observed: match &opened {
            Ok(value) if value.as_slice() == DEMO_PARTNER_KEY.as_bytes() => {
                "opened with its own key (ECDH-ES+A256KW, A256GCM)".into()
            }
            Ok(_) => "opened to another value".into(),
            Err(error) => format!("error: {error}"),
        },
        as_expected: opened.is_ok_and(|value| value.as_slice() == DEMO_PARTNER_KEY.as_bytes()),
    });

    // 11–12. A man in the middle whose CA the phone trusts, between the app and the control
    // plane. WebPKI alone lets it read the request (the control: the interception works); a
    // pin of the real server's key refuses it before a request byte is sent.
    rows.extend(man_in_the_middle(demo).await?);

    // 13. Revocation of the genuine installation reaches the gateway within seconds.
    let _: admin::InstallationRevoked = admin
        .call(
            Method::POST,
            &format!("/installations/{}/revoke", genuine.installation_id()),
        )
        .await?;
    let started = Instant::now();
    let mut last = genuine.get("/api/v1/entries.json").await?;
    while last.status == StatusCode::OK && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        last = genuine.get("/api/v1/entries.json").await?;
    }
    rows.push(Row {
        scenario: "revoked installation",
        expected: "401 within 5 s",
        observed: format!(
            "{} after {:.1} s",
            describe(&last),
            started.elapsed().as_secs_f64()
        ),
        as_expected: last.status == StatusCode::UNAUTHORIZED,
    });
    Ok(rows)
}

async fn man_in_the_middle(demo: &Demo) -> Result<Vec<Row>, Failure> {
    use medgate_trust::pins::{HostPattern, Pin, PinRule, PinSet};
    let proxy = interceptor::Interceptor::start(demo.node.server_addr()).await?;
    let roots = Arc::new(medgate_sdk::client::web_roots(std::slice::from_ref(
        &proxy.ca_der,
    ))?);
    let url = format!("{}/.well-known/medgate-configuration", proxy.url);
    let fetch = |client: HttpClient| {
        let url = url.clone();
        async move {
            client
                .send(Method::GET, &url, HeaderMap::new(), Bytes::new())
                .await
        }
    };
    let mut rows = Vec::new();

    let webpki_only = HttpClient::pinned(Arc::clone(&roots), None, PinSet::default())?;
    let through = fetch(webpki_only).await;
    let read = proxy.requests_read();
    rows.push(Row {
        scenario: "MitM, WebPKI only",
        expected: "200, read by the proxy",
        observed: match &through {
            Ok(response) => format!(
                "{}; the proxy read {read} request in the clear",
                response.status.as_u16()
            ),
            Err(error) => format!("error: {error}"),
        },
        as_expected: through.is_ok_and(|r| r.status == StatusCode::OK) && read == 1,
    });

    // The app pins the real server's key (and a backup), as its pin set says.
    let real_server = rcgen::KeyPair::generate().context("a key for the real server")?;
    let backup = rcgen::KeyPair::generate().context("a backup key")?;
    let pins = PinSet::new(vec![PinRule {
        pattern: HostPattern::parse("127.0.0.1").context("the demo's host pattern")?,
        pins: [real_server, backup]
            .iter()
            .map(|key| Pin::of_spki(&rcgen::PublicKeyData::subject_public_key_info(key)))
            .collect(),
    }])
    .context("the demo's pin set")?;
    let pinned = HttpClient::pinned(roots, None, pins)?;
    let refused = fetch(pinned).await;
    let read_after = proxy.requests_read();
    rows.push(Row {
        scenario: "MitM, pinned client",
        expected: "refused before sending",
        observed: match &refused {
            Err(ClientError::PinMismatch { host, .. }) => format!(
                "pinning failure for {host}; the proxy read {} more",
                read_after - read
            ),
            Err(error) => format!("error: {error}"),
            Ok(response) => format!("{} through the proxy", response.status.as_u16()),
        },
        as_expected: matches!(refused, Err(ClientError::PinMismatch { .. })) && read_after == read,
    });
    Ok(rows)
}

fn print_table(rows: &[Row]) {
    let width = |f: fn(&Row) -> usize, title: &str| {
        rows.iter().map(f).chain([title.len()]).max().unwrap_or(0)
    };
    let (a, b) = (
        width(|r| r.scenario.len(), "scenario"),
        width(|r| r.expected.len(), "expected"),
    );
    println!(
        "{:<a$}  {:<b$}  {:<3}  observed",
        "scenario", "expected", "ok"
    );
    println!("{}", "-".repeat(a + b + 20));
    for row in rows {
        let mark = if row.as_expected { "yes" } else { "NO" };
        println!(
            "{:<a$}  {:<b$}  {mark:<3}  {}",
            row.scenario, row.expected, row.observed
        );
    }
}

pub(crate) async fn run(args: DemoArgs) -> Result<(), Failure> {
    // Without --data-dir the demo's database lives in a temporary folder, removed at exit.
    let temporary = tempfile::Builder::new().prefix("medgate-demo-").tempdir()?;
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let mut config = Config::default();
    config.server.listen = args.server_listen;
    config.server.data_dir = data_dir.clone();
    config.gateway.listen = args.gateway_listen;
    config.admin.listen = args.admin_listen;
    let measurement = medgate_sdk::measure::current_executable_sha256()
        .context("cannot measure this executable")?;
    if args.nightscout {
        nightscout::run(config, measurement, &args).await?;
    } else {
        // The upstream serves until it is dropped, after `finish`.
        let upstream = SampleUpstream::start("127.0.0.1:0".parse().context("loopback")?).await?;
        let demo = sample_node(config, &upstream, measurement).await?;
        let rows = scenarios(&demo).await?;
        finish(demo, rows, &upstream.url(), &args).await?;
    }
    drop(temporary);
    Ok(())
}

/// A node in front of the sample upstream, with the demo app registered.
async fn sample_node(
    mut config: Config,
    upstream: &SampleUpstream,
    measurement: String,
) -> Result<Demo, Failure> {
    config.gateway.upstream = Some(upstream.url());
    config.gateway.routes = vec![
        RouteConfig::new("/api/v1/entries*", &["GET"], &["entries:read"]),
        RouteConfig::new("/api/v1/treatments", &["POST"], &["treatments:write"]),
        RouteConfig::new("/api/v1/status", &["GET"], &[]),
        {
            // Nightscout's `api-secret` header: the SHA-1 hex of its API_SECRET.
            let mut echo = RouteConfig::new("/echo", &["GET"], &["entries:read"]);
            echo.inject = vec![medgate_gateway::inject::InjectConfig {
                header: Some("api-secret".into()),
                query: None,
                secret: "nightscout".into(),
                encoding: medgate_gateway::inject::Encoding::Sha1Hex,
            }];
            echo
        },
    ];
    let node = start_registered(
        config,
        demo_app(
            APP,
            &["entries:read", "treatments:write", "secret:partner_key"],
            &["entries:read"],
        ),
        &measurement,
    )
    .await?;
    Ok(Demo {
        node,
        http: HttpClient::default(),
        measurement,
        app_id: APP,
    })
}

/// A demo app: it shows what SDK evidence catches, so it trusts it fully.
fn demo_app(app_id: &str, scopes: &[&str], limited_scopes: &[&str]) -> admin::CreateApp {
    let owned = |scopes: &[&str]| scopes.iter().map(|scope| scope.to_string()).collect();
    admin::CreateApp {
        app_id: app_id.into(),
        scopes: owned(scopes),
        limited_scopes: owned(limited_scopes),
        reject_on: None,
        degrade_on: None,
        sdk_evidence: medgate_proto::policy::SdkEvidence::Allow,
        require_coverage: false,
    }
}

/// Starts the demo's node and registers its app with this executable as its release.
async fn start_registered(
    config: Config,
    app: admin::CreateApp,
    measurement: &str,
) -> Result<Node, Failure> {
    let node = Node::start(config, NodeOptions::default())
        .await
        .map_err(|e| Failure::Usage(e.into()))?;
    let admin = AdminApi::new(node.admin_url(), node.admin_token()?);
    let app: admin::App = admin.send(Method::POST, "/apps", &app).await?;
    let release = admin::AddRelease {
        version: VERSION.into(),
        sdk_binary_sha256: Some(measurement.into()),
        version_code: None,
    };
    let _: admin::Release = admin
        .send(
            Method::POST,
            &format!("/apps/{}/releases", app.id),
            &release,
        )
        .await?;
    Ok(node)
}

/// Prints the table and where things are, serves until Ctrl-C unless `--exit`, and stops the
/// node; fails when a scenario misbehaved.
async fn finish(
    demo: Demo,
    rows: Vec<Row>,
    upstream_url: &str,
    args: &DemoArgs,
) -> Result<(), Failure> {
    println!();
    print_table(&rows);
    println!();
    let node = &demo.node;
    println!(
        "control plane  {}   (discovery: {}/.well-known/medgate-configuration)",
        node.server_url(),
        node.server_url()
    );
    println!(
        "gateway        {}   -> upstream {upstream_url}",
        node.public_url()
    );
    println!("data           {}", node.data_dir().display());
    println!(
        "try            medgate admin --server {} --token-file {} installation list",
        node.admin_url(),
        node.data_dir()
            .join(medgate_node::ADMIN_TOKEN_FILE)
            .display()
    );
    let all_as_expected = rows.iter().all(|row| row.as_expected);
    if !args.exit {
        println!("\nserving until Ctrl-C");
        wait_for_shutdown_signal().await;
    }
    let Demo { node, .. } = demo;
    node.shutdown(Duration::from_secs(5)).await;
    if all_as_expected {
        Ok(())
    } else {
        Err(Failure::Refused(anyhow!(
            "a scenario did not behave as expected"
        )))
    }
}
