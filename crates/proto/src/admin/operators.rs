//! Operators: the named people who sign in to the console. Each has a role; the console
//! records their name as the actor of every change they make.

use serde::{Deserialize, Serialize};

use crate::time::UnixTime;

/// What an operator may do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OperatorRole {
    /// Reads every page; changes nothing.
    Viewer,
    /// Also revokes installations and releases.
    Operator,
    /// Everything an operator does (operators themselves are managed with the admin token).
    Admin,
}

impl OperatorRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Viewer => "viewer",
            OperatorRole::Operator => "operator",
            OperatorRole::Admin => "admin",
        }
    }

    pub fn from_name(name: &str) -> Option<OperatorRole> {
        [
            OperatorRole::Viewer,
            OperatorRole::Operator,
            OperatorRole::Admin,
        ]
        .into_iter()
        .find(|role| role.as_str() == name)
    }

    /// Whether the role may make changes (revoke), not only read.
    pub fn may_change(self) -> bool {
        self >= OperatorRole::Operator
    }
}

/// The shortest and longest password an operator may have, in characters.
pub const OPERATOR_PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 12..=256;

/// `POST /operators`. No `Debug`: it carries the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateOperator {
    /// 1-64 characters of `a-z 0-9 . _ -`.
    #[cfg_attr(feature = "openapi", schema(schema_with = super::schema::operator_name))]
    pub name: String,
    pub role: OperatorRole,
    /// 12 to 256 characters; the node keeps only its Argon2id hash.
    #[cfg_attr(feature = "openapi", schema(min_length = 12, max_length = 256))]
    pub password: String,
}

/// An operator as listed: never the password or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Operator {
    pub name: String,
    pub role: OperatorRole,
    pub created_at: UnixTime,
}

/// `DELETE /operators/{name}`: the operator and every session of theirs are gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OperatorRemoved {
    pub name: String,
    pub removed: bool,
}
