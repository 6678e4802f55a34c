//! SPKI pins per host pattern, and the verifier that enforces them on top of WebPKI.
//!
//! The convention is OkHttp's `CertificatePinner` (also TrustKit's and Android's network
//! security config): a pin is the standard base64 of the SHA-256 of a certificate's DER
//! `SubjectPublicKeyInfo`; a host is pinned by every rule whose pattern matches it (`host`
//! exactly, `*.example.com` one label deep, `**.example.com` any depth and the apex); a chain
//! passes when any certificate of its *verified* path matches any pin of the host.
//!
//! `PinnedVerifier::verify_server_cert`, in order:
//! 1. WebPKI builds and verifies a path from the presented leaf to a trusted root (signatures,
//!    validity at `now`, server-auth usage); a pin never stands in for a trusted root. For a
//!    host the managed roots cover (`crate::roots`), those are the only trusted roots.
//! 2. The leaf must be valid for the server name.
//! 3. A host no rule matches is done (WebPKI alone: the never-brick rule for unpinned hosts).
//! 4. Otherwise one certificate of the path built in step 1 must match a pin. Certificates the
//!    server presented that are not on that path do not count: an attacker with a trusted CA
//!    could present the pinned intermediate beside a chain of its own.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use crate::roots::ManagedRoots;

/// The longest host pattern accepted (a DNS name is at most 253 characters, plus `**.`).
const MAX_PATTERN_LEN: usize = 256;

/// Why a pin or a host pattern was refused. The refused text is not repeated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("a pin is the standard base64 of 32 bytes (a SHA-256 of a SubjectPublicKeyInfo)")]
    Pin,
    #[error(
        "a host pattern is a host name or IP address, `*.` (one label) or `**.` (any depth) before a name"
    )]
    Pattern,
    #[error("the rule for {0} has no pin")]
    NoPins(String),
    #[error("not a DER X.509 certificate")]
    Certificate,
}

/// The SHA-256 of a DER `SubjectPublicKeyInfo`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The pin of a public key, from its DER `SubjectPublicKeyInfo`.
    pub fn of_spki(spki_der: &[u8]) -> Pin {
        Pin(Sha256::digest(spki_der).into())
    }

    /// Reads `base64` or OkHttp's `sha256/base64`. (A bare pin is 44 characters; `/` is a
    /// base64 character, so one may itself begin with `sha256/`.)
    pub fn parse(text: &str) -> Result<Pin, PinError> {
        let encoded = match text.strip_prefix("sha256/") {
            Some(rest) if text.len() != 44 => rest,
            _ => text,
        };
        if encoded.len() != 44 {
            return Err(PinError::Pin);
        }
        let bytes = STANDARD.decode(encoded).map_err(|_| PinError::Pin)?;
        Ok(Pin(bytes.try_into().map_err(|_| PinError::Pin)?))
    }

    /// The pin of a DER certificate's key.
    pub fn of_certificate(cert_der: &[u8]) -> Result<Pin, PinError> {
        let der = CertificateDer::from(cert_der);
        let cert = webpki::EndEntityCert::try_from(&der).map_err(|_| PinError::Certificate)?;
        Ok(Pin::of_spki(&cert.subject_public_key_info()))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// Which hosts a rule pins, OkHttp's way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// This host only.
    Exact(String),
    /// `*.example.com`: `a.example.com`, not `example.com` nor `a.b.example.com`.
    OneLabel(String),
    /// `**.example.com`: `example.com` and every name under it.
    AnyDepth(String),
}

impl HostPattern {
    /// Reads a pattern; names are compared without case and without a final dot, IPv6
    /// addresses with or without brackets.
    pub fn parse(text: &str) -> Result<HostPattern, PinError> {
        if text.len() > MAX_PATTERN_LEN {
            return Err(PinError::Pattern);
        }
        // (wildcard depth, the name): 0 exact, 1 `*.`, 2 `**.`.
        let (depth, rest) = if let Some(rest) = text.strip_prefix("**.") {
            (2, rest)
        } else if let Some(rest) = text.strip_prefix("*.") {
            (1, rest)
        } else {
            (0, text)
        };
        let name = normalise(rest);
        // A `:` only in an IPv6 address, exact, in its canonical form (as rustls reports the
        // dialled address); `host:port` is not a host.
        if name.contains(':') {
            return match (depth, name.parse::<std::net::Ipv6Addr>()) {
                (0, Ok(_)) => Ok(HostPattern::Exact(name)),
                _ => Err(PinError::Pattern),
            };
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.');
        if name.is_empty()
            || !name.chars().all(allowed)
            || name.starts_with('.')
            || name.ends_with('.')
            || name.contains("..")
        {
            return Err(PinError::Pattern);
        }
        Ok(match depth {
            0 => HostPattern::Exact(name),
            1 => HostPattern::OneLabel(name),
            _ => HostPattern::AnyDepth(name),
        })
    }

    /// Whether `host` (a name or an address, as the client dials it) is covered.
    pub fn matches(&self, host: &str) -> bool {
        let host = normalise(host);
        match self {
            HostPattern::Exact(name) => host == *name,
            HostPattern::OneLabel(suffix) => host
                .strip_suffix(suffix.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            HostPattern::AnyDepth(suffix) => {
                host == *suffix
                    || host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|label| label.ends_with('.') && label.len() > 1)
            }
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::OneLabel(suffix) => write!(f, "*.{suffix}"),
            HostPattern::AnyDepth(suffix) => write!(f, "**.{suffix}"),
        }
    }
}

fn normalise(host: &str) -> String {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(address) => address.to_string(),
        Err(_) => host,
    }
}

/// The pins of the hosts one pattern covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRule {
    pub pattern: HostPattern,
    pub pins: Vec<Pin>,
}

/// Every pinned host pattern; a host no rule matches is not pinned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinSet {
    rules: Vec<PinRule>,
}

impl PinSet {
    /// A set of rules, each with at least one pin.
    pub fn new(rules: Vec<PinRule>) -> Result<PinSet, PinError> {
        if let Some(empty) = rules.iter().find(|rule| rule.pins.is_empty()) {
            return Err(PinError::NoPins(empty.pattern.to_string()));
        }
        Ok(PinSet { rules })
    }

    pub fn rules(&self) -> &[PinRule] {
        &self.rules
    }

    /// Every pin of every rule matching `host`; empty when the host is not pinned.
    pub fn pins_for(&self, host: &str) -> Vec<Pin> {
        let mut pins: Vec<Pin> = Vec::new();
        for rule in self.rules.iter().filter(|rule| rule.pattern.matches(host)) {
            for pin in &rule.pins {
                if !pins.contains(pin) {
                    pins.push(*pin);
                }
            }
        }
        pins
    }
}

/// A pinned host's verified chain matched none of its pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinMismatch {
    /// The host the client dialled.
    pub host: String,
    /// The pins of the verified chain, leaf first, anchor last.
    pub chain: Vec<Pin>,
}

impl fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "certificate pinning failure for {}: the verified chain's pins are",
            self.host
        )?;
        for pin in &self.chain {
            write!(f, " {pin}")?;
        }
        f.write_str(", and none of them is pinned")
    }
}

impl StdError for PinMismatch {}

/// The `PinMismatch` behind an error from a TLS connection, an HTTP client or rustls, if
/// that is why it failed: follows `source()` and the errors wrapped in `io::Error`s.
pub fn find_pin_mismatch<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a PinMismatch> {
    let mut next = Some(error);
    // Bounded: a cyclic or endless chain ends the search, not the caller.
    for _ in 0..32 {
        let error = next?;
        if let Some(found) = error.downcast_ref::<PinMismatch>() {
            return Some(found);
        }
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            error.downcast_ref::<rustls::Error>()
        {
            return other.0.downcast_ref::<PinMismatch>();
        }
        // `io::Error::source` skips the error it wraps; `get_ref` is that error.
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    None
}

/// WebPKI against `roots` (or the managed roots, for the hosts they cover), then the pins of
/// the dialled host (see the module's steps).
#[derive(Debug)]
pub struct PinnedVerifier {
    roots: Arc<RootCertStore>,
    managed: Option<ManagedRoots>,
    pins: PinSet,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinnedVerifier {
    /// `algorithms`: the crypto provider's `signature_verification_algorithms`.
    pub fn new(
        roots: Arc<RootCertStore>,
        pins: PinSet,
        algorithms: WebPkiSupportedAlgorithms,
    ) -> PinnedVerifier {
        PinnedVerifier {
            roots,
            managed: None,
            pins,
            algorithms,
        }
    }

    /// For the hosts `managed` covers, its roots replace `roots`.
    pub fn with_managed_roots(mut self, managed: Option<ManagedRoots>) -> PinnedVerifier {
        self.managed = managed;
        self
    }

    pub fn pins(&self) -> &PinSet {
        &self.pins
    }

    /// The roots a path to `host` must end in.
    fn roots_for(&self, host: &str) -> &RootCertStore {
        match &self.managed {
            Some(managed) if managed.covers(host) => managed.roots(),
            _ => &self.roots,
        }
    }
}

/// A rustls client configuration that verifies with a [`PinnedVerifier`] over `roots`,
/// `managed` roots and `pins`, using `provider` (the caller's; this crate has none) for TLS
/// and signatures. No ALPN: the HTTP connector sets the protocols it speaks.
pub fn client_config(
    provider: Arc<rustls::crypto::CryptoProvider>,
    roots: Arc<RootCertStore>,
    managed: Option<ManagedRoots>,
    pins: PinSet,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let verifier = PinnedVerifier::new(roots, pins, provider.signature_verification_algorithms)
        .with_managed_roots(managed);
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// What a client dialled, as pin rules name it.
fn host_of(server_name: &ServerName<'_>) -> String {
    match server_name {
        ServerName::DnsName(name) => name.as_ref().to_string(),
        ServerName::IpAddress(address) => std::net::IpAddr::from(*address).to_string(),
        other => other.to_str().into_owned(),
    }
}

/// A DER SEQUENCE around `content` (a trust anchor keeps its SPKI without the outer tag).
fn der_sequence(content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|byte| *byte == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(content);
    out
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Step 1: the path WebPKI builds and verifies, kept for step 4.
        let host = host_of(server_name);
        let roots = self.roots_for(&host);
        let leaf = webpki::EndEntityCert::try_from(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let path = match leaf.verify_for_usage(
            self.algorithms.all,
            &roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        ) {
            Ok(path) => path,
            // rustls turns webpki's reasons into its own errors; it is asked for this chain's.
            Err(_) => {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_cert_signed_by_trust_anchor(
                    &parsed,
                    roots,
                    intermediates,
                    now,
                    self.algorithms.all,
                )?;
                return Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer,
                ));
            }
        };
        // Step 2.
        let parsed = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        // Step 3.
        let pinned = self.pins.pins_for(&host);
        if pinned.is_empty() {
            return Ok(ServerCertVerified::assertion());
        }
        // Step 4.
        let mut chain = vec![Pin::of_spki(&path.end_entity().subject_public_key_info())];
        chain.extend(
            path.intermediate_certificates()
                .map(|cert| Pin::of_spki(&cert.subject_public_key_info())),
        );
        chain.push(Pin::of_spki(&der_sequence(
            path.anchor().subject_public_key_info.as_ref(),
        )));
        if chain.iter().any(|pin| pinned.contains(pin)) {
            return Ok(ServerCertVerified::assertion());
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(PinMismatch { host, chain })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
