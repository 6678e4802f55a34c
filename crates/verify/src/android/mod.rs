//! Android key attestation.

pub mod revocation;
