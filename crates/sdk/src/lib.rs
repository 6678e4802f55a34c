//! The medgate client SDK.
//!
//! - [`signer`]: the seam every signature goes through. [`key::InstallationKey`] is the
//!   software key, created once and persisted with mode 0600; [`signer::PlatformKey`] is a
//!   key held by Android Keystore or the Secure Enclave, reached through the app's code. The
//!   key's RFC 7638 thumbprint is the installation id.
//! - [`evidence`]: the signed evidence posted to `/v1/attest`.
//! - [`proof`]: a DPoP proof (RFC 9449) for each request.
//! - [`measure`]: the app's measurement of itself (executable SHA-256 on Linux).
//! - [`detect`]: runtime threat detection (debuggers, Frida and other hooks, injected
//!   libraries, root, emulators, tampering), reported as the evidence's signals.
//! - [`client::MedgateClient`] (feature `client`): attests, caches the token and refreshes it
//!   before it expires, and sends requests through the gateway with both headers attached.
//!
//! Everything is pure Rust (RustCrypto `p256`), so the SDK cross-compiles to phones without a
//! C toolchain for the target.

pub mod detect;
pub mod evidence;
pub mod key;
pub mod measure;
pub mod ota;
pub mod platform;
pub mod proof;
pub mod signer;

#[cfg(feature = "client")]
pub mod client;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The SDK's notion of "now" in Unix seconds. Replaceable so tests can align the client with a
/// server running on a manual clock.
pub type Now = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_now() -> Now {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            })
    })
}

/// `n` random bytes as base64url.
pub(crate) fn random_b64(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(medgate_proto::b64::encode(bytes))
}
