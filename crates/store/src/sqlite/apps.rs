//! Apps and releases.

use super::*;

#[async_trait]
impl AppStore for SqliteStore {
    async fn create_app(&self, app: &App, audit: &NewAuditEntry) -> Result<(), StoreError> {
        let app = app.clone();
        let body = serde_json::to_string(&app.policy).map_err(corrupt("app policy"))?;
        self.change(audit, move |tx| {
            tx.cached_execute(
                "INSERT INTO apps (id, created_at) VALUES (?1, ?2)",
                params![app.id, app.created_at.secs()],
            )
            .map_err(insert_error("app"))?;
            tx.cached_execute(
                "INSERT INTO policies (app_id, platform, body, updated_at) VALUES (?1, '*', ?2, ?3)",
                params![app.id, body, app.created_at.secs()],
            )
            .map_err(backend)?;
            Ok(((), None))
        })
        .await
    }
    async fn get_app(&self, app_id: &str) -> Result<Option<App>, StoreError> {
        let app_id = app_id.to_string();
        let row = self
            .run(move |conn| {
                // A subquery, not the join `list_apps` uses: SQLite re-plans the join (and any
                // bound query with ORDER BY) on every run; this form stays prepared.
                conn.cached_row(
                    "SELECT id, created_at,
                            (SELECT body FROM policies WHERE app_id = ?1 AND platform = '*') AS body
                     FROM apps WHERE id = ?1",
                    [app_id],
                    app_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        row.map(decode_app).transpose()
    }
    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let rows = self
            .run(|conn| {
                let mut statement = conn
                    .prepare_cached(
                        "SELECT a.id, a.created_at, p.body FROM apps a
                         JOIN policies p ON p.app_id = a.id AND p.platform = '*' ORDER BY a.id",
                    )
                    .map_err(backend)?;
                let rows = statement.query_map([], app_from_row).map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter().map(decode_app).collect()
    }
    async fn add_release(
        &self,
        release: &Release,
        audit: &NewAuditEntry,
    ) -> Result<(), StoreError> {
        let release = release.clone();
        self.change(audit, move |tx| {
            // A revoked version stays revoked: the gateway's revocation feed says so, and a new
            // build of it must not make attestation disagree.
            let revoked: i64 = tx
                .cached_row(
                    "SELECT COUNT(*) FROM releases
                     WHERE app_id = ?1 AND version = ?2 AND revoked_at IS NOT NULL",
                    params![release.app_id, release.version],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if revoked > 0 {
                return Err(StoreError::Conflict("release of a revoked version"));
            }
            tx.cached_execute(
                "INSERT INTO releases (app_id, version, binary_sha256, created_at, revoked_at, version_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    release.app_id,
                    release.version,
                    release.binary_sha256.as_deref().unwrap_or(""),
                    release.created_at.secs(),
                    release.revoked_at.map(UnixTime::secs),
                    release.version_code
                ],
            )
            .map_err(insert_error("release"))?;
            Ok(((), None))
        })
        .await
    }
    async fn releases(&self, app_id: &str, version: &str) -> Result<Vec<Release>, StoreError> {
        let (app_id, version) = (app_id.to_string(), version.to_string());
        self.run(move |conn| {
            // Sorted here, not by ORDER BY, so that the statement stays prepared (see `get_app`).
            let mut statement = conn
                .prepare_cached("SELECT * FROM releases WHERE app_id = ?1 AND version = ?2")
                .map_err(backend)?;
            let rows = statement
                .query_map([app_id, version], release_from_row)
                .map_err(backend)?;
            let mut releases = rows.collect::<Result<Vec<_>, _>>().map_err(backend)?;
            releases.sort_by(|a, b| a.binary_sha256.cmp(&b.binary_sha256));
            Ok(releases)
        })
        .await
    }
    async fn list_releases(&self, app_id: &str) -> Result<Vec<Release>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT * FROM releases WHERE app_id = ?1 ORDER BY created_at, version, binary_sha256")
                .map_err(backend)?;
            let rows = statement.query_map([app_id], release_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }
    async fn revoke_release(
        &self,
        app_id: &str,
        version: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<usize, StoreError> {
        let (app_id, version) = (app_id.to_string(), version.to_string());
        self.change(audit, move |tx| {
            let known: i64 = tx
                .cached_row(
                    "SELECT COUNT(*) FROM releases WHERE app_id = ?1 AND version = ?2",
                    params![app_id, version],
                    |row| row.get(0),
                )
                .map_err(backend)?;
            if known == 0 {
                return Err(StoreError::NotFound("release"));
            }
            let changed = tx
                .cached_execute(
                    "UPDATE releases SET revoked_at = ?3
                     WHERE app_id = ?1 AND version = ?2 AND revoked_at IS NULL",
                    params![app_id, version, at.secs()],
                )
                .map_err(backend)?;
            if changed > 0 {
                append_revocation(tx, &RevocationTarget::Release { app_id, version }, at)?;
            }
            Ok((changed, Some(serde_json::json!({"revoked": changed}))))
        })
        .await
    }
}

fn app_from_row(row: &Row<'_>) -> rusqlite::Result<(String, UnixTime, String)> {
    Ok((row.get("id")?, time(row, "created_at")?, row.get("body")?))
}

fn decode_app((id, created_at, body): (String, UnixTime, String)) -> Result<App, StoreError> {
    columns::app(id, created_at, &body)
}

fn release_from_row(row: &Row<'_>) -> rusqlite::Result<Release> {
    Ok(Release {
        app_id: row.get("app_id")?,
        version: row.get("version")?,
        binary_sha256: Some(row.get::<_, String>("binary_sha256")?).filter(|hash| !hash.is_empty()),
        version_code: row.get("version_code")?,
        created_at: time(row, "created_at")?,
        revoked_at: optional_time(row, "revoked_at")?,
    })
}
