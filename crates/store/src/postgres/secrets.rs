//! Operator secrets, sealed by the caller.

use super::*;

#[async_trait]
impl SecretStore for PostgresStore {
    async fn create_secret(
        &self,
        secret: &SecretRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO secrets (app_id, name, version, sealed, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &secret.app_id,
                &secret.name,
                &secret.version,
                &secret.sealed,
                &secret.created_at.secs(),
                &secret.updated_at.secs(),
            ],
        )
        .await
        .map_err(insert_error("secret"))?;
        commit_change(tx, audit, None).await
    }

    async fn rotate_secret(
        &self,
        app_id: &str,
        name: &str,
        from_version: i64,
        sealed: &[u8],
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let changed = tx
            .execute(
                "UPDATE secrets SET version = version + 1, sealed = $4, updated_at = $5
                 WHERE app_id = $1 AND name = $2 AND version = $3",
                &[&app_id, &name, &from_version, &sealed, &at.secs()],
            )
            .await
            .map_err(backend)?;
        if changed != 1 {
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM secrets WHERE app_id = $1 AND name = $2",
                    &[&app_id, &name],
                )
                .await
                .map_err(backend)?;
            return Err(match exists {
                Some(_) => StoreError::Conflict("secret version"),
                None => StoreError::NotFound("secret"),
            });
        }
        commit_change(tx, audit, None).await
    }

    async fn delete_secret(
        &self,
        app_id: &str,
        name: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let deleted = tx
            .execute(
                "DELETE FROM secrets WHERE app_id = $1 AND name = $2",
                &[&app_id, &name],
            )
            .await
            .map_err(backend)?;
        if deleted == 0 {
            return Err(StoreError::NotFound("secret"));
        }
        commit_change(tx, audit, None).await
    }

    async fn secrets(&self, app_id: Option<&str>) -> Result<Vec<SecretRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT app_id, name, version, sealed, created_at, updated_at FROM secrets
                 WHERE $1::TEXT IS NULL OR app_id = $1
                 ORDER BY app_id COLLATE \"C\", name COLLATE \"C\"",
                &[&app_id],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(SecretRecord {
                    app_id: get(row, "app_id")?,
                    name: get(row, "name")?,
                    version: get(row, "version")?,
                    sealed: get(row, "sealed")?,
                    created_at: time(row, "created_at")?,
                    updated_at: time(row, "updated_at")?,
                })
            })
            .collect()
    }
}
