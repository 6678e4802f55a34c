//! Partner backends: where their public keys come from, never a secret.

use super::*;

const COLUMNS: &str = "id, name, jwks_url, jwks, scopes, audience, ip_allow, require_dpop, created_at, rotated_at, disabled_at";

fn partner(row: &Row) -> Result<PartnerRecord, StoreError> {
    let words = |column: &str| -> Result<Vec<String>, StoreError> {
        let value: String = get(row, column)?;
        Ok(value.split_whitespace().map(str::to_string).collect())
    };
    Ok(PartnerRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        keys: columns::partner_keys(get(row, "jwks_url")?, get(row, "jwks")?)?,
        scopes: words("scopes")?,
        audience: get(row, "audience")?,
        ip_allow: words("ip_allow")?,
        require_dpop: get(row, "require_dpop")?,
        created_at: time(row, "created_at")?,
        rotated_at: optional_time(row, "rotated_at")?,
        disabled_at: optional_time(row, "disabled_at")?,
    })
}

/// Locks a partner's row until `tx` ends: `NotFound("partner")` if there is none,
/// `Conflict("partner disabled")` if it is disabled.
async fn lock_enabled(tx: &impl GenericClient, id: &str) -> Result<(), StoreError> {
    let row = tx
        .query_opt(
            "SELECT disabled_at FROM partners WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(backend)?;
    let Some(row) = row else {
        return Err(StoreError::NotFound("partner"));
    };
    if optional_time(&row, "disabled_at")?.is_some() {
        return Err(StoreError::Conflict("partner disabled"));
    }
    Ok(())
}

#[async_trait]
impl PartnerStore for PostgresStore {
    async fn create_partner(
        &self,
        p: &PartnerRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (jwks_url, jwks) = columns::partner_key_columns(&p.keys);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            &format!(
                "INSERT INTO partners ({COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ),
            &[
                &p.id,
                &p.name,
                &jwks_url,
                &jwks,
                &p.scopes.join(" "),
                &p.audience,
                &p.ip_allow.join(" "),
                &p.require_dpop,
                &p.created_at.secs(),
                &p.rotated_at.map(UnixTime::secs),
                &p.disabled_at.map(UnixTime::secs),
            ],
        )
        .await
        .map_err(insert_error("partner"))?;
        commit_change(tx, audit, None).await
    }

    async fn disable_partner(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        lock_enabled(&tx, id).await?;
        tx.execute(
            "UPDATE partners SET disabled_at = $2 WHERE id = $1",
            &[&id, &at.secs()],
        )
        .await
        .map_err(backend)?;
        commit_change(tx, audit, None).await
    }

    async fn rotate_partner_keys(
        &self,
        id: &str,
        keys: &PartnerKeys,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (jwks_url, jwks) = columns::partner_key_columns(keys);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        lock_enabled(&tx, id).await?;
        tx.execute(
            "UPDATE partners SET jwks_url = $2, jwks = $3, rotated_at = $4 WHERE id = $1",
            &[&id, &jwks_url, &jwks, &at.secs()],
        )
        .await
        .map_err(backend)?;
        commit_change(tx, audit, None).await
    }

    async fn partner(&self, id: &str) -> Result<Option<PartnerRecord>, StoreError> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {COLUMNS} FROM partners WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(partner)
            .transpose()
    }

    async fn partners(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {COLUMNS} FROM partners ORDER BY id COLLATE \"C\""),
                &[],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(partner).collect()
    }
}
