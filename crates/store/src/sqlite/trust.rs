//! The TUF repository: published metadata, online keys, pins.

use super::*;

const METADATA_COLUMNS: &str = "role, version, body, expires_at, created_at";

fn metadata_from_row(row: &Row<'_>) -> rusqlite::Result<TrustMetadataRecord> {
    Ok(TrustMetadataRecord {
        role: row.get("role")?,
        version: row.get("version")?,
        body: row.get("body")?,
        expires_at: time(row, "expires_at")?,
        created_at: time(row, "created_at")?,
    })
}

fn insert_metadata(tx: &Connection, file: &TrustMetadataRecord) -> Result<(), StoreError> {
    tx.cached_execute(
        &format!("INSERT INTO trust_metadata ({METADATA_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
        params![
            file.role,
            file.version,
            file.body,
            file.expires_at.secs(),
            file.created_at.secs()
        ],
    )
    .map_err(insert_error("trust metadata version"))?;
    Ok(())
}

fn insert_keys(tx: &Connection, keys: &[TrustKeyRecord], at: UnixTime) -> Result<(), StoreError> {
    for key in keys {
        tx.cached_execute(
            "UPDATE trust_keys SET retired_at = ?2 WHERE role = ?1 AND retired_at IS NULL",
            params![key.role, at.secs()],
        )
        .map_err(backend)?;
    }
    for key in keys {
        tx.cached_execute(
            "INSERT INTO trust_keys (key_id, role, sealed, created_at, retired_at)
             VALUES (?1, ?2, ?3, ?4, NULL)",
            params![key.key_id, key.role, key.sealed, key.created_at.secs()],
        )
        .map_err(insert_error("trust key"))?;
    }
    Ok(())
}

fn latest_root(tx: &Connection) -> Result<Option<i64>, StoreError> {
    tx.cached_row(
        "SELECT MAX(version) FROM trust_metadata WHERE role = 'root'",
        [],
        |row| row.get(0),
    )
    .map_err(backend)
}

#[async_trait]
impl TrustStore for SqliteStore {
    async fn init_trust(
        &self,
        root: &TrustMetadataRecord,
        keys: &[TrustKeyRecord],
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (root, keys) = (root.clone(), keys.to_vec());
        self.change(audit, move |tx| {
            if latest_root(tx)?.is_some() {
                return Err(StoreError::Conflict("trust repository"));
            }
            insert_metadata(tx, &root)?;
            insert_keys(tx, &keys, root.created_at)?;
            Ok(((), None))
        })
        .await
    }

    async fn add_root(
        &self,
        root: &TrustMetadataRecord,
        keys: &[TrustKeyRecord],
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (root, keys) = (root.clone(), keys.to_vec());
        self.change(audit, move |tx| {
            match latest_root(tx)? {
                None => return Err(StoreError::NotFound("trust repository")),
                Some(latest) if latest + 1 != root.version => {
                    return Err(StoreError::Conflict("root version"));
                }
                Some(_) => {}
            }
            insert_metadata(tx, &root)?;
            insert_keys(tx, &keys, root.created_at)?;
            Ok(((), None))
        })
        .await
    }

    async fn publish_trust(
        &self,
        files: &[TrustMetadataRecord],
        audit: Option<&NewAuditEntry>,
    ) -> Result<(), StoreError> {
        let files = files.to_vec();
        let work = move |tx: &Connection| {
            for file in &files {
                insert_metadata(tx, file)?;
            }
            Ok(((), None))
        };
        match audit {
            Some(audit) => self.change(audit, work).await,
            None => self.run(move |tx| work(tx).map(|(value, _)| value)).await,
        }
    }

    async fn trust_metadata(
        &self,
        role: &str,
        version: Option<i64>,
    ) -> Result<Option<TrustMetadataRecord>, StoreError> {
        let role = role.to_string();
        self.run(move |conn| {
            conn.cached_row(
                &format!(
                    "SELECT {METADATA_COLUMNS} FROM trust_metadata
                     WHERE role = ?1 AND (?2 IS NULL OR version = ?2)
                     ORDER BY version DESC LIMIT 1"
                ),
                params![role, version],
                metadata_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }

    async fn trust_roots(&self) -> Result<Vec<TrustMetadataRecord>, StoreError> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {METADATA_COLUMNS} FROM trust_metadata WHERE role = 'root' ORDER BY version"
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map([], metadata_from_row)
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn trust_keys(&self) -> Result<Vec<TrustKeyRecord>, StoreError> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT key_id, role, sealed, created_at, retired_at FROM trust_keys
                     WHERE retired_at IS NULL ORDER BY role, key_id",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(TrustKeyRecord {
                        key_id: row.get("key_id")?,
                        role: row.get("role")?,
                        sealed: row.get("sealed")?,
                        created_at: time(row, "created_at")?,
                        retired_at: optional_time(row, "retired_at")?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    async fn add_pin(&self, pin: &PinRecord, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let pin = pin.clone();
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO pins (pattern, pin, created_at) VALUES (?1, ?2, ?3)",
                params![pin.pattern, pin.pin, pin.created_at.secs()],
            )
            .map_err(insert_error("pin"))?;
            Ok(((), None))
        })
        .await
    }

    async fn remove_pins(
        &self,
        pattern: &str,
        pin: Option<&str>,
        audit: &NewAuditEntry,
    ) -> Result<usize, StoreError> {
        let (pattern, pin) = (pattern.to_string(), pin.map(str::to_string));
        self.change(audit, move |tx| {
            let removed = tx
                .cached_execute(
                    "DELETE FROM pins WHERE pattern = ?1 AND (?2 IS NULL OR pin = ?2)",
                    params![pattern, pin],
                )
                .map_err(backend)?;
            if removed == 0 {
                return Err(StoreError::NotFound("pin"));
            }
            Ok((removed, Some(serde_json::json!({"removed": removed}))))
        })
        .await
    }

    async fn pins(&self) -> Result<Vec<PinRecord>, StoreError> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT pattern, pin, created_at FROM pins ORDER BY pattern, pin")
                .map_err(backend)?;
            let rows = statement
                .query_map([], |row| {
                    Ok(PinRecord {
                        pattern: row.get("pattern")?,
                        pin: row.get("pin")?,
                        created_at: time(row, "created_at")?,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}
