//! Loading Google's attestation revocation status list: from a file (read at start; a bad file
//! stops the node) or from an https URL (fetched in the background), then again every
//! `revocation_refresh`. A failed load keeps the last good list, but only until it is older
//! than `revocation_max_age`: then the server refuses Android attestations (503) until a load
//! succeeds. Plain http is refused: anyone on the path could serve an empty list.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use medgate_server::revocation::RevocationState;
use medgate_service::Clock;
use medgate_verify::android::revocation::{MAX_LIST, RevocationList};
use tokio::sync::watch;

/// Where the list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationSource {
    File(PathBuf),
    /// Always `https`.
    Url(Uri),
}

/// The scheme of `text` if it starts like a URL (`scheme://`).
fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
}

impl RevocationSource {
    /// A file path, or an `https://` URL; any other URL (`http://` in particular) is refused.
    /// Errors do not repeat the text, which may carry credentials.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(scheme) = url_scheme(text) else {
            return Ok(RevocationSource::File(PathBuf::from(text)));
        };
        if !scheme.eq_ignore_ascii_case("https") {
            return Err(format!(
                "attestation.revocation_list must be https (or a file path), not {}://: over plain http anyone on the path could serve an empty list",
                scheme.to_ascii_lowercase()
            ));
        }
        let rest = &text[scheme.len() + "://".len()..];
        let uri: Uri = format!("https://{rest}")
            .parse()
            .map_err(|_| "attestation.revocation_list is not a valid https URL".to_string())?;
        if uri.host().is_none_or(str::is_empty) {
            return Err("attestation.revocation_list is an https URL without a host".into());
        }
        Ok(RevocationSource::Url(uri))
    }

    /// Reads or fetches and parses the list.
    pub async fn load(&self) -> Result<RevocationList, String> {
        let bytes = match self {
            RevocationSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read revocation list {}: {e}", path.display()))?,
            RevocationSource::Url(uri) => fetch(uri).await?,
        };
        RevocationList::parse(&bytes).map_err(|e| e.to_string())
    }
}

/// Names the source in messages: a URL without user information or query.
impl fmt::Display for RevocationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevocationSource::File(path) => write!(f, "{}", path.display()),
            RevocationSource::Url(uri) => {
                write!(f, "https://{}", uri.host().unwrap_or_default())?;
                if let Some(port) = uri.port_u16() {
                    write!(f, ":{port}")?;
                }
                f.write_str(uri.path())
            }
        }
    }
}

/// Loads the list once and hands it to the server, stamped with the clock's time from before
/// the load began. Returns the number of entries.
pub async fn reload(
    source: &RevocationSource,
    state: &RevocationState,
    clock: &dyn Clock,
) -> Result<usize, String> {
    let started = clock.now();
    let list = source.load().await?;
    let entries = list.len();
    state.set(list, started);
    Ok(entries)
}

async fn fetch(uri: &Uri) -> Result<Vec<u8>, String> {
    let name = RevocationSource::Url(uri.clone()).to_string();
    // https only, whatever the URI says: the connector refuses to open plain TCP.
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = http::Request::get(uri.clone())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| format!("fetching {name} timed out"))?
        .map_err(|e| format!("fetching {name}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("fetching {name}: status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_LIST)
        .collect()
        .await
        .map_err(|e| format!("reading {name}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

/// Refreshes the list until shutdown: every minute until it first loads, then every `refresh`.
pub async fn keep_fresh(
    source: RevocationSource,
    state: Arc<RevocationState>,
    clock: Arc<dyn Clock>,
    refresh: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut loaded_once = state.loaded_at().is_some();
    loop {
        let wait = if loaded_once {
            refresh
        } else {
            Duration::from_secs(60)
        };
        if loaded_once {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
        match reload(&source, &state, &*clock).await {
            Ok(entries) => {
                tracing::info!(entries, "attestation revocation status list loaded");
                loaded_once = true;
            }
            Err(error) => {
                let age_secs = state
                    .loaded_at()
                    .map(|at| clock.now().secs().saturating_sub(at.secs()));
                tracing::warn!(
                    %error,
                    age_secs,
                    max_age_secs = state.max_age().as_secs(),
                    "attestation revocation status list not refreshed"
                );
                if !loaded_once {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_a_file_or_an_https_url() {
        assert_eq!(
            RevocationSource::parse("/var/lib/medgate/status.json"),
            Ok(RevocationSource::File(PathBuf::from(
                "/var/lib/medgate/status.json"
            )))
        );
        assert_eq!(
            RevocationSource::parse("./odd://name.json"),
            Ok(RevocationSource::File(PathBuf::from("./odd://name.json")))
        );
        let google =
            RevocationSource::parse("https://android.googleapis.com/attestation/status").unwrap();
        assert!(matches!(&google, RevocationSource::Url(uri) if uri.scheme_str() == Some("https")));
        assert!(matches!(
            RevocationSource::parse("HTTPS://android.googleapis.com/attestation/status"),
            Ok(RevocationSource::Url(uri)) if uri.scheme_str() == Some("https")
        ));
        for refused in [
            "http://android.googleapis.com/attestation/status",
            "Http://127.0.0.1:8080/status",
            "file:///etc/status.json",
        ] {
            let error = RevocationSource::parse(refused).unwrap_err();
            assert!(error.contains("must be https"), "{refused}: {error}");
        }
        assert!(RevocationSource::parse("https://").is_err());
    }

    #[test]
    fn a_url_is_named_without_its_credentials_or_query() {
        let source =
            RevocationSource::parse("https://user:secret@mirror.example.org:8443/status?key=k")
                .unwrap();
        assert_eq!(source.to_string(), "https://mirror.example.org:8443/status");
    }

    #[tokio::test]
    async fn the_fetch_never_speaks_plain_http() {
        // Only `parse` makes sources, and it refuses http; the connector refuses too, before
        // any connection is opened.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri: Uri = format!("http://{}/status", listener.local_addr().unwrap())
            .parse()
            .unwrap();
        let source = RevocationSource::Url(uri);
        tokio::select! {
            result = source.load() => {
                let error = result.unwrap_err();
                assert!(error.contains("fetching"), "{error}");
            }
            _ = listener.accept() => panic!("a plain TCP connection was opened"),
        }
    }
}
