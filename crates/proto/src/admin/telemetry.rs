//! The telemetry series: decisions and refusals counted per minute, kept in the store so a
//! chart reads counts instead of scanning the audit log. Every part of a count comes from a
//! fixed set (decisions, reason codes, refusal kinds, platform names): no patient data, no
//! text a client sent.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// What a count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum TelemetrySeries {
    /// Attestations, by decision (`allow`, `allow_limited`, `reject`), first reason and platform.
    Attestation,
    /// Gateway requests, by outcome (`forwarded`, or a refusal such as `invalid_token`) and
    /// the verifier's reason code.
    Gateway,
}

impl TelemetrySeries {
    pub const fn as_str(self) -> &'static str {
        match self {
            TelemetrySeries::Attestation => "attestation",
            TelemetrySeries::Gateway => "gateway",
        }
    }

    pub fn from_name(name: &str) -> Option<TelemetrySeries> {
        [TelemetrySeries::Attestation, TelemetrySeries::Gateway]
            .into_iter()
            .find(|series| series.as_str() == name)
    }
}

/// How many of one outcome a period saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TelemetryCount {
    /// The start of the period (a minute as stored; a step's start as read).
    pub at: UnixTime,
    pub series: TelemetrySeries,
    pub outcome: String,
    /// A reason code; empty when there is none.
    pub reason: String,
    /// The attestation platform; empty for the gateway.
    pub platform: String,
    pub count: u64,
}

/// `GET /telemetry`: counts in `[from, to)`, summed per `step`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct TelemetryQuery {
    /// Unix seconds, before `to`; 24 hours before `to` unless said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 0))]
    pub from: Option<i64>,
    /// Unix seconds; now unless said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1))]
    pub to: Option<i64>,
    /// Seconds per period, a whole number of minutes; the range holds at most 1440 periods.
    /// One hour unless said. A range over 48 hours is read in whole hours: `from`, `to` and
    /// `step` multiples of 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        param(minimum = 60, maximum = 2592000, multiple_of = 60)
    )]
    pub step: Option<i64>,
}
