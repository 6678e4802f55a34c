//! Credentials for apps that cannot attest: digests, never the secret.

use super::*;

const COLUMNS: &str =
    "id, app_id, kind, name, scopes, digest, sha1_digest, created_at, expires_at, revoked_at";

fn credential(row: &Row<'_>) -> rusqlite::Result<CredentialRecord> {
    let scopes: String = row.get("scopes")?;
    Ok(CredentialRecord {
        id: row.get("id")?,
        app_id: row.get("app_id")?,
        kind: row.get("kind")?,
        name: row.get("name")?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        digest: row.get("digest")?,
        sha1_digest: row.get("sha1_digest")?,
        created_at: time(row, "created_at")?,
        expires_at: optional_time(row, "expires_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn create_credential(
        &self,
        credential: &CredentialRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let c = credential.clone();
        self.change(audit, move |tx| {
            tx.cached_execute(
                &format!("INSERT INTO credentials ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
                params![
                    c.id,
                    c.app_id,
                    c.kind,
                    c.name,
                    c.scopes.join(" "),
                    c.digest,
                    c.sha1_digest,
                    c.created_at.secs(),
                    c.expires_at.map(UnixTime::secs),
                    c.revoked_at.map(UnixTime::secs),
                ],
            )
            .map_err(|e| {
                // The id or a digest taken (a digest repeats only if a secret does).
                if is_constraint(&e, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE) {
                    StoreError::Conflict("credential")
                } else {
                    insert_error("credential")(e)
                }
            })?;
            Ok(((), None))
        })
        .await
    }

    async fn revoke_credential(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.change(audit, move |tx| {
            let revoked_at = tx
                .cached_row(
                    "SELECT revoked_at FROM credentials WHERE id = ?1",
                    params![id],
                    |row| row.get::<_, Option<i64>>(0),
                )
                .optional()
                .map_err(backend)?;
            match revoked_at {
                None => Err(StoreError::NotFound("credential")),
                Some(Some(_)) => Err(StoreError::Conflict("credential revoked")),
                Some(None) => {
                    tx.cached_execute(
                        "UPDATE credentials SET revoked_at = ?2 WHERE id = ?1",
                        params![id, at.secs()],
                    )
                    .map_err(backend)?;
                    Ok(((), None))
                }
            }
        })
        .await
    }

    async fn credentials(&self, app_id: Option<&str>) -> Result<Vec<CredentialRecord>, StoreError> {
        let app_id = app_id.map(str::to_string);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM credentials
                     WHERE ?1 IS NULL OR app_id = ?1 ORDER BY app_id, id"
                ))
                .map_err(backend)?;
            let rows = statement.query_map([app_id], credential).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
}
