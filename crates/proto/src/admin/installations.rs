//! Installations: what attested, and revoking one.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;
use crate::wire::{Decision, IntegrityLevel, Reason};

/// An app installation, known by its key's thumbprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Installation {
    pub id: String,
    pub app_id: String,
    pub platform: String,
    pub app_version: String,
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
    pub last_decision: Decision,
    pub last_reasons: Vec<Reason>,
    pub revoked_at: Option<UnixTime>,
    pub integrity_level: Option<IntegrityLevel>,
    pub hardware_key: bool,
    /// The build identity the platform attested (Apple app id, Android signer), if any.
    pub identity: Option<String>,
}

/// `GET /installations`: one page in id order. A full page carries `X-Next-After`, the id to
/// ask for the next one after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct InstallationQuery {
    /// Only this app's installations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The last id of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// 1 to 1000; 100 unless said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<usize>,
}

/// `POST /installations/{id}/revoke`: the gateway refuses the installation within seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InstallationRevoked {
    pub installation_id: String,
    pub revoked: bool,
    /// False when it was revoked already.
    pub newly_revoked: bool,
}
