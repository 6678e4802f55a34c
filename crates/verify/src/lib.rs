//! medgate's verification core.
//!
//! Bytes in, `now` in, typed verdict out. This crate performs no I/O, reads no clock and holds
//! no state: the server, the gateway and the SDK call the same functions, and every check can be
//! tested at a pinned instant.
//!
//! Each verifier returns a proof type that only it can construct — [`token::VerifiedToken`],
//! [`dpop::BoundProof`], [`evidence::VerifiedEvidence`], [`policy::Grant`] — and the next step
//! requires that type as an argument, so a skipped check does not compile: a token can only be
//! issued from a [`policy::Grant`], which can only be made from verified evidence and a fresh
//! challenge.

pub mod android;
pub mod apple;
pub mod checkpoint;
pub mod credential;
pub mod dpop;
pub mod evidence;
pub mod httpsig;
pub mod jws;
pub mod keys;
pub mod partner;
pub mod platform;
pub mod play_integrity;
pub mod policy;
pub mod roots;
pub mod smart_scope;
pub mod time;
pub mod token;
pub mod x509;

pub use time::UnixTime;

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod testkey;
