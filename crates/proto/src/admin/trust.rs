//! What the SDK's TLS trusts: SPKI pins, managed roots, and their signed (TUF) publication.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// `POST /pins`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddPin {
    /// A host or `*.`/`**.` pattern.
    pub host: String,
    /// Base64 SHA-256 of a SubjectPublicKeyInfo.
    pub spki_sha256: String,
}

/// One pinned key of a host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pin {
    pub pattern: String,
    /// Base64 SHA-256 of a SubjectPublicKeyInfo.
    pub pin: String,
    pub created_at: UnixTime,
}

/// `DELETE /pins`: one pin of a host, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RemovePins {
    pub host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spki_sha256: Option<String>,
}

/// The answer to [`RemovePins`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PinsRemoved {
    pub host: String,
    pub removed: u64,
}

/// `PUT /trust/roots`: CA certificates the SDK trusts for these hosts instead of the system's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetRoots {
    pub pem: String,
    pub hosts: Vec<String>,
}

/// The answer to [`SetRoots`]; clients see it after the next `POST /trust/publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootsSet {
    pub hosts: Vec<String>,
    pub certificates: u64,
    pub published: bool,
}

/// `DELETE /trust/roots`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RootsCleared {
    pub cleared: bool,
}

/// `POST /trust/publish`: the pins and roots, signed as a new TUF targets version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Published {
    pub targets_version: u64,
}

/// The latest version of one TUF role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoleStatus {
    pub version: i64,
    pub expires_at: UnixTime,
}

/// The hosts managed roots apply to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManagedRootsStatus {
    pub hosts: Vec<String>,
}

/// `GET /trust`: each role's latest version (none before `medgate trust init`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrustStatus {
    pub root: Option<RoleStatus>,
    pub timestamp: Option<RoleStatus>,
    pub snapshot: Option<RoleStatus>,
    pub targets: Option<RoleStatus>,
    pub managed_roots: Option<ManagedRootsStatus>,
}
