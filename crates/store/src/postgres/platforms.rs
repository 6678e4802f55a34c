//! Platform policies, enrolment codes and per-app secrets.

use super::*;

const ENROLMENT_COLUMNS: &str =
    "code_sha256, app_id, created_at, expires_at, used_at, installation_id, identity, revoked_at";

#[async_trait]
impl PlatformStore for PostgresStore {
    async fn set_platform_policy(
        &self,
        app_id: &str,
        platform: &str,
        policy: &serde_json::Value,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO policies (app_id, platform, body, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app_id, platform) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
            &[&app_id, &platform, &policy.to_string(), &at.secs()],
        )
        .await
        .map_err(app_error)?;
        commit_change(tx, audit, None).await
    }

    async fn platform_policy(
        &self,
        app_id: &str,
        platform: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT body FROM policies WHERE app_id = $1 AND platform = $2",
                &[&app_id, &platform],
            )
            .await
            .map_err(backend)?;
        row.map(|row| {
            serde_json::from_str(get::<&str>(&row, "body")?).map_err(corrupt("platform policy"))
        })
        .transpose()
    }

    async fn platform_policies(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT platform, body FROM policies WHERE app_id = $1 AND platform <> '*'
                 ORDER BY platform",
                &[&app_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                Ok((
                    get(row, "platform")?,
                    serde_json::from_str(get::<&str>(row, "body")?)
                        .map_err(corrupt("platform policy"))?,
                ))
            })
            .collect()
    }

    async fn create_enrolment(
        &self,
        enrolment: &Enrolment,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO enrolments (code_sha256, app_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            &[
                &enrolment.code_sha256,
                &enrolment.app_id,
                &enrolment.created_at.secs(),
                &enrolment.expires_at.secs(),
            ],
        )
        .await
        .map_err(insert_error("enrolment"))?;
        commit_change(tx, audit, None).await
    }

    async fn enrolment(&self, code_sha256: &str) -> Result<Option<Enrolment>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE code_sha256 = $1"),
                &[&code_sha256],
            )
            .await
            .map_err(backend)?;
        row.map(|row| enrolment_from_row(&row)).transpose()
    }

    async fn list_enrolments(&self, app_id: &str) -> Result<Vec<Enrolment>, StoreError> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE app_id = $1
                     ORDER BY created_at, code_sha256"
                ),
                &[&app_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(enrolment_from_row)
            .collect()
    }

    async fn enrolled_identities(&self, app_id: &str) -> Result<Vec<String>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT DISTINCT identity FROM enrolments
                 WHERE app_id = $1 AND identity IS NOT NULL AND revoked_at IS NULL
                 ORDER BY identity",
                &[&app_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| get(row, "identity"))
            .collect()
    }

    async fn revoke_enrolment(
        &self,
        app_id: &str,
        code_sha256: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<EnrolmentRevocation, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let found = tx
            .query_opt(
                "SELECT installation_id FROM enrolments WHERE app_id = $1 AND code_sha256 = $2
                 FOR UPDATE",
                &[&app_id, &code_sha256],
            )
            .await
            .map_err(backend)?;
        let Some(found) = found else {
            return Err(StoreError::NotFound("enrolment"));
        };
        let installation_id: Option<String> = get(&found, "installation_id")?;
        let changed = tx
            .execute(
                "UPDATE enrolments SET revoked_at = $3
                 WHERE app_id = $1 AND code_sha256 = $2 AND revoked_at IS NULL",
                &[&app_id, &code_sha256, &at.secs()],
            )
            .await
            .map_err(backend)?;
        if let Some(installation) = &installation_id {
            match installations::revoke_installation(&tx, installation, at).await {
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
        }
        let revocation = EnrolmentRevocation {
            newly_revoked: changed == 1,
            installation_id,
        };
        let outcome = serde_json::json!({
            "newly_revoked": revocation.newly_revoked,
            "installation_id": revocation.installation_id,
        });
        commit_change(tx, audit, Some(outcome)).await?;
        Ok(revocation)
    }

    async fn set_app_secret(
        &self,
        app_id: &str,
        name: &str,
        sealed: &[u8],
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO app_secrets (app_id, name, sealed, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (app_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            &[&app_id, &name, &sealed, &at.secs()],
        )
        .await
        .map_err(app_error)?;
        commit_change(tx, audit, None).await
    }

    async fn app_secret(&self, app_id: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT sealed FROM app_secrets WHERE app_id = $1 AND name = $2",
                &[&app_id, &name],
            )
            .await
            .map_err(backend)?;
        row.map(|row| get(&row, "sealed")).transpose()
    }
}

fn enrolment_from_row(row: &Row) -> Result<Enrolment, StoreError> {
    Ok(Enrolment {
        code_sha256: get(row, "code_sha256")?,
        app_id: get(row, "app_id")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        used_at: optional_time(row, "used_at")?,
        installation_id: get(row, "installation_id")?,
        identity: get(row, "identity")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}
