//! Loading Google's attestation revocation status list: from a file (read at start; a bad file
//! stops the node) or from an http(s) URL (fetched in the background, again every
//! `revocation_refresh`; a failed fetch keeps the last good list).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use medgate_server::revocation::RevocationState;
use medgate_verify::android::revocation::{MAX_LIST, RevocationList};
use tokio::sync::watch;

/// Where the list comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationSource {
    File(PathBuf),
    Url(Uri),
}

impl RevocationSource {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("http://") || text.starts_with("https://") {
            text.parse()
                .map(RevocationSource::Url)
                .map_err(|_| format!("attestation.revocation_list {text:?} is not a URL"))
        } else {
            Ok(RevocationSource::File(PathBuf::from(text)))
        }
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

async fn fetch(uri: &Uri) -> Result<Vec<u8>, String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = http::Request::get(uri.clone())
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(request))
        .await
        .map_err(|_| format!("fetching {uri} timed out"))?
        .map_err(|e| format!("fetching {uri}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("fetching {uri}: status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_LIST)
        .collect()
        .await
        .map_err(|e| format!("reading {uri}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}

/// Refreshes the list until shutdown: every minute until it first loads, then every `refresh`.
pub async fn keep_fresh(
    source: RevocationSource,
    state: Arc<RevocationState>,
    refresh: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut loaded_once = matches!(
        state.status(),
        medgate_server::revocation::RevocationStatus::Loaded(_)
    );
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
        match source.load().await {
            Ok(list) => {
                tracing::info!(
                    entries = list.len(),
                    "attestation revocation status list loaded"
                );
                state.set(list);
                loaded_once = true;
            }
            Err(error) => {
                tracing::warn!(%error, "attestation revocation status list not refreshed");
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
