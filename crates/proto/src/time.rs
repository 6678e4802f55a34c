//! Time as a value: seconds since the Unix epoch. Nothing here reads a clock.

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnixTime(i64);

impl UnixTime {
    pub const fn from_secs(secs: i64) -> Self {
        UnixTime(secs)
    }

    pub const fn secs(self) -> i64 {
        self.0
    }

    pub const fn plus(self, secs: i64) -> Self {
        UnixTime(self.0.saturating_add(secs))
    }

    pub const fn minus(self, secs: i64) -> Self {
        UnixTime(self.0.saturating_sub(secs))
    }
}
