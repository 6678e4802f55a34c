//! The issuer's signing keys: the active key that signs new tokens and the published set
//! verifiers accept (the active key, plus retired keys until every token they signed expired).

use std::sync::Arc;

use medgate_store::seal::{Sealer, signing_key_label};
use medgate_store::{NewAuditEntry, SigningKeyRecord, Store, StoreError};
use medgate_verify::UnixTime;
use medgate_verify::keys::TokenSigningKey;

use crate::ServerError;

/// The loaded keys.
/// Set once a master key has sealed the store's key material.
const SEALED_META: &str = "key_material_sealed";

pub struct KeyRing {
    active: Arc<TokenSigningKey>,
    records: Vec<SigningKeyRecord>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("active", &self.active.kid())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads the keys, creating the first one on a fresh store and re-sealing keys stored in
    /// the clear once a master key is configured.
    pub async fn load(
        store: &dyn Store,
        sealer: &Sealer,
        now: UnixTime,
    ) -> Result<KeyRing, ServerError> {
        let mut records = store.signing_keys().await?;
        if !records.iter().any(|record| record.retired_at.is_none()) {
            add_key(store, sealer, now, |kid| NewAuditEntry {
                at: now,
                kind: "keys.create".into(),
                actor: "node".into(),
                subject: kid.into(),
                detail: serde_json::json!({"first": true}),
            })
            .await?;
            records = store.signing_keys().await?;
        }
        // The first start with a master key seals what a store created without one holds;
        // after that (recorded in meta), key material in the clear is refused.
        let migrated = store.get_meta(SEALED_META).await?.as_deref() == Some("1");
        if sealer.has_master_key() && !migrated {
            for record in records
                .iter_mut()
                .filter(|r| Sealer::is_plain(&r.sealed_private_key))
            {
                let pkcs8 = sealer
                    .open_for_migration(&signing_key_label(&record.kid), &record.sealed_private_key)
                    .map_err(StoreError::from)?;
                let sealed = sealer
                    .seal(&signing_key_label(&record.kid), &pkcs8)
                    .map_err(StoreError::from)?;
                store.reseal_signing_key(&record.kid, &sealed).await?;
                record.sealed_private_key = sealed;
                tracing::info!(kid = %record.kid, "signing key sealed under the master key");
            }
            store.set_meta(SEALED_META, "1").await?;
        }
        let active_record = records
            .iter()
            .rev()
            .find(|record| record.retired_at.is_none())
            .ok_or(ServerError::NoActiveKey)?;
        let pkcs8 = sealer
            .open(
                &signing_key_label(&active_record.kid),
                &active_record.sealed_private_key,
            )
            .map_err(StoreError::from)?;
        let active = TokenSigningKey::from_pkcs8(&pkcs8)?;
        if active.kid() != active_record.kid {
            return Err(ServerError::Store(StoreError::Corrupt(
                "a signing key does not match its kid".into(),
            )));
        }
        Ok(KeyRing {
            active: Arc::new(active),
            records,
        })
    }

    pub fn active(&self) -> Arc<TokenSigningKey> {
        Arc::clone(&self.active)
    }

    pub fn records(&self) -> &[SigningKeyRecord] {
        &self.records
    }
}

/// Generates a key, seals it and makes it the active one, with the audit entry `audit` makes
/// for its kid.
pub async fn add_key(
    store: &dyn Store,
    sealer: &Sealer,
    now: UnixTime,
    audit: impl FnOnce(&str) -> NewAuditEntry,
) -> Result<String, ServerError> {
    let (key, pkcs8) = TokenSigningKey::generate()?;
    let record = SigningKeyRecord {
        kid: key.kid().to_string(),
        public_jwk: key.public_jwk().clone(),
        sealed_private_key: sealer
            .seal(&signing_key_label(key.kid()), &pkcs8)
            .map_err(StoreError::from)?,
        created_at: now,
        retired_at: None,
    };
    store
        .rotate_signing_key(&record, &audit(&record.kid))
        .await?;
    Ok(record.kid)
}
