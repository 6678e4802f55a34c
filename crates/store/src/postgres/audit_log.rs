//! The audit log: appended under the chain's advisory lock, so two nodes never fork it.

use super::*;

#[async_trait]
impl AuditStore for PostgresStore {
    async fn append_audit(&self, entries: &[NewAuditEntry]) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        append_entries(&tx, entries).await?;
        tx.commit().await.map_err(backend)
    }

    async fn audit_entries(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.client()
            .await?
            .query(
                "SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after_seq, &limit],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(audit_from_row)
            .collect()
    }

    async fn audit_head(&self) -> Result<Option<AuditEntry>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1", &[])
            .await
            .map_err(backend)?;
        row.map(|row| audit_from_row(&row)).transpose()
    }

    async fn prune_audit(&self, keep_from: i64) -> Result<u64, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&AUDIT_LOCK])
            .await
            .map_err(backend)?;
        let kept: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM audit_log WHERE seq = $1",
                &[&keep_from],
            )
            .await
            .map_err(backend)?
            .get(0);
        if kept == 0 {
            return Err(StoreError::NotFound("audit entry"));
        }
        let deleted = tx
            .execute("DELETE FROM audit_log WHERE seq < $1", &[&keep_from])
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }
}

pub(super) fn hash(row: &Row, column: &str) -> Result<[u8; 32], StoreError> {
    get::<Vec<u8>>(row, column)?
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit hash is not 32 bytes".into()))
}

fn audit_from_row(row: &Row) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry {
        seq: get(row, "seq")?,
        at: time(row, "at")?,
        kind: get(row, "kind")?,
        actor: get(row, "actor")?,
        subject: get(row, "subject")?,
        detail: get(row, "detail")?,
        prev_hash: hash(row, "prev_hash")?,
        hash: hash(row, "hash")?,
    })
}
