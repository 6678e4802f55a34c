//! JWTs the upstream hands out, for `nightscout-jwt` injections: Nightscout's v3 API takes
//! only a JWT, which `GET /api/v2/authorization/request/<access token>` gives for an access
//! token the operator stored as an app secret (8 hours by default). At every refresh the
//! gateway starts, in the background, a fetch for each app whose JWT is missing, was fetched
//! for an older version of the secret, or expires within [`RENEW_BEFORE_SECS`]; a failed
//! fetch is tried again after [`RETRY_AFTER`]. A refresh never waits for the upstream (a
//! revocation must not), and a route whose JWT is not there answers 503, as for any missing
//! secret. Neither the token nor the JWT is logged.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full, Limited};
use medgate_proto::uri::is_unreserved;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::Gateway;
use crate::inject::{Encoding, UpstreamJwt};

/// How long before its expiry a JWT is fetched again.
pub const RENEW_BEFORE_SECS: i64 = 15 * 60;
/// How long after a failed fetch the next one starts.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// The largest answer read.
const MAX_ANSWER: usize = 16 * 1024;

#[derive(Deserialize)]
struct Answer {
    token: String,
    exp: i64,
}

impl Gateway {
    /// Starts the fetches the module documentation describes; returns at once.
    pub(crate) fn renew_upstream_jwts(&self) {
        let inner = &self.inner;
        let names: BTreeSet<&str> = inner
            .params
            .routes
            .iter()
            .flat_map(|route| route.inject().iter())
            .filter(|injection| injection.encoding() == Encoding::NightscoutJwt)
            .map(|injection| injection.secret())
            .collect();
        let Some(upstream) = inner.params.upstream.clone() else {
            return;
        };
        let now = inner.clock.now().secs();
        for name in names {
            for (app, version, token) in inner.secrets.named(name) {
                let fresh = inner
                    .secrets
                    .jwt(&app, name)
                    .is_some_and(|jwt| jwt.expires_at - now > RENEW_BEFORE_SECS);
                if fresh {
                    continue;
                }
                let key = (app.clone(), name.to_string());
                {
                    let mut attempts = inner.jwt_attempts.lock();
                    if attempts
                        .get(&key)
                        .is_some_and(|started| started.elapsed() < RETRY_AFTER)
                    {
                        continue;
                    }
                    attempts.insert(key.clone(), Instant::now());
                }
                let gateway = self.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    match gateway.request_upstream_jwt(&upstream, &token).await {
                        Ok((bearer, expires_at)) => {
                            let jwt = UpstreamJwt {
                                version,
                                bearer: Arc::new(bearer),
                                expires_at,
                            };
                            gateway.inner.secrets.set_jwt(&key.0, &key.1, jwt);
                            gateway.inner.jwt_attempts.lock().remove(&key);
                        }
                        Err(why) => tracing::warn!(
                            app = key.0.as_str(),
                            secret = key.1.as_str(),
                            why,
                            "no JWT from the upstream for this access token; routes injecting it answer 503"
                        ),
                    }
                });
            }
        }
    }

    /// One exchange: the access token for a JWT and its expiry.
    async fn request_upstream_jwt(
        &self,
        upstream: &Uri,
        token: &[u8],
    ) -> Result<(Zeroizing<String>, i64), &'static str> {
        let token = std::str::from_utf8(token).map_err(|_| "the access token is not text")?;
        if token.is_empty() || !token.bytes().all(is_unreserved) {
            return Err("the access token has characters a path segment cannot carry");
        }
        let path = format!("/api/v2/authorization/request/{token}");
        let uri = crate::proxy::upstream_uri(upstream, &path, None)
            .map_err(|_| "no upstream URI for the exchange")?;
        let request = Request::get(uri)
            .body(Either::Right(Full::new(Bytes::new())))
            .map_err(|_| "no request for the exchange")?;
        let inner = &self.inner;
        let response =
            tokio::time::timeout(inner.params.upstream_timeout, inner.client.request(request))
                .await
                .map_err(|_| "the upstream did not answer in time")?
                .map_err(|_| "the upstream could not be reached")?;
        if response.status() != StatusCode::OK {
            return Err("the upstream refused the access token");
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|_| "the upstream's answer was too large or broken off")?
            .to_bytes();
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|_| "the upstream's answer is not a JWT")?;
        let bearer = Zeroizing::new(format!("Bearer {}", answer.token));
        if http::HeaderValue::from_str(&bearer).is_err() {
            return Err("the upstream's JWT cannot go in a header");
        }
        Ok((bearer, answer.exp))
    }
}
