//! Apps and releases.

use super::*;

#[async_trait]
impl AppStore for PostgresStore {
    async fn create_app(&self, app: &App, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let body = serde_json::to_string(&app.policy).map_err(corrupt("app policy"))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute(
            "INSERT INTO apps (id, created_at) VALUES ($1, $2)",
            &[&app.id, &app.created_at.secs()],
        )
        .await
        .map_err(insert_error("app"))?;
        tx.execute(
            "INSERT INTO policies (app_id, platform, body, updated_at) VALUES ($1, '*', $2, $3)",
            &[&app.id, &body, &app.created_at.secs()],
        )
        .await
        .map_err(backend)?;
        commit_change(tx, audit, None).await
    }

    async fn get_app(&self, app_id: &str) -> Result<Option<App>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT a.id, a.created_at, p.body FROM apps a
                 JOIN policies p ON p.app_id = a.id AND p.platform = '*' WHERE a.id = $1",
                &[&app_id],
            )
            .await
            .map_err(backend)?;
        row.map(|row| app_from_row(&row)).transpose()
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT a.id, a.created_at, p.body FROM apps a
                 JOIN policies p ON p.app_id = a.id AND p.platform = '*' ORDER BY a.id",
                &[],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(app_from_row)
            .collect()
    }

    async fn add_release(
        &self,
        release: &Release,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // A revoked version stays revoked (the feed already told the gateways).
        let revoked: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM releases
                 WHERE app_id = $1 AND version = $2 AND revoked_at IS NOT NULL",
                &[&release.app_id, &release.version],
            )
            .await
            .map_err(backend)?
            .get(0);
        if revoked > 0 {
            return Err(StoreError::Conflict("release of a revoked version"));
        }
        tx.execute(
            "INSERT INTO releases (app_id, version, binary_sha256, created_at, revoked_at, version_code)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &release.app_id,
                &release.version,
                &release.binary_sha256.as_deref().unwrap_or(""),
                &release.created_at.secs(),
                &release.revoked_at.map(UnixTime::secs),
                &release.version_code,
            ],
        )
        .await
        .map_err(insert_error("release"))?;
        commit_change(tx, audit, None).await
    }

    async fn releases(&self, app_id: &str, version: &str) -> Result<Vec<Release>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT * FROM releases WHERE app_id = $1 AND version = $2 ORDER BY binary_sha256",
                &[&app_id, &version],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(release_from_row)
            .collect()
    }

    async fn list_releases(&self, app_id: &str) -> Result<Vec<Release>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT * FROM releases WHERE app_id = $1 ORDER BY created_at, version, binary_sha256",
                &[&app_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(release_from_row)
            .collect()
    }

    async fn revoke_release(
        &self,
        app_id: &str,
        version: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let known: i64 = tx
            .query_one(
                "SELECT COUNT(*) FROM releases WHERE app_id = $1 AND version = $2",
                &[&app_id, &version],
            )
            .await
            .map_err(backend)?
            .get(0);
        if known == 0 {
            return Err(StoreError::NotFound("release"));
        }
        let changed = tx
            .execute(
                "UPDATE releases SET revoked_at = $3
                 WHERE app_id = $1 AND version = $2 AND revoked_at IS NULL",
                &[&app_id, &version, &at.secs()],
            )
            .await
            .map_err(backend)?;
        let changed = usize::try_from(changed).unwrap_or(usize::MAX);
        if changed > 0 {
            let target = RevocationTarget::Release {
                app_id: app_id.to_string(),
                version: version.to_string(),
            };
            append_revocation(&tx, &target, at).await?;
        }
        commit_change(tx, audit, Some(serde_json::json!({"revoked": changed}))).await?;
        Ok(changed)
    }
}

fn app_from_row(row: &Row) -> Result<App, StoreError> {
    columns::app(
        get(row, "id")?,
        time(row, "created_at")?,
        get::<&str>(row, "body")?,
    )
}

fn release_from_row(row: &Row) -> Result<Release, StoreError> {
    Ok(Release {
        app_id: get(row, "app_id")?,
        version: get(row, "version")?,
        binary_sha256: Some(get::<String>(row, "binary_sha256")?).filter(|hash| !hash.is_empty()),
        version_code: get(row, "version_code")?,
        created_at: time(row, "created_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}
