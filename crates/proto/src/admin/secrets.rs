//! Secrets sealed at rest and delivered only to attested installations or injected upstream.
//! Values go in; they never come out.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// `POST /apps/{app_id}/secrets`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetSecret {
    /// 1-64 characters of `a-z 0-9 _ -`.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::secret_name))]
    pub name: String,
    /// The value in standard base64, 1 to 8192 bytes once decoded.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::secret_value))]
    pub value: String,
}

/// `PUT /apps/{app_id}/secrets/{name}`: a new version.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotateSecret {
    /// The value in standard base64, 1 to 8192 bytes once decoded.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::secret_value))]
    pub value: String,
}

/// The version a secret now has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretVersion {
    pub app_id: String,
    pub name: String,
    pub version: i64,
}

/// `DELETE /apps/{app_id}/secrets/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretDeleted {
    pub app_id: String,
    pub name: String,
    pub deleted: bool,
}

/// `GET /apps/{app_id}/secrets`: names and versions, never values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Secret {
    pub name: String,
    pub version: i64,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    /// Gateway routes that inject it into upstream requests.
    pub injected_by_routes: Vec<String>,
    /// Whether the app's scopes include `secret:<name>`, so attested installations receive it.
    pub sealed_to_installations: bool,
}
