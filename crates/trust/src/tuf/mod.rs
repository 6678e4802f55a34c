//! The Update Framework (specification 1.0), as medgate uses it to deliver pin sets and trust
//! roots over the air: `metadata` (the four top-level roles, their envelope, signature
//! thresholds), `canonical` (the bytes a signature covers), `client` (the trusted set and the
//! update rules that refuse rollback, freeze, mix-and-match, fast-forward, wrong keys and
//! short thresholds) and `repository` (signing, for the server and the tests).
//!
//! Why our own verifier rather than `tough`: the SDK needs only the top-level roles and one
//! target, with no I/O and no clock in the core, on phones, with no C toolchain for the crypto
//! (Ed25519 in pure Rust); tough brings a file-oriented datastore, HTTP and aws-lc-rs, and its
//! 2025 advisories were in exactly these checks. python-tuf is the judge: it reads what
//! medgate publishes, and medgate's client reads what python-tuf writes (the interop test).

pub mod canonical;
pub mod client;
pub mod metadata;
pub mod repository;

/// Why metadata or a target was refused. Messages name the role and the rule, never the
/// bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TufError {
    #[error("TUF metadata refused: {0}")]
    Invalid(&'static str),
    #[error("{0} metadata is larger than allowed")]
    TooLarge(&'static str),
    #[error("metadata of another role where {0} was expected")]
    WrongType(&'static str),
    #[error("{0} is not signed by a threshold of its keys")]
    Threshold(&'static str),
    #[error("{role} version {got} where {expected} was required")]
    BadVersion {
        role: &'static str,
        expected: u64,
        got: u64,
    },
    #[error("{0} rolled back to an older version")]
    Rollback(&'static str),
    #[error("{0} metadata has expired")]
    Expired(&'static str),
    #[error("{0} does not have the length or hash its description gives")]
    LengthMismatch(&'static str),
    #[error("{0} does not have the hash its description gives")]
    HashMismatch(&'static str),
    #[error("metadata updated out of order: {0}")]
    Order(&'static str),
    #[error("the trusted targets do not list this target")]
    UnknownTarget,
}

#[cfg(test)]
mod tests;
