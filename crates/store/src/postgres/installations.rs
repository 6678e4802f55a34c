//! Installations, challenges, grants, App Attest keys and counters, the revocation feed.

use super::*;
use medgate_proto::wire::{Decision, IntegrityLevel};

const INSTALLATION_COLUMNS: &str = "id, app_id, platform, app_version, first_seen, last_seen, last_decision, last_reasons, revoked_at, integrity_level, hardware_key, identity";

#[async_trait]
impl InstallationStore for PostgresStore {
    async fn get_installation(&self, id: &str) -> Result<Option<Installation>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {INSTALLATION_COLUMNS} FROM installations WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(backend)?;
        row.map(|row| installation_from_row(&row)).transpose()
    }

    async fn list_installations(
        &self,
        filter: &InstallationFilter<'_>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Installation>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let decision = filter.decision.map(Decision::as_str);
        let level = filter.integrity_level.map(IntegrityLevel::as_str);
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {INSTALLATION_COLUMNS} FROM installations
                     WHERE ($1::TEXT IS NULL OR app_id = $1) AND ($2::TEXT IS NULL OR app_version = $2)
                       AND ($3::TEXT IS NULL OR platform = $3)
                       AND ($4::TEXT IS NULL OR last_decision = $4)
                       AND ($5::TEXT IS NULL OR integrity_level = $5) AND id > $6
                     ORDER BY id LIMIT $7"
                ),
                &[
                    &filter.app_id,
                    &filter.version,
                    &filter.platform,
                    &decision,
                    &level,
                    &after.unwrap_or(""),
                    &limit,
                ],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(installation_from_row)
            .collect()
    }

    async fn active_installations_by_version(
        &self,
        app_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT app_version, COUNT(*) AS count FROM installations
                     WHERE app_id = $1 AND {}
                     GROUP BY app_version ORDER BY app_version COLLATE \"C\"",
                    columns::IN_USE
                ),
                &[&app_id],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                let count: i64 = get(row, "count")?;
                Ok((get(row, "app_version")?, u64::try_from(count).unwrap_or(0)))
            })
            .collect()
    }

    async fn installations_in_use_since(&self, since: UnixTime) -> Result<u64, StoreError> {
        let row = self
            .client()
            .await?
            .query_one(
                &format!(
                    "SELECT COUNT(*) AS count FROM installations WHERE {} AND last_seen >= $1",
                    columns::IN_USE
                ),
                &[&since.secs()],
            )
            .await
            .map_err(backend)?;
        let count: i64 = get(&row, "count")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn record_attestation(&self, record: &AttestationRecord) -> Result<(), StoreError> {
        upsert_installation(&self.client().await?, record).await
    }

    async fn record_grant(&self, grant: &GrantWrites) -> Result<GrantOutcome, StoreError> {
        let mut client = self.client().await?;
        // Dropping the transaction without commit rolls back whatever it wrote.
        let tx = client.transaction().await.map_err(backend)?;
        upsert_installation(&tx, &grant.record).await?;
        if let Some(key) = &grant.apple_key {
            match insert_apple_key(&tx, key).await {
                Err(StoreError::Conflict(_)) => return Ok(GrantOutcome::AppleKeyTaken),
                other => other?,
            }
        }
        if let Some(claim) = &grant.enrolment
            && !claim_enrolment(&tx, claim, &grant.record).await?
        {
            return Ok(GrantOutcome::EnrolmentUnavailable);
        }
        if let Some(keys) = &grant.keys {
            tx.execute(
                "INSERT INTO installation_keys (installation_id, public_jwk, encryption_jwk, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (installation_id) DO UPDATE SET public_jwk = excluded.public_jwk,
                   encryption_jwk = COALESCE(excluded.encryption_jwk, installation_keys.encryption_jwk),
                   updated_at = excluded.updated_at",
                &[
                    &grant.record.installation_id,
                    &keys.public_jwk,
                    &keys.encryption_jwk,
                    &grant.record.at.secs(),
                ],
            )
            .await
            .map_err(backend)?;
        }
        append_entries(&tx, std::slice::from_ref(&grant.audit)).await?;
        tx.commit().await.map_err(backend)?;
        Ok(GrantOutcome::Recorded)
    }

    async fn revoke_installation(
        &self,
        id: &str,
        at: UnixTime,
        audit: &NewAuditEntry,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let changed = revoke_installation(&tx, id, at).await?;
        commit_change(
            tx,
            audit,
            Some(serde_json::json!({"newly_revoked": changed})),
        )
        .await?;
        Ok(changed)
    }

    async fn insert_challenge(&self, challenge: &Challenge) -> Result<(), StoreError> {
        self.client()
            .await?
            .execute(
                "INSERT INTO challenges (value, app_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                &[
                    &challenge.value,
                    &challenge.app_id,
                    &challenge.created_at.secs(),
                    &challenge.expires_at.secs(),
                ],
            )
            .await
            .map_err(insert_error("challenge"))?;
        Ok(())
    }

    async fn take_challenge(&self, value: &str) -> Result<Option<Challenge>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "DELETE FROM challenges WHERE value = $1
                 RETURNING value, app_id, created_at, expires_at",
                &[&value],
            )
            .await
            .map_err(backend)?;
        row.map(|row| {
            Ok(Challenge {
                value: get(&row, "value")?,
                app_id: get(&row, "app_id")?,
                created_at: time(&row, "created_at")?,
                expires_at: time(&row, "expires_at")?,
            })
        })
        .transpose()
    }

    async fn purge_challenges(&self, now: UnixTime) -> Result<usize, StoreError> {
        let deleted = self
            .client()
            .await?
            .execute(
                "DELETE FROM challenges WHERE expires_at <= $1",
                &[&now.secs()],
            )
            .await
            .map_err(backend)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn installation_keys(
        &self,
        installation_id: &str,
    ) -> Result<Option<InstallationKeys>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT public_jwk, encryption_jwk FROM installation_keys WHERE installation_id = $1",
                &[&installation_id],
            )
            .await
            .map_err(backend)?;
        Ok(row.map(|row| InstallationKeys {
            public_jwk: row.get(0),
            encryption_jwk: row.get(1),
        }))
    }

    async fn apple_key(&self, installation_id: &str) -> Result<Option<AppleKeyRecord>, StoreError> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT installation_id, key_id, app_id, public_key, environment, counter, receipt, created_at
                 FROM apple_keys WHERE installation_id = $1",
                &[&installation_id],
            )
            .await
            .map_err(backend)?;
        row.map(|row| {
            Ok(AppleKeyRecord {
                installation_id: get(&row, "installation_id")?,
                key_id: get(&row, "key_id")?,
                app_id: get(&row, "app_id")?,
                public_key: get(&row, "public_key")?,
                environment: get(&row, "environment")?,
                counter: u32::try_from(get::<i64>(&row, "counter")?)
                    .map_err(|_| StoreError::Corrupt("App Attest counter out of range".into()))?,
                receipt: get(&row, "receipt")?,
                created_at: time(&row, "created_at")?,
            })
        })
        .transpose()
    }

    async fn advance_apple_counter(
        &self,
        installation_id: &str,
        counter: u32,
    ) -> Result<bool, StoreError> {
        let changed = self
            .client()
            .await?
            .execute(
                "UPDATE apple_keys SET counter = $2 WHERE installation_id = $1 AND counter < $2",
                &[&installation_id, &i64::from(counter)],
            )
            .await
            .map_err(backend)?;
        Ok(changed == 1)
    }

    async fn revocations_since(&self, after_seq: i64) -> Result<Vec<Revocation>, StoreError> {
        self.client()
            .await?
            .query(
                "SELECT seq, kind, app_id, subject, at FROM revocations WHERE seq > $1 ORDER BY seq",
                &[&after_seq],
            )
            .await
            .map_err(backend)?
            .iter()
            .map(|row| {
                columns::revocation(
                    get(row, "seq")?,
                    get::<&str>(row, "kind")?,
                    get(row, "app_id")?,
                    get(row, "subject")?,
                    time(row, "at")?,
                )
            })
            .collect()
    }
}

fn installation_from_row(row: &Row) -> Result<Installation, StoreError> {
    columns::installation(
        Installation {
            id: get(row, "id")?,
            app_id: get(row, "app_id")?,
            platform: get(row, "platform")?,
            app_version: get(row, "app_version")?,
            first_seen: time(row, "first_seen")?,
            last_seen: time(row, "last_seen")?,
            last_decision: medgate_proto::wire::Decision::Reject,
            last_reasons: Vec::new(),
            revoked_at: optional_time(row, "revoked_at")?,
            integrity_level: None,
            hardware_key: get(row, "hardware_key")?,
            identity: get(row, "identity")?,
        },
        get::<&str>(row, "last_decision")?,
        get::<&str>(row, "last_reasons")?,
        get(row, "integrity_level")?,
    )
}

/// Creates or updates the installation with an attestation's outcome.
async fn upsert_installation(
    client: &impl GenericClient,
    record: &AttestationRecord,
) -> Result<(), StoreError> {
    let reasons = serde_json::to_string(&record.reasons).map_err(corrupt("reasons"))?;
    client
        .execute(
            "INSERT INTO installations
               (id, app_id, platform, app_version, first_seen, last_seen, last_decision, last_reasons,
                integrity_level, hardware_key, identity)
             VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET
               platform = excluded.platform, app_version = excluded.app_version,
               last_seen = excluded.last_seen, last_decision = excluded.last_decision,
               last_reasons = excluded.last_reasons, integrity_level = excluded.integrity_level,
               hardware_key = excluded.hardware_key, identity = excluded.identity",
            &[
                &record.installation_id,
                &record.app_id,
                &record.platform,
                &record.app_version,
                &record.at.secs(),
                &record.decision.as_str(),
                &reasons,
                &record.integrity_level.map(|level| level.as_str()),
                &record.hardware_key,
                &record.identity,
            ],
        )
        .await
        .map_err(app_error)?;
    Ok(())
}

/// Stores a newly attested App Attest key, replacing the installation's earlier one;
/// `Conflict` if another installation has this key id.
async fn insert_apple_key(
    client: &impl GenericClient,
    key: &AppleKeyRecord,
) -> Result<(), StoreError> {
    client
        .execute(
            "INSERT INTO apple_keys (installation_id, key_id, app_id, public_key, environment, counter, receipt, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (installation_id) DO UPDATE SET
               key_id = excluded.key_id, app_id = excluded.app_id, public_key = excluded.public_key,
               environment = excluded.environment, counter = excluded.counter,
               receipt = excluded.receipt, created_at = excluded.created_at",
            &[
                &key.installation_id,
                &key.key_id,
                &key.app_id,
                &key.public_key,
                &key.environment,
                &i64::from(key.counter),
                &key.receipt,
                &key.created_at.secs(),
            ],
        )
        .await
        .map_err(|e| match state(&e) {
            Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Conflict("App Attest key"),
            Some(&SqlState::FOREIGN_KEY_VIOLATION) => StoreError::NotFound("installation"),
            _ => backend(e),
        })?;
    Ok(())
}

/// Marks an unused, unexpired, unrevoked code of the grant's app used, recording what it
/// enrolled. False (and nothing changed) otherwise.
async fn claim_enrolment(
    client: &impl GenericClient,
    claim: &EnrolmentClaim,
    record: &AttestationRecord,
) -> Result<bool, StoreError> {
    let changed = client
        .execute(
            "UPDATE enrolments SET used_at = $5, installation_id = $3, identity = $4
             WHERE code_sha256 = $1 AND app_id = $2 AND used_at IS NULL AND expires_at > $5
               AND revoked_at IS NULL",
            &[
                &claim.code_sha256,
                &record.app_id,
                &record.installation_id,
                &claim.identity,
                &record.at.secs(),
            ],
        )
        .await
        .map_err(backend)?;
    Ok(changed == 1)
}

/// Revokes the installation and appends it to the revocation feed; false if it was revoked
/// already, `NotFound` if there is none.
pub(super) async fn revoke_installation(
    tx: &impl GenericClient,
    id: &str,
    at: UnixTime,
) -> Result<bool, StoreError> {
    let found = tx
        .query_opt(
            "SELECT app_id, revoked_at FROM installations WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await
        .map_err(backend)?;
    let Some(found) = found else {
        return Err(StoreError::NotFound("installation"));
    };
    if optional_time(&found, "revoked_at")?.is_some() {
        return Ok(false);
    }
    tx.execute(
        "UPDATE installations SET revoked_at = $2 WHERE id = $1",
        &[&id, &at.secs()],
    )
    .await
    .map_err(backend)?;
    let target = RevocationTarget::Installation {
        app_id: get(&found, "app_id")?,
        installation_id: id.to_string(),
    };
    append_revocation(tx, &target, at).await?;
    Ok(true)
}
