//! The TUF repository: published metadata, online keys, pins.

use super::*;

const METADATA_COLUMNS: &str = "role, version, body, expires_at, created_at";

fn metadata_from_row(row: &Row) -> Result<TrustMetadataRecord, StoreError> {
    Ok(TrustMetadataRecord {
        role: get(row, "role")?,
        version: get(row, "version")?,
        body: get(row, "body")?,
        expires_at: time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
    })
}

async fn insert_metadata(
    tx: &impl GenericClient,
    file: &TrustMetadataRecord,
) -> Result<(), StoreError> {
    tx.execute(
        &format!("INSERT INTO trust_metadata ({METADATA_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"),
        &[
            &file.role,
            &file.version,
            &file.body,
            &file.expires_at.secs(),
            &file.created_at.secs(),
        ],
    )
    .await
    .map_err(insert_error("trust metadata version"))?;
    Ok(())
}

async fn insert_keys(
    tx: &impl GenericClient,
    keys: &[TrustKeyRecord],
    at: UnixTime,
) -> Result<(), StoreError> {
    for key in keys {
        tx.execute(
            "UPDATE trust_keys SET retired_at = $2 WHERE role = $1 AND retired_at IS NULL",
            &[&key.role, &at.secs()],
        )
        .await
        .map_err(backend)?;
    }
    for key in keys {
        tx.execute(
            "INSERT INTO trust_keys (key_id, role, sealed, created_at, retired_at)
             VALUES ($1, $2, $3, $4, NULL)",
            &[&key.key_id, &key.role, &key.sealed, &key.created_at.secs()],
        )
        .await
        .map_err(insert_error("trust key"))?;
    }
    Ok(())
}

/// The latest root version, read under a lock on the trust repository so that two
/// replicas adding a root serialise.
async fn latest_root(tx: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&TRUST_LOCK])
        .await
        .map_err(backend)?;
    let row = tx
        .query_one(
            "SELECT MAX(version) AS latest FROM trust_metadata WHERE role = 'root'",
            &[],
        )
        .await
        .map_err(backend)?;
    get(&row, "latest")
}

#[async_trait]
impl TrustStore for PostgresStore {
    async fn init_trust(
        &self,
        root: &TrustMetadataRecord,
        keys: &[TrustKeyRecord],
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        if latest_root(&tx).await?.is_some() {
            return Err(StoreError::Conflict("trust repository"));
        }
        insert_metadata(&tx, root).await?;
        insert_keys(&tx, keys, root.created_at).await?;
        commit_change(tx, audit, None).await
    }

    async fn add_root(
        &self,
        root: &TrustMetadataRecord,
        keys: &[TrustKeyRecord],
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        match latest_root(&tx).await? {
            None => return Err(StoreError::NotFound("trust repository")),
            Some(latest) if latest + 1 != root.version => {
                return Err(StoreError::Conflict("root version"));
            }
            Some(_) => {}
        }
        insert_metadata(&tx, root).await?;
        insert_keys(&tx, keys, root.created_at).await?;
        commit_change(tx, audit, None).await
    }

    async fn publish_trust(
        &self,
        files: &[TrustMetadataRecord],
        audit: Option<&NewAuditEntry>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        for file in files {
            insert_metadata(&tx, file).await?;
        }
        match audit {
            Some(audit) => commit_change(tx, audit, None).await,
            None => tx.commit().await.map_err(backend),
        }
    }

    async fn trust_metadata(
        &self,
        role: &str,
        version: Option<i64>,
    ) -> Result<Option<TrustMetadataRecord>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {METADATA_COLUMNS} FROM trust_metadata
                     WHERE role = $1 AND ($2::BIGINT IS NULL OR version = $2)
                     ORDER BY version DESC LIMIT 1"
                ),
                &[&role, &version],
            )
            .await
            .map_err(backend)?;
        row.as_ref().map(metadata_from_row).transpose()
    }

    async fn trust_roots(&self) -> Result<Vec<TrustMetadataRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {METADATA_COLUMNS} FROM trust_metadata WHERE role = 'root' ORDER BY version"
                ),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(metadata_from_row).collect()
    }

    async fn trust_keys(&self) -> Result<Vec<TrustKeyRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT key_id, role, sealed, created_at, retired_at FROM trust_keys
                 WHERE retired_at IS NULL ORDER BY role COLLATE \"C\", key_id COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(TrustKeyRecord {
                    key_id: get(row, "key_id")?,
                    role: get(row, "role")?,
                    sealed: get(row, "sealed")?,
                    created_at: time(row, "created_at")?,
                    retired_at: optional_time(row, "retired_at")?,
                })
            })
            .collect()
    }

    async fn add_pin(&self, pin: &PinRecord, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO pins (pattern, pin, created_at) VALUES ($1, $2, $3)",
            &[&pin.pattern, &pin.pin, &pin.created_at.secs()],
        )
        .await
        .map_err(insert_error("pin"))?;
        commit_change(tx, audit, None).await
    }

    async fn remove_pins(
        &self,
        pattern: &str,
        pin: Option<&str>,
        audit: &NewAuditEntry,
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let removed = tx
            .execute(
                "DELETE FROM pins WHERE pattern = $1 AND ($2::TEXT IS NULL OR pin = $2)",
                &[&pattern, &pin],
            )
            .await
            .map_err(backend)? as usize;
        if removed == 0 {
            return Err(StoreError::NotFound("pin"));
        }
        commit_change(tx, audit, Some(serde_json::json!({"removed": removed}))).await?;
        Ok(removed)
    }

    async fn pins(&self) -> Result<Vec<PinRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT pattern, pin, created_at FROM pins
                 ORDER BY pattern COLLATE \"C\", pin COLLATE \"C\"",
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(PinRecord {
                    pattern: get(row, "pattern")?,
                    pin: get(row, "pin")?,
                    created_at: time(row, "created_at")?,
                })
            })
            .collect()
    }
}
