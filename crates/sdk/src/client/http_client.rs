//! The HTTP/1.1 client under [`super::MedgateClient`] and medgate's tools: plain HTTP, or
//! (feature `tls`) HTTPS through rustls with `medgate_trust::pins::PinnedVerifier`, so a pinned
//! host whose verified chain carries no pinned key fails in the handshake, before any request
//! byte, with [`ClientError::PinMismatch`].

#[cfg(feature = "tls")]
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderMap;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
#[cfg(feature = "tls")]
use medgate_trust::pins::PinSet;

use super::{ClientError, HttpResponse};

/// The largest response body the client reads.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// An HTTP/1.1 client that reads whole responses (up to 16 MiB).
#[derive(Clone)]
pub struct HttpClient(Inner);

#[derive(Clone)]
enum Inner {
    Plain(Client<HttpConnector, Full<Bytes>>),
    #[cfg(feature = "tls")]
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>),
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Plain(_) => "HttpClient(plain)",
            #[cfg(feature = "tls")]
            Inner::Tls(_) => "HttpClient(tls)",
        })
    }
}

impl Default for HttpClient {
    /// Plain HTTP only.
    fn default() -> Self {
        HttpClient(Inner::Plain(
            Client::builder(TokioExecutor::new()).build_http(),
        ))
    }
}

/// Mozilla's roots (compiled in) and `extra`, DER certificates of CAs also trusted (a
/// private CA, a test CA).
#[cfg(feature = "tls")]
pub fn web_roots(extra: &[Vec<u8>]) -> Result<rustls::RootCertStore, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in extra {
        roots
            .add(rustls_pki_types::CertificateDer::from(der.clone()))
            .map_err(|_| ClientError::Tls("an extra root is not a CA certificate".into()))?;
    }
    Ok(roots)
}

/// An error and the errors that caused it (hyper's says "client error (Connect)"; the cause
/// says which certificate check failed), joined with ": ".
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

impl HttpClient {
    /// HTTP and HTTPS; HTTPS checked by WebPKI against `roots` (against `managed` alone for
    /// the hosts it covers), then by `pins` for pinned hosts.
    #[cfg(feature = "tls")]
    pub fn pinned(
        roots: Arc<rustls::RootCertStore>,
        managed: Option<medgate_trust::roots::ManagedRoots>,
        pins: PinSet,
    ) -> Result<HttpClient, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = medgate_trust::pins::client_config(provider, roots, managed, pins)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(HttpClient(Inner::Tls(
            Client::builder(TokioExecutor::new()).build(connector),
        )))
    }

    async fn request(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<http::Response<Incoming>, hyper_util::client::legacy::Error> {
        match &self.0 {
            Inner::Plain(client) => client.request(request).await,
            #[cfg(feature = "tls")]
            Inner::Tls(client) => client.request(request).await,
        }
    }

    /// Sends a request exactly as given.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<HttpResponse, ClientError> {
        let http_error = |reason: String| ClientError::Http {
            url: url.to_string(),
            reason,
        };
        let mut request = Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(body))
            .map_err(|e| http_error(e.to_string()))?;
        *request.headers_mut() = headers;
        let response = self.request(request).await.map_err(|error| {
            match medgate_trust::pins::find_pin_mismatch(&error) {
                Some(mismatch) => ClientError::PinMismatch {
                    host: mismatch.host.clone(),
                    chain: mismatch.chain.iter().map(ToString::to_string).collect(),
                },
                None => http_error(with_causes(&error)),
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = http_body_util::Limited::new(body, MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| http_error(e.to_string()))?
            .to_bytes();
        Ok(HttpResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
