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
