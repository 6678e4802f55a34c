//! `medgate-loadbench`: the moving parts of `bench/load.sh` besides medgate itself.
//!
//! - `upstream`: the sample upstream the three proxies share.
//! - `bare-proxy`: a hyper pass-through proxy with the same client and server stack as the
//!   gateway and none of its checks: the floor the gateway is compared with.
//! - `prepare`: registers a bench app on a running node, attests with the SDK, and writes the
//!   access token and then one fresh DPoP proof per line, for wrk to send one per request.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use medgate_node::sample_upstream::SampleUpstream;
use medgate_sdk::client::{ClientConfig, HttpClient, MedgateClient};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;
use medgate_sdk::proof::dpop_proof;
use tokio::net::TcpListener;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Upstream {
        #[arg(long)]
        listen: SocketAddr,
    },
    BareProxy {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        upstream: Uri,
    },
    Prepare {
        #[arg(long)]
        server: String,
        /// The admin API (`[admin] listen`), where the app and release are registered.
        #[arg(long)]
        admin: String,
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        path: String,
        #[arg(long)]
        count: usize,
        #[arg(long)]
        out: PathBuf,
        /// What each request carries: a DPoP proof (`dpop`), a session-key signature
        /// (`session`), or a DPoP proof and a signature over a 2 KiB POST body (`signed`).
        #[arg(long, value_enum, default_value = "dpop")]
        mode: Mode,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Dpop,
    Session,
    Signed,
}

/// The body of a `signed` request (what `bench/wrk.lua post2k` sends).
const SIGNED_BODY: [u8; 2048] = [b'7'; 2048];

const APP: &str = "org.example.loadbench";
const MEASUREMENT: &str = "1111111111111111111111111111111111111111111111111111111111111111";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Upstream { listen } => {
            let upstream = SampleUpstream::start(listen).await?;
            println!("upstream on {}", upstream.url());
            std::future::pending::<()>().await;
        }
        Command::BareProxy { listen, upstream } => bare_proxy(listen, upstream).await?,
        Command::Prepare {
            server,
            admin,
            gateway,
            token_file,
            path,
            count,
            out,
            mode,
        } => {
            let urls = Urls {
                server: &server,
                admin: &admin,
                gateway: &gateway,
            };
            prepare(urls, &token_file, &path, count, &out, mode).await?;
        }
    }
    Ok(())
}

async fn bare_proxy(listen: SocketAddr, upstream: Uri) -> anyhow::Result<()> {
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build_http();
    let listener = TcpListener::bind(listen).await?;
    println!("bare proxy on {listen} -> {upstream}");
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, upstream) = (client.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    let (mut parts, body) = request.into_parts();
                    let path = parts
                        .uri
                        .path_and_query()
                        .map_or("/", |pq| pq.as_str())
                        .to_string();
                    let mut uri = Uri::builder().path_and_query(path);
                    if let (Some(scheme), Some(authority)) =
                        (upstream.scheme(), upstream.authority())
                    {
                        uri = uri.scheme(scheme.clone()).authority(authority.clone());
                    }
                    parts.uri = uri.build().unwrap_or_default();
                    let response = match client.request(Request::from_parts(parts, body)).await {
                        Ok(response) => response.map(|b| b.boxed()),
                        Err(_) => {
                            let mut response = http::Response::new(
                                http_body_util::Full::new(Bytes::from_static(b"bad gateway"))
                                    .map_err(|never| match never {})
                                    .boxed(),
                            );
                            *response.status_mut() = http::StatusCode::BAD_GATEWAY;
                            response
                        }
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Where `prepare` registers the app, attests, and what the proofs are for.
struct Urls<'a> {
    server: &'a str,
    admin: &'a str,
    gateway: &'a str,
}

async fn prepare(
    Urls {
        server,
        admin,
        gateway,
    }: Urls<'_>,
    token_file: &PathBuf,
    path: &str,
    count: usize,
    out: &PathBuf,
    mode: Mode,
) -> anyhow::Result<()> {
    let admin_token = std::fs::read_to_string(token_file)
        .context("admin token")?
        .trim()
        .to_string();
    let http = HttpClient::default();
    let mut headers = HeaderMap::new();
    headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {admin_token}"))?,
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (url, body) in [
        (
            format!("{admin}/v1/admin/apps"),
            serde_json::json!({"app_id": APP, "scopes": ["entries:read", "treatments:write"], "sdk_evidence": "allow"}),
        ),
        (
            format!("{admin}/v1/admin/apps/{APP}/releases"),
            serde_json::json!({"version": "1.0.0", "sdk_binary_sha256": MEASUREMENT}),
        ),
    ] {
        let response = http
            .send(
                Method::POST,
                &url,
                headers.clone(),
                Bytes::from(body.to_string()),
            )
            .await?;
        if !response.status.is_success() && response.status != http::StatusCode::CONFLICT {
            bail!("{url}: {}", response.status);
        }
    }
    let config = ClientConfig {
        server_url: server.into(),
        gateway_url: gateway.into(),
        app: AppIdentity {
            app_id: APP.into(),
            app_version: "1.0.0".into(),
            binary_sha256: MEASUREMENT.into(),
        },
        refresh_margin_secs: 30,
    };
    let client = MedgateClient::new(config, InstallationKey::generate()?).with_encryption_key(
        std::sync::Arc::new(medgate_trust::jwe::EcdhSecret::generate()?),
    );
    client.attest().await?;
    let token = client.access_token().await?;
    let now = medgate_sdk::system_now()();
    let htu = format!("{gateway}{path}");
    let mut file = std::io::BufWriter::new(std::fs::File::create(out)?);
    writeln!(file, "{}", token.expose())?;
    let field = |headers: &HeaderMap, name: &str| -> anyhow::Result<String> {
        Ok(format!(
            "{name}: {}",
            headers
                .get(name)
                .context("a header the SDK adds")?
                .to_str()?
        ))
    };
    for _ in 0..count {
        let line = match mode {
            Mode::Dpop => dpop_proof(client.key(), "GET", &htu, Some(token.expose()), now)?,
            Mode::Session => {
                let headers = client.session_headers("GET", path).await?;
                [
                    field(&headers, "signature-input")?,
                    field(&headers, "signature")?,
                ]
                .join("\t")
            }
            Mode::Signed => {
                let headers = client
                    .headers_for("POST", path, Some(&SIGNED_BODY))
                    .await?
                    .to_header_map();
                ["dpop", "signature-input", "signature", "content-digest"]
                    .iter()
                    .map(|name| field(&headers, name))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .join("\t")
            }
        };
        writeln!(file, "{line}")?;
    }
    file.flush()?;
    Ok(())
}
