//! Two nodes (two control planes, two gateways) on one PostgreSQL database and one Redis,
//! behind one public gateway URL, as behind a load balancer: a challenge taken at one is
//! answered at the other, a proof used at one gateway is refused at the other, a revocation
//! made through one reaches both gateways within 5 s by Redis's push (the store poll is set to
//! 30 s here, so nothing else could deliver it), an App Attest counter raced from both
//! replicas moves once, and the audit chain both appended to verifies without a fork.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, StatusCode};
use medgate_node::config::Config;
use medgate_sdk::client::MedgateClient;
use medgate_sdk::evidence::PlatformEvidence;
use medgate_sdk::key::InstallationKey;
use medgate_store::postgres::testing;
use medgate_testkit::attestation::AppleEnvironment;
use medgate_testkit::redis::RedisServer;

use crate::common::{MEASUREMENT, Stack, VERSION, client_for};
use crate::hardware::{APPLE_APP_ID, apple_attest, race_assertions, set_platform};

struct Pair {
    a: Stack,
    b: Stack,
    _redis: RedisServer,
    _database: testing::TestDatabase,
}

/// Node A, then node B on the same database and Redis, both answering for A's gateway URL.
async fn pair() -> Option<Pair> {
    let (_store, database) = testing::fresh().await?;
    let redis = RedisServer::start()?;
    let shared = |config: &mut Config| {
        config.store.url = Some(database.url());
        config.redis.url = Some(redis.url());
        config.server.issuer = Some("http://medgate.test".into());
        config.gateway.refresh_interval = Duration::from_secs(30);
    };
    let a = Stack::start_with(shared).await;
    let public_url = a.node.public_url().to_string();
    let b = a
        .replica(|config| {
            shared(config);
            config.gateway.public_url = Some(public_url);
        })
        .await;
    Some(Pair {
        a,
        b,
        _redis: redis,
        _database: database,
    })
}

/// The same installation (one key) talking to node A's and node B's control plane.
fn clients(pair: &Pair) -> (MedgateClient, MedgateClient) {
    let path = pair.a.dir.path().join("installation.jwk");
    let key = InstallationKey::load_or_create(&path).unwrap();
    let at_a = client_for(&pair.a.node, &pair.a.clock, key, VERSION, MEASUREMENT);
    // B's public URL is A's: the proofs both gateways check name that URL.
    let at_b = client_for(
        &pair.b.node,
        &pair.b.clock,
        InstallationKey::load_or_create(&path).unwrap(),
        VERSION,
        MEASUREMENT,
    );
    (at_a, at_b)
}

/// Sends GET `path` with `headers` to a node's gateway (its own address).
async fn through(stack: &Stack, path: &str, headers: &HeaderMap) -> StatusCode {
    let url = format!("http://{}{path}", stack.node.gateway_addr());
    stack
        .raw(Method::GET, &url, headers.clone(), Bytes::new())
        .await
        .status()
}

async fn headers_for(client: &MedgateClient, path: &str) -> HeaderMap {
    let headers = client.request_headers("GET", path).await.unwrap();
    headers.to_header_map()
}

#[tokio::test]
async fn two_replicas_share_challenges_replays_and_revocations() {
    let Some(pair) = pair().await else {
        return;
    };
    let (at_a, at_b) = clients(&pair);
    // Challenge at A, attest at B.
    let challenge = at_a.challenge().await.unwrap();
    let sdk = PlatformEvidence::Sdk {
        binary_sha256: MEASUREMENT.into(),
    };
    at_b.attest_platform(&challenge, &sdk, None).await.unwrap();
    // A challenge is still single use across replicas.
    assert!(at_a.attest_platform(&challenge, &sdk, None).await.is_err());

    // One proof: admitted at one gateway, refused at the other, whichever goes first.
    let headers = headers_for(&at_b, "/echo").await;
    assert_eq!(through(&pair.a, "/echo", &headers).await, StatusCode::OK);
    assert_eq!(
        through(&pair.b, "/echo", &headers).await,
        StatusCode::UNAUTHORIZED
    );
    let headers = headers_for(&at_b, "/echo").await;
    assert_eq!(through(&pair.b, "/echo", &headers).await, StatusCode::OK);
    assert_eq!(
        through(&pair.a, "/echo", &headers).await,
        StatusCode::UNAUTHORIZED
    );

    // Revoked through A: refused at both gateways within 5 s, by the push alone.
    pair.a
        .revoke_installation(at_a.installation_id().as_str())
        .await;
    for stack in [&pair.a, &pair.b] {
        let took = stack
            .eventually(5, || async {
                let headers = headers_for(&at_b, "/echo").await;
                through(stack, "/echo", &headers).await == StatusCode::UNAUTHORIZED
            })
            .await;
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    let (entries, _) = medgate_store::verify_audit_chain(&*pair.b.node.store())
        .await
        .unwrap()
        .unwrap();
    assert!(
        entries >= 5,
        "key, app, release, decision, revocation: {entries}"
    );
}

#[tokio::test]
async fn an_app_attest_counter_raced_from_two_replicas_moves_once() {
    let Some(pair) = pair().await else {
        return;
    };
    set_platform(
        &pair.a,
        "apple-app-attest",
        serde_json::json!({"app_ids": [APPLE_APP_ID]}),
    )
    .await;
    let (at_a, at_b) = clients(&pair);
    let (granted, key) = apple_attest(
        &pair.a,
        &at_a,
        APPLE_APP_ID,
        AppleEnvironment::Production,
        None,
        None,
    )
    .await;
    granted.unwrap();
    let (at_a, at_b) = (Arc::new(at_a), Arc::new(at_b));
    let clients = (0..8)
        .map(|round| Arc::clone(if round % 2 == 0 { &at_a } else { &at_b }))
        .collect();
    assert_eq!(race_assertions(clients, Arc::new(key), 7).await, 1);
    let stored = pair
        .b
        .node
        .store()
        .apple_key(at_b.installation_id().as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.counter, 7);
    medgate_store::verify_audit_chain(&*pair.a.node.store())
        .await
        .unwrap()
        .unwrap();
}

/// Redis stopped: reads go on with the gateway's own replay cache, writes are refused with
/// 503 and `Retry-After` (the routes' defaults); once it is back, writes pass again.
#[tokio::test]
async fn without_redis_reads_fail_open_and_writes_fail_closed() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let stack = Stack::start_with(|config| config.redis.url = Some(url)).await;
    let client = stack.client();
    client.attest().await.unwrap();
    let write = || client.send(Method::POST, "/api/v1/treatments", Bytes::from("{}"));
    assert_eq!(write().await.unwrap().status, StatusCode::CREATED);

    redis.stop();
    assert_eq!(
        client.get("/api/v1/entries.json").await.unwrap().status,
        StatusCode::OK
    );
    let refused = crate::common::Reply(write().await.unwrap());
    refused.assert_problem(
        StatusCode::SERVICE_UNAVAILABLE,
        medgate_proto::wire::problem_type::UNAVAILABLE,
    );
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    // A replay is still refused by the gateway's own cache while Redis is away.
    let headers = headers_for(&client, "/api/v1/entries.json").await;
    assert_eq!(
        through(&stack, "/api/v1/entries.json", &headers).await,
        StatusCode::OK
    );
    assert_eq!(
        through(&stack, "/api/v1/entries.json", &headers).await,
        StatusCode::UNAUTHORIZED
    );

    redis.restart();
    stack
        .eventually(10, || async {
            write().await.unwrap().status == StatusCode::CREATED
        })
        .await;
    let metrics = stack.node.metrics().render();
    for result in ["admitted", "unavailable_open", "unavailable_closed"] {
        assert!(
            metrics.contains(&format!(
                "medgate_gateway_shared_state_total{{result=\"{result}\"}}"
            )),
            "{result} not counted"
        );
    }
}

/// A store poll slower than 5 s relies on Redis's pushes; while they cannot arrive (Redis
/// stopped), the gateway polls every 5 s, so a revocation still lands within the bound.
#[tokio::test]
async fn a_slow_poll_falls_back_to_five_seconds_while_redis_is_down() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    let stack = Stack::start_with(|config| {
        config.redis.url = Some(url);
        config.gateway.refresh_interval = Duration::from_secs(30);
    })
    .await;
    let client = stack.client();
    client.attest().await.unwrap();
    assert_eq!(client.get("/echo").await.unwrap().status, StatusCode::OK);
    redis.stop();
    stack
        .revoke_installation(client.installation_id().as_str())
        .await;
    // Within the 5 s fallback poll, plus slack for a loaded machine.
    stack
        .eventually(8, || async {
            client.get("/echo").await.unwrap().status == StatusCode::UNAUTHORIZED
        })
        .await;
}
