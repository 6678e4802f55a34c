//! A small upstream API for `medgate demo`, the tests and the load benchmark: what a
//! Nightscout-like service behind the gateway might answer. Its readings are synthetic.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /api/v1/entries…` | ten synthetic CGM entries (JSON) |
//! | `GET /api/v1/status` | `{"status":"ok"}` |
//! | `POST /api/v1/treatments` | `201`, the number of bytes received |
//! | `… /echo…` | the request as JSON: method, path, headers, body length |
//! | `… /stream…` | the request body, streamed back as it arrives |
//! | `GET /large?bytes=N` | `N` bytes (at most 64 MiB), streamed in 64 KiB chunks |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use medgate_service::listen::{self, ConnectionLimits};
use medgate_service::tls::ServerTls;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, hyper::Error>;

/// A running sample upstream. Dropping it stops it.
pub struct SampleUpstream {
    addr: SocketAddr,
    scheme: &'static str,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for SampleUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SampleUpstream({})", self.addr)
    }
}

impl SampleUpstream {
    pub async fn start(addr: SocketAddr) -> std::io::Result<SampleUpstream> {
        Self::start_with(addr, None).await
    }

    /// The same API over TLS with `tls`'s certificate (for tests of an https upstream).
    pub async fn start_tls(
        addr: SocketAddr,
        tls: Arc<ServerTls>,
    ) -> std::io::Result<SampleUpstream> {
        Self::start_with(addr, Some(tls)).await
    }

    async fn start_with(
        addr: SocketAddr,
        tls: Option<Arc<ServerTls>>,
    ) -> std::io::Result<SampleUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = watch::channel(false);
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(listen::serve(
            listener,
            stopped,
            ConnectionLimits::default(),
            tls,
            "sample upstream",
            |_peer| service_fn(|request| async { Ok::<_, Infallible>(answer(request).await) }),
        ));
        Ok(SampleUpstream {
            addr,
            scheme,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

impl Drop for SampleUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    full(status, "application/json", value.to_string())
}

async fn answer(request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    if path.contains("/stream") {
        let mut response = Response::new(request.into_body().boxed());
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return response;
    }
    if path.contains("/echo") {
        let headers: serde_json::Map<String, serde_json::Value> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into(),
                )
            })
            .collect();
        let query = request.uri().query().map(str::to_string);
        let length = match http_body_util::Limited::new(request.into_body(), 64 * 1024 * 1024)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes().len(),
            Err(_) => return full(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "too large"),
        };
        return json(
            StatusCode::OK,
            &serde_json::json!({"method": method.as_str(), "path": path, "query": query, "headers": headers, "body_bytes": length}),
        );
    }
    match (method.as_str(), path.as_str()) {
        ("GET", p) if p.starts_with("/api/v1/entries") => json(StatusCode::OK, &entries()),
        ("GET", "/api/v1/status") => json(
            StatusCode::OK,
            &serde_json::json!({"status": "ok", "name": "medgate sample upstream"}),
        ),
        ("POST", "/api/v1/treatments") => {
            match http_body_util::Limited::new(request.into_body(), 1024 * 1024)
                .collect()
                .await
            {
                Ok(body) => json(
                    StatusCode::CREATED,
                    &serde_json::json!({"stored_bytes": body.to_bytes().len()}),
                ),
                Err(_) => full(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", "too large"),
            }
        }
        ("GET", "/large") => large(request.uri().query()),
        _ => full(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

/// Ten synthetic glucose readings, five minutes apart.
fn entries() -> serde_json::Value {
    let readings: Vec<serde_json::Value> = (0..10)
        .map(|i| {
            serde_json::json!({
                "type": "sgv",
                "sgv": 110 + (i * 7) % 23,
                "direction": "Flat",
                "minutes_ago": i * 5,
                "synthetic": true,
            })
        })
        .collect();
    serde_json::Value::Array(readings)
}

fn large(query: Option<&str>) -> Response<Body> {
    const CHUNK: usize = 64 * 1024;
    let total = query
        .and_then(|q| q.strip_prefix("bytes="))
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(CHUNK)
        .min(64 * 1024 * 1024);
    let chunks = (0..total.div_ceil(CHUNK)).map(move |i| {
        let size = CHUNK.min(total - i * CHUNK);
        Ok::<_, hyper::Error>(Frame::data(Bytes::from(vec![b'x'; size])))
    });
    let body = StreamBody::new(futures_util::stream::iter(chunks));
    let mut response = Response::new(BodyExt::boxed(body));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}
