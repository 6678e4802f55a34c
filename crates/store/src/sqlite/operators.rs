//! Console operators and their sessions.

use super::*;
use crate::{ConsoleSession, OperatorRecord, OperatorStore};

const OPERATOR_COLUMNS: &str = "o.name, o.role, o.password_hash, o.created_at";

/// An operator's columns as read, the role still text.
type OperatorRow = (String, String, String, UnixTime);

fn operator_row(row: &Row<'_>) -> rusqlite::Result<OperatorRow> {
    Ok((
        row.get("name")?,
        row.get("role")?,
        row.get("password_hash")?,
        time(row, "created_at")?,
    ))
}

fn operator(
    (name, role, password_hash, created_at): OperatorRow,
) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        name,
        role: columns::operator_role(&role)?,
        password_hash,
        created_at,
    })
}

#[async_trait]
impl OperatorStore for SqliteStore {
    async fn create_operator(
        &self,
        operator: &OperatorRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let o = operator.clone();
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO operators (name, role, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    o.name,
                    o.role.as_str(),
                    o.password_hash,
                    o.created_at.secs()
                ],
            )
            .map_err(insert_error("operator"))?;
            Ok(((), None))
        })
        .await
    }

    async fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        let name = name.to_string();
        self.run(move |conn| {
            conn.cached_row(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators o WHERE o.name = ?1"),
                params![name],
                operator_row,
            )
            .optional()
            .map_err(backend)?
            .map(operator)
            .transpose()
        })
        .await
    }

    async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {OPERATOR_COLUMNS} FROM operators o ORDER BY o.name"
                ))
                .map_err(backend)?;
            let rows = statement.query_map([], operator_row).map_err(backend)?;
            rows.map(|row| operator(row.map_err(backend)?)).collect()
        })
        .await
    }

    async fn remove_operator(&self, name: &str, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let name = name.to_string();
        self.change(audit, move |tx| {
            let removed = tx
                .cached_execute("DELETE FROM operators WHERE name = ?1", params![name])
                .map_err(backend)?;
            // Their sessions go with them (ON DELETE CASCADE).
            if removed == 0 {
                return Err(StoreError::NotFound("operator"));
            }
            Ok(((), None))
        })
        .await
    }

    async fn create_console_session(
        &self,
        session: &ConsoleSession,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let s = session.clone();
        self.change(audit, move |tx| {
            // Only an operator that exists gets one (the foreign key says so too).
            let inserted = tx
                .cached_execute(
                    "INSERT INTO console_sessions (id_sha256, operator, created_at, expires_at)
                     SELECT ?1, name, ?3, ?4 FROM operators WHERE name = ?2",
                    params![
                        s.id_sha256,
                        s.operator,
                        s.created_at.secs(),
                        s.expires_at.secs()
                    ],
                )
                .map_err(insert_error("console session"))?;
            if inserted == 0 {
                return Err(StoreError::NotFound("operator"));
            }
            Ok(((), None))
        })
        .await
    }

    async fn console_session(
        &self,
        id_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<(ConsoleSession, OperatorRecord)>, StoreError> {
        let id = id_sha256.to_string();
        self.run(move |conn| {
            let found = conn
                .cached_row(
                    &format!(
                        "SELECT s.id_sha256, s.created_at AS session_created_at, s.expires_at,
                                {OPERATOR_COLUMNS}
                         FROM console_sessions s JOIN operators o ON o.name = s.operator
                         WHERE s.id_sha256 = ?1 AND s.expires_at > ?2"
                    ),
                    params![id, now.secs()],
                    |row| {
                        Ok((
                            ConsoleSession {
                                id_sha256: row.get("id_sha256")?,
                                operator: row.get("name")?,
                                created_at: time(row, "session_created_at")?,
                                expires_at: time(row, "expires_at")?,
                            },
                            operator_row(row)?,
                        ))
                    },
                )
                .optional()
                .map_err(backend)?;
            found
                .map(|(session, row)| Ok((session, operator(row)?)))
                .transpose()
        })
        .await
    }

    async fn end_console_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        let id = id_sha256.to_string();
        self.run(move |conn| {
            conn.cached_execute(
                "DELETE FROM console_sessions WHERE id_sha256 = ?1",
                params![id],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge_console_sessions(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.run(move |conn| {
            conn.cached_execute(
                "DELETE FROM console_sessions WHERE expires_at <= ?1",
                params![now.secs()],
            )
            .map(|removed| removed as u64)
            .map_err(backend)
        })
        .await
    }
}
