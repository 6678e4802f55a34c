//! The embedded SQLite backend: one file (`medgate.db`) in the data directory.
//!
//! The connection runs in WAL mode with `synchronous=NORMAL` and foreign keys on. Calls run on
//! tokio's blocking pool behind one connection; writes use `BEGIN IMMEDIATE` so a CLI process
//! and the server never deadlock on a lock upgrade. The data directory is created `0700` and
//! the database `0600`; SQLite gives its `-wal` and `-shm` files the database file's mode.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use medgate_proto::wire::Decision;
use medgate_verify::UnixTime;
use parking_lot::Mutex;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

use crate::audit::{self, AuditEntry, NewAuditEntry};
use crate::{
    App, AppleKeyRecord, AttestationRecord, Challenge, Enrolment, EnrolmentClaim, GrantOutcome,
    GrantWrites, Installation, Release, Revocation, RevocationTarget, SigningKeyRecord, Store,
    StoreError,
};

/// Migrations, applied in order; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_hardware_platforms.sql"),
    include_str!("../migrations/sqlite/0003_claims_match_evidence.sql"),
];

/// The database file name inside the data directory.
pub const FILE_NAME: &str = "medgate.db";

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
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
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
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
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || work(&mut conn.lock()))
            .await
            .map_err(|e| StoreError::Backend(format!("storage task failed: {e}")))?
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let applied: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(backend)?;
    let applied = usize::try_from(applied)
        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "database schema v{applied} is newer than this medgate (v{})",
            MIGRATIONS.len()
        )));
    }
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

fn is_constraint(error: &rusqlite::Error, code: i32) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _)
        if e.code == ErrorCode::ConstraintViolation && e.extended_code == code)
}

const PRIMARY_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY;
const FOREIGN_KEY: i32 = rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY;

/// The error of an insert: a duplicate primary key is a conflict over `what`; a missing parent
/// row (every foreign key in the schema names an app) is an unknown app.
fn insert_error(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        if is_constraint(&e, PRIMARY_KEY) {
            StoreError::Conflict(what)
        } else if is_constraint(&e, FOREIGN_KEY) {
            StoreError::NotFound("app")
        } else {
            backend(e)
        }
    }
}

fn time(row: &Row<'_>, column: &str) -> rusqlite::Result<UnixTime> {
    row.get::<_, i64>(column).map(UnixTime::from_secs)
}

fn optional_time(row: &Row<'_>, column: &str) -> rusqlite::Result<Option<UnixTime>> {
    Ok(row.get::<_, Option<i64>>(column)?.map(UnixTime::from_secs))
}

fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

fn app_from_row(row: &Row<'_>) -> rusqlite::Result<(String, UnixTime, String)> {
    Ok((row.get("id")?, time(row, "created_at")?, row.get("body")?))
}

fn decode_app((id, created_at, body): (String, UnixTime, String)) -> Result<App, StoreError> {
    let policy = serde_json::from_str(&body).map_err(corrupt("app policy"))?;
    Ok(App {
        id,
        policy,
        created_at,
    })
}

fn release_from_row(row: &Row<'_>) -> rusqlite::Result<Release> {
    Ok(Release {
        app_id: row.get("app_id")?,
        version: row.get("version")?,
        binary_sha256: Some(row.get::<_, String>("binary_sha256")?).filter(|hash| !hash.is_empty()),
        version_code: row.get("version_code")?,
        created_at: time(row, "created_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

type InstallationRow = (Installation, String, String, Option<String>);

fn installation_from_row(row: &Row<'_>) -> rusqlite::Result<InstallationRow> {
    Ok((
        Installation {
            id: row.get("id")?,
            app_id: row.get("app_id")?,
            platform: row.get("platform")?,
            app_version: row.get("app_version")?,
            first_seen: time(row, "first_seen")?,
            last_seen: time(row, "last_seen")?,
            last_decision: Decision::Reject,
            last_reasons: Vec::new(),
            revoked_at: optional_time(row, "revoked_at")?,
            integrity_level: None,
            hardware_key: row.get::<_, i64>("hardware_key")? != 0,
            identity: row.get("identity")?,
        },
        row.get("last_decision")?,
        row.get("last_reasons")?,
        row.get("integrity_level")?,
    ))
}

fn decode_installation(
    (mut installation, decision, reasons, level): InstallationRow,
) -> Result<Installation, StoreError> {
    installation.integrity_level = level
        .map(|level| serde_json::from_value(serde_json::Value::String(level)))
        .transpose()
        .map_err(corrupt("integrity level"))?;
    installation.last_decision = Decision::from_name(&decision)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown decision {decision:?}")))?;
    installation.last_reasons =
        serde_json::from_str(&reasons).map_err(corrupt("installation reasons"))?;
    Ok(installation)
}

const INSTALLATION_COLUMNS: &str = "id, app_id, platform, app_version, first_seen, last_seen, last_decision, last_reasons, revoked_at, integrity_level, hardware_key, identity";

const ENROLMENT_COLUMNS: &str =
    "code_sha256, app_id, created_at, expires_at, used_at, installation_id, identity, revoked_at";

fn enrolment_from_row(row: &Row<'_>) -> rusqlite::Result<Enrolment> {
    Ok(Enrolment {
        code_sha256: row.get("code_sha256")?,
        app_id: row.get("app_id")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        used_at: optional_time(row, "used_at")?,
        installation_id: row.get("installation_id")?,
        identity: row.get("identity")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

fn hash_column(row: &Row<'_>, column: &str) -> rusqlite::Result<[u8; 32]> {
    let bytes: Vec<u8> = row.get(column)?;
    bytes.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            "audit hash is not 32 bytes".into(),
        )
    })
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        seq: row.get("seq")?,
        at: time(row, "at")?,
        kind: row.get("kind")?,
        actor: row.get("actor")?,
        subject: row.get("subject")?,
        detail: row.get("detail")?,
        prev_hash: hash_column(row, "prev_hash")?,
        hash: hash_column(row, "hash")?,
    })
}

fn append_revocation(
    tx: &rusqlite::Transaction<'_>,
    target: &RevocationTarget,
    at: UnixTime,
) -> Result<(), StoreError> {
    let (kind, app_id, subject) = match target {
        RevocationTarget::Installation {
            app_id,
            installation_id,
        } => ("installation", app_id, installation_id),
        RevocationTarget::Release { app_id, version } => ("release", app_id, version),
    };
    tx.execute(
        "INSERT INTO revocations (kind, app_id, subject, at) VALUES (?1, ?2, ?3, ?4)",
        params![kind, app_id, subject, at.secs()],
    )
    .map_err(backend)?;
    Ok(())
}

/// Creates or updates the installation with an attestation's outcome.
fn upsert_installation(conn: &Connection, record: &AttestationRecord) -> Result<(), StoreError> {
    let reasons = serde_json::to_string(&record.reasons).map_err(corrupt("reasons"))?;
    conn.execute(
        "INSERT INTO installations
           (id, app_id, platform, app_version, first_seen, last_seen, last_decision, last_reasons,
            integrity_level, hardware_key, identity)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET
           platform = excluded.platform, app_version = excluded.app_version,
           last_seen = excluded.last_seen, last_decision = excluded.last_decision,
           last_reasons = excluded.last_reasons, integrity_level = excluded.integrity_level,
           hardware_key = excluded.hardware_key, identity = excluded.identity",
        params![
            record.installation_id,
            record.app_id,
            record.platform,
            record.app_version,
            record.at.secs(),
            record.decision.as_str(),
            reasons,
            record.integrity_level.map(|level| level.as_str()),
            i64::from(record.hardware_key),
            record.identity
        ],
    )
    .map_err(|e| {
        if is_constraint(&e, FOREIGN_KEY) {
            StoreError::NotFound("app")
        } else {
            backend(e)
        }
    })?;
    Ok(())
}

/// Stores a newly attested App Attest key; `Conflict` if the installation or the key id has one.
fn insert_apple_key(conn: &Connection, key: &AppleKeyRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO apple_keys (installation_id, key_id, app_id, public_key, environment, counter, receipt, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![key.installation_id, key.key_id, key.app_id, key.public_key, key.environment, key.counter, key.receipt, key.created_at.secs()],
    )
    .map_err(|e| match &e {
        rusqlite::Error::SqliteFailure(failure, _) if failure.code == ErrorCode::ConstraintViolation => {
            if failure.extended_code == FOREIGN_KEY { StoreError::NotFound("installation") } else { StoreError::Conflict("App Attest key") }
        }
        _ => backend(e),
    })?;
    Ok(())
}

/// Marks an unused, unexpired, unrevoked code of the grant's app used, recording what it
/// enrolled. False (and nothing changed) otherwise.
fn claim_enrolment(
    conn: &Connection,
    claim: &EnrolmentClaim,
    record: &AttestationRecord,
) -> Result<bool, StoreError> {
    let changed = conn
        .execute(
            "UPDATE enrolments SET used_at = ?5, installation_id = ?3, identity = ?4
             WHERE code_sha256 = ?1 AND app_id = ?2 AND used_at IS NULL AND expires_at > ?5
               AND revoked_at IS NULL",
            params![
                claim.code_sha256,
                record.app_id,
                record.installation_id,
                claim.identity,
                record.at.secs()
            ],
        )
        .map_err(backend)?;
    Ok(changed == 1)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        let body = serde_json::to_string(&app.policy).map_err(corrupt("app policy"))?;
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "INSERT INTO apps (id, created_at) VALUES (?1, ?2)",
                params![app.id, app.created_at.secs()],
            )
            .map_err(insert_error("app"))?;
            tx.execute(
                "INSERT INTO policies (app_id, platform, body, updated_at) VALUES (?1, '*', ?2, ?3)",
                params![app.id, body, app.created_at.secs()],
            )
            .map_err(backend)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_app(&self, app_id: &str) -> Result<Option<App>, StoreError> {
        let app_id = app_id.to_string();
        let row = self
            .run(move |conn| {
                conn.query_row(
                    "SELECT a.id, a.created_at, p.body FROM apps a
                     JOIN policies p ON p.app_id = a.id AND p.platform = '*' WHERE a.id = ?1",
                    [app_id],
                    app_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        row.map(decode_app).transpose()
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let rows = self
            .run(|conn| {
                let mut statement = conn
                    .prepare(
                        "SELECT a.id, a.created_at, p.body FROM apps a
                         JOIN policies p ON p.app_id = a.id AND p.platform = '*' ORDER BY a.id",
                    )
                    .map_err(backend)?;
                let rows = statement.query_map([], app_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter().map(decode_app).collect()
    }

    async fn add_release(&self, release: &Release) -> Result<(), StoreError> {
        let release = release.clone();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            // A revoked version stays revoked: the gateway's revocation feed says so, and a new
            // build of it must not make attestation disagree.
            let revoked: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM releases
                     WHERE app_id = ?1 AND version = ?2 AND revoked_at IS NOT NULL",
                    params![release.app_id, release.version],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if revoked > 0 {
                return Err(StoreError::Conflict("release of a revoked version"));
            }
            tx.execute(
                "INSERT INTO releases (app_id, version, binary_sha256, created_at, revoked_at, version_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    release.app_id,
                    release.version,
                    release.binary_sha256.as_deref().unwrap_or(""),
                    release.created_at.secs(),
                    release.revoked_at.map(UnixTime::secs),
                    release.version_code
                ],
            )
            .map_err(insert_error("release"))?;
            tx.commit().map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn releases(&self, app_id: &str, version: &str) -> Result<Vec<Release>, StoreError> {
        let (app_id, version) = (app_id.to_string(), version.to_string());
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT * FROM releases WHERE app_id = ?1 AND version = ?2 ORDER BY binary_sha256",
                )
                .map_err(backend)?;
            let rows = statement.query_map([app_id, version], release_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn list_releases(&self, app_id: &str) -> Result<Vec<Release>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare("SELECT * FROM releases WHERE app_id = ?1 ORDER BY created_at, version, binary_sha256")
                .map_err(backend)?;
            let rows = statement.query_map([app_id], release_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn revoke_release(
        &self,
        app_id: &str,
        version: &str,
        at: UnixTime,
    ) -> Result<usize, StoreError> {
        let (app_id, version) = (app_id.to_string(), version.to_string());
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let known: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM releases WHERE app_id = ?1 AND version = ?2",
                    params![app_id, version],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if known == 0 {
                return Err(StoreError::NotFound("release"));
            }
            let changed = tx
                .execute(
                    "UPDATE releases SET revoked_at = ?3
                     WHERE app_id = ?1 AND version = ?2 AND revoked_at IS NULL",
                    params![app_id, version, at.secs()],
                )
                .map_err(backend)?;
            if changed > 0 {
                append_revocation(&tx, &RevocationTarget::Release { app_id, version }, at)?;
            }
            tx.commit().map_err(backend)?;
            Ok(changed)
        })
        .await
    }

    async fn get_installation(&self, id: &str) -> Result<Option<Installation>, StoreError> {
        let id = id.to_string();
        let row = self
            .run(move |conn| {
                conn.query_row(
                    &format!("SELECT {INSTALLATION_COLUMNS} FROM installations WHERE id = ?1"),
                    [id],
                    installation_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        row.map(decode_installation).transpose()
    }

    async fn list_installations(
        &self,
        app_id: Option<&str>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Installation>, StoreError> {
        let app_id = app_id.map(str::to_string);
        let after = after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .run(move |conn| {
                let mut statement = conn
                    .prepare(&format!(
                        "SELECT {INSTALLATION_COLUMNS} FROM installations
                         WHERE (?1 IS NULL OR app_id = ?1) AND id > ?2 ORDER BY id LIMIT ?3"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(params![app_id, after, limit], installation_from_row)
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter().map(decode_installation).collect()
    }

    async fn record_attestation(&self, record: &AttestationRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.run(move |conn| upsert_installation(conn, &record))
            .await
    }

    async fn record_grant(&self, grant: &GrantWrites) -> Result<GrantOutcome, StoreError> {
        let grant = grant.clone();
        self.run(move |conn| {
            // Dropping the transaction without commit rolls back whatever it wrote.
            let tx = conn.transaction().map_err(backend)?;
            upsert_installation(&tx, &grant.record)?;
            if let Some(key) = &grant.apple_key {
                match insert_apple_key(&tx, key) {
                    Err(StoreError::Conflict(_)) => return Ok(GrantOutcome::AppleKeyTaken),
                    other => other?,
                }
            }
            if let Some(claim) = &grant.enrolment
                && !claim_enrolment(&tx, claim, &grant.record)?
            {
                return Ok(GrantOutcome::EnrolmentUnavailable);
            }
            tx.commit().map_err(backend)?;
            Ok(GrantOutcome::Recorded)
        })
        .await
    }

    async fn revoke_installation(&self, id: &str, at: UnixTime) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let found: Option<(String, Option<i64>)> = tx
                .query_row(
                    "SELECT app_id, revoked_at FROM installations WHERE id = ?1",
                    [&id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(backend)?;
            let Some((app_id, revoked_at)) = found else {
                return Err(StoreError::NotFound("installation"));
            };
            if revoked_at.is_some() {
                return Ok(false);
            }
            tx.execute(
                "UPDATE installations SET revoked_at = ?2 WHERE id = ?1",
                params![id, at.secs()],
            )
            .map_err(backend)?;
            append_revocation(
                &tx,
                &RevocationTarget::Installation {
                    app_id,
                    installation_id: id,
                },
                at,
            )?;
            tx.commit().map_err(backend)?;
            Ok(true)
        })
        .await
    }

    async fn insert_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let challenge = challenge.clone();
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO challenges (value, app_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    challenge.value,
                    challenge.app_id,
                    challenge.created_at.secs(),
                    challenge.expires_at.secs()
                ])
            })
            .map_err(insert_error("challenge"))?;
            Ok(())
        })
        .await
    }

    async fn take_challenge(&self, value: &str) -> Result<Option<Challenge>, StoreError> {
        let value = value.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "DELETE FROM challenges WHERE value = ?1 RETURNING value, app_id, created_at, expires_at",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([value], |row| {
                        Ok(Challenge {
                            value: row.get("value")?,
                            app_id: row.get("app_id")?,
                            created_at: time(row, "created_at")?,
                            expires_at: time(row, "expires_at")?,
                        })
                    })
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }

    async fn purge_challenges(&self, now: UnixTime) -> Result<usize, StoreError> {
        self.run(move |conn| {
            conn.execute(
                "DELETE FROM challenges WHERE expires_at <= ?1",
                [now.secs()],
            )
            .map_err(backend)
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = self
            .run(|conn| {
                let mut statement = conn
                    .prepare("SELECT kid, public_jwk, private_key, created_at, retired_at FROM signing_keys ORDER BY created_at, kid")
                    .map_err(backend)?;
                let rows = statement
                    .query_map([], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, Vec<u8>>(2)?,
                            UnixTime::from_secs(row.get(3)?),
                            row.get::<_, Option<i64>>(4)?.map(UnixTime::from_secs),
                        ))
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter()
            .map(|(kid, jwk, sealed_private_key, created_at, retired_at)| {
                Ok(SigningKeyRecord {
                    kid,
                    public_jwk: serde_json::from_str(&jwk).map_err(corrupt("signing key"))?,
                    sealed_private_key,
                    created_at,
                    retired_at,
                })
            })
            .collect()
    }

    async fn rotate_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        let key = key.clone();
        let jwk = serde_json::to_string(&key.public_jwk).map_err(corrupt("signing key"))?;
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [key.created_at.secs()],
            )
            .map_err(backend)?;
            tx.execute(
                "INSERT INTO signing_keys (kid, public_jwk, private_key, created_at, retired_at)
                 VALUES (?1, ?2, ?3, ?4, NULL)",
                params![key.kid, jwk, key.sealed_private_key, key.created_at.secs()],
            )
            .map_err(insert_error("signing key"))?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        sealed_private_key: &[u8],
    ) -> Result<(), StoreError> {
        let (kid, sealed) = (kid.to_string(), sealed_private_key.to_vec());
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE signing_keys SET private_key = ?2 WHERE kid = ?1",
                    params![kid, sealed],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound("signing key"));
            }
            Ok(())
        })
        .await
    }

    async fn revocations_since(&self, after_seq: i64) -> Result<Vec<Revocation>, StoreError> {
        let rows = self
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached("SELECT seq, kind, app_id, subject, at FROM revocations WHERE seq > ?1 ORDER BY seq")
                    .map_err(backend)?;
                let rows = statement
                    .query_map([after_seq], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?,
                            UnixTime::from_secs(row.get(4)?),
                        ))
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter()
            .map(|(seq, kind, app_id, subject, at)| {
                let target = match kind.as_str() {
                    "installation" => RevocationTarget::Installation {
                        app_id,
                        installation_id: subject,
                    },
                    "release" => RevocationTarget::Release {
                        app_id,
                        version: subject,
                    },
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "unknown revocation kind {other:?}"
                        )));
                    }
                };
                Ok(Revocation { seq, target, at })
            })
            .collect()
    }

    async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let head = tx
                .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |row| {
                    Ok((row.get::<_, i64>(0)?, hash_column(row, "hash")?))
                })
                .optional()
                .map_err(backend)?;
            let (mut seq, mut prev_hash) = head.unwrap_or((0, [0; 32]));
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO audit_log (seq, at, kind, actor, subject, detail, prev_hash, hash)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .map_err(backend)?;
                for new in &entries {
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
            }
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT * FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2")
                .map_err(backend)?;
            let rows = statement
                .query_map([after_seq, limit], audit_from_row)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn prune_audit(&self, keep_from: i64) -> Result<u64, StoreError> {
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let kept: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM audit_log WHERE seq = ?1",
                    [keep_from],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if kept == 0 {
                return Err(StoreError::NotFound("audit entry"));
            }
            let deleted = tx
                .execute("DELETE FROM audit_log WHERE seq < ?1", [keep_from])
                .map_err(backend)?;
            tx.commit().map_err(backend)?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn audit_head(&self) -> Result<Option<AuditEntry>, StoreError> {
        self.run(move |conn| {
            conn.query_row(
                "SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                audit_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn set_platform_policy(
        &self,
        app_id: &str,
        platform: &str,
        policy: &serde_json::Value,
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let (app_id, platform, body) =
            (app_id.to_string(), platform.to_string(), policy.to_string());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO policies (app_id, platform, body, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (app_id, platform) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![app_id, platform, body, at.secs()],
            )
            .map_err(|e| if is_constraint(&e, FOREIGN_KEY) { StoreError::NotFound("app") } else { backend(e) })?;
            Ok(())
        })
        .await
    }

    async fn platform_policy(
        &self,
        app_id: &str,
        platform: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let (app_id, platform) = (app_id.to_string(), platform.to_string());
        let body: Option<String> = self
            .run(move |conn| {
                conn.query_row(
                    "SELECT body FROM policies WHERE app_id = ?1 AND platform = ?2",
                    [app_id, platform],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        body.map(|body| serde_json::from_str(&body).map_err(corrupt("platform policy")))
            .transpose()
    }

    async fn platform_policies(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let app_id = app_id.to_string();
        let rows: Vec<(String, String)> = self
            .run(move |conn| {
                let mut statement = conn
                    .prepare("SELECT platform, body FROM policies WHERE app_id = ?1 AND platform <> '*' ORDER BY platform")
                    .map_err(backend)?;
                let rows = statement.query_map([app_id], |row| Ok((row.get(0)?, row.get(1)?))).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter()
            .map(|(platform, body)| {
                Ok((
                    platform,
                    serde_json::from_str(&body).map_err(corrupt("platform policy"))?,
                ))
            })
            .collect()
    }

    async fn apple_key(&self, installation_id: &str) -> Result<Option<AppleKeyRecord>, StoreError> {
        let installation_id = installation_id.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT installation_id, key_id, app_id, public_key, environment, counter, receipt, created_at
                 FROM apple_keys WHERE installation_id = ?1",
                [installation_id],
                |row| {
                    Ok(AppleKeyRecord {
                        installation_id: row.get(0)?,
                        key_id: row.get(1)?,
                        app_id: row.get(2)?,
                        public_key: row.get(3)?,
                        environment: row.get(4)?,
                        counter: row.get(5)?,
                        receipt: row.get(6)?,
                        created_at: UnixTime::from_secs(row.get(7)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn advance_apple_counter(
        &self,
        installation_id: &str,
        counter: u32,
    ) -> Result<bool, StoreError> {
        let installation_id = installation_id.to_string();
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE apple_keys SET counter = ?2 WHERE installation_id = ?1 AND counter < ?2",
                    params![installation_id, counter],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn create_enrolment(&self, enrolment: &Enrolment) -> Result<(), StoreError> {
        let enrolment = enrolment.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO enrolments (code_sha256, app_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![enrolment.code_sha256, enrolment.app_id, enrolment.created_at.secs(), enrolment.expires_at.secs()],
            )
            .map_err(insert_error("enrolment"))?;
            Ok(())
        })
        .await
    }

    async fn enrolment(&self, code_sha256: &str) -> Result<Option<Enrolment>, StoreError> {
        let code = code_sha256.to_string();
        self.run(move |conn| {
            conn.query_row(
                &format!("SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE code_sha256 = ?1"),
                [code],
                enrolment_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn list_enrolments(&self, app_id: &str) -> Result<Vec<Enrolment>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare(&format!("SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE app_id = ?1 ORDER BY created_at, code_sha256"))
                .map_err(backend)?;
            let rows = statement.query_map([app_id], enrolment_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn enrolled_identities(&self, app_id: &str) -> Result<Vec<String>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT DISTINCT identity FROM enrolments
                     WHERE app_id = ?1 AND identity IS NOT NULL AND revoked_at IS NULL
                     ORDER BY identity",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([app_id], |row| row.get(0))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn revoke_enrolment(
        &self,
        app_id: &str,
        code_sha256: &str,
        at: UnixTime,
    ) -> Result<bool, StoreError> {
        let (app_id, code) = (app_id.to_string(), code_sha256.to_string());
        self.run(move |conn| {
            let known: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM enrolments WHERE app_id = ?1 AND code_sha256 = ?2",
                    params![app_id, code],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if known == 0 {
                return Err(StoreError::NotFound("enrolment"));
            }
            let changed = conn
                .execute(
                    "UPDATE enrolments SET revoked_at = ?3
                     WHERE app_id = ?1 AND code_sha256 = ?2 AND revoked_at IS NULL",
                    params![app_id, code, at.secs()],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn set_app_secret(
        &self,
        app_id: &str,
        name: &str,
        sealed: &[u8],
        at: UnixTime,
    ) -> Result<(), StoreError> {
        let (app_id, name, sealed) = (app_id.to_string(), name.to_string(), sealed.to_vec());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO app_secrets (app_id, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (app_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                params![app_id, name, sealed, at.secs()],
            )
            .map_err(|e| if is_constraint(&e, FOREIGN_KEY) { StoreError::NotFound("app") } else { backend(e) })?;
            Ok(())
        })
        .await
    }

    async fn app_secret(&self, app_id: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (app_id, name) = (app_id.to_string(), name.to_string());
        self.run(move |conn| {
            conn.query_row(
                "SELECT sealed FROM app_secrets WHERE app_id = ?1 AND name = ?2",
                [app_id, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.run(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (SqliteStore, tempfile::TempDir) {
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
