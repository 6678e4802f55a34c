//! Whom medgate's TLS clients trust.
//!
//! `pins`: SPKI SHA-256 pins per host pattern, in the convention OkHttp's `CertificatePinner`,
//! TrustKit and Android's network security config share, and `PinnedVerifier`, a rustls
//! `ServerCertVerifier` that runs WebPKI first (roots, validity, name) and then, for a pinned
//! host, requires one certificate of the *verified* path (leaf, intermediate or anchor) to match
//! a pin. A pinned host whose verified path matches no pin fails the handshake with a
//! `PinMismatch` naming the host and the chain's pins, before any request byte is sent.
//!
//! No I/O and no clock: rustls passes `now`, the caller passes its roots and its crypto
//! provider's signature algorithms.

pub mod pins;
