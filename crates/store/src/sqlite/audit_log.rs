//! The audit log: appended under the one connection's lock, so the chain has one writer.

use super::*;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        self.run(move |conn| append_entries(conn, &entries)).await
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
    async fn audit_head(&self) -> Result<Option<AuditEntry>, StoreError> {
        self.run(move |conn| {
            conn.cached_row(
                "SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                audit_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
    async fn prune_audit(&self, keep_from: i64) -> Result<u64, StoreError> {
        self.run(move |tx| {
            let kept: i64 = tx
                .cached_row(
                    "SELECT COUNT(*) FROM audit_log WHERE seq = ?1",
                    [keep_from],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if kept == 0 {
                return Err(StoreError::NotFound("audit entry"));
            }
            let deleted = tx
                .cached_execute("DELETE FROM audit_log WHERE seq < ?1", [keep_from])
                .map_err(backend)?;
            Ok(deleted as u64)
        })
        .await
    }
}

pub(super) fn hash_column(row: &Row<'_>, column: &str) -> rusqlite::Result<[u8; 32]> {
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
