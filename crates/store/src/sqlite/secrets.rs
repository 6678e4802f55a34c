//! Operator secrets, sealed by the caller.

use super::*;

#[async_trait]
impl SecretStore for SqliteStore {
    async fn create_secret(
        &self,
        secret: &SecretRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let secret = secret.clone();
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO secrets (app_id, name, version, sealed, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    secret.app_id,
                    secret.name,
                    secret.version,
                    secret.sealed,
                    secret.created_at.secs(),
                    secret.updated_at.secs()
                ],
            )
            .map_err(insert_error("secret"))?;
            Ok(((), None))
        })
        .await
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
        let (app_id, name, sealed) = (app_id.to_string(), name.to_string(), sealed.to_vec());
        self.change(audit, move |tx| {
            let changed = tx
                .cached_execute(
                    "UPDATE secrets SET version = version + 1, sealed = ?4, updated_at = ?5
                     WHERE app_id = ?1 AND name = ?2 AND version = ?3",
                    params![app_id, name, from_version, sealed, at.secs()],
                )
                .map_err(backend)?;
            if changed == 1 {
                return Ok(((), None));
            }
            let exists = tx
                .cached_row(
                    "SELECT 1 FROM secrets WHERE app_id = ?1 AND name = ?2",
                    params![app_id, name],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?;
            Err(match exists {
                Some(()) => StoreError::Conflict("secret version"),
                None => StoreError::NotFound("secret"),
            })
        })
        .await
    }

    async fn delete_secret(
        &self,
        app_id: &str,
        name: &str,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (app_id, name) = (app_id.to_string(), name.to_string());
        self.change(audit, move |tx| {
            let deleted = tx
                .cached_execute(
                    "DELETE FROM secrets WHERE app_id = ?1 AND name = ?2",
                    params![app_id, name],
                )
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::NotFound("secret"));
            }
            Ok(((), None))
        })
        .await
    }

    async fn secrets(&self, app_id: Option<&str>) -> Result<Vec<SecretRecord>, StoreError> {
        let app_id = app_id.map(str::to_string);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT app_id, name, version, sealed, created_at, updated_at FROM secrets
                     WHERE ?1 IS NULL OR app_id = ?1 ORDER BY app_id, name",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([app_id], |row| {
                    Ok(SecretRecord {
                        app_id: row.get("app_id")?,
                        name: row.get("name")?,
                        version: row.get("version")?,
                        sealed: row.get("sealed")?,
                        created_at: time(row, "created_at")?,
                        updated_at: time(row, "updated_at")?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}
