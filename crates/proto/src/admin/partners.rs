//! Partner backends (SMART backend services): clients that sign a JWT assertion with a key
//! they hold and receive a token for their scopes.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// Where a partner's public keys come from: exactly one of the two. No `Debug`: a JWKS URL's
/// query may carry a token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerKeySource {
    /// An https URL medgate fetches the JWKS from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// The JWKS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
}

/// `POST /partners`. (The key source's two fields are repeated here rather than flattened: a
/// flattened struct cannot refuse unknown fields.) No `Debug`, as for [`PartnerKeySource`].
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatePartner {
    /// 1-64 characters, none of them control characters.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::name))]
    pub name: String,
    /// Where its keys are: give exactly one of `jwks_url` and `jwks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// 1-32 SMART backend scopes: `system/<Resource or *>.<cruds, read, write or *>`.
    pub scopes: Vec<String>,
    /// The `aud` its assertions carry when not the token endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Address blocks (CIDR) it may call from; anywhere when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_allow: Vec<String>,
    /// Its tokens are bound to a DPoP key.
    #[serde(default)]
    pub require_dpop: bool,
}

impl CreatePartner {
    /// Where its keys are.
    pub fn key_source(&self) -> PartnerKeySource {
        PartnerKeySource {
            jwks_url: self.jwks_url.clone(),
            jwks: self.jwks.clone(),
        }
    }
}

/// A partner's keys as shown: the URL without its query, or the kids of a stored JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerKeysShown {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kids: Option<Vec<String>>,
}

/// Whether a partner can get tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PartnerState {
    Active,
    Disabled,
}

impl PartnerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            PartnerState::Active => "active",
            PartnerState::Disabled => "disabled",
        }
    }
}

/// A partner as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub keys: PartnerKeysShown,
    pub scopes: Vec<String>,
    pub audience: Option<String>,
    pub ip_allow: Vec<String>,
    pub require_dpop: bool,
    pub created_at: UnixTime,
    pub rotated_at: Option<UnixTime>,
    pub disabled_at: Option<UnixTime>,
    pub state: PartnerState,
}

/// A new partner and what its backend needs to know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerCreated {
    #[serde(flatten)]
    pub partner: Partner,
    /// The `iss` and `sub` of its assertions.
    pub client_id: String,
    pub token_endpoint: String,
}

/// `POST /partners/{id}/disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerDisabled {
    pub id: String,
    pub disabled: bool,
}

/// `POST /partners/{id}/rotate` (the body is a [`PartnerKeySource`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerRotated {
    pub id: String,
    pub rotated: bool,
    pub keys: PartnerKeysShown,
}
