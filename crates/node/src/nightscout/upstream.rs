//! A small Nightscout-compatible upstream for the tests and `medgate demo`: the API v1 shapes
//! real clients read and write, with Nightscout's own `API_SECRET` check, so that the
//! gateway's credential injection is proven against what Nightscout accepts rather than
//! assumed. Test and demo only: data lives in memory, and every request is kept (method, URI,
//! headers, body) for a test to search for credentials that must never arrive.
//!
//! What it does as Nightscout does (cgm-remote-monitor, `lib/authorization/index.js`,
//! `lib/api/*`; see ../shared/research/next-round.md §A):
//!
//! - **Auth.** The `api-secret` header, or a `secret` query parameter, must be the SHA-1 or
//!   SHA-512 hex of `API_SECRET` (compared in constant time); anything else is 401 with
//!   Nightscout's problem shape. Unlike a default Nightscout (`AUTH_DEFAULT_ROLES=readable`),
//!   reads need it too, as on a site configured `denied`, so a read that succeeds proves the
//!   credential was injected.
//! - **Routes.** `/api/v2/...` re-mounts `/api/v1/...`, and so do `GET /api/v3/...` (in v1's
//!   shape, not v3's `{status, result}` envelope). v3 takes only a JWT, as Nightscout's does:
//!   `GET /api/v2/authorization/request/<access token>` hands one out (an hour) for the site's
//!   one subject ([`NightscoutUpstream::access_token`]); v1 and v2 take it too. Collections `entries`, `treatments`,
//!   `devicestatus`, `profile`, `food`, `activity`: `GET` (newest first, `count`, default 10,
//!   and `find[field]=v` / `find[field][$op]=v` filters), `POST` (an object or an array;
//!   answers the stored documents with their `_id`), `PUT` (upsert by `_id`), `DELETE /<id>`
//!   and `DELETE ?find[...]` (bulk; `{"n":…,"ok":1}`). `entries/sgv`, `entries/current` and
//!   a `.json` suffix as Nightscout reads them. `GET status(.json)`, `verifyauth`,
//!   `experiments/test`, `notifications/ack`, and `POST /api/v2/notifications/loop`
//!   (recorded, not pushed anywhere).
//! - **socket.io.** Long polling under `/socket.io/` is recorded and answered (a handshake,
//!   `ok`), never acted on: tests read what reached the site.
//! - **Bodies.** `Content-Encoding: gzip` request bodies are decoded (xDrip+ sends them);
//!   a body `secret` field is a credential, as in Nightscout.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use medgate_service::listen::{self, ConnectionLimits};
use medgate_service::{Clock as _, SystemClock};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

type Body = BoxBody<Bytes, hyper::Error>;

/// The largest request body it reads (decoded, for gzip).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// The collections it keeps, as Nightscout names them.
const COLLECTIONS: [&str; 6] = [
    "entries",
    "treatments",
    "devicestatus",
    "profile",
    "food",
    "activity",
];

/// A request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// The body as received (still content-coded).
    pub body: Bytes,
    /// Whether it carried this site's API secret.
    pub authorized: bool,
}

impl Seen {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `needle` appears anywhere in what arrived: URI, header names and values, body.
    pub fn contains(&self, needle: &str) -> bool {
        self.uri.contains(needle)
            || self
                .headers
                .iter()
                .any(|(n, v)| n.contains(needle) || v.contains(needle))
            || self
                .body
                .windows(needle.len().max(1))
                .any(|w| w == needle.as_bytes())
    }
}

#[derive(Default)]
struct Data {
    collections: BTreeMap<&'static str, Vec<Value>>,
    /// Loop notifications (remote commands) received.
    loop_notifications: Vec<Value>,
    /// Text messages received on socket.io WebSockets, in order.
    socket_messages: Vec<String>,
    seen: Vec<Seen>,
    next_id: u64,
    jwts_issued: usize,
}

struct Site {
    /// Lowercase SHA-1 and SHA-512 hex of `API_SECRET`.
    secret_hashes: [String; 2],
    /// The access token of the site's one subject, and the key of the JWTs it is exchanged
    /// for (v3 takes only those).
    access_token: String,
    jwt_key: ring::hmac::Key,
    data: Mutex<Data>,
}

/// A running Nightscout-compatible upstream. Dropping it stops it.
pub struct NightscoutUpstream {
    addr: SocketAddr,
    site: Arc<Site>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for NightscoutUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NightscoutUpstream({})", self.addr)
    }
}

impl NightscoutUpstream {
    /// Serves on `addr` with `api_secret` as its `API_SECRET` (Nightscout wants at least 12
    /// characters; so does this).
    pub async fn start(addr: SocketAddr, api_secret: &str) -> std::io::Result<NightscoutUpstream> {
        if api_secret.chars().count() < super::MIN_API_SECRET_LEN {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "API_SECRET must be at least 12 characters",
            ));
        }
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let access_token = format!("medgate-{}", &sha1_hex(format!("{api_secret}/token"))[..16]);
        let site = Arc::new(Site {
            secret_hashes: [sha1_hex(api_secret), sha512_hex(api_secret)],
            access_token,
            jwt_key: ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                sha512_hex(&format!("{api_secret}/jwt")).as_bytes(),
            ),
            data: Mutex::new(Data::default()),
        });
        let (shutdown, stopped) = watch::channel(false);
        let serving = Arc::clone(&site);
        let task = tokio::spawn(listen::serve(
            listener,
            stopped,
            ConnectionLimits::default(),
            None,
            "nightscout upstream",
            move |_peer| {
                let site = Arc::clone(&serving);
                service_fn(move |request| {
                    let site = Arc::clone(&site);
                    async move { Ok::<_, Infallible>(Site::answer(site, request).await) }
                })
            },
        ));
        Ok(NightscoutUpstream {
            addr,
            site,
            shutdown,
            task,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.site.data.lock().seen.clone()
    }

    /// The documents of `collection`, in the order stored.
    pub fn documents(&self, collection: &str) -> Vec<Value> {
        let data = self.site.data.lock();
        data.collections
            .get(collection)
            .cloned()
            .unwrap_or_default()
    }

    /// The Loop notifications (remote commands) received.
    /// The access token of the site's subject (what an operator stores as `nightscout_token`
    /// for v3), exchanged at `/api/v2/authorization/request/<token>` for a JWT.
    pub fn access_token(&self) -> String {
        self.site.access_token.clone()
    }

    /// How many JWTs the site has handed out.
    pub fn jwts_issued(&self) -> usize {
        self.site.data.lock().jwts_issued
    }

    pub fn loop_notifications(&self) -> Vec<Value> {
        self.site.data.lock().loop_notifications.clone()
    }

    /// The text messages clients sent on socket.io WebSockets.
    pub fn socket_messages(&self) -> Vec<String> {
        self.site.data.lock().socket_messages.clone()
    }
}

impl Drop for NightscoutUpstream {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
    }
}

pub use medgate_verify::credential::sha1_hex;

fn sha512_hex(text: &str) -> String {
    medgate_proto::hex::encode(
        ring::digest::digest(&ring::digest::SHA512, text.as_bytes()).as_ref(),
    )
}

impl Site {
    fn record(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: Bytes,
        authorized: bool,
    ) {
        self.data.lock().seen.push(Seen {
            method: method.to_string(),
            uri: uri
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_default(),
            headers: headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body,
            authorized,
        });
    }

    /// A socket.io WebSocket: accepted (101) when the handshake carries the site's secret as
    /// every request must here; its text messages recorded until it closes.
    fn websocket(self: Arc<Self>, request: &mut Request<Incoming>) -> Option<Response<Body>> {
        use futures_util::StreamExt;
        let headers = request.headers();
        let upgrade = headers.get(http::header::UPGRADE)?;
        if !upgrade.as_bytes().eq_ignore_ascii_case(b"websocket") {
            return None;
        }
        let authorized = headers
            .get("api-secret")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|value| self.is_secret(value));
        self.record(
            request.method(),
            request.uri(),
            headers,
            Bytes::new(),
            authorized,
        );
        if !authorized {
            return Some(unauthorized());
        }
        let key = headers.get("sec-websocket-key")?.clone();
        let on_upgrade = hyper::upgrade::on(request);
        let site = Arc::clone(&self);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
                hyper_util::rt::TokioIo::new(upgraded),
                tokio_tungstenite::tungstenite::protocol::Role::Server,
                None,
            )
            .await;
            while let Some(Ok(message)) = socket.next().await {
                match message {
                    tokio_tungstenite::tungstenite::Message::Text(text) => {
                        site.data.lock().socket_messages.push(text.to_string());
                    }
                    tokio_tungstenite::tungstenite::Message::Close(_) => break,
                    _ => {}
                }
            }
        });
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        let mut response = text("");
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.remove(http::header::CONTENT_TYPE);
        headers.insert(
            http::header::UPGRADE,
            http::HeaderValue::from_static("websocket"),
        );
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("Upgrade"),
        );
        headers.insert(
            "sec-websocket-accept",
            http::HeaderValue::from_str(&accept).ok()?,
        );
        Some(response)
    }
}

fn text(body: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

fn respond(status: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(value.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn unauthorized() -> Response<Body> {
    respond(
        StatusCode::UNAUTHORIZED,
        &json!({"status": 401, "message": "Unauthorized", "description": "Invalid/Missing"}),
    )
}

fn bad_request(why: &str) -> Response<Body> {
    respond(
        StatusCode::BAD_REQUEST,
        &json!({"status": 400, "message": why}),
    )
}

/// `a` and `b` equal, in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x.to_ascii_lowercase() ^ y))
            == 0
}

/// The query's parameters, percent- and `+`-decoded, in order.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Site {
    fn is_secret(&self, value: &str) -> bool {
        self.secret_hashes.iter().any(|hash| same(value, hash))
    }

    /// A JWT for the subject, valid an hour: `ns.<exp>.<HMAC hex>`.
    fn jwt(&self) -> (String, i64) {
        let exp = SystemClock.now().secs() + 3600;
        let tag = ring::hmac::sign(&self.jwt_key, exp.to_string().as_bytes());
        (
            format!("ns.{exp}.{}", medgate_proto::hex::encode(tag.as_ref())),
            exp,
        )
    }

    /// Whether `authorization` is `Bearer` and a JWT this site issued that has not expired.
    fn is_jwt(&self, authorization: Option<&str>) -> bool {
        let Some(jwt) = authorization.and_then(|v| v.strip_prefix("Bearer ")) else {
            return false;
        };
        let mut parts = jwt.split('.');
        let (Some("ns"), Some(exp), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(expires), Some(tag)) = (exp.parse::<i64>(), medgate_proto::hex::decode(tag)) else {
            return false;
        };
        SystemClock.now().secs() < expires
            && ring::hmac::verify(&self.jwt_key, exp.as_bytes(), &tag).is_ok()
    }

    async fn answer(self: Arc<Self>, mut request: Request<Incoming>) -> Response<Body> {
        if request.uri().path().starts_with("/socket.io/")
            && let Some(response) = Arc::clone(&self).websocket(&mut request)
        {
            return response;
        }
        let (parts, body) = request.into_parts();
        let raw = match Limited::new(body, MAX_BODY).collect().await {
            Ok(body) => body.to_bytes(),
            Err(_) => return bad_request("body too large"),
        };
        let query = query_pairs(parts.uri.query());
        let header_secret = parts
            .headers
            .get("api-secret")
            .and_then(|v| v.to_str().ok());
        let query_secret = query
            .iter()
            .find(|(k, _)| k == "secret")
            .map(|(_, v)| v.as_str());
        let bearer = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        // v3 takes only a JWT; v1 and v2 the secret or a JWT.
        let authorized = if parts.uri.path().starts_with("/api/v3/") {
            self.is_jwt(bearer)
        } else {
            self.is_jwt(bearer)
                || header_secret
                    .into_iter()
                    .chain(query_secret)
                    .any(|value| self.is_secret(value))
        };
        self.record(
            &parts.method,
            &parts.uri,
            &parts.headers,
            raw.clone(),
            authorized,
        );
        // The token exchange, answered for the subject's access token.
        if let Some(token) = parts
            .uri
            .path()
            .strip_prefix("/api/v2/authorization/request/")
        {
            let token = token.strip_prefix("token=").unwrap_or(token);
            if !same(token, &self.access_token) {
                return unauthorized();
            }
            let (jwt, exp) = self.jwt();
            self.data.lock().jwts_issued += 1;
            return respond(
                StatusCode::OK,
                &json!({"token": jwt, "sub": "medgate", "permissionGroups": [["*"]], "iat": exp - 3600, "exp": exp}),
            );
        }
        let path = parts.uri.path();
        let path = match (path.strip_prefix("/api/v2/"), path.strip_prefix("/api/v3/")) {
            (Some(rest), _) if !rest.starts_with("notifications/") => format!("/api/v1/{rest}"),
            // Reads only, answered in v1's shape (the double does not speak v3's envelope).
            (_, Some(rest)) if parts.method == Method::GET => format!("/api/v1/{rest}"),
            _ => path.to_string(),
        };
        // Answered without a credential, as Nightscout does.
        match (parts.method.as_str(), path.as_str()) {
            // socket.io's long polling: recorded (what reached the site is in `seen`), an
            // Engine.IO 4 handshake for a GET, `ok` for the packets a POST carries; the
            // events themselves are not acted on.
            ("GET", p) if p.starts_with("/socket.io/") => {
                return text(
                    r#"0{"sid":"nightscout-double","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
                );
            }
            ("POST", p) if p.starts_with("/socket.io/") => return text("ok"),
            ("GET", "/api/versions") => return respond(StatusCode::OK, &json!([])),
            ("GET", "/api/v1/verifyauth") => {
                return respond(
                    StatusCode::OK,
                    &json!({"message": {
                        "canRead": authorized, "canWrite": authorized, "isAdmin": authorized,
                        "message": if authorized { "OK" } else { "UNAUTHORIZED" },
                        "rolefound": if authorized { "FOUND" } else { "NOTFOUND" },
                        "permissions": if authorized { "ROLE" } else { "DEFAULT" },
                    }}),
                );
            }
            _ => {}
        }
        if !authorized {
            return unauthorized();
        }
        let body = if raw.is_empty() {
            None
        } else {
            match decode_body(&parts.headers, &raw) {
                Ok(value) => Some(value),
                Err(why) => return bad_request(why),
            }
        };
        self.route(&parts.method, &path, &query, body)
    }

    fn route(
        &self,
        method: &Method,
        path: &str,
        query: &[(String, String)],
        body: Option<Value>,
    ) -> Response<Body> {
        let path = path.trim_end_matches('/');
        match (method.as_str(), path) {
            ("GET", "/api/v1/status" | "/api/v1/status.json") => {
                return respond(StatusCode::OK, &status());
            }
            ("GET", "/api/v1/experiments/test") => {
                return respond(StatusCode::OK, &json!({"status": "ok"}));
            }
            ("GET", "/api/v1/notifications/ack") => {
                return respond(StatusCode::OK, &json!({"status": "ok"}));
            }
            ("POST", "/api/v2/notifications/loop") => {
                let Some(command) = body else {
                    return bad_request("no command");
                };
                self.data.lock().loop_notifications.push(command);
                return respond(StatusCode::OK, &json!({}));
            }
            _ => {}
        }
        let Some(rest) = path.strip_prefix("/api/v1/") else {
            return respond(StatusCode::NOT_FOUND, &json!({"status": 404}));
        };
        let mut segments = rest.splitn(2, '/');
        let head = segments.next().unwrap_or("");
        let tail = segments.next();
        let Some(collection) = COLLECTIONS
            .into_iter()
            .find(|c| head == *c || head.strip_suffix(".json") == Some(c))
        else {
            return respond(StatusCode::NOT_FOUND, &json!({"status": 404}));
        };
        let tail = tail.map(|t| t.strip_suffix(".json").unwrap_or(t));
        let filters = match Filter::parse_all(query) {
            Ok(filters) => filters,
            Err(why) => return bad_request(why),
        };
        let mut data = self.data.lock();
        match (method.as_str(), tail) {
            ("GET", tail) => {
                let mut filters = filters;
                let mut count = query
                    .iter()
                    .find(|(k, _)| k == "count")
                    .and_then(|(_, v)| v.parse::<usize>().ok())
                    .unwrap_or(10);
                match (collection, tail) {
                    ("entries", Some("current")) => count = 1,
                    ("entries", Some(kind @ ("sgv" | "mbg" | "cal"))) => {
                        filters.push(Filter::eq("type", kind))
                    }
                    (_, Some(id)) => filters.push(Filter::eq("_id", id)),
                    (_, None) => {}
                }
                let mut found: Vec<Value> = data
                    .collections
                    .get(collection)
                    .map(|docs| {
                        docs.iter()
                            .filter(|doc| filters.iter().all(|f| f.matches(doc)))
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                found.sort_by(|a, b| newest(b).total_cmp(&newest(a)));
                found.truncate(count);
                respond(StatusCode::OK, &Value::Array(found))
            }
            ("POST" | "PUT", None) => {
                let Some(body) = body else {
                    return bad_request("no documents");
                };
                let documents = match body {
                    Value::Array(documents) => documents,
                    document @ Value::Object(_) => vec![document],
                    _ => return bad_request("documents must be objects"),
                };
                let mut stored = Vec::with_capacity(documents.len());
                for document in documents {
                    let Value::Object(mut document) = document else {
                        return bad_request("documents must be objects");
                    };
                    // A body `secret` is a credential, never data (Nightscout deletes it).
                    document.remove("secret");
                    let id = match document.get("_id").and_then(Value::as_str) {
                        Some(id) => id.to_string(),
                        None => {
                            data.next_id += 1;
                            format!("{:024x}", data.next_id)
                        }
                    };
                    document.insert("_id".into(), Value::String(id.clone()));
                    let document = Value::Object(document);
                    let docs = data.collections.entry(collection).or_default();
                    match docs
                        .iter_mut()
                        .find(|d| d["_id"] == Value::String(id.clone()))
                    {
                        Some(existing) if method == Method::PUT => *existing = document.clone(),
                        _ => docs.push(document.clone()),
                    }
                    stored.push(document);
                }
                respond(StatusCode::OK, &Value::Array(stored))
            }
            ("DELETE", tail) => {
                let mut filters = filters;
                if let Some(id) = tail.filter(|t| !t.is_empty() && *t != "*") {
                    filters.push(Filter::eq("_id", id));
                } else if filters.is_empty() {
                    return bad_request("delete what?");
                }
                let docs = data.collections.entry(collection).or_default();
                let before = docs.len();
                docs.retain(|doc| !filters.iter().all(|f| f.matches(doc)));
                respond(StatusCode::OK, &json!({"n": before - docs.len(), "ok": 1}))
            }
            _ => respond(StatusCode::NOT_FOUND, &json!({"status": 404})),
        }
    }
}

/// What a document sorts by: `date` (ms), else `mills`, else nothing.
fn newest(document: &Value) -> f64 {
    ["date", "mills"]
        .iter()
        .find_map(|field| document.get(*field).and_then(Value::as_f64))
        .unwrap_or(0.0)
}

fn status() -> Value {
    json!({
        "status": "ok",
        "name": "nightscout",
        "version": "15.0.7-medgate-double",
        "serverTime": "2026-01-01T00:00:00.000Z",
        "serverTimeEpoch": 1767225600000u64,
        "apiEnabled": true,
        "careportalEnabled": true,
        "boluscalcEnabled": true,
        "settings": {"units": "mg/dl", "timeFormat": 24, "authDefaultRoles": "denied",
                     "enable": ["careportal", "iob", "cob"], "thresholds":
                     {"bgHigh": 260, "bgTargetTop": 180, "bgTargetBottom": 80, "bgLow": 55}},
        "extendedSettings": {},
        "authorized": null,
    })
}

/// A JSON body, gunzipped first when it says so.
fn decode_body(headers: &http::HeaderMap, raw: &[u8]) -> Result<Value, &'static str> {
    let coding = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let decoded;
    let bytes = match coding {
        None | Some("identity") => raw,
        Some(c) if c.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .take(MAX_BODY as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| "body is not gzip")?;
            if out.len() > MAX_BODY {
                return Err("body too large");
            }
            decoded = out;
            &decoded
        }
        Some(_) => return Err("unsupported content encoding"),
    };
    serde_json::from_slice(bytes).map_err(|_| "body is not JSON")
}

/// One `find[field]=v` or `find[field][$op]=v` condition.
struct Filter {
    field: String,
    op: Op,
    value: String,
}

#[derive(Clone, Copy)]
enum Op {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Exists,
}

impl Filter {
    fn eq(field: &str, value: &str) -> Filter {
        Filter {
            field: field.into(),
            op: Op::Eq,
            value: value.into(),
        }
    }

    fn parse_all(query: &[(String, String)]) -> Result<Vec<Filter>, &'static str> {
        query
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix("find[")?, value)))
            .map(|(rest, value)| {
                let (field, rest) = rest.split_once(']').ok_or("bad find")?;
                let op = match rest {
                    "" => Op::Eq,
                    "[$eq]" => Op::Eq,
                    "[$ne]" => Op::Ne,
                    "[$gt]" => Op::Gt,
                    "[$gte]" => Op::Gte,
                    "[$lt]" => Op::Lt,
                    "[$lte]" => Op::Lte,
                    "[$exists]" => Op::Exists,
                    _ => return Err("unsupported find operator"),
                };
                Ok(Filter {
                    field: field.to_string(),
                    op,
                    value: value.clone(),
                })
            })
            .collect()
    }

    fn matches(&self, document: &Value) -> bool {
        let field = document.get(&self.field);
        if let Op::Exists = self.op {
            return field.is_some() == (self.value != "false");
        }
        if self.value == "*" && matches!(self.op, Op::Eq) {
            return true;
        }
        let ordering = match field {
            Some(Value::Number(n)) => match (n.as_f64(), self.value.parse::<f64>().ok()) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => None,
            },
            Some(Value::String(s)) => Some(s.as_str().cmp(self.value.as_str())),
            _ => None,
        };
        use std::cmp::Ordering::*;
        match (self.op, ordering) {
            (Op::Eq, Some(o)) => o == Equal,
            (Op::Ne, o) => o != Some(Equal),
            (Op::Gt, Some(o)) => o == Greater,
            (Op::Gte, Some(o)) => o != Less,
            (Op::Lt, Some(o)) => o == Less,
            (Op::Lte, Some(o)) => o != Greater,
            _ => false,
        }
    }
}
