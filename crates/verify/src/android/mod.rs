//! Android platform evidence: the Key Attestation certificate extension.
//!
//! Certificate-chain verification and the attestation policy live elsewhere; this module only
//! decodes what a chain's leaf certificate claims.

pub mod key_description;
