//! The demo's man in the middle: a TLS proxy on loopback whose certificate a CA the phone
//! trusts issued (a corporate proxy, a CA a user was talked into installing, a compromised
//! CA), forwarding to the control plane. WebPKI alone accepts it; a pin of the real server's
//! key does not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A running interceptor.
pub(super) struct Interceptor {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The DER certificate of the CA that issued its certificate (what the phone trusts).
    pub ca_der: Vec<u8>,
    /// Connections that got through the handshake and sent it request bytes it could read.
    read: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Interceptor {
    /// Starts the proxy in front of `target` (plain HTTP).
    pub(super) async fn start(target: SocketAddr) -> anyhow::Result<Interceptor> {
        let mut ca_params = CertificateParams::default();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Intercepting proxy CA (demo)");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let mut leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string()])?;
        leaf_params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let leaf_key = KeyPair::generate()?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), CertificateDer::from(ca.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the interceptor")?;
        let url = format!("https://{}", listener.local_addr()?);
        let read = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&read);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake: nothing to read.
                    let Ok(mut client) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut first = vec![0u8; 16 * 1024];
                    let n = match client.read(&mut first).await {
                        Ok(n) if n > 0 => n,
                        _ => return,
                    };
                    // The proxy now holds the request in the clear (it could change it).
                    counter.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    if upstream.write_all(&first[..n]).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        });
        Ok(Interceptor {
            url,
            ca_der: ca.der().to_vec(),
            read,
            task,
        })
    }

    /// How many requests it has read in the clear so far.
    pub(super) fn requests_read(&self) -> usize {
        self.read.load(Ordering::SeqCst)
    }
}

impl Drop for Interceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}
