//! Token-signing keys and the audit log.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// `GET /keys`: one token-signing key, never its private half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SigningKey {
    pub kid: String,
    pub created_at: UnixTime,
    pub retired_at: Option<UnixTime>,
    /// The key new tokens are signed with.
    pub active: bool,
    /// In the JWKS: active, or retired recently enough that tokens it signed may still live.
    pub published: bool,
}

/// `POST /keys/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeysRotated {
    /// The new active key.
    pub kid: String,
    /// The key it replaced, still published until its tokens expire.
    pub retired: String,
    /// Every kid the JWKS now publishes.
    pub published: Vec<String>,
}

/// `GET /audit`: entries after a sequence number, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct AuditQuery {
    /// The last sequence number already read (0 for the start).
    #[serde(default)]
    pub after: i64,
    /// 1 to 1000; 100 unless said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<usize>,
}

/// One audit entry as stored and hashed into the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    pub at: UnixTime,
    pub kind: String,
    pub actor: String,
    pub subject: String,
    /// The JSON text exactly as stored and hashed.
    pub detail: String,
    /// SHA-256 in hex of the entry before.
    pub prev_hash: String,
    /// SHA-256 in hex of this entry.
    pub hash: String,
}
