//! TLS on medgate's own listeners (`[server.tls]`, `[gateway.tls]`): rustls with the ring
//! provider, HTTP/1.1 only, a certificate chain and key read from PEM files.
//!
//! The certificate can be replaced while the node runs: [`ServerTls::reload`] reads both files
//! again and, when they parse and the key matches the certificate, hands the new pair to every
//! handshake from then on. Connections already open keep the session they negotiated; a reload
//! that fails keeps the pair in use and says why. The node calls it on `SIGHUP`.
//!
//! [`upstream_client_config`] is the gateway's side of its hop to an https upstream: the
//! system's roots plus an optional CA file, and optional SPKI pins (`medgate_trust::pins`).
//!
//! Files are operator input, and still bounded: at most [`MAX_PEM_BYTES`] each, errors name the
//! file and what was wrong, never a byte of the key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use medgate_trust::pins::{HostPattern, Pin, PinError, PinRule, PinSet};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The largest certificate chain or key file read.
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("no trust roots: the system store is empty and no CA file was given")]
    NoRoots,
    #[error("pins: {0}")]
    Pins(PinError),
    #[error("{0}")]
    Config(String),
}

/// The certificate chain and key files of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server's certificate first, then the intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// A listener's TLS configuration, reloadable from its files.
pub struct ServerTls {
    files: TlsFiles,
    current: Arc<Current>,
    config: Arc<rustls::ServerConfig>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// The pair every new handshake gets.
struct Current(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for Current {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Current(..)")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Arc::clone(&current))
    }
}

impl ServerTls {
    /// Reads `files` and builds the listener's configuration.
    pub fn load(files: TlsFiles) -> Result<ServerTls, TlsError> {
        let current = Arc::new(Current(RwLock::new(Arc::new(read_pair(&files)?))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid {
            path: files.cert.display().to_string(),
            reason: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            files,
            current,
            config: Arc::new(config),
        })
    }

    /// Reads the files again; on success new handshakes present the new certificate, on
    /// failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = Arc::new(read_pair(&self.files)?);
        *self
            .current
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = pair;
        Ok(())
    }

    /// What accepts a TLS connection with the current pair.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.config))
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// The rustls client configuration for an https upstream: WebPKI against the system's trust
/// store plus `ca` (a PEM bundle, for a private CA), then, when `pins` are given, one of them
/// must match a certificate of the verified chain to `host` (`medgate_trust::pins`).
pub fn upstream_client_config(
    host: &str,
    ca: Option<&Path>,
    pins: &[String],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as every client using the system store does.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(ca) = ca {
        let invalid = |reason: &str| TlsError::Invalid {
            path: ca.display().to_string(),
            reason: reason.to_string(),
        };
        let certs = CertificateDer::pem_slice_iter(&read_bounded(ca)?)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid("not a PEM certificate bundle"))?;
        if certs.is_empty() {
            return Err(invalid("holds no CERTIFICATE block"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|_| invalid("holds a certificate that cannot be a trust anchor"))?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let pins = pins
        .iter()
        .map(|text| Pin::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(TlsError::Pins)?;
    let rules = if pins.is_empty() {
        Vec::new()
    } else {
        vec![PinRule {
            pattern: HostPattern::parse(host).map_err(TlsError::Pins)?,
            pins,
        }]
    };
    client_config(Arc::new(roots), PinSet::new(rules).map_err(TlsError::Pins)?)
}

/// The client configuration for a plain-HTTP upstream: it trusts nothing, so no https
/// connection can be made with it.
pub fn no_trust_client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    client_config(Arc::new(rustls::RootCertStore::empty()), PinSet::default())
}

fn client_config(
    roots: Arc<rustls::RootCertStore>,
    pins: PinSet,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    medgate_trust::pins::client_config(provider, roots, None, pins)
        .map(Arc::new)
        .map_err(|e| TlsError::Config(e.to_string()))
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let read_error = |e: std::io::Error| TlsError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_error)?
        .take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::Invalid {
            path: path.display().to_string(),
            reason: format!("larger than {MAX_PEM_BYTES} bytes"),
        });
    }
    Ok(bytes)
}

fn read_pair(files: &TlsFiles) -> Result<CertifiedKey, TlsError> {
    let invalid = |path: &Path, reason: &str| TlsError::Invalid {
        path: path.display().to_string(),
        reason: reason.to_string(),
    };
    let chain = CertificateDer::pem_slice_iter(&read_bounded(&files.cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| invalid(&files.cert, "not a PEM certificate chain"))?;
    if chain.is_empty() {
        return Err(invalid(&files.cert, "holds no CERTIFICATE block"));
    }
    // The key's own parse error is not repeated: it could quote what the file holds.
    let key = PrivateKeyDer::from_pem_slice(&read_bounded(&files.key)?)
        .map_err(|_| invalid(&files.key, "holds no PEM private key"))?;
    let signer = any_supported_type(&key).map_err(|_| {
        invalid(
            &files.key,
            "is not an ECDSA, Ed25519 or RSA key rustls can use",
        )
    })?;
    let pair = CertifiedKey::new(chain, signer);
    pair.keys_match().map_err(|_| {
        invalid(
            &files.key,
            "does not match the public key of the certificate",
        )
    })?;
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, host: &str) -> TlsFiles {
        let generated = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, generated.cert.pem()).unwrap();
        std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
        files
    }

    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    use crate::listen::{ConnectionLimits, serve};

    async fn start(
        tls: Arc<ServerTls>,
        limits: ConnectionLimits,
    ) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(
            listener,
            stopped,
            limits,
            Some(tls),
            "test",
            |_peer| {
                service_fn(|_request| async {
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                        b"hello",
                    ))))
                })
            },
        ));
        (addr, stop)
    }

    /// A TLS client trusting only `cert` (PEM), for `localhost`.
    fn connector(cert: &Path) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }

    type Client = tokio_rustls::client::TlsStream<TcpStream>;

    async fn connect(addr: SocketAddr, cert: &Path) -> std::io::Result<Client> {
        let tcp = TcpStream::connect(addr).await?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        connector(cert).connect(name, tcp).await
    }

    /// One request on a kept-alive connection; the response's head and body.
    async fn get(stream: &mut Client) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        let mut chunk = [0u8; 1024];
        while !reply.ends_with(b"hello") {
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
                .await
                .expect("a response")
                .unwrap();
            assert!(read > 0, "closed before the response ended");
            reply.extend_from_slice(&chunk[..read]);
        }
        String::from_utf8_lossy(&reply).into_owned()
    }

    /// The certificate the server presented on `stream`.
    fn presented(stream: &Client) -> Vec<u8> {
        stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    }

    fn der_of(pem: &Path) -> Vec<u8> {
        CertificateDer::from_pem_file(pem).unwrap().to_vec()
    }

    #[tokio::test]
    async fn a_reload_serves_the_new_certificate_and_open_connections_carry_on() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "live", "localhost");
        let first = dir.path().join("first.crt");
        std::fs::copy(&files.cert, &first).unwrap();
        let tls = Arc::new(ServerTls::load(files.clone()).unwrap());
        let (addr, _stop) = start(Arc::clone(&tls), ConnectionLimits::default()).await;

        let mut open = connect(addr, &first).await.unwrap();
        assert!(get(&mut open).await.starts_with("HTTP/1.1 200"));
        assert_eq!(presented(&open), der_of(&first));

        // A new pair replaces the files; the reload takes it.
        let next = write_pair(dir.path(), "next", "localhost");
        std::fs::copy(&next.cert, &files.cert).unwrap();
        std::fs::copy(&next.key, &files.key).unwrap();
        tls.reload().unwrap();

        let mut fresh = connect(addr, &next.cert).await.unwrap();
        assert!(get(&mut fresh).await.starts_with("HTTP/1.1 200"));
        assert_eq!(presented(&fresh), der_of(&next.cert));
        // A client that trusts only the old certificate is refused by its own verifier now.
        assert!(connect(addr, &first).await.is_err());
        // The connection opened before the reload still works.
        assert!(get(&mut open).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn plain_http_and_a_stalled_handshake_get_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Arc::new(ServerTls::load(write_pair(dir.path(), "a", "localhost")).unwrap());
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ConnectionLimits::default()
        };
        let (addr, _stop) = start(tls, limits).await;
        let read_all = |mut stream: TcpStream| async move {
            let mut out = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
            assert!(read.is_ok(), "the server kept the connection open");
            out
        };

        // Plain HTTP on the TLS port: no HTTP response, the connection is closed.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let reply = read_all(plain).await;
        assert!(!reply.starts_with(b"HTTP/"), "{reply:?}");

        // A client that connects and never finishes its hello is cut off at the deadline.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
        assert!(read_all(stalled).await.is_empty());
    }

    #[test]
    fn a_matching_pair_loads_and_a_bad_reload_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_pair(dir.path(), "a", "localhost");
        let tls = ServerTls::load(files.clone()).unwrap();
        let before = Arc::clone(&tls.current.0.read().unwrap());

        std::fs::write(&files.cert, "not pem").unwrap();
        let error = tls.reload().unwrap_err();
        assert!(error.to_string().contains("a.crt"), "{error}");
        assert!(Arc::ptr_eq(&before, &tls.current.0.read().unwrap()));
    }

    #[test]
    fn refusals_name_the_file_and_the_reason_but_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a", "localhost");
        let b = write_pair(dir.path(), "b", "localhost");
        let secret = std::fs::read_to_string(&b.key).unwrap();
        let mismatched = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let huge = dir.path().join("huge.pem");
        std::fs::write(&huge, vec![b'a'; MAX_PEM_BYTES as usize + 1]).unwrap();
        let cases = [
            (mismatched, "does not match"),
            (
                TlsFiles {
                    cert: empty.clone(),
                    key: a.key.clone(),
                },
                "no CERTIFICATE",
            ),
            (
                TlsFiles {
                    cert: a.cert.clone(),
                    key: a.cert.clone(),
                },
                "no PEM private key",
            ),
            (
                TlsFiles {
                    cert: huge,
                    key: a.key.clone(),
                },
                "larger than",
            ),
            (
                TlsFiles {
                    cert: dir.path().join("missing.pem"),
                    key: a.key.clone(),
                },
                "cannot read",
            ),
        ];
        for (files, reason) in cases {
            let error = ServerTls::load(files).unwrap_err().to_string();
            assert!(error.contains(reason), "{error}");
            assert!(!error.contains(secret.lines().nth(1).unwrap()), "{error}");
        }
    }
}
