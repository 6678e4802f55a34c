//! How stored columns decode, for every backend: JSON documents, names and revocation kinds.
//! A value that does not decode is `Corrupt` (the database was edited or damaged).

use medgate_proto::wire::Decision;
use medgate_verify::UnixTime;

use crate::{App, Installation, PartnerKeys, Revocation, RevocationTarget, StoreError};

/// How many of the `known` migrations a database has applied, refusing a schema newer than
/// this medgate.
pub(crate) fn applied_migrations(applied: i64, known: usize) -> Result<usize, StoreError> {
    let applied = usize::try_from(applied)
        .map_err(|_| StoreError::Corrupt("negative schema version".into()))?;
    if applied > known {
        return Err(StoreError::Corrupt(format!(
            "database schema v{applied} is newer than this medgate (v{known})"
        )));
    }
    Ok(applied)
}

pub(crate) fn corrupt(what: &str) -> impl Fn(serde_json::Error) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

/// An app from its row and its policy document.
pub(crate) fn app(id: String, created_at: UnixTime, body: &str) -> Result<App, StoreError> {
    Ok(App {
        id,
        policy: serde_json::from_str(body).map_err(corrupt("app policy"))?,
        created_at,
    })
}

/// An installation whose decision, reasons and integrity level are still as stored.
pub(crate) fn installation(
    mut installation: Installation,
    decision: &str,
    reasons: &str,
    level: Option<String>,
) -> Result<Installation, StoreError> {
    installation.integrity_level = level
        .map(|level| serde_json::from_value(serde_json::Value::String(level)))
        .transpose()
        .map_err(corrupt("integrity level"))?;
    installation.last_decision = Decision::from_name(decision)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown decision {decision:?}")))?;
    installation.last_reasons =
        serde_json::from_str(reasons).map_err(corrupt("installation reasons"))?;
    Ok(installation)
}

/// A revocation feed row.
pub(crate) fn revocation(
    seq: i64,
    kind: &str,
    app_id: String,
    subject: String,
    at: UnixTime,
) -> Result<Revocation, StoreError> {
    let target = match kind {
        "installation" => RevocationTarget::Installation {
            app_id,
            installation_id: subject,
        },
        "release" => RevocationTarget::Release {
            app_id,
            version: subject,
        },
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown revocation kind {other:?}"
            )));
        }
    };
    Ok(Revocation { seq, target, at })
}

/// The (kind, app, subject) columns of a revocation.
pub(crate) fn revocation_columns(target: &RevocationTarget) -> (&'static str, &str, &str) {
    match target {
        RevocationTarget::Installation {
            app_id,
            installation_id,
        } => ("installation", app_id, installation_id),
        RevocationTarget::Release { app_id, version } => ("release", app_id, version),
    }
}

/// A partner's key source from its (`jwks_url`, `jwks`) columns: exactly one is set.
pub(crate) fn partner_keys(
    jwks_url: Option<String>,
    jwks: Option<String>,
) -> Result<PartnerKeys, StoreError> {
    match (jwks_url, jwks) {
        (Some(url), None) => Ok(PartnerKeys::Url(url)),
        (None, Some(jwks)) => Ok(PartnerKeys::Jwks(jwks)),
        _ => Err(StoreError::Corrupt(
            "a partner needs exactly one of a JWKS URL and a JWKS".into(),
        )),
    }
}

/// The (`jwks_url`, `jwks`) columns of a partner's key source.
pub(crate) fn partner_key_columns(keys: &PartnerKeys) -> (Option<&str>, Option<&str>) {
    match keys {
        PartnerKeys::Url(url) => (Some(url), None),
        PartnerKeys::Jwks(jwks) => (None, Some(jwks)),
    }
}

/// An installation in use, as both backends count it: not revoked, and granted at its last
/// attestation.
pub(crate) const IN_USE: &str = "revoked_at IS NULL AND last_decision <> 'reject'";

/// An operator's role from its column.
pub(crate) fn operator_role(text: &str) -> Result<crate::OperatorRole, StoreError> {
    crate::OperatorRole::from_name(text)
        .ok_or_else(|| StoreError::Corrupt("operator role: not a known role".into()))
}
