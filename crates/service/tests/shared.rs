//! The shared state against a real `redis-server` of each test's own.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use medgate_service::ratelimit::RateLimit;
use medgate_service::shared::{Admission, Cell, SharedParams, SharedState, SharedUnavailable};
use medgate_testkit::redis::RedisServer;
use tokio::sync::{Notify, watch};

async fn connect(server: &RedisServer) -> SharedState {
    SharedState::connect(SharedParams {
        url: server.url(),
        prefix: "medgate-test:".into(),
        timeout: Duration::from_millis(200),
    })
    .await
    .unwrap()
}

const MINUTE: Duration = Duration::from_secs(60);

fn key(n: u8) -> [u8; 32] {
    [n; 32]
}

#[tokio::test]
async fn a_replay_key_taken_by_one_gateway_is_refused_at_every_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (connect(&server).await, connect(&server).await);
    assert_eq!(a.admit(&key(1), MINUTE, &[]).await, Ok(Admission::Admitted));
    assert_eq!(b.admit(&key(1), MINUTE, &[]).await, Ok(Admission::Replayed));
    assert_eq!(a.admit(&key(1), MINUTE, &[]).await, Ok(Admission::Replayed));
    assert_eq!(b.admit(&key(2), MINUTE, &[]).await, Ok(Admission::Admitted));
}

#[tokio::test]
async fn a_replay_key_is_forgotten_after_its_lifetime() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shared = connect(&server).await;
    let lifetime = Duration::from_millis(50);
    assert_eq!(
        shared.admit(&key(3), lifetime, &[]).await,
        Ok(Admission::Admitted)
    );
    assert_eq!(
        shared.admit(&key(3), lifetime, &[]).await,
        Ok(Admission::Replayed)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.admit(&key(3), lifetime, &[]).await != Ok(Admission::Admitted) {
        assert!(Instant::now() < deadline, "the key never expired");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn rate_cells_are_shared_and_a_limited_request_takes_no_replay_key() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (connect(&server).await, connect(&server).await);
    let limit = RateLimit {
        per_second: 1,
        burst: 2,
    };
    let cells = [Cell {
        kind: "i",
        id: "inst-1",
        limit,
    }];
    assert_eq!(
        a.admit(&key(10), MINUTE, &cells).await,
        Ok(Admission::Admitted)
    );
    assert_eq!(
        b.admit(&key(11), MINUTE, &cells).await,
        Ok(Admission::Admitted)
    );
    let Ok(Admission::Limited(wait)) = a.admit(&key(12), MINUTE, &cells).await else {
        panic!("the third request within the burst must be limited");
    };
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    // Another installation's cell is its own.
    let other = [Cell {
        kind: "i",
        id: "inst-2",
        limit,
    }];
    assert_eq!(
        b.admit(&key(13), MINUTE, &other).await,
        Ok(Admission::Admitted)
    );
    // The limited request did not spend its replay key.
    assert_eq!(
        b.admit(&key(12), MINUTE, &[]).await,
        Ok(Admission::Admitted)
    );
}

#[tokio::test]
async fn a_stopped_redis_is_unavailable_at_once_and_serves_again_after_a_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let shared = connect(&server).await;
    assert_eq!(
        shared.admit(&key(20), MINUTE, &[]).await,
        Ok(Admission::Admitted)
    );
    server.stop();
    assert_eq!(
        shared.admit(&key(21), MINUTE, &[]).await,
        Err(SharedUnavailable)
    );
    // In back-off: not even tried.
    let asked = Instant::now();
    assert_eq!(
        shared.admit(&key(21), MINUTE, &[]).await,
        Err(SharedUnavailable)
    );
    assert!(asked.elapsed() < Duration::from_millis(100));
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match shared.admit(&key(22), MINUTE, &[]).await {
            Ok(admission) => {
                assert_eq!(admission, Admission::Admitted);
                break;
            }
            Err(SharedUnavailable) => {
                assert!(Instant::now() < deadline, "never reconnected");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn an_announcement_wakes_every_follower() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (connect(&server).await, connect(&server).await);
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let changed = Arc::new(Notify::new());
    tokio::spawn(b.follow_changes(Arc::clone(&changed), shutdown_rx));
    // The follower wakes once when it has subscribed ...
    tokio::time::timeout(Duration::from_secs(10), changed.notified())
        .await
        .unwrap();
    // ... and again for each announcement.
    a.announce().await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), changed.notified())
        .await
        .unwrap();
}
