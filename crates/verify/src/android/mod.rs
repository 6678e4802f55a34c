//! Android key attestation: the KeyDescription extension, chain verification and the
//! revocation status list.

pub mod attestation;
pub mod key_description;
pub mod revocation;
