//! Credentials for clients that cannot attest: Nightscout followers (read-only apps) and
//! uploaders (CGM bridges). The secret is shown once.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CredentialKind {
    Follower,
    Uploader,
}

impl CredentialKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Follower => "follower",
            CredentialKind::Uploader => "uploader",
        }
    }

    pub fn from_name(name: &str) -> Option<CredentialKind> {
        [CredentialKind::Follower, CredentialKind::Uploader]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }
}

/// `POST /apps/{app_id}/credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateCredential {
    pub kind: CredentialKind,
    /// 1-64 characters, none of them control characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::name))]
    pub name: String,
    /// 1-16 scope tokens.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::credential_scopes))]
    pub scopes: Vec<String>,
    /// 60 seconds to ten years; no expiry unless said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 60, maximum = 316224000))]
    pub expires_in_secs: Option<i64>,
}

/// Whether a credential is still accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CredentialState {
    Active,
    Expired,
    Revoked,
}

impl CredentialState {
    pub const fn as_str(self) -> &'static str {
        match self {
            CredentialState::Active => "active",
            CredentialState::Expired => "expired",
            CredentialState::Revoked => "revoked",
        }
    }
}

/// A credential as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credential {
    pub id: String,
    pub app_id: String,
    pub kind: CredentialKind,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: UnixTime,
    pub expires_at: Option<UnixTime>,
    pub revoked_at: Option<UnixTime>,
    pub state: CredentialState,
}

/// A new credential with its secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialCreated {
    #[serde(flatten)]
    pub credential: Credential,
    pub secret: String,
    /// The Nightscout-style link (`?token=`) a follower app takes.
    pub share_link: String,
}

/// `POST /credentials/{id}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialRevoked {
    pub id: String,
    pub app_id: String,
    pub revoked: bool,
}
