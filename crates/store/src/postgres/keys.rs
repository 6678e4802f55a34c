//! Signing keys and settings.

use super::*;

#[async_trait]
impl KeyStore for PostgresStore {
    async fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT kid, public_jwk, private_key, created_at, retired_at FROM signing_keys
                 ORDER BY created_at, kid",
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                Ok(SigningKeyRecord {
                    kid: get(row, "kid")?,
                    public_jwk: serde_json::from_str(get::<&str>(row, "public_jwk")?)
                        .map_err(corrupt("signing key"))?,
                    sealed_private_key: get(row, "private_key")?,
                    created_at: time(row, "created_at")?,
                    retired_at: optional_time(row, "retired_at")?,
                })
            })
            .collect()
    }

    async fn rotate_signing_key(
        &self,
        key: &SigningKeyRecord,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let jwk = serde_json::to_string(&key.public_jwk).map_err(corrupt("signing key"))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL",
            &[&key.created_at.secs()],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "INSERT INTO signing_keys (kid, public_jwk, private_key, created_at, retired_at)
             VALUES ($1, $2, $3, $4, NULL)",
            &[
                &key.kid,
                &jwk,
                &key.sealed_private_key,
                &key.created_at.secs(),
            ],
        )
        .await
        .map_err(insert_error("signing key"))?;
        commit_change(tx, audit, None).await
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        sealed_private_key: &[u8],
    ) -> Result<(), StoreError> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE signing_keys SET private_key = $2 WHERE kid = $1",
                &[&kid, &sealed_private_key],
            )
            .await
            .map_err(backend)?;
        if changed == 0 {
            return Err(StoreError::NotFound("signing key"));
        }
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await
            .map_err(backend)?;
        row.map(|row| get(&row, "value")).transpose()
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }
}
