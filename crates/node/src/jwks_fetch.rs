//! Fetching partner backends' JWKS URLs for the control plane: https with the WebPKI roots,
//! plain http only to this machine (`medgate_server::check_jwks_url` decides, again here), no
//! redirects, a bounded answer, a deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use medgate_server::{JwksFetch, check_jwks_url};
use medgate_verify::partner::MAX_JWKS_LEN;

/// The fetcher the node gives the server.
pub fn fetcher() -> JwksFetch {
    let client: crate::outbound::OutboundClient<Empty<Bytes>> = crate::outbound::client();
    Arc::new(move |url: String| {
        let client = client.clone();
        Box::pin(async move {
            // Errors name no URL: it is the operator's, but may carry a token in its query.
            let uri = check_jwks_url(&url).map_err(str::to_string)?;
            let request = http::Request::get(uri)
                .header(http::header::ACCEPT, "application/json")
                .body(Empty::new())
                .map_err(|_| "the JWKS request cannot be built".to_string())?;
            let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
                .await
                .map_err(|_| "the JWKS fetch timed out".to_string())?
                .map_err(|error| format!("the JWKS fetch failed: {error}"))?;
            if !response.status().is_success() {
                return Err(format!("the JWKS URL answered {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_JWKS_LEN)
                .collect()
                .await
                .map_err(|_| "the JWKS is too large or was cut short".to_string())?;
            Ok(body.to_bytes().to_vec())
        })
    })
}
