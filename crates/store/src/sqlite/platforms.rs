//! Platform policies, enrolment codes and per-app secrets.

use super::*;

#[async_trait]
impl PlatformStore for SqliteStore {
    async fn set_platform_policy(
        &self,
        app_id: &str,
        platform: &str,
        policy: &serde_json::Value,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (app_id, platform, body) =
            (app_id.to_string(), platform.to_string(), policy.to_string());
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO policies (app_id, platform, body, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (app_id, platform) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![app_id, platform, body, at.secs()],
            )
            .map_err(app_error)?;
            Ok(((), None))
        })
        .await
    }
    async fn platform_policy(
        &self,
        app_id: &str,
        platform: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let (app_id, platform) = (app_id.to_string(), platform.to_string());
        let body: Option<String> = self
            .run(move |conn| {
                conn.cached_row(
                    "SELECT body FROM policies WHERE app_id = ?1 AND platform = ?2",
                    [app_id, platform],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        body.map(|body| serde_json::from_str(&body).map_err(corrupt("platform policy")))
            .transpose()
    }
    async fn platform_policies(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let app_id = app_id.to_string();
        let rows: Vec<(String, String)> = self
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached("SELECT platform, body FROM policies WHERE app_id = ?1 AND platform <> '*' ORDER BY platform")
                    .map_err(backend)?;
                let rows = statement.query_map([app_id], |row| Ok((row.get(0)?, row.get(1)?))).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter()
            .map(|(platform, body)| {
                Ok((
                    platform,
                    serde_json::from_str(&body).map_err(corrupt("platform policy"))?,
                ))
            })
            .collect()
    }
    async fn create_enrolment(
        &self,
        enrolment: &Enrolment,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let enrolment = enrolment.clone();
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO enrolments (code_sha256, app_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![enrolment.code_sha256, enrolment.app_id, enrolment.created_at.secs(), enrolment.expires_at.secs()],
            )
            .map_err(insert_error("enrolment"))?;
            Ok(((), None))
        })
        .await
    }
    async fn enrolment(&self, code_sha256: &str) -> Result<Option<Enrolment>, StoreError> {
        let code = code_sha256.to_string();
        self.run(move |conn| {
            conn.cached_row(
                &format!("SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE code_sha256 = ?1"),
                [code],
                enrolment_from_row,
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
    async fn list_enrolments(&self, app_id: &str) -> Result<Vec<Enrolment>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!("SELECT {ENROLMENT_COLUMNS} FROM enrolments WHERE app_id = ?1 ORDER BY created_at, code_sha256"))
                .map_err(backend)?;
            let rows = statement.query_map([app_id], enrolment_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
    async fn enrolled_identities(&self, app_id: &str) -> Result<Vec<String>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT DISTINCT identity FROM enrolments
                     WHERE app_id = ?1 AND identity IS NOT NULL AND revoked_at IS NULL
                     ORDER BY identity",
                )
                .map_err(backend)?;
            let rows = statement
                .query_map([app_id], |row| row.get(0))
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
    async fn revoke_enrolment(
        &self,
        app_id: &str,
        code_sha256: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<EnrolmentRevocation, StoreError> {
        let (app_id, code) = (app_id.to_string(), code_sha256.to_string());
        self.change(audit, move |tx| {
            let installation_id: Option<Option<String>> = tx
                .cached_row(
                    "SELECT installation_id FROM enrolments WHERE app_id = ?1 AND code_sha256 = ?2",
                    params![app_id, code],
                    |row| row.get(0),
                )
                .optional()
                .map_err(backend)?;
            let Some(installation_id) = installation_id else {
                return Err(StoreError::NotFound("enrolment"));
            };
            let changed = tx
                .cached_execute(
                    "UPDATE enrolments SET revoked_at = ?3
                     WHERE app_id = ?1 AND code_sha256 = ?2 AND revoked_at IS NULL",
                    params![app_id, code, at.secs()],
                )
                .map_err(backend)?;
            if let Some(installation) = &installation_id {
                match installations::revoke_installation(tx, installation, at) {
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
            Ok((revocation, Some(outcome)))
        })
        .await
    }
    async fn set_app_secret(
        &self,
        app_id: &str,
        name: &str,
        sealed: &[u8],
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let (app_id, name, sealed) = (app_id.to_string(), name.to_string(), sealed.to_vec());
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO app_secrets (app_id, name, sealed, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (app_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
                params![app_id, name, sealed, at.secs()],
            )
            .map_err(app_error)?;
            Ok(((), None))
        })
        .await
    }
    async fn app_secret(&self, app_id: &str, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (app_id, name) = (app_id.to_string(), name.to_string());
        self.run(move |conn| {
            conn.cached_row(
                "SELECT sealed FROM app_secrets WHERE app_id = ?1 AND name = ?2",
                [app_id, name],
                |row| row.get(0),
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
}

fn enrolment_from_row(row: &Row<'_>) -> rusqlite::Result<Enrolment> {
    Ok(Enrolment {
        code_sha256: row.get("code_sha256")?,
        app_id: row.get("app_id")?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        used_at: optional_time(row, "used_at")?,
        installation_id: row.get("installation_id")?,
        identity: row.get("identity")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}
