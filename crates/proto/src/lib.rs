//! Wire formats shared by every medgate component.
//!
//! This crate holds what the server, the gateway and the client SDK must agree on byte for byte:
//! base64url, JSON Web Keys and their RFC 7638 thumbprints, compact JWS *encoding* (signing is
//! delegated to a [`jws::JwsSigner`] so the SDK can use pure-Rust keys and the server a fast
//! backend), the v1 protocol messages and the stable reason codes.
//!
//! It performs no I/O, reads no clock and carries no crypto backend, so it compiles for every
//! target the SDK runs on. Verification lives in `medgate-verify`.

pub mod admin;
pub mod b64;
pub mod hex;
pub mod httpsig;
pub mod jwk;
pub mod jws;
pub mod policy;
pub mod redact;
pub mod time;
pub mod uri;
pub mod wire;

pub use jwk::{JwkError, PublicJwk, Thumbprint};
pub use jws::{Alg, JwsSigner, SignError};
