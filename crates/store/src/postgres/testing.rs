//! A fresh database per test on the PostgreSQL the tests are pointed at
//! (`MEDGATE_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`), dropped
//! when the test ends. Without a reachable server the tests skip with one line, except under
//! CI (`MEDGATE_CI`), where they fail.

use std::sync::Once;

use ring::rand::SecureRandom;

use super::{PostgresOptions, PostgresStore};

pub const URL_ENV: &str = "MEDGATE_TEST_POSTGRES";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Drops its database when dropped.
pub struct TestDatabase {
    server: String,
    name: String,
}

impl TestDatabase {
    /// The test database's URL, for a node's `[store] url`.
    pub fn url(&self) -> String {
        with_database(&self.server, &self.name).unwrap_or_default()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop has no runtime to await on: a thread of its own, with one.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// The URL of database `name` on the server `url` points at.
fn with_database(url: &str, name: &str) -> Option<String> {
    let (server, _) = url.split_once("://")?.1.split_once('/')?;
    Some(format!("postgres://{server}/{name}"))
}

/// A store on a new, empty database, or `None` (after one line saying so) when there is no
/// PostgreSQL to test against outside CI.
pub async fn fresh() -> Option<(PostgresStore, TestDatabase)> {
    let server = std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_string());
    let (client, connection) = match tokio_postgres::connect(&server, tokio_postgres::NoTls).await {
        Ok(pair) => pair,
        Err(error) => {
            assert!(
                std::env::var_os("MEDGATE_CI").is_none(),
                "PostgreSQL at {server} is required under CI: {error}"
            );
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                eprintln!("skipped: the PostgreSQL store tests need a server ({URL_ENV}, {error})")
            });
            return None;
        }
    };
    tokio::spawn(connection);
    let mut suffix = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut suffix)
        .expect("the system RNG works");
    let name = format!("medgate_test_{}", medgate_proto::hex::encode(&suffix));
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("the test server lets us create a database");
    let guard = TestDatabase {
        server: server.clone(),
        name: name.clone(),
    };
    let store = PostgresStore::open(&PostgresOptions {
        url: with_database(&server, &name).expect("a postgres:// URL with a database"),
        pool_size: 8,
        statement_timeout_ms: 30_000,
        ca: None,
    })
    .await
    .expect("the store opens on a fresh database");
    Some((store, guard))
}
