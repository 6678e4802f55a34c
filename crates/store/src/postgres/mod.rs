//! The PostgreSQL backend, for several medgate nodes on one database.
//!
//! A pool of connections (deadpool) over tokio-postgres; each method is one statement or one
//! transaction. What SQLite gets from its single connection, this backend gets from the
//! database:
//! - the audit chain has one writer: every append takes the chain's advisory lock
//!   (`pg_advisory_xact_lock`) before it reads the head, and holds it until it commits;
//! - the revocation feed never skips a row: every append takes the feed's advisory lock before
//!   it draws a sequence value, so values commit in order, and `revocations_since(last)` cannot
//!   miss a row that commits after a higher one was read. Appends take the feed's lock before
//!   the chain's, always;
//! - single use (challenges, enrolment codes) and compare-and-set (App Attest counters) are
//!   single statements whose `WHERE` PostgreSQL re-checks under the row lock.
//!
//! Migrations are embedded and versioned (`medgate_schema`), applied under their own advisory
//! lock so that nodes starting together apply each once; a schema newer than this medgate knows
//! is refused.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use medgate_verify::UnixTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::audit::{self, AuditEntry, NewAuditEntry};
use crate::columns::{self, corrupt};
use crate::{
    App, AppStore, AppleKeyRecord, AttestationRecord, AuditStore, Challenge, CredentialRecord,
    CredentialStore, Enrolment, EnrolmentClaim, EnrolmentRevocation, GrantOutcome, GrantWrites,
    Installation, InstallationFilter, InstallationKeys, InstallationStore, KeyStore, PartnerKeys,
    PartnerRecord, PartnerStore, PinRecord, PlatformStore, Release, Revocation, RevocationTarget,
    SecretRecord, SecretStore, SigningKeyRecord, Store, StoreError, TrustKeyRecord,
    TrustMetadataRecord, TrustStore,
};

mod apps;
mod audit_log;
mod credentials;
mod installations;
mod keys;
mod operators;
mod partners;
mod platforms;
mod secrets;
mod tables;
mod telemetry;
#[cfg(any(test, feature = "conformance"))]
pub mod testing;
mod tls;
mod trust;

/// Migrations, applied in order; `medgate_schema` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_secrets.sql"),
    include_str!("../../migrations/postgres/0003_trust.sql"),
    include_str!("../../migrations/postgres/0004_installation_keys.sql"),
    include_str!("../../migrations/postgres/0005_credentials.sql"),
    include_str!("../../migrations/postgres/0006_partners.sql"),
    include_str!("../../migrations/postgres/0007_telemetry.sql"),
    include_str!("../../migrations/postgres/0008_telemetry_hours.sql"),
    include_str!("../../migrations/postgres/0009_operators.sql"),
];

/// Advisory lock keys (one 64-bit space per database).
const MIGRATION_LOCK: i64 = 0x6d65_6467_0001;
const FEED_LOCK: i64 = 0x6d65_6467_0002;
const AUDIT_LOCK: i64 = 0x6d65_6467_0003;
const TRUST_LOCK: i64 = 0x6d65_6467_0004;

/// How the store connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/database` (libpq keyword strings work too).
    pub url: String,
    pub pool_size: usize,
    /// Every statement's limit, set on each connection (`statement_timeout`).
    pub statement_timeout_ms: u64,
    /// With `sslmode=require`: the CA certificates (PEM) the server's chain must lead to;
    /// none: Mozilla's roots.
    pub ca: Option<std::path::PathBuf>,
}

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PostgresStore")
    }
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

/// A database error's SQLSTATE, if it is one.
fn state(error: &tokio_postgres::Error) -> Option<&SqlState> {
    error.as_db_error().map(|db| db.code())
}

/// The error of an insert: a duplicate key is a conflict over `what`; a missing parent row
/// (every foreign key in the schema but App Attest's names an app) is an unknown app.
fn insert_error(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| match state(&e) {
        Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Conflict(what),
        _ => app_error(e),
    }
}

/// A write whose only foreign key names an app.
fn app_error(e: tokio_postgres::Error) -> StoreError {
    if state(&e) == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        StoreError::NotFound("app")
    } else {
        backend(e)
    }
}

fn time(row: &Row, column: &str) -> Result<UnixTime, StoreError> {
    Ok(UnixTime::from_secs(row.try_get(column).map_err(backend)?))
}

fn optional_time(row: &Row, column: &str) -> Result<Option<UnixTime>, StoreError> {
    Ok(row
        .try_get::<_, Option<i64>>(column)
        .map_err(backend)?
        .map(UnixTime::from_secs))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(backend)
}

impl PostgresStore {
    /// Connects, and applies pending migrations.
    pub async fn open(options: &PostgresOptions) -> Result<Self, StoreError> {
        let url = tls::normalise_sslmode(&options.url)?;
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StoreError::Backend("the PostgreSQL URL does not parse".into()))?;
        config.options(format!(
            "-c statement_timeout={}",
            options.statement_timeout_ms
        ));
        let recycling = || ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Require => {
                Manager::from_config(config, tls::connector(options.ca.as_deref())?, recycling())
            }
            _ => Manager::from_config(config, NoTls, recycling()),
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .build()
            .map_err(backend)?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(backend)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS medgate_schema (version BIGINT NOT NULL)")
            .await
            .map_err(backend)?;
        let applied: Option<i64> = tx
            .query_opt("SELECT max(version) FROM medgate_schema", &[])
            .await
            .map_err(backend)?
            .and_then(|row| row.get(0));
        let applied = columns::applied_migrations(applied.unwrap_or(0), MIGRATIONS.len())?;
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
            tx.batch_execute(sql).await.map_err(backend)?;
            let version = i64::try_from(index + 1).unwrap_or(i64::MAX);
            tx.execute(
                "INSERT INTO medgate_schema (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}

/// Appends `entries` to the audit chain inside `tx`, under the chain's lock: the head is read
/// and the entries written while no other node can append, and they commit with whatever else
/// `tx` wrote.
async fn append_entries(
    tx: &impl GenericClient,
    entries: &[NewAuditEntry],
) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
        .await
        .map_err(backend)?;
    let head = tx
        .query_opt(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await
        .map_err(backend)?;
    let (mut seq, mut prev_hash) = match head {
        Some(row) => (get::<i64>(&row, "seq")?, audit_log::hash(&row, "hash")?),
        None => (0, [0; 32]),
    };
    for new in entries {
        seq += 1;
        let entry = audit::seal_entry(new, seq, prev_hash);
        tx.execute(
            "INSERT INTO audit_log (seq, at, kind, actor, subject, detail, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &entry.seq,
                &entry.at.secs(),
                &entry.kind,
                &entry.actor,
                &entry.subject,
                &entry.detail,
                &entry.prev_hash.as_slice(),
                &entry.hash.as_slice(),
            ],
        )
        .await
        .map_err(backend)?;
        prev_hash = entry.hash;
    }
    Ok(())
}

/// Ends an admin change: its audit entry, with what only the store learned added to its
/// detail, is appended and commits with the change.
async fn commit_change(
    tx: deadpool_postgres::Transaction<'_>,
    audit: &NewAuditEntry,
    outcome: Option<serde_json::Value>,
) -> Result<(), StoreError> {
    append_entries(&tx, &[audit.with_outcome(outcome)]).await?;
    tx.commit().await.map_err(backend)
}

/// Appends to the revocation feed under the feed's lock (values commit in order).
async fn append_revocation(
    tx: &impl GenericClient,
    target: &RevocationTarget,
    at: UnixTime,
) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&FEED_LOCK])
        .await
        .map_err(backend)?;
    let (kind, app_id, subject) = columns::revocation_columns(target);
    tx.execute(
        "INSERT INTO revocations (kind, app_id, subject, at) VALUES ($1, $2, $3, $4)",
        &[&kind, &app_id, &subject, &at.secs()],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.client()
            .await?
            .query_one("SELECT 1", &[])
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store_conformance_tests!(match testing::fresh().await {
        Some(pair) => pair,
        None => return,
    });

    #[tokio::test]
    async fn an_unreachable_or_unparsable_database_is_a_clear_error() {
        let options = |url: &str| PostgresOptions {
            url: url.into(),
            pool_size: 1,
            statement_timeout_ms: 1000,
            ca: None,
        };
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let unreachable = PostgresStore::open(&options("postgres://medgate:hunter2@127.0.0.1:1/x"))
            .await
            .unwrap_err();
        assert!(
            matches!(unreachable, StoreError::Backend(_)),
            "{unreachable}"
        );
        let garbled = PostgresStore::open(&options("postgres://medgate:hunter2@[::1/x"))
            .await
            .unwrap_err();
        assert_eq!(
            garbled.to_string(),
            "storage backend error: the PostgreSQL URL does not parse"
        );
        // Neither error repeats the URL's password.
        for error in [unreachable, garbled] {
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_migrations_run_once() {
        let Some((store, _database)) = testing::fresh().await else {
            return;
        };
        let client = store.client().await.unwrap();
        // Opening again (a second node) applies nothing twice.
        let url: String = client
            .query_one("SELECT current_database()", &[])
            .await
            .unwrap()
            .get(0);
        let server = std::env::var(testing::URL_ENV)
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let options = PostgresOptions {
            url: format!("{}/{url}", server.rsplit_once('/').unwrap().0),
            pool_size: 2,
            statement_timeout_ms: 30_000,
            ca: None,
        };
        PostgresStore::open(&options).await.unwrap();
        let versions: i64 = client
            .query_one("SELECT COUNT(*) FROM medgate_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(versions, MIGRATIONS.len() as i64);
        client
            .execute("INSERT INTO medgate_schema (version) VALUES (99)", &[])
            .await
            .unwrap();
        let error = PostgresStore::open(&options).await.unwrap_err();
        assert!(
            error.to_string().contains("newer than this medgate"),
            "{error}"
        );
    }
}

/// The feed's contract on a database whose sequence values could commit out of order: a
/// revocation that has drawn its value but not committed holds back every later one, so a
/// reader that saw row N+1 can never see row N commit after it.
#[cfg(test)]
mod feed_order {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::conformance::{add_sample_app, attestation, change};
    use medgate_proto::wire::Decision;

    #[tokio::test]
    async fn a_later_revocation_waits_for_an_earlier_one_to_commit() {
        let Some((store, _database)) = testing::fresh().await else {
            return;
        };
        let store = Arc::new(store);
        add_sample_app(&*store, "org.example.cgm").await;
        for id in ["inst-1", "inst-2"] {
            store
                .record_attestation(&attestation(id, 1, Decision::Allow, vec![]))
                .await
                .unwrap();
        }
        // A: drawn its sequence value, not committed.
        let mut client = store.client().await.unwrap();
        let early = client.transaction().await.unwrap();
        assert!(
            installations::revoke_installation(&early, "inst-1", UnixTime::from_secs(2))
                .await
                .unwrap()
        );
        // B: a revocation through the store, on another connection.
        let later = tokio::spawn({
            let store = Arc::clone(&store);
            async move {
                store
                    .revoke_installation("inst-2", UnixTime::from_secs(3), &change())
                    .await
            }
        });
        // B waits on the feed's lock (bounded wait for that condition).
        let watcher = store.client().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the later revocation did not wait for the earlier one"
            );
            tokio::task::yield_now().await;
        }
        // A reader sees neither yet; then both, in commit order.
        assert!(store.revocations_since(0).await.unwrap().is_empty());
        early.commit().await.unwrap();
        assert!(later.await.unwrap().unwrap());
        let feed = store.revocations_since(0).await.unwrap();
        let subjects: Vec<_> = feed
            .iter()
            .map(|row| match &row.target {
                RevocationTarget::Installation {
                    installation_id, ..
                } => installation_id.as_str(),
                RevocationTarget::Release { version, .. } => version.as_str(),
            })
            .collect();
        assert_eq!(subjects, ["inst-1", "inst-2"]);
        assert!(feed[0].seq < feed[1].seq);
    }
}
