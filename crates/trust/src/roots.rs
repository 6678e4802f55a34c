//! Managed trust roots: the CA certificates that replace the device's trust store for the
//! hosts a deployment names (its own API hosts), delivered over the air as the TUF target
//! `roots.pem` with the host patterns in the target's `custom` metadata:
//!
//! ```json
//! "roots.pem": {"length": …, "hashes": {"sha256": …}, "custom": {"hosts": ["api.example.com"]}}
//! ```
//!
//! For a covered host the device's roots do not count at all: a CA the user was talked into
//! installing, or one a state or a corporate proxy controls, cannot issue for it. Pins still
//! apply on top. Other hosts keep the device's roots. Parsing is bounded and all-or-nothing:
//! one block that is not a parsable certificate rejects the whole file. (As in any rustls root
//! store, basicConstraints are not checked: the file is the operator's, published under the
//! TUF targets key.)

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::Value;

use crate::pins::HostPattern;

/// The target holding the managed roots.
pub const ROOTS_TARGET: &str = "roots.pem";
/// The largest `roots.pem` read.
pub const MAX_ROOTS_BYTES: usize = 256 * 1024;
/// The most certificates it may hold.
pub const MAX_ROOTS: usize = 64;
/// The most host patterns the roots may cover.
pub const MAX_ROOT_HOSTS: usize = 256;

/// Why managed roots were refused. Never repeats the refused text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RootsError {
    #[error("roots.pem is larger than {MAX_ROOTS_BYTES} bytes")]
    TooLarge,
    #[error("roots.pem holds no certificate")]
    Empty,
    #[error("roots.pem holds more than {MAX_ROOTS} certificates")]
    TooMany,
    #[error("roots.pem is not PEM certificates")]
    NotPem,
    #[error("a certificate in roots.pem cannot be parsed as a trust anchor")]
    NotAnAnchor,
    #[error("the roots cover no host, or a host pattern is malformed")]
    Hosts,
}

/// CA certificates that are the only roots for some hosts.
#[derive(Debug, Clone)]
pub struct ManagedRoots {
    hosts: Vec<HostPattern>,
    roots: Arc<RootCertStore>,
    certificates: Vec<CertificateDer<'static>>,
}

impl ManagedRoots {
    /// `pem`: CA certificates in PEM; `hosts`: the patterns (pin rules' syntax) they cover.
    pub fn parse(pem: &[u8], hosts: &[String]) -> Result<ManagedRoots, RootsError> {
        if pem.len() > MAX_ROOTS_BYTES {
            return Err(RootsError::TooLarge);
        }
        if hosts.is_empty() || hosts.len() > MAX_ROOT_HOSTS {
            return Err(RootsError::Hosts);
        }
        let hosts = hosts
            .iter()
            .map(|host| HostPattern::parse(host).map_err(|_| RootsError::Hosts))
            .collect::<Result<Vec<_>, _>>()?;
        let mut certificates = Vec::new();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            if certificates.len() == MAX_ROOTS {
                return Err(RootsError::TooMany);
            }
            certificates.push(certificate.map_err(|_| RootsError::NotPem)?);
        }
        if certificates.is_empty() {
            return Err(RootsError::Empty);
        }
        let mut roots = RootCertStore::empty();
        for certificate in &certificates {
            roots
                .add(certificate.clone())
                .map_err(|_| RootsError::NotAnAnchor)?;
        }
        Ok(ManagedRoots {
            hosts,
            roots: Arc::new(roots),
            certificates,
        })
    }

    /// Whether `host` is one of the covered hosts (its roots are these alone).
    pub fn covers(&self, host: &str) -> bool {
        self.hosts.iter().any(|pattern| pattern.matches(host))
    }

    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    pub fn hosts(&self) -> &[HostPattern] {
        &self.hosts
    }

    /// The certificates, DER (what an app hands its platform's HTTP stack).
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }
}

/// The target's `custom` member naming `hosts`.
pub fn target_custom(hosts: &[String]) -> Value {
    serde_json::json!({ "hosts": hosts })
}

/// The hosts a `roots.pem` target's `custom` member names.
pub fn hosts_of(custom: Option<&Value>) -> Result<Vec<String>, RootsError> {
    let hosts = custom
        .and_then(|custom| custom.get("hosts"))
        .and_then(Value::as_array)
        .ok_or(RootsError::Hosts)?;
    if hosts.len() > MAX_ROOT_HOSTS {
        return Err(RootsError::Hosts);
    }
    hosts
        .iter()
        .map(|host| host.as_str().map(str::to_string).ok_or(RootsError::Hosts))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ca_pem() -> String {
        medgate_testkit::pki::TestCa::new("managed").root_pem()
    }

    #[test]
    fn roots_cover_their_hosts_only() {
        let pem = ca_pem();
        let managed = ManagedRoots::parse(
            pem.as_bytes(),
            &["**.example.com".into(), "10.0.0.1".into()],
        )
        .unwrap();
        assert!(managed.covers("api.example.com"));
        assert!(managed.covers("example.com"));
        assert!(managed.covers("10.0.0.1"));
        assert!(!managed.covers("example.org"));
        assert_eq!(managed.certificates().len(), 1);
        assert_eq!(managed.roots().len(), 1);
    }

    #[test]
    fn bad_files_are_refused_whole() {
        let pem = ca_pem();
        let hosts = ["api.example.com".to_string()];
        let two = format!("{pem}{}", ca_pem());
        assert_eq!(
            ManagedRoots::parse(two.as_bytes(), &hosts)
                .unwrap()
                .certificates()
                .len(),
            2
        );
        assert_eq!(
            ManagedRoots::parse(b"", &hosts).unwrap_err(),
            RootsError::Empty
        );
        assert_eq!(
            ManagedRoots::parse(b"not pem at all", &hosts).unwrap_err(),
            RootsError::Empty
        );
        let garbled = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(ManagedRoots::parse(garbled.as_bytes(), &hosts).is_err());
        let broken = pem.replacen("MII", "MIJ", 1);
        assert!(ManagedRoots::parse(format!("{pem}{broken}").as_bytes(), &hosts).is_err());
        assert_eq!(
            ManagedRoots::parse(&vec![b'a'; MAX_ROOTS_BYTES + 1], &hosts).unwrap_err(),
            RootsError::TooLarge
        );
        let many = pem.repeat(MAX_ROOTS + 1);
        assert_eq!(
            ManagedRoots::parse(many.as_bytes(), &hosts).unwrap_err(),
            RootsError::TooMany
        );
        assert_eq!(
            ManagedRoots::parse(pem.as_bytes(), &[]).unwrap_err(),
            RootsError::Hosts
        );
        assert_eq!(
            ManagedRoots::parse(pem.as_bytes(), &["bad host!".into()]).unwrap_err(),
            RootsError::Hosts
        );
    }

    #[test]
    fn hosts_travel_in_the_targets_custom_member() {
        let hosts = vec!["api.example.com".to_string()];
        assert_eq!(hosts_of(Some(&target_custom(&hosts))).unwrap(), hosts);
        for custom in [
            None,
            Some(serde_json::json!({})),
            Some(serde_json::json!({"hosts": "api.example.com"})),
            Some(serde_json::json!({"hosts": [1]})),
        ] {
            assert_eq!(hosts_of(custom.as_ref()).unwrap_err(), RootsError::Hosts);
        }
    }
}
