//! Console operators and their sessions.

use super::*;
use crate::{ConsoleSession, OperatorRecord, OperatorStore};

const OPERATOR_COLUMNS: &str = "o.name, o.role, o.password_hash, o.created_at";

fn operator(row: &Row) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        name: get(row, "name")?,
        role: columns::operator_role(&get::<String>(row, "role")?)?,
        password_hash: get(row, "password_hash")?,
        created_at: time(row, "created_at")?,
    })
}

#[async_trait]
impl OperatorStore for PostgresStore {
    async fn create_operator(
        &self,
        o: &OperatorRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO operators (name, role, password_hash, created_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &o.name,
                &o.role.as_str(),
                &o.password_hash,
                &o.created_at.secs(),
            ],
        )
        .await
        .map_err(insert_error("operator"))?;
        commit_change(tx, audit, None).await
    }

    async fn operator(&self, name: &str) -> Result<Option<OperatorRecord>, StoreError> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {OPERATOR_COLUMNS} FROM operators o WHERE o.name = $1"),
                &[&name],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(operator)
            .transpose()
    }

    async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {OPERATOR_COLUMNS} FROM operators o ORDER BY o.name COLLATE \"C\""
                ),
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(operator)
            .collect()
    }

    async fn remove_operator(&self, name: &str, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let removed = tx
            .execute("DELETE FROM operators WHERE name = $1", &[&name])
            .await
            .map_err(backend)?;
        // Their sessions go with them (ON DELETE CASCADE).
        if removed == 0 {
            return Err(StoreError::NotFound("operator"));
        }
        commit_change(tx, audit, None).await
    }

    async fn create_console_session(
        &self,
        s: &ConsoleSession,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The foreign key holds the operator's row until this commits: a removal at the same
        // time either waits and takes this session with it, or comes first and leaves nothing
        // to insert.
        let inserted = tx
            .execute(
                "INSERT INTO console_sessions (id_sha256, operator, created_at, expires_at)
                 SELECT $1, name, $3, $4 FROM operators WHERE name = $2",
                &[
                    &s.id_sha256,
                    &s.operator,
                    &s.created_at.secs(),
                    &s.expires_at.secs(),
                ],
            )
            .await
            .map_err(insert_error("console session"))?;
        if inserted == 0 {
            return Err(StoreError::NotFound("operator"));
        }
        commit_change(tx, audit, None).await
    }

    async fn console_session(
        &self,
        id_sha256: &str,
        now: UnixTime,
    ) -> Result<Option<(ConsoleSession, OperatorRecord)>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT s.id_sha256, s.created_at AS session_created_at, s.expires_at,
                            {OPERATOR_COLUMNS}
                     FROM console_sessions s JOIN operators o ON o.name = s.operator
                     WHERE s.id_sha256 = $1 AND s.expires_at > $2"
                ),
                &[&id_sha256, &now.secs()],
            )
            .await
            .map_err(backend)?;
        row.map(|row| {
            Ok((
                ConsoleSession {
                    id_sha256: get(&row, "id_sha256")?,
                    operator: get(&row, "name")?,
                    created_at: time(&row, "session_created_at")?,
                    expires_at: time(&row, "expires_at")?,
                },
                operator(&row)?,
            ))
        })
        .transpose()
    }

    async fn end_console_session(&self, id_sha256: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM console_sessions WHERE id_sha256 = $1",
                &[&id_sha256],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn purge_console_sessions(&self, now: UnixTime) -> Result<u64, StoreError> {
        self.client()
            .await?
            .execute(
                "DELETE FROM console_sessions WHERE expires_at <= $1",
                &[&now.secs()],
            )
            .await
            .map_err(backend)
    }
}
