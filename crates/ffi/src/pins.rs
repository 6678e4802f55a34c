//! The over-the-air pin set for apps that send through their platform's HTTP stack: the app
//! fetches the trust repository's files (through that stack, pinned with the pins in force)
//! and hands them over; the SDK verifies them with TUF's rules and answers which pins each host
//! must match (for OkHttp's `CertificatePinner`, a `URLSession` delegate).
//!
//! ```text
//! pins = PinSet(shipped_root, folder)          the root the app ships, and where to keep files
//! pins.refresh(fetcher)                        fetcher.fetch("timestamp.json") …: the app's GET
//!                                              of <server>/v1/trust/<name>, None for a 404
//! pins.pins_for("api.example.org")             base64 SHA-256 SPKI pins; empty: not pinned
//! pins.status()                                versions, expiry, the last refresh error
//! ```

use std::sync::Arc;

use medgate_sdk::ota::{OtaError, OtaPins};

use crate::{MedgateError, boundary};

/// The app's fetch of one file of the trust repository.
#[uniffi::export(with_foreign)]
pub trait TrustFetcher: Send + Sync {
    /// The body of `<server>/v1/trust/<name>`, or `None` when the server answers 404.
    fn fetch(&self, name: String) -> Result<Option<Vec<u8>>, MedgateError>;
}

/// What the pins are and where they come from.
#[derive(Debug, Clone, uniffi::Record)]
pub struct PinsStatus {
    pub root_version: u64,
    /// The targets version the pins come from; `None` before the first good refresh.
    pub targets_version: Option<u64>,
    /// Hosts pinned.
    pub hosts: u64,
    /// Host patterns whose only roots are the managed ones (`roots.pem`).
    pub managed_root_hosts: u64,
    /// Roles whose metadata has expired (their pins stay in force).
    pub expired: Vec<String>,
    /// Why the last refresh failed, if it did.
    pub last_error: Option<String>,
}

impl From<medgate_sdk::ota::PinsStatus> for PinsStatus {
    fn from(status: medgate_sdk::ota::PinsStatus) -> Self {
        PinsStatus {
            root_version: status.root_version,
            targets_version: status.targets_version,
            hosts: status.hosts as u64,
            managed_root_hosts: status.managed_root_hosts as u64,
            expired: status.expired.iter().map(|r| r.to_string()).collect(),
            last_error: status.last_error,
        }
    }
}

impl From<OtaError> for MedgateError {
    fn from(error: OtaError) -> Self {
        MedgateError::Pins {
            reason: error.to_string(),
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// The verified pin set.
#[derive(uniffi::Object)]
pub struct PinSet {
    ota: OtaPins,
}

#[uniffi::export]
impl PinSet {
    /// From the root the app ships (the deployment's `1.root.json`) and a folder for the files
    /// it verifies (kept between runs; `None`: memory only).
    #[uniffi::constructor]
    pub fn new(root: Vec<u8>, folder: Option<String>) -> Result<Arc<Self>, MedgateError> {
        boundary(|| {
            let ota = OtaPins::new(&root, folder.map(Into::into))?;
            Ok(Arc::new(PinSet { ota }))
        })
    }

    /// One refresh through `fetcher`. A failure keeps the pins in force and is raised
    /// (`MedgateError.Pins`); `status()` keeps saying why.
    pub fn refresh(&self, fetcher: Arc<dyn TrustFetcher>) -> Result<PinsStatus, MedgateError> {
        boundary(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .map_err(|e| MedgateError::Internal {
                    reason: e.to_string(),
                })?;
            let fetch = |name: String| {
                let fetched = fetcher
                    .fetch(name.clone())
                    .map_err(|error| OtaError::Fetch {
                        file: name,
                        reason: error.to_string(),
                    });
                std::future::ready(fetched)
            };
            let now = now();
            runtime.block_on(self.ota.refresh(now, fetch))?;
            Ok(self.ota.status(now).into())
        })
    }

    /// The pins `host` must match (base64 SHA-256 of a SubjectPublicKeyInfo); empty when the
    /// host is not pinned and WebPKI alone decides.
    pub fn pins_for(&self, host: String) -> Vec<String> {
        self.ota
            .pins_for(&host)
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The CA certificates (DER) that are the only roots for `host`, when the deployment
    /// manages its roots (`roots.pem`) and covers it: the app's TLS (OkHttp's
    /// `X509TrustManager`, `URLSession`'s server-trust evaluation with
    /// `SecTrustSetAnchorCertificatesOnly`) must trust these and nothing else for it. Empty: the
    /// phone's roots.
    pub fn managed_roots_for(&self, host: String) -> Vec<Vec<u8>> {
        self.ota
            .managed_roots()
            .filter(|managed| managed.covers(&host))
            .map(|managed| {
                managed
                    .certificates()
                    .iter()
                    .map(|certificate| certificate.to_vec())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn status(&self) -> PinsStatus {
        self.ota.status(now()).into()
    }
}
