//! Credentials for apps that cannot attest: digests, never the secret.

use super::*;

const COLUMNS: &str =
    "id, app_id, kind, name, scopes, digest, sha1_digest, created_at, expires_at, revoked_at";

fn credential(row: &Row) -> Result<CredentialRecord, StoreError> {
    let scopes: String = get(row, "scopes")?;
    Ok(CredentialRecord {
        id: get(row, "id")?,
        app_id: get(row, "app_id")?,
        kind: get(row, "kind")?,
        name: get(row, "name")?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        digest: get(row, "digest")?,
        sha1_digest: get(row, "sha1_digest")?,
        created_at: time(row, "created_at")?,
        expires_at: optional_time(row, "expires_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}

#[async_trait]
impl CredentialStore for PostgresStore {
    async fn create_credential(
        &self,
        c: &CredentialRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            &format!(
                "INSERT INTO credentials ({COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &c.id,
                &c.app_id,
                &c.kind,
                &c.name,
                &c.scopes.join(" "),
                &c.digest,
                &c.sha1_digest,
                &c.created_at.secs(),
                &c.expires_at.map(UnixTime::secs),
                &c.revoked_at.map(UnixTime::secs),
            ],
        )
        .await
        .map_err(insert_error("credential"))?;
        commit_change(tx, audit, None).await
    }

    async fn revoke_credential(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let row = tx
            .query_opt(
                "SELECT revoked_at FROM credentials WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Err(StoreError::NotFound("credential"));
        };
        if optional_time(&row, "revoked_at")?.is_some() {
            return Err(StoreError::Conflict("credential revoked"));
        }
        tx.execute(
            "UPDATE credentials SET revoked_at = $2 WHERE id = $1",
            &[&id, &at.secs()],
        )
        .await
        .map_err(backend)?;
        commit_change(tx, audit, None).await
    }

    async fn credentials(&self, app_id: Option<&str>) -> Result<Vec<CredentialRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM credentials WHERE $1::TEXT IS NULL OR app_id = $1
                     ORDER BY app_id COLLATE \"C\", id COLLATE \"C\""
                ),
                &[&app_id],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(credential).collect()
    }
}
