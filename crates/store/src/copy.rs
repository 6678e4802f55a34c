//! Moving a deployment between backends (`medgate store copy`): every table but the
//! short-lived challenges and console sessions, row for row, into an empty store, in one
//! transaction on the target, with the audit chain verified on both sides and its head
//! compared.
//!
//! The tables and their columns are listed here once, in an order that respects the foreign
//! keys; the two backends share the column names and read and write each kind of value
//! ([`Kind`]) with their own types. Both the table and column names are constants, never
//! input. One table at a time is held in memory: the embedded SQLite store this moves from
//! holds a clinic's or a family's deployment, not millions of rows.

use async_trait::async_trait;

use crate::{ChainBreak, Store, StoreError, verify_audit_chain};

/// How a column's values are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Text,
    Bytes,
    /// `BOOLEAN` in PostgreSQL, `INTEGER` 0/1 in SQLite.
    Bool,
}

/// One value of a row; `Null` for a NULL of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

pub type Row = Vec<Value>;

/// A table and its columns, in the order rows carry them; the first `key` columns are its
/// primary key, and rows are read in its order.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub key: usize,
    pub columns: &'static [(&'static str, Kind)],
}

impl Table {
    /// `a, b`: the primary key's columns; with `collate`, text compared byte by byte
    /// (`COLLATE "C"`, PostgreSQL), so both backends read rows in one order.
    pub fn key_list(&self, collate: bool) -> String {
        let names: Vec<String> = self.columns[..self.key]
            .iter()
            .map(|(name, kind)| match kind {
                Kind::Text if collate => format!("{name} COLLATE \"C\""),
                _ => name.to_string(),
            })
            .collect();
        names.join(", ")
    }

    /// `a, b, c`
    pub fn column_list(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| *name).collect();
        names.join(", ")
    }
}

use Kind::{Bool, Bytes, Int, Text};

/// Every table `copy` moves, parents before children. `challenges` is left out: a challenge
/// lives a minute, and a client whose challenge was lost asks for another.
pub const TABLES: &[Table] = &[
    Table {
        name: "apps",
        key: 1,
        columns: &[("id", Text), ("created_at", Int)],
    },
    Table {
        name: "policies",
        key: 2,
        columns: &[
            ("app_id", Text),
            ("platform", Text),
            ("body", Text),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "releases",
        key: 3,
        columns: &[
            ("app_id", Text),
            ("version", Text),
            ("binary_sha256", Text),
            ("created_at", Int),
            ("revoked_at", Int),
            ("version_code", Int),
        ],
    },
    Table {
        name: "installations",
        key: 1,
        columns: &[
            ("id", Text),
            ("app_id", Text),
            ("platform", Text),
            ("app_version", Text),
            ("first_seen", Int),
            ("last_seen", Int),
            ("last_decision", Text),
            ("last_reasons", Text),
            ("revoked_at", Int),
            ("integrity_level", Text),
            ("hardware_key", Bool),
            ("identity", Text),
        ],
    },
    Table {
        name: "signing_keys",
        key: 1,
        columns: &[
            ("kid", Text),
            ("public_jwk", Text),
            ("private_key", Bytes),
            ("created_at", Int),
            ("retired_at", Int),
        ],
    },
    Table {
        name: "revocations",
        key: 1,
        columns: &[
            ("seq", Int),
            ("kind", Text),
            ("app_id", Text),
            ("subject", Text),
            ("at", Int),
        ],
    },
    Table {
        name: "audit_log",
        key: 1,
        columns: &[
            ("seq", Int),
            ("at", Int),
            ("kind", Text),
            ("actor", Text),
            ("subject", Text),
            ("detail", Text),
            ("prev_hash", Bytes),
            ("hash", Bytes),
        ],
    },
    Table {
        name: "meta",
        key: 1,
        columns: &[("key", Text), ("value", Text)],
    },
    Table {
        name: "apple_keys",
        key: 1,
        columns: &[
            ("installation_id", Text),
            ("key_id", Bytes),
            ("app_id", Text),
            ("public_key", Bytes),
            ("environment", Text),
            ("counter", Int),
            ("receipt", Bytes),
            ("created_at", Int),
        ],
    },
    Table {
        name: "installation_keys",
        key: 1,
        columns: &[
            ("installation_id", Text),
            ("public_jwk", Text),
            ("encryption_jwk", Text),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "enrolments",
        key: 1,
        columns: &[
            ("code_sha256", Text),
            ("app_id", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", Int),
            ("installation_id", Text),
            ("identity", Text),
            ("revoked_at", Int),
        ],
    },
    Table {
        name: "app_secrets",
        key: 2,
        columns: &[
            ("app_id", Text),
            ("name", Text),
            ("sealed", Bytes),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "secrets",
        key: 2,
        columns: &[
            ("app_id", Text),
            ("name", Text),
            ("version", Int),
            ("sealed", Bytes),
            ("created_at", Int),
            ("updated_at", Int),
        ],
    },
    Table {
        name: "credentials",
        key: 1,
        columns: &[
            ("id", Text),
            ("app_id", Text),
            ("kind", Text),
            ("name", Text),
            ("scopes", Text),
            ("digest", Text),
            ("sha1_digest", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("revoked_at", Int),
        ],
    },
    Table {
        name: "partners",
        key: 1,
        columns: &[
            ("id", Text),
            ("name", Text),
            ("jwks_url", Text),
            ("jwks", Text),
            ("scopes", Text),
            ("audience", Text),
            ("ip_allow", Text),
            ("require_dpop", Bool),
            ("created_at", Int),
            ("rotated_at", Int),
            ("disabled_at", Int),
        ],
    },
    Table {
        name: "trust_metadata",
        key: 2,
        columns: &[
            ("role", Text),
            ("version", Int),
            ("body", Bytes),
            ("expires_at", Int),
            ("created_at", Int),
        ],
    },
    Table {
        name: "trust_keys",
        key: 1,
        columns: &[
            ("key_id", Text),
            ("role", Text),
            ("sealed", Bytes),
            ("created_at", Int),
            ("retired_at", Int),
        ],
    },
    Table {
        name: "pins",
        key: 2,
        columns: &[("pattern", Text), ("pin", Text), ("created_at", Int)],
    },
    Table {
        name: "telemetry",
        key: 5,
        columns: &[
            ("minute", Int),
            ("series", Text),
            ("outcome", Text),
            ("reason", Text),
            ("platform", Text),
            ("count", Int),
        ],
    },
    Table {
        name: "telemetry_hours",
        key: 5,
        columns: &[
            ("hour", Int),
            ("series", Text),
            ("outcome", Text),
            ("reason", Text),
            ("platform", Text),
            ("count", Int),
        ],
    },
    // Console sessions are not copied: operators sign in again on the new store.
    Table {
        name: "operators",
        key: 1,
        columns: &[
            ("name", Text),
            ("role", Text),
            ("password_hash", Text),
            ("created_at", Int),
        ],
    },
];

/// Whole-table reads and writes, for [`copy`] only.
#[async_trait]
pub trait TableStore: Send + Sync {
    /// Every row of `table`, in primary-key order.
    async fn read_table(&self, table: &'static Table) -> Result<Vec<Row>, StoreError>;

    /// Writes `tables` in one transaction, refusing (`Conflict("store not empty")`) when any
    /// of [`TABLES`] already holds a row; sequences continue after the copied rows.
    async fn write_tables(&self, tables: Vec<(&'static Table, Vec<Row>)>)
    -> Result<(), StoreError>;
}

/// What a copy moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, usize)>,
    /// Audit entries and the head hash (hex), the same on both sides.
    pub audit_entries: u64,
    pub audit_head: Option<String>,
}

/// Why a copy stopped. Nothing was written to the target unless the error says so.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the source's audit chain does not verify ({0}); nothing was copied")]
    SourceChain(ChainBreak),
    #[error("the source store is empty (no app, no signing key): check --from")]
    EmptySource,
    #[error(
        "the copied audit chain does not match the source's ({0}); drop the target and copy again"
    )]
    TargetChain(String),
}

/// Copies every table of `from` into the empty `to`, and checks that the audit chain arrived
/// whole: same length, same head.
pub async fn copy(from: &dyn Store, to: &dyn Store) -> Result<CopyReport, CopyError> {
    let source = verify_audit_chain(from)
        .await?
        .map_err(CopyError::SourceChain)?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        tables.push((table, from.read_table(table).await?));
    }
    let holds = |name: &str| {
        tables
            .iter()
            .any(|(table, rows)| table.name == name && !rows.is_empty())
    };
    if !holds("apps") && !holds("signing_keys") {
        return Err(CopyError::EmptySource);
    }
    let rows = tables
        .iter()
        .map(|(table, rows)| (table.name, rows.len()))
        .collect();
    to.write_tables(tables).await?;
    let target = verify_audit_chain(to)
        .await?
        .map_err(|broken| CopyError::TargetChain(broken.to_string()))?;
    if target != source {
        return Err(CopyError::TargetChain(format!(
            "{} entries ending {} instead of {} ending {}",
            target.0, target.1, source.0, source.1
        )));
    }
    Ok(CopyReport {
        rows,
        audit_entries: source.0,
        audit_head: (source.0 > 0).then_some(source.1),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::postgres::testing;
    use crate::sqlite::SqliteStore;
    use crate::{AppStore, InstallationStore, Release, conformance};

    /// A store with rows in every table the copy moves, written by the conformance scenarios.
    async fn populated(store: &SqliteStore) {
        let shared = Arc::new(store.clone());
        // First: it checks that a secret for an app not yet created is refused.
        conformance::app_secrets_round_trip(Arc::clone(&shared)).await;
        conformance::signing_keys_rotate(Arc::clone(&shared)).await;
        conformance::meta_round_trip(Arc::clone(&shared)).await;
        conformance::apple_counters_only_grow(Arc::clone(&shared)).await;
        conformance::enrolments_can_be_revoked(Arc::clone(&shared)).await;
        conformance::secrets_are_versioned_and_audited(Arc::clone(&shared)).await;
        conformance::credentials_are_revoked_once_and_audited(Arc::clone(&shared)).await;
        conformance::partners_are_disabled_once_rotated_and_audited(Arc::clone(&shared)).await;
        conformance::installation_keys_commit_with_their_grant(Arc::clone(&shared)).await;
        conformance::the_trust_repository_publishes_each_version_once(Arc::clone(&shared)).await;
        conformance::telemetry_adds_up_per_period_and_prunes(Arc::clone(&shared)).await;
        // It leaves bob, a viewer.
        conformance::operators_and_their_sessions_end_together(shared).await;
        // That scenario ends with nothing kept: one minute (and so its hour) to copy.
        use crate::TelemetryStore as _;
        store
            .add_telemetry(&[crate::TelemetryCount {
                at: conformance::change().at,
                series: crate::TelemetrySeries::Gateway,
                outcome: "forwarded".into(),
                reason: String::new(),
                platform: String::new(),
                count: 5,
            }])
            .await
            .unwrap();
        // A release with every column set, then revoked (a row in the feed).
        let release = Release {
            app_id: "org.example.cgm".into(),
            version: "2.0.0".into(),
            binary_sha256: Some("ab".repeat(32)),
            version_code: Some(200),
            created_at: conformance::change().at,
            revoked_at: None,
        };
        store
            .add_release(&release, &conformance::change())
            .await
            .unwrap();
        let when = conformance::change().at;
        store
            .revoke_release("org.example.cgm", "2.0.0", when, &conformance::change())
            .await
            .unwrap();
    }

    async fn all_rows(store: &dyn Store) -> Vec<Vec<Row>> {
        let mut tables = Vec::new();
        for table in TABLES {
            tables.push(store.read_table(table).await.unwrap());
        }
        tables
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_to_postgres_and_back_moves_every_row_and_the_whole_chain() {
        let Some((postgres, _database)) = testing::fresh().await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let source = SqliteStore::open(&dir.path().join("source")).unwrap();
        populated(&source).await;
        let rows = all_rows(&source).await;
        for (table, rows) in TABLES.iter().zip(&rows) {
            assert!(!rows.is_empty(), "the scenarios leave {} empty", table.name);
        }

        let report = copy(&source, &postgres).await.unwrap();
        assert_eq!(all_rows(&postgres).await, rows);
        assert!(report.audit_entries > 0 && report.audit_head.is_some());
        // And back, into a new SQLite store: the same rows again.
        let back = SqliteStore::open(&dir.path().join("back")).unwrap();
        assert_eq!(copy(&postgres, &back).await.unwrap(), report);
        assert_eq!(all_rows(&back).await, rows);

        // The feed goes on from where it was: a new revocation follows the copied ones.
        let copied = postgres.revocations_since(0).await.unwrap();
        let last_seq = copied.last().unwrap().seq;
        conformance::add_sample_app(&postgres, "after-copy").await;
        let release = Release {
            app_id: "after-copy".into(),
            version: "1.0.0".into(),
            binary_sha256: None,
            version_code: None,
            created_at: conformance::change().at,
            revoked_at: None,
        };
        postgres
            .add_release(&release, &conformance::change())
            .await
            .unwrap();
        let when = conformance::change().at;
        postgres
            .revoke_release("after-copy", "1.0.0", when, &conformance::change())
            .await
            .unwrap();
        let after = postgres.revocations_since(last_seq).await.unwrap();
        assert_eq!(after.len(), 1);
        assert!(after[0].seq > last_seq);

        // A store that holds anything is refused, and keeps what it had.
        let refused = copy(&source, &postgres).await.unwrap_err();
        assert!(
            matches!(refused, CopyError::Store(StoreError::Conflict(_))),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn an_empty_source_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let source = SqliteStore::open(&dir.path().join("typo")).unwrap();
        let target = SqliteStore::open(&dir.path().join("target")).unwrap();
        let refused = copy(&source, &target).await.unwrap_err();
        assert!(matches!(refused, CopyError::EmptySource), "{refused}");
    }

    /// A migration that adds a column or a table must add it here too, or copies lose it.
    #[test]
    fn the_table_list_is_the_whole_schema_but_challenges_and_console_sessions() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("data")).unwrap();
        let connection = rusqlite::Connection::open(store.path()).unwrap();
        let mut names = connection
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
            .unwrap();
        let mut tables: Vec<String> = names
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        tables.retain(|name| name != "challenges" && name != "console_sessions");
        let mut listed: Vec<&str> = TABLES.iter().map(|table| table.name).collect();
        listed.sort_unstable();
        assert_eq!(tables, listed);
        for table in TABLES {
            let mut columns = connection
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                    table.name
                ))
                .unwrap();
            let mut columns: Vec<String> = columns
                .query_map([], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            columns.sort();
            let mut listed: Vec<&str> = table.columns.iter().map(|(name, _)| *name).collect();
            listed.sort_unstable();
            assert_eq!(columns, listed, "{}", table.name);
        }
    }

    #[tokio::test]
    async fn a_source_whose_chain_is_broken_is_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let source = SqliteStore::open(&dir.path().join("source")).unwrap();
        conformance::append_sample_audit(&source, 3).await;
        let connection = rusqlite::Connection::open(source.path()).unwrap();
        connection
            .execute("UPDATE audit_log SET subject = 'edited' WHERE seq = 2", [])
            .unwrap();
        let target = SqliteStore::open(&dir.path().join("target")).unwrap();
        let refused = copy(&source, &target).await.unwrap_err();
        assert!(matches!(refused, CopyError::SourceChain(_)), "{refused}");
        assert!(target.read_table(&TABLES[6]).await.unwrap().is_empty());
    }
}
