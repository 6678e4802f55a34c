//! Partner backends: where their public keys come from, never a secret.

use super::*;

const COLUMNS: &str = "id, name, jwks_url, jwks, scopes, audience, ip_allow, require_dpop, created_at, rotated_at, disabled_at";

/// A partner, or `Corrupt` when its key columns do not name exactly one source.
fn partner(row: &Row<'_>) -> rusqlite::Result<Result<PartnerRecord, StoreError>> {
    let words = |column: &str| -> rusqlite::Result<Vec<String>> {
        let value: String = row.get(column)?;
        Ok(value.split_whitespace().map(str::to_string).collect())
    };
    let keys = match columns::partner_keys(row.get("jwks_url")?, row.get("jwks")?) {
        Ok(keys) => keys,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(PartnerRecord {
        id: row.get("id")?,
        name: row.get("name")?,
        keys,
        scopes: words("scopes")?,
        audience: row.get("audience")?,
        ip_allow: words("ip_allow")?,
        require_dpop: row.get("require_dpop")?,
        created_at: time(row, "created_at")?,
        rotated_at: optional_time(row, "rotated_at")?,
        disabled_at: optional_time(row, "disabled_at")?,
    }))
}

/// A partner's `disabled_at`: `NotFound("partner")` if there is none.
fn disabled_at(tx: &Connection, id: &str) -> Result<Option<i64>, StoreError> {
    tx.cached_row(
        "SELECT disabled_at FROM partners WHERE id = ?1",
        params![id],
        |row| row.get::<_, Option<i64>>(0),
    )
    .optional()
    .map_err(backend)?
    .ok_or(StoreError::NotFound("partner"))
}

#[async_trait]
impl PartnerStore for SqliteStore {
    async fn create_partner(
        &self,
        partner: &PartnerRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let p = partner.clone();
        self.change(audit, move |tx| {
            let (jwks_url, jwks) = columns::partner_key_columns(&p.keys);
            tx.cached_execute(
                &format!(
                    "INSERT INTO partners ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
                ),
                params![
                    p.id,
                    p.name,
                    jwks_url,
                    jwks,
                    p.scopes.join(" "),
                    p.audience,
                    p.ip_allow.join(" "),
                    p.require_dpop,
                    p.created_at.secs(),
                    p.rotated_at.map(UnixTime::secs),
                    p.disabled_at.map(UnixTime::secs),
                ],
            )
            .map_err(insert_error("partner"))?;
            Ok(((), None))
        })
        .await
    }

    async fn disable_partner(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        self.change(audit, move |tx| {
            if disabled_at(tx, &id)?.is_some() {
                return Err(StoreError::Conflict("partner disabled"));
            }
            tx.cached_execute(
                "UPDATE partners SET disabled_at = ?2 WHERE id = ?1",
                params![id, at.secs()],
            )
            .map_err(backend)?;
            Ok(((), None))
        })
        .await
    }

    async fn rotate_partner_keys(
        &self,
        id: &str,
        keys: &PartnerKeys,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let id = id.to_string();
        let keys = keys.clone();
        self.change(audit, move |tx| {
            if disabled_at(tx, &id)?.is_some() {
                return Err(StoreError::Conflict("partner disabled"));
            }
            let (jwks_url, jwks) = columns::partner_key_columns(&keys);
            tx.cached_execute(
                "UPDATE partners SET jwks_url = ?2, jwks = ?3, rotated_at = ?4 WHERE id = ?1",
                params![id, jwks_url, jwks, at.secs()],
            )
            .map_err(backend)?;
            Ok(((), None))
        })
        .await
    }

    async fn partner(&self, id: &str) -> Result<Option<PartnerRecord>, StoreError> {
        let id = id.to_string();
        self.run(move |conn| {
            conn.cached_row(
                &format!("SELECT {COLUMNS} FROM partners WHERE id = ?1"),
                [id],
                partner,
            )
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn partners(&self) -> Result<Vec<PartnerRecord>, StoreError> {
        self.run(|conn| {
            let mut statement = conn
                .prepare_cached(&format!("SELECT {COLUMNS} FROM partners ORDER BY id"))
                .map_err(backend)?;
            let rows = statement.query_map([], partner).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>()
                .map_err(backend)?
                .into_iter()
                .collect()
        })
        .await
    }
}
