//! Installations, challenges, grants, App Attest keys and counters, the revocation feed.

use super::*;
use medgate_proto::wire::IntegrityLevel;

#[async_trait]
impl InstallationStore for SqliteStore {
    async fn get_installation(&self, id: &str) -> Result<Option<Installation>, StoreError> {
        let id = id.to_string();
        let row = self
            .run(move |conn| {
                conn.cached_row(
                    &format!("SELECT {INSTALLATION_COLUMNS} FROM installations WHERE id = ?1"),
                    [id],
                    installation_from_row,
                )
                .optional()
                .map_err(backend)
            })
            .await?;
        row.map(decode_installation).transpose()
    }
    async fn list_installations(
        &self,
        filter: &InstallationFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Installation>, StoreError> {
        let owned = |text: Option<&str>| text.map(str::to_string);
        let (app_id, version, platform) = (
            owned(filter.app_id),
            owned(filter.version),
            owned(filter.platform),
        );
        let decision = filter.decision.map(Decision::as_str);
        let level = filter.integrity_level.map(IntegrityLevel::as_str);
        let after = after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached(&format!(
                        "SELECT {INSTALLATION_COLUMNS} FROM installations
                         WHERE (?1 IS NULL OR app_id = ?1) AND (?2 IS NULL OR app_version = ?2)
                           AND (?3 IS NULL OR platform = ?3) AND (?4 IS NULL OR last_decision = ?4)
                           AND (?5 IS NULL OR integrity_level = ?5) AND id > ?6
                         ORDER BY id LIMIT ?7"
                    ))
                    .map_err(backend)?;
                let rows = statement
                    .query_map(
                        params![app_id, version, platform, decision, level, after, limit],
                        installation_from_row,
                    )
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter().map(decode_installation).collect()
    }
    async fn active_installations_by_version(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let app_id = app_id.to_string();
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT app_version, COUNT(*) FROM installations
                     WHERE app_id = ?1 AND {}
                     GROUP BY app_version ORDER BY app_version",
                    columns::IN_USE
                ))
                .map_err(backend)?;
            let rows = statement
                .query_map(params![app_id], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (version, count) = row.map_err(backend)?;
                Ok((version, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
        })
        .await
    }
    async fn installations_in_use_since(&self, since: UnixTime) -> Result<u64, StoreError> {
        self.run(move |conn| {
            conn.cached_row(
                &format!(
                    "SELECT COUNT(*) FROM installations WHERE {} AND last_seen >= ?1",
                    columns::IN_USE
                ),
                params![since.secs()],
                |row| row.get::<_, i64>(0),
            )
            .map(|count| u64::try_from(count).unwrap_or(0))
            .map_err(backend)
        })
        .await
    }

    async fn record_attestation(&self, record: &AttestationRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.run(move |conn| upsert_installation(conn, &record))
            .await
    }
    async fn record_grant(&self, grant: &GrantWrites) -> Result<GrantOutcome, StoreError> {
        let grant = grant.clone();
        self.run(move |conn| {
            // A grant refused here keeps nothing: dropping the savepoint rolls it back.
            let tx = conn.savepoint().map_err(backend)?;
            upsert_installation(&tx, &grant.record)?;
            if let Some(key) = &grant.apple_key {
                match insert_apple_key(&tx, key) {
                    Err(StoreError::Conflict(_)) => return Ok(GrantOutcome::AppleKeyTaken),
                    other => other?,
                }
            }
            if let Some(claim) = &grant.enrolment
                && !claim_enrolment(&tx, claim, &grant.record)?
            {
                return Ok(GrantOutcome::EnrolmentUnavailable);
            }
            if let Some(keys) = &grant.keys {
                tx.cached_execute(
                    "INSERT INTO installation_keys (installation_id, public_jwk, encryption_jwk, updated_at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (installation_id) DO UPDATE SET public_jwk = excluded.public_jwk,
                       encryption_jwk = COALESCE(excluded.encryption_jwk, installation_keys.encryption_jwk),
                       updated_at = excluded.updated_at",
                    params![
                        grant.record.installation_id,
                        keys.public_jwk,
                        keys.encryption_jwk,
                        grant.record.at.secs()
                    ],
                )
                .map_err(backend)?;
            }
            append_entries(&tx, std::slice::from_ref(&grant.audit))?;
            tx.commit().map_err(backend)?;
            Ok(GrantOutcome::Recorded)
        })
        .await
    }
    async fn revoke_installation(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.change(audit, move |tx| {
            let changed = revoke_installation(tx, &id, at)?;
            Ok((changed, Some(serde_json::json!({"newly_revoked": changed}))))
        })
        .await
    }
    async fn insert_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        let challenge = challenge.clone();
        self.run(move |conn| {
            conn.prepare_cached(
                "INSERT INTO challenges (value, app_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    challenge.value,
                    challenge.app_id,
                    challenge.created_at.secs(),
                    challenge.expires_at.secs()
                ])
            })
            .map_err(insert_error("challenge"))?;
            Ok(())
        })
        .await
    }
    async fn take_challenge(&self, value: &str) -> Result<Option<Challenge>, StoreError> {
        let value = value.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "DELETE FROM challenges WHERE value = ?1 RETURNING value, app_id, created_at, expires_at",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([value], |row| {
                        Ok(Challenge {
                            value: row.get("value")?,
                            app_id: row.get("app_id")?,
                            created_at: time(row, "created_at")?,
                            expires_at: time(row, "expires_at")?,
                        })
                    })
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }
    async fn purge_challenges(&self, now: UnixTime) -> Result<usize, StoreError> {
        self.run(move |conn| {
            conn.cached_execute(
                "DELETE FROM challenges WHERE expires_at <= ?1",
                [now.secs()],
            )
            .map_err(backend)
        })
        .await
    }
    async fn installation_keys(
        &self,
        installation_id: &str,
    ) -> Result<Option<InstallationKeys>, StoreError> {
        let installation_id = installation_id.to_string();
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT public_jwk, encryption_jwk FROM installation_keys WHERE installation_id = ?1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([installation_id], |row| {
                        Ok(InstallationKeys {
                            public_jwk: row.get(0)?,
                            encryption_jwk: row.get(1)?,
                        })
                    })
                    .optional()
            })
            .map_err(backend)
        })
        .await
    }
    async fn apple_key(&self, installation_id: &str) -> Result<Option<AppleKeyRecord>, StoreError> {
        let installation_id = installation_id.to_string();
        self.run(move |conn| {
            conn.cached_row(
                "SELECT installation_id, key_id, app_id, public_key, environment, counter, receipt, created_at
                 FROM apple_keys WHERE installation_id = ?1",
                [installation_id],
                |row| {
                    Ok(AppleKeyRecord {
                        installation_id: row.get(0)?,
                        key_id: row.get(1)?,
                        app_id: row.get(2)?,
                        public_key: row.get(3)?,
                        environment: row.get(4)?,
                        counter: row.get(5)?,
                        receipt: row.get(6)?,
                        created_at: UnixTime::from_secs(row.get(7)?),
                    })
                },
            )
            .optional()
            .map_err(backend)
        })
        .await
    }
    async fn advance_apple_counter(
        &self,
        installation_id: &str,
        counter: u32,
    ) -> Result<bool, StoreError> {
        let installation_id = installation_id.to_string();
        self.run(move |conn| {
            let changed = conn
                .cached_execute(
                    "UPDATE apple_keys SET counter = ?2 WHERE installation_id = ?1 AND counter < ?2",
                    params![installation_id, counter],
                )
                .map_err(backend)?;
            Ok(changed == 1)
        })
        .await
    }
    async fn revocations_since(&self, after_seq: i64) -> Result<Vec<Revocation>, StoreError> {
        let rows = self
            .run(move |conn| {
                let mut statement = conn
                    .prepare_cached("SELECT seq, kind, app_id, subject, at FROM revocations WHERE seq > ?1 ORDER BY seq")
                    .map_err(backend)?;
                let rows = statement
                    .query_map([after_seq], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, String>(2)?,
                            row.get::<_, String>(3)?,
                            UnixTime::from_secs(row.get(4)?),
                        ))
                    })
                    .map_err(backend)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(backend)
            })
            .await?;
        rows.into_iter()
            .map(|(seq, kind, app_id, subject, at)| {
                columns::revocation(seq, &kind, app_id, subject, at)
            })
            .collect()
    }
}

type InstallationRow = (Installation, String, String, Option<String>);

fn installation_from_row(row: &Row<'_>) -> rusqlite::Result<InstallationRow> {
    Ok((
        Installation {
            id: row.get("id")?,
            app_id: row.get("app_id")?,
            platform: row.get("platform")?,
            app_version: row.get("app_version")?,
            first_seen: time(row, "first_seen")?,
            last_seen: time(row, "last_seen")?,
            last_decision: Decision::Reject,
            last_reasons: Vec::new(),
            revoked_at: optional_time(row, "revoked_at")?,
            integrity_level: None,
            hardware_key: row.get::<_, i64>("hardware_key")? != 0,
            identity: row.get("identity")?,
        },
        row.get("last_decision")?,
        row.get("last_reasons")?,
        row.get("integrity_level")?,
    ))
}

fn decode_installation(
    (installation, decision, reasons, level): InstallationRow,
) -> Result<Installation, StoreError> {
    columns::installation(installation, &decision, &reasons, level)
}

/// Creates or updates the installation with an attestation's outcome.
fn upsert_installation(conn: &Connection, record: &AttestationRecord) -> Result<(), StoreError> {
    let reasons = serde_json::to_string(&record.reasons).map_err(corrupt("reasons"))?;
    conn.cached_execute(
        "INSERT INTO installations
           (id, app_id, platform, app_version, first_seen, last_seen, last_decision, last_reasons,
            integrity_level, hardware_key, identity)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET
           platform = excluded.platform, app_version = excluded.app_version,
           last_seen = excluded.last_seen, last_decision = excluded.last_decision,
           last_reasons = excluded.last_reasons, integrity_level = excluded.integrity_level,
           hardware_key = excluded.hardware_key, identity = excluded.identity",
        params![
            record.installation_id,
            record.app_id,
            record.platform,
            record.app_version,
            record.at.secs(),
            record.decision.as_str(),
            reasons,
            record.integrity_level.map(|level| level.as_str()),
            i64::from(record.hardware_key),
            record.identity
        ],
    )
    .map_err(app_error)?;
    Ok(())
}

/// Stores a newly attested App Attest key, replacing the installation's earlier one;
/// `Conflict` if another installation has this key id.
fn insert_apple_key(conn: &Connection, key: &AppleKeyRecord) -> Result<(), StoreError> {
    conn.cached_execute(
        "INSERT INTO apple_keys (installation_id, key_id, app_id, public_key, environment, counter, receipt, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (installation_id) DO UPDATE SET
           key_id = excluded.key_id, app_id = excluded.app_id, public_key = excluded.public_key,
           environment = excluded.environment, counter = excluded.counter,
           receipt = excluded.receipt, created_at = excluded.created_at",
        params![key.installation_id, key.key_id, key.app_id, key.public_key, key.environment, key.counter, key.receipt, key.created_at.secs()],
    )
    .map_err(|e| match &e {
        rusqlite::Error::SqliteFailure(failure, _) if failure.code == ErrorCode::ConstraintViolation => {
            if failure.extended_code == FOREIGN_KEY { StoreError::NotFound("installation") } else { StoreError::Conflict("App Attest key") }
        }
        _ => backend(e),
    })?;
    Ok(())
}

/// Marks an unused, unexpired, unrevoked code of the grant's app used, recording what it
/// enrolled. False (and nothing changed) otherwise.
fn claim_enrolment(
    conn: &Connection,
    claim: &EnrolmentClaim,
    record: &AttestationRecord,
) -> Result<bool, StoreError> {
    let changed = conn
        .cached_execute(
            "UPDATE enrolments SET used_at = ?5, installation_id = ?3, identity = ?4
             WHERE code_sha256 = ?1 AND app_id = ?2 AND used_at IS NULL AND expires_at > ?5
               AND revoked_at IS NULL",
            params![
                claim.code_sha256,
                record.app_id,
                record.installation_id,
                claim.identity,
                record.at.secs()
            ],
        )
        .map_err(backend)?;
    Ok(changed == 1)
}

/// Revokes the installation and appends it to the revocation feed; false if it was revoked
/// already, `NotFound` if there is none.
pub(super) fn revoke_installation(
    tx: &Connection,
    id: &str,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let found: Option<(String, Option<i64>)> = tx
        .cached_row(
            "SELECT app_id, revoked_at FROM installations WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(backend)?;
    let Some((app_id, revoked_at)) = found else {
        return Err(StoreError::NotFound("installation"));
    };
    if revoked_at.is_some() {
        return Ok(false);
    }
    tx.cached_execute(
        "UPDATE installations SET revoked_at = ?2 WHERE id = ?1",
        params![id, at.secs()],
    )
    .map_err(backend)?;
    append_revocation(
        tx,
        &RevocationTarget::Installation {
            app_id,
            installation_id: id.to_string(),
        },
        at,
    )?;
    Ok(true)
}
