//! The embedded SQLite backend: one file (`medgate.db`) in the data directory.
//!
//! The connection runs in WAL mode with `synchronous=FULL` (a commit is on disk before anyone
//! hears of it) and foreign keys on. One thread owns it and runs every call, committing what
//! has queued in one `BEGIN IMMEDIATE` transaction (`writer`: group commit, one `fsync` per
//! batch); `IMMEDIATE` so a CLI process and the server never deadlock on a lock upgrade. The
//! data directory is created `0700` and the database `0600`; SQLite gives its `-wal` and
//! `-shm` files the database file's mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use medgate_proto::wire::Decision;
use medgate_verify::UnixTime;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

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

// One file per aggregate, each implementing its trait over the helpers here.
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
mod trust;
mod writer;

/// Migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_hardware_platforms.sql"),
    include_str!("../../migrations/sqlite/0003_claims_match_evidence.sql"),
    include_str!("../../migrations/sqlite/0004_secrets.sql"),
    include_str!("../../migrations/sqlite/0005_trust.sql"),
    include_str!("../../migrations/sqlite/0006_installation_keys.sql"),
    include_str!("../../migrations/sqlite/0007_credentials.sql"),
    include_str!("../../migrations/sqlite/0008_partners.sql"),
    include_str!("../../migrations/sqlite/0009_telemetry.sql"),
    include_str!("../../migrations/sqlite/0010_telemetry_hours.sql"),
    include_str!("../../migrations/sqlite/0011_operators.sql"),
];

/// Prepared statements kept per connection (more than the store has).
const STATEMENT_CACHE: usize = 128;

/// The database file name inside the data directory.
pub const FILE_NAME: &str = "medgate.db";

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<writer::Writer>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

fn io(context: &str, path: &Path, error: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{context} {}: {error}", path.display()))
}

/// Creates `dir` (and parents) with mode 0700 if it does not exist.
pub fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io("cannot create data directory", dir, e))
}

/// Creates `path` with mode 0600 if absent, and makes it 0600 if it exists.
pub fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .map_err(|e| io("cannot create", path, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| io("cannot restrict permissions of", path, e))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and applies pending migrations.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        create_private_file(&path)?;
        let mut conn = Connection::open(&path).map_err(backend)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(backend)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(backend)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "SQLite refused WAL mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        migrate(&mut conn)?;
        // Every statement on the hot paths is prepared once and kept.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteStore {
            writer: Arc::new(writer::Writer::start(conn)?),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.run(work).await
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    let applied = columns::applied_migrations(applied, MIGRATIONS.len())?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        tx.execute_batch(sql).map_err(backend)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
    }
    Ok(())
}

/// `query_row` and `execute` through the connection's statement cache: the store's statements
/// are parsed once, not on every call.
trait Cached {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>;
    fn cached_execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl Cached for Connection {
    fn cached_row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn cached_execute<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

fn is_constraint(error: &rusqlite::Error, code: i32) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _)
        if e.code == ErrorCode::ConstraintViolation && e.extended_code == code)
}

const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
const FOREIGN_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;

/// The error of a write whose only foreign key names an app.
fn app_error(e: rusqlite::Error) -> StoreError {
    if is_constraint(&e, FOREIGN_KEY) {
        StoreError::NotFound("app")
    } else {
        backend(e)
    }
}

/// The error of an insert: a duplicate primary key is a conflict over `what`; a missing parent
/// row (every foreign key in the schema names an app) is an unknown app.
fn insert_error(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        if is_constraint(&e, PRIMARY_KEY) {
            StoreError::Conflict(what)
        } else {
            app_error(e)
        }
    }
}

fn time(row: &Row<'_>, column: &str) -> rusqlite::Result<UnixTime> {
    row.get::<_, i64>(column).map(UnixTime::from_secs)
}

fn optional_time(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<UnixTime>> {
    Ok(row.get::<_, Option<i64>>(column)?.map(UnixTime::from_secs))
}

const INSTALLATION_COLUMNS: &str = "id, app_id, platform, app_version, first_seen, last_seen, last_decision, last_reasons, revoked_at, integrity_level, hardware_key, identity";

const ENROLMENT_COLUMNS: &str =
    "code_sha256, app_id, created_at, expires_at, used_at, installation_id, identity, revoked_at";

fn append_revocation(
    tx: &Connection,
    target: &RevocationTarget,
    at: UnixTime,
) -> Result<(), StoreError> {
    let (kind, app_id, subject) = columns::revocation_columns(target);
    tx.cached_execute(
        "INSERT INTO revocations (kind, app_id, subject, at) VALUES (?1, ?2, ?3, ?4)",
        params![kind, app_id, subject, at.secs()],
    )
    .map_err(backend)?;
    Ok(())
}

/// Appends `entries` to the audit chain inside the batch's `IMMEDIATE` transaction: the head
/// is read and the entries written while no other writer can append, and they commit (or not)
/// with whatever else the call wrote.
fn append_entries(tx: &Connection, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
    let head = tx
        .cached_row(
            "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get::<_, i64>(0)?, audit_log::hash_column(row, "hash")?)),
        )
        .optional()
        .map_err(backend)?;
    let (mut seq, mut prev_hash) = head.unwrap_or((0, [0; 32]));
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO audit_log (seq, at, kind, actor, subject, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(backend)?;
    for new in entries {
        seq += 1;
        let entry = audit::seal_entry(new, seq, prev_hash);
        insert
            .execute(params![
                entry.seq,
                entry.at.secs(),
                entry.kind,
                entry.actor,
                entry.subject,
                entry.detail,
                entry.prev_hash.as_slice(),
                entry.hash.as_slice()
            ])
            .map_err(backend)?;
        prev_hash = entry.hash;
    }
    Ok(())
}

impl SqliteStore {
    /// An admin change in one call with its audit entry: `work` writes the change and returns
    /// its result with what only the store learned (an object added to the entry's detail). An
    /// error from `work` or from the append rolls back both (the call's savepoint).
    async fn change<T, F>(&self, audit: &NewAuditEntry, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<(T, Option<serde_json::Value>), StoreError>
            + Send
            + 'static,
    {
        let audit = audit.clone();
        self.run(move |conn| {
            let (value, outcome) = work(conn)?;
            append_entries(conn, &[audit.with_outcome(outcome)])?;
            Ok(value)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.cached_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }
}

#[cfg(test)]
mod shapes;

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn open() -> (SqliteStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("data")).expect("store opens");
        (store, dir)
    }

    crate::store_conformance_tests!(open());

    #[tokio::test]
    async fn files_are_private_and_the_data_survives_reopening() {
        use std::os::unix::fs::PermissionsExt;
        let (store, dir) = open();
        crate::conformance::add_sample_app(&store, "org.example.cgm").await;
        let data = dir.path().join("data");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        for file in [FILE_NAME, "medgate.db-wal", "medgate.db-shm"] {
            assert_eq!(mode(&data.join(file)), 0o600, "{file}");
        }
        drop(store);
        let reopened = SqliteStore::open(&data).unwrap();
        assert!(reopened.get_app("org.example.cgm").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_row_edited_in_the_file_breaks_the_audit_chain() {
        let (store, _dir) = open();
        crate::conformance::append_sample_audit(&store, 4).await;
        assert_eq!(
            crate::verify_audit_chain(&store).await.unwrap().unwrap().0,
            4
        );

        // Someone with the file opens it with sqlite3 and changes what entry 2 says.
        let raw = Connection::open(store.path()).unwrap();
        raw.execute(
            "UPDATE audit_log SET subject = 'someone-else' WHERE seq = 2",
            [],
        )
        .unwrap();
        let broken = crate::verify_audit_chain(&store)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(broken.seq, 2);
        assert_eq!(broken.problem, "content does not match its hash");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let (store, dir) = open();
        Connection::open(store.path())
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        drop(store);
        let error = SqliteStore::open(&dir.path().join("data")).unwrap_err();
        assert!(
            error.to_string().contains("newer than this medgate"),
            "{error}"
        );
    }
}
