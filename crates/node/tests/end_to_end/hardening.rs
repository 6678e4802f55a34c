//! What an unauthenticated client, or one installation, can take from everyone else: audit
//! rows, replay-cache capacity, connections held by slow bodies.

use std::time::Duration;

use http::{Method, StatusCode};
use medgate_service::ratelimit::RateLimit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::Stack;

#[tokio::test]
async fn a_flood_of_unauthenticated_junk_writes_a_bounded_audit_log() {
    let stack = Stack::start().await;
    let store = stack.node.store();
    let before = store.audit_entries(0, usize::MAX).await.unwrap().len();
    // What a client without credentials sends: no token, garbage tokens carrying text, a JSON
    // body it would like to see echoed.
    let junk = format!("DPoP {}", "PATIENT-NOTE-".repeat(50));
    for i in 0..300 {
        let authorization = match i % 3 {
            0 => None,
            1 => Some(junk.as_str()),
            _ => Some("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJQQVRJRU5ULU5PVEUifQ."),
        };
        let reply = stack
            .gateway(Method::GET, "/api/v1/entries", authorization, None)
            .await;
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
    }
    // Once their minute is over the refusals are written, one row per kind and code.
    stack.clock.advance(61);
    stack
        .eventually(20, || async {
            store
                .audit_entries(0, usize::MAX)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == "gateway.refusals")
        })
        .await;
    let entries = store.audit_entries(0, usize::MAX).await.unwrap();
    let added = &entries[before..];
    assert!(
        added.len() <= 4,
        "300 refusals wrote {} rows: {added:?}",
        added.len()
    );
    let counted: u64 = added
        .iter()
        .filter(|e| e.kind == "gateway.refusals")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["count"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, 300, "every refusal is counted");
    for entry in added {
        assert!(!entry.detail.contains("PATIENT"), "{entry:?}");
        assert!(!entry.subject.contains("PATIENT"), "{entry:?}");
    }
}

#[tokio::test]
async fn refused_requests_take_no_replay_capacity_and_no_installation_starves_another() {
    let stack = Stack::start_with(|config| {
        config.gateway.rate_limit = RateLimit {
            per_second: 0,
            burst: 0,
        };
        config.gateway.replay_cache_size = 8;
        config.gateway.replay_share = Some(4);
    })
    .await;
    let flooder = stack.client();
    flooder.attest().await.unwrap();
    // Requests the route table refuses cost no place in the shared cache.
    for _ in 0..20 {
        let reply = flooder.get("/not/a/route").await.unwrap();
        assert_eq!(reply.status, StatusCode::FORBIDDEN);
    }
    // Admitted requests: the flooder gets its share, then is limited on its own account.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(flooder.get("/echo").await.unwrap().status);
    }
    assert_eq!(
        &statuses[..4],
        [StatusCode::OK; 4],
        "the share is served: {statuses:?}"
    );
    assert!(
        statuses[4..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Another installation is unaffected.
    let other = stack.client();
    other.attest().await.unwrap();
    assert_eq!(other.get("/echo").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_body_that_never_arrives_is_cut_off() {
    let stack = Stack::start_with(|config| {
        config.server.body_read_timeout = Duration::from_millis(300);
    })
    .await;
    let mut stream = TcpStream::connect(stack.node.server_addr()).await.unwrap();
    stream
        .write_all(
            b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"app_id\":",
        )
        .await
        .unwrap();
    // Nothing more is sent: the server answers 408 and closes, instead of waiting forever.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "the connection was held open");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
}

/// Path and header tricks through the gateway, with a genuine token and proof: what is
/// refused, and exactly what the upstream received for what is forwarded.
#[tokio::test]
async fn path_and_header_tricks_reach_the_upstream_only_in_canonical_form() {
    use bytes::Bytes;
    use http::header::{HeaderName, HeaderValue};
    let stack = Stack::start().await;
    let client = stack.client();
    client.attest().await.unwrap();
    let send =
        |sent: String, proof_path: &'static str, extra: &'static [(&'static str, &'static str)]| {
            let (stack, client) = (&stack, &client);
            async move {
                let headers = client.request_headers("GET", proof_path).await.unwrap();
                let mut map = headers.to_header_map();
                for (name, value) in extra {
                    map.append(
                        HeaderName::from_bytes(name.as_bytes()).unwrap(),
                        HeaderValue::from_static(value),
                    );
                }
                stack
                    .raw(Method::GET, &stack.gateway_url(&sent), map, Bytes::new())
                    .await
            }
        };
    // (sent, proof made for, status, path the upstream saw)
    let table: &[(&str, &str, StatusCode, Option<&str>)] = &[
        ("/echo/ex", "/echo/ex", StatusCode::OK, Some("/echo/ex")),
        ("/echo/%65x", "/echo/ex", StatusCode::OK, Some("/echo/ex")),
        (
            "/echo/a%2bb",
            "/echo/a%2Bb",
            StatusCode::OK,
            Some("/echo/a%2Bb"),
        ),
        ("/echo/..;/admin", "/echo", StatusCode::BAD_REQUEST, None),
        ("/echo;jsessionid=x", "/echo", StatusCode::BAD_REQUEST, None),
        ("/echo/%3b/admin", "/echo", StatusCode::BAD_REQUEST, None),
        ("/echo%2f..%2fadmin", "/echo", StatusCode::BAD_REQUEST, None),
        ("/echo/%2e%2e/admin", "/echo", StatusCode::BAD_REQUEST, None),
        (
            "/echo/%c0%ae%c0%ae/admin",
            "/echo",
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "/echo/%ef%bc%8e%ef%bc%8e/admin",
            "/echo",
            StatusCode::BAD_REQUEST,
            None,
        ),
        ("/echo/x%00.json", "/echo", StatusCode::BAD_REQUEST, None),
        ("/echo//admin", "/echo", StatusCode::BAD_REQUEST, None),
    ];
    for (sent, proof_path, status, upstream_path) in table {
        let reply = send(sent.to_string(), proof_path, &[]).await;
        assert_eq!(reply.status(), *status, "{sent}");
        if let Some(expected) = upstream_path {
            assert_eq!(reply.json()["path"], *expected, "{sent}");
        }
    }
    let long = format!("/echo/{}", "a".repeat(3000));
    assert_eq!(
        send(long, "/echo", &[]).await.status(),
        StatusCode::URI_TOO_LONG
    );
    // A query is read whole for route rules, so it is bounded too (8 KiB): a filter cannot
    // hide behind thousands of parameters.
    let query = |len: usize| format!("/echo?{}", "a=1&".repeat(len / 4));
    assert_eq!(
        send(query(8000), "/echo", &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        send(query(8200), "/echo", &[]).await.status(),
        StatusCode::URI_TOO_LONG
    );
    // Headers that would speak for someone else upstream.
    let spoofed: &'static [(&'static str, &'static str)] = &[
        ("x_medgate_scope", "admin"),
        ("X-Medgate-Installation", "someone-else"),
        ("x-forwarded-for", "6.6.6.6"),
        ("x_forwarded_for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
        ("x-real-ip", "6.6.6.6"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-http-method-override", "DELETE"),
    ];
    let reply = send("/echo".into(), "/echo", spoofed).await;
    reply.assert_status(StatusCode::OK);
    let seen = reply.json();
    let headers = seen["headers"].as_object().unwrap();
    assert_eq!(headers["x-medgate-scope"], "entries:read entries:write");
    assert_eq!(
        headers["x-medgate-installation"],
        client.installation_id().as_str()
    );
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    for name in [
        "x_medgate_scope",
        "x_forwarded_for",
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
        "x-http-method-override",
    ] {
        assert!(!headers.contains_key(name), "{name} reached the upstream");
    }
    assert_ne!(headers["x-forwarded-host"], "evil.example");
}

/// Behind a trusted proxy each client has its own limit; a peer that is not a trusted proxy is
/// keyed by its own address whatever its headers claim.
#[tokio::test]
async fn behind_a_trusted_proxy_clients_have_separate_limits() {
    use bytes::Bytes;
    use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
    let stack = Stack::start_with(|config| {
        config.server.client_rate_limit = RateLimit {
            per_second: 1,
            burst: 2,
        };
        config.server.connections.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let body = Bytes::from(format!(r#"{{"app_id":"{}"}}"#, crate::common::APP));
    let through_proxy = |client: &'static str| {
        let (stack, body) = (&stack, body.clone());
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            headers.insert("x-forwarded-for", HeaderValue::from_static(client));
            let url = format!("{}/v1/challenge", stack.node.server_url());
            stack.raw(Method::POST, &url, headers, body).await.status()
        }
    };
    // One client behind the proxy spends its own budget (2, plus 1 a second)...
    let started = std::time::Instant::now();
    let mut created = 0;
    for _ in 0..10 {
        if through_proxy("198.51.100.1").await == StatusCode::CREATED {
            created += 1;
        }
    }
    let allowed = 2 + started.elapsed().as_secs() + 1;
    assert!(
        created >= 2 && created <= allowed,
        "{created} of 10 created"
    );
    // ...and not another's.
    assert_eq!(through_proxy("198.51.100.2").await, StatusCode::CREATED);
    // 127.0.0.2 is not a trusted proxy: its claims of other addresses change nothing.
    let direct = |claimed: &'static str| {
        let stack = &stack;
        async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let mut stream = socket.connect(stack.node.server_addr()).await.unwrap();
            let body = format!(r#"{{"app_id":"{}"}}"#, crate::common::APP);
            let request = format!(
                "POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 X-Forwarded-For: {claimed}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut reply = Vec::new();
            stream.read_to_end(&mut reply).await.unwrap();
            String::from_utf8_lossy(&reply).into_owned()
        }
    };
    let started = std::time::Instant::now();
    let claims = [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
        "203.0.113.4",
        "203.0.113.5",
    ];
    let mut created = 0;
    for claimed in claims.iter().cycle().take(10) {
        if direct(claimed).await.starts_with("HTTP/1.1 201") {
            created += 1;
        }
    }
    let allowed = 2 + started.elapsed().as_secs() + 1;
    assert!(
        created <= allowed,
        "{created} of 10 created: the claimed addresses were believed"
    );
}

/// A tmpfs of a few megabytes: a data volume that really fills up. Needs root (CI runs as
/// root); elsewhere the test skips with one line.
struct SmallVolume {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallVolume {
    fn mount(size: &str) -> Option<SmallVolume> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("volume");
        std::fs::create_dir(&path).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .is_ok_and(|status| status.success());
        if !mounted {
            assert!(
                std::env::var_os("MEDGATE_CI").is_none(),
                "CI must be able to mount a tmpfs (run as root)"
            );
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        Some(SmallVolume { path, _dir: dir })
    }

    /// Writes a file until the volume is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.write_all(&chunk[..512]);
        filler
    }
}

impl Drop for SmallVolume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .status();
    }
}

/// On a full data volume the node says it is not ready and answers 503 with Retry-After
/// (never 500), grants nothing it cannot record, and once space is back it records the gap in
/// the audit chain and serves again.
#[tokio::test]
async fn a_full_data_volume_gives_503_and_not_ready_then_recovers_with_the_gap_recorded() {
    use bytes::Bytes;
    use http::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
    let Some(volume) = SmallVolume::mount("3m") else {
        return;
    };
    let data = volume.path.join("data");
    let stack = Stack::start_with(move |config| config.server.data_dir = data).await;
    stack.client().attest().await.unwrap();
    let filler = volume.fill();
    let challenge = || {
        let stack = &stack;
        async move {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            let body = Bytes::from(format!(r#"{{"app_id":"{}"}}"#, crate::common::APP));
            let url = format!("{}/v1/challenge", stack.node.server_url());
            stack.raw(Method::POST, &url, headers, body).await
        }
    };
    // SQLite may still find room in pages and WAL it already has; the volume runs out soon.
    let mut refused = None;
    for _ in 0..2000 {
        let reply = challenge().await;
        match reply.status() {
            StatusCode::CREATED => continue,
            status => {
                refused = Some((status, reply.header("retry-after")));
                break;
            }
        }
    }
    let (status, retry_after) = refused.expect("the full volume never refused a write");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.is_some(), "503 without Retry-After");
    let ready = stack.server_get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        stack.client().attest().await.is_err(),
        "granted while unrecorded"
    );

    // Space comes back: the writer records the gap, the node is ready and serves again.
    std::fs::remove_file(filler).unwrap();
    stack
        .eventually(60, || async {
            stack.server_get("/readyz").await.status() == StatusCode::OK
        })
        .await;
    stack.client().attest().await.unwrap();
    let store = stack.node.store();
    let (count, _) = medgate_store::verify_audit_chain(&*store)
        .await
        .unwrap()
        .unwrap();
    assert!(count > 0);
    let entries = store.audit_entries(0, usize::MAX).await.unwrap();
    let gap = entries
        .iter()
        .find(|e| e.kind == "audit.dropped")
        .expect("the outage is in the chain");
    let detail: serde_json::Value = serde_json::from_str(&gap.detail).unwrap();
    assert!(detail["failing_since"].as_i64().is_some(), "{detail}");
}

/// Keys made up and refused leave no installation rows; a refusal of a known installation is
/// recorded against it.
#[tokio::test]
async fn refused_attestations_of_new_keys_leave_no_rows() {
    let stack = Stack::start().await;
    let store = stack.node.store();
    for _ in 0..20 {
        let hooked = stack.client_with_signals(&["hook"]);
        assert!(hooked.attest().await.is_err());
        assert!(
            store
                .get_installation(hooked.installation_id().as_str())
                .await
                .unwrap()
                .is_none()
        );
    }
    let known = stack.client();
    known.attest().await.unwrap();
    assert!(
        store
            .get_installation(known.installation_id().as_str())
            .await
            .unwrap()
            .is_some()
    );
    // Lists come a page at a time.
    for _ in 0..2 {
        stack.client().attest().await.unwrap();
    }
    let page = stack
        .admin(
            Method::GET,
            "/v1/admin/installations?limit=2",
            serde_json::Value::Null,
        )
        .await;
    page.assert_status(StatusCode::OK);
    assert_eq!(page.json().as_array().unwrap().len(), 2);
    let next = page
        .header("x-next-after")
        .expect("a full page says where to go on");
    let rest = stack
        .admin(
            Method::GET,
            &format!("/v1/admin/installations?limit=2&after={next}"),
            serde_json::Value::Null,
        )
        .await;
    assert_eq!(rest.json().as_array().unwrap().len(), 1);
    assert_eq!(rest.header("x-next-after"), None);
}

/// Signed checkpoints of the audit head are published on the public listener and appended to
/// a file in the data directory; they verify with the node's pinned checkpoint key.
#[tokio::test]
async fn audit_checkpoints_are_signed_published_and_written() {
    let stack = Stack::start().await;
    // The node checkpointed at start: the first signing key's creation was the chain's head.
    let at_start = stack.server_get("/v1/audit/checkpoint").await;
    at_start.assert_status(StatusCode::OK);
    let pinned = stack.node.checkpoint_key_thumbprint();
    let first = String::from_utf8(at_start.0.body.to_vec()).unwrap();
    assert_eq!(
        medgate_verify::checkpoint::verify(&first, Some(&pinned))
            .unwrap()
            .seq(),
        1
    );
    let made = stack.node.make_checkpoint().await.unwrap().unwrap();
    let published = stack.server_get("/v1/audit/checkpoint").await;
    published.assert_status(StatusCode::OK);
    assert_eq!(String::from_utf8(published.0.body.to_vec()).unwrap(), made);
    let verified = medgate_verify::checkpoint::verify(&made, Some(&pinned)).unwrap();
    let head = stack.node.store().audit_head().await.unwrap().unwrap();
    assert_eq!((verified.seq(), verified.hash()), (head.seq, head.hash));
    let file = std::fs::read_to_string(
        stack
            .node
            .data_dir()
            .join(medgate_node::checkpoint::CHECKPOINT_FILE),
    )
    .unwrap();
    assert_eq!(file.lines().last(), Some(made.as_str()));
}
