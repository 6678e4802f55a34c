//! Signing keys and settings.

use super::*;

#[async_trait]
impl KeyStore for SqliteStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        let rows = self
            .run(|conn| {
                let mut statement = conn
                    .prepare_cached("SELECT kid, public_jwk, private_key, created_at, retired_at FROM signing_keys ORDER BY created_at, kid")
                    .map_err(backend)?;
                let rows = statement
                    .query_map([], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, Vec<u8>>(2)?,
                            UnixTime::from_secs(row.get(3)?),
                            row.get::<_, Option<i64>>(4)?.map(UnixTime::from_secs),
                        ))
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter()
            .map(|(kid, jwk, sealed_private_key, created_at, retired_at)| {
                Ok(SigningKeyRecord {
                    kid,
                    public_jwk: serde_json::from_str(&jwk).map_err(corrupt("signing key"))?,
                    sealed_private_key,
                    created_at,
                    retired_at,
                })
            })
            .collect()
    }
    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let key = key.clone();
        let jwk = serde_json::to_string(&key.public_jwk).map_err(corrupt("signing key"))?;
        self.change(audit, move |tx| {
            tx.cached_execute(
                "UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL",
                [key.created_at.secs()],
            )
            .map_err(backend)?;
            tx.cached_execute(
                "INSERT INTO signing_keys (kid, public_jwk, private_key, created_at, retired_at)
                 VALUES (?1, ?2, ?3, ?4, NULL)",
                params![key.kid, jwk, key.sealed_private_key, key.created_at.secs()],
            )
            .map_err(insert_error("signing key"))?;
            Ok(((), None))
        })
        .await
    }
    async fn reseal_signing_key(
        &self,
        kid: &str,
        sealed_private_key: &[u8],
    ) -> Result<(), StoreError> {
        let (kid, sealed) = (kid.to_string(), sealed_private_key.to_vec());
        self.run(move |conn| {
            let changed = conn
                .cached_execute(
                    "UPDATE signing_keys SET private_key = ?2 WHERE kid = ?1",
                    params![kid, sealed],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound("signing key"));
            }
            Ok(())
        })
        .await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.run(move |conn| {
            conn.cached_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(backend)
        })
        .await
    }
    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.run(move |conn| {
            conn.cached_execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}
