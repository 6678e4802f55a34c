//! Whom medgate's TLS clients trust.
//!
//! `pins`: SPKI SHA-256 pins per host pattern, in the convention OkHttp's `CertificatePinner`,
//! TrustKit and Android's network security config share, and `PinnedVerifier`, a rustls
//! `ServerCertVerifier` that runs WebPKI first (roots, validity, name) and then, for a pinned
//! host, requires one certificate of the *verified* path (leaf, intermediate or anchor) to match
//! a pin. A pinned host whose verified path matches no pin fails the handshake with a
//! `PinMismatch` naming the host and the chain's pins, before any request byte is sent.
//!
//! `roots`: managed trust roots, the only roots for the hosts a deployment names (`roots.pem`).
//!
//! `tuf`: The Update Framework's metadata and client rules, which carry pin sets and trust
//! roots to apps over the air without letting anyone who is not the repository's key holder
//! change them, roll them back or freeze them.
//!
//! `jwe`: compact JWE with AES-256-GCM, its key wrapped under a shared key (Play Integrity) or
//! one agreed over P-256 (`ECDH-ES+A256KW`: secrets sealed to one installation's key).
//!
//! No I/O and no clock: rustls passes `now`, the caller passes its roots and its crypto
//! provider's signature algorithms, and a TUF refresh gets its bytes and `now` from the caller.

pub mod jwe;
pub mod pins;
pub mod roots;
pub mod tuf;
