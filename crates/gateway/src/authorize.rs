//! Steps 1–9 of the gateway's checks (the crate's documentation lists them): what makes an
//! [`Authorized`] request, the only kind [`Gateway`]'s proxy forwards.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use medgate_service::replay::ReplayError;
use medgate_service::resource::{self, Refusal, Why};
use medgate_service::shared::{Admission, Cell};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{self, RequestTarget};
use medgate_verify::jws::JwsError;
use medgate_verify::token::{self, AnyToken, TokenError, TokenExpectations, VerifiedToken};

use crate::routes::{self, FailMode, ProofMode};
use crate::{Gateway, Revoked, inject, path};

/// Who a request was admitted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subject {
    /// An attested installation, by its token and proof.
    Installation,
    /// A credential of an app that cannot attest (`crate::credential`).
    Credential,
    /// A partner backend, by its token (`crate::partner`).
    Partner,
}

/// A request that passed every check. Only [`Gateway::authorize`] makes one, and only an
/// `Authorized` request is forwarded.
#[derive(Debug)]
pub struct Authorized {
    /// The installation, the credential (`cred_…`) or the partner (`ptn_…`), as `subject`
    /// says.
    pub(crate) installation_id: String,
    pub(crate) subject: Subject,
    /// Until when what admitted it holds (the token's `exp`; a credential's expiry, or
    /// never), and the release it came from: a tunnel that stays open is closed after.
    pub(crate) expires_at: Option<UnixTime>,
    pub(crate) app_version: Option<String>,
    pub(crate) app_id: String,
    pub(crate) scope: String,
    /// The canonical path the routes were checked against: what the upstream receives.
    pub(crate) path: String,
    /// The proof's replay key and how long it must stay taken.
    pub(crate) replay_key: [u8; 32],
    pub(crate) replay_lifetime: Duration,
    /// The route's choice while the shared state is unreachable.
    pub(crate) redis_down: FailMode,
    /// The upstream credentials the route adds.
    pub(crate) inject: Arc<[inject::Injection]>,
    /// What else the route requires: a signature over the body's digest.
    pub(crate) proof_mode: ProofMode,
    /// The tunnel the route carries, whose events are checked one by one.
    pub(crate) tunnel: Option<routes::Tunnel>,
    /// The installation key that signed the proof (none on a `session-mac` route), and its
    /// thumbprint (the token's `cnf.jkt`).
    pub(crate) key: Option<medgate_proto::PublicJwk>,
    pub(crate) jkt: String,
    /// The installation, as the replay cache files its entries.
    pub(crate) owner: [u8; 32],
}

impl Authorized {
    pub fn installation_id(&self) -> &str {
        &self.installation_id
    }
}

/// What step 5 established: the key that proved possession (none for a session signature),
/// and what the replay cache must remember.
struct Possession {
    key: Option<medgate_proto::PublicJwk>,
    replay_key: [u8; 32],
    acceptable_until: UnixTime,
    /// The refusal's reason should the replay cache have seen it.
    replayed: Why,
}

impl Gateway {
    /// Step 5 on a `session-mac` route: an RFC 9421 `hmac-sha256` signature by the token's
    /// session key (derived again here from the shared secret and the token's `jti`, its
    /// keyid), over the method, the URL as the client addressed it and the token.
    fn session_signature(
        &self,
        parts: &Parts,
        token: &VerifiedToken,
        path: &str,
        now: UnixTime,
    ) -> Result<Possession, Refusal> {
        let inner = &self.inner;
        let refused = |code, detail| Refusal::InvalidSessionSignature(Why::new(code, detail));
        let jti = &token.claims().jti;
        let key = inner
            .params
            .session_secret
            .as_ref()
            .and_then(|secret| secret.session_key(jti))
            .ok_or_else(|| refused("session_unavailable", "this gateway has no session keys"))?;
        let one = |name| {
            resource::single_header(&parts.headers, name)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    refused(
                        "signature_missing",
                        "this route needs one Signature-Input and Signature by the session key",
                    )
                })
        };
        let (input, signature) = (
            one(&crate::signature::SIGNATURE_INPUT)?,
            one(&crate::signature::SIGNATURE)?,
        );
        let target_uri = crate::signature::target_uri(inner, path, parts)?;
        let message = medgate_proto::httpsig::RequestMessage {
            method: parts.method.as_str(),
            target_uri: &target_uri,
            fields: crate::signature::HeaderFields(&parts.headers),
        };
        let verified = medgate_verify::httpsig::verify(
            input,
            signature,
            &message,
            medgate_verify::httpsig::SigningKey::Session(key.as_slice()),
            jti,
            &inner.session_policy,
            now,
        )
        .map_err(|error| {
            Refusal::InvalidSessionSignature(Why::new(error.code(), &error.to_string()))
        })?;
        Ok(Possession {
            key: None,
            replay_key: verified.replay_key(),
            acceptable_until: UnixTime::from_secs(verified.created())
                .plus(inner.session_policy.window.max_age_secs),
            replayed: Why::new(
                "signature_replayed",
                "the signature's nonce was already used",
            ),
        })
    }

    /// Steps 1–8 of the module documentation.
    pub fn authorize(&self, parts: &Parts, now: UnixTime) -> Result<Authorized, Refusal> {
        self.check(parts, None, now).map_err(|(refusal, _)| refusal)
    }

    /// Steps 1–9: [`authorize`](Self::authorize), then the client address's limit and the
    /// shared state — what [`handle`](Self::handle) runs before forwarding.
    pub async fn admit(
        &self,
        parts: &Parts,
        client: IpAddr,
        now: UnixTime,
    ) -> Result<Authorized, Refusal> {
        self.decide(parts, client, now)
            .await
            .map_err(|(refusal, _)| refusal)
    }

    /// Steps 1–8; a refusal comes with the installation when its token verified. The order
    /// puts every check that costs no shared state first: a refused request takes no place in
    /// the replay cache and no one else's rate. `client` is the client's address, for a
    /// partner's allow-list (unknown: a partner with one is refused).
    fn check(
        &self,
        parts: &Parts,
        client: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Authorized, (Refusal, Option<String>)> {
        let inner = &self.inner;
        let anonymous = |refusal: Refusal| (refusal, None);
        // Step 1: one canonical path for the route check, the proof and the upstream.
        let path = path::canonical_path(parts.uri.path()).map_err(|error| {
            anonymous(match error {
                path::PathError::TooLong => Refusal::PathTooLong,
                _ => Refusal::UnsafePath,
            })
        })?;
        let path = path.as_str();
        if parts.uri.query().is_some_and(|q| q.len() > path::MAX_QUERY) {
            return Err(anonymous(Refusal::PathTooLong));
        }
        // A partner backend's Bearer token, then a follower's or uploader's credential, in
        // place of steps 2–6.
        if let Some(admitted) = self.check_partner_bearer(parts, path, client, now) {
            return admitted;
        }
        if let Some(admitted) = self.check_credential(parts, path, now) {
            return admitted.map_err(anonymous);
        }
        // Step 2.
        let token_text = resource::access_token(&parts.headers).map_err(anonymous)?;
        // Step 3.
        let any = self
            .verified_token(token_text, now)
            .map_err(|error| anonymous(Refusal::InvalidToken(error.into())))?;
        let token = match &*any {
            AnyToken::Installation(token) => token,
            AnyToken::Partner(token) => {
                let partner = Some(token.client_id().to_string());
                return self
                    .admit_partner(parts, path, token, false, client, now)
                    .map_err(|refusal| (refusal, partner));
            }
        };
        let installation = token.installation_id().to_string();
        let theirs = |refusal: Refusal| (refusal, Some(installation.clone()));
        // Step 4.
        check_revocation(&inner.revoked.read(), token).map_err(theirs)?;
        // Step 5: possession of the key the token is bound to. The route is looked up first
        // (its proof mode decides how), but refused only at step 6, after the proof.
        let route = routes::find(&inner.params.routes, path, &parts.method, parts.uri.query());
        let possession = match route.map(|route| route.proof()) {
            Some(ProofMode::SessionMac) => self
                .session_signature(parts, token, path, now)
                .map_err(theirs)?,
            _ => {
                let proof_text = resource::dpop_proof(&parts.headers).map_err(theirs)?;
                let uri = crate::signature::htu(inner, path).map_err(theirs)?;
                let target = RequestTarget {
                    method: parts.method.as_str(),
                    uri: &uri,
                };
                let bound = dpop::verify_bound(proof_text, token, target, &inner.params.proof, now)
                    .map_err(|error| theirs(Refusal::InvalidProof(error.into())))?;
                Possession {
                    key: Some(bound.proof().key().clone()),
                    replay_key: bound.proof().replay_key(),
                    acceptable_until: bound
                        .proof()
                        .iat()
                        .plus(inner.params.proof.window.max_age_secs),
                    replayed: Why::new("replayed", "DPoP proof jti was already used"),
                }
            }
        };
        // Step 6.
        let route = route.ok_or_else(|| theirs(Refusal::RouteDenied))?;
        route
            .require_scopes(|scope| token.has_scope(scope))
            .map_err(theirs)?;
        // Step 7: the installation's limit, then the route's own.
        inner
            .limiter
            .check(&installation)
            .and_then(|()| route.check_limit(&installation))
            .map_err(|wait| theirs(Refusal::RateLimited(wait)))?;
        // Step 8: only now does the proof (or the session signature's nonce) take a place in
        // the replay cache, within the installation's share.
        let Possession {
            key,
            replay_key,
            acceptable_until,
            replayed,
        } = possession;
        // The installation's key thumbprint, checked when the token verified.
        let owner_key = token.jkt().digest().unwrap_or([0; 32]);
        inner
            .replays
            .admit(replay_key, owner_key, acceptable_until, now)
            .map_err(|error| {
                theirs(replay_refusal(error, || match key {
                    Some(_) => Refusal::InvalidProof(replayed),
                    None => Refusal::InvalidSessionSignature(replayed),
                }))
            })?;
        Ok(Authorized {
            installation_id: installation.clone(),
            subject: Subject::Installation,
            expires_at: Some(UnixTime::from_secs(token.claims().exp)),
            app_version: Some(token.claims().app_version.clone()),
            app_id: token.app_id().to_string(),
            scope: token.scopes().join(" "),
            path: path.to_string(),
            replay_key,
            replay_lifetime: replay_lifetime(&inner.params.proof, acceptable_until, now),
            redis_down: route.redis_down(&parts.method),
            inject: Arc::clone(route.inject()),
            proof_mode: route.proof(),
            tunnel: route.tunnel(),
            key,
            jkt: token.jkt().as_str().to_string(),
            owner: owner_key,
        })
    }

    /// Steps 1–9: the local checks, then the client address's local limit, then (with
    /// `[redis]`) the cluster-wide limits and replay key. A request these refuse has already
    /// spent its proof's local replay entry: a retry needs a new proof, as every request does.
    pub(crate) async fn decide(
        &self,
        parts: &Parts,
        client: IpAddr,
        now: UnixTime,
    ) -> Result<Authorized, (Refusal, Option<String>)> {
        let inner = &self.inner;
        let authorized = self.check(parts, Some(client), now)?;
        let theirs = |refusal: Refusal| (refusal, Some(authorized.installation_id.clone()));
        // An IPv6 client is its /64, as for connection limits: rotating addresses within it
        // gains nothing.
        let client = medgate_service::client_ip::client_key(client);
        inner
            .address_limiter
            .check(&client)
            .map_err(|wait| theirs(Refusal::RateLimited(wait)))?;
        let Some(shared) = &inner.shared else {
            return Ok(authorized);
        };
        let address = client.to_string();
        let (kind, limit) = match (authorized.subject, &inner.params.partners) {
            (Subject::Partner, Some(partners)) => ("p", partners.rate_limit),
            _ => ("i", inner.params.rate_limit),
        };
        let cells = [
            Cell {
                kind,
                id: &authorized.installation_id,
                limit,
            },
            Cell {
                kind: "a",
                id: &address,
                limit: inner.params.address_rate_limit,
            },
        ];
        let admission = shared
            .admit(&authorized.replay_key, authorized.replay_lifetime, &cells)
            .await;
        inner.metrics.shared_state(match admission {
            Ok(Admission::Admitted) => "admitted",
            Ok(Admission::Replayed) => "replayed",
            Ok(Admission::Limited(_)) => "limited",
            Err(_) if authorized.redis_down == FailMode::Open => "unavailable_open",
            Err(_) => "unavailable_closed",
        });
        match admission {
            Ok(Admission::Admitted) => Ok(authorized),
            Ok(Admission::Replayed) => Err(theirs(Refusal::InvalidProof(Why::new(
                "replayed",
                "DPoP proof jti was already used",
            )))),
            Ok(Admission::Limited(wait)) => Err(theirs(Refusal::RateLimited(wait))),
            Err(_) => match authorized.redis_down {
                FailMode::Open => Ok(authorized),
                FailMode::Closed => Err(theirs(Refusal::SharedUnavailable)),
            },
        }
    }
}

impl Gateway {
    /// Whether what admitted `authorized` still would: its credential is live, or its
    /// installation has not been revoked (for a tunnel that stays open).
    pub(crate) fn still_admitted(&self, authorized: &Authorized) -> bool {
        let now = self.inner.clock.now();
        if authorized.expires_at.is_some_and(|expires| now >= expires) {
            return false;
        }
        match authorized.subject {
            Subject::Credential => {
                return self
                    .inner
                    .credentials
                    .read()
                    .is_live(&authorized.installation_id, now);
            }
            Subject::Partner => {
                return self
                    .inner
                    .partners
                    .read()
                    .contains_key(&authorized.installation_id);
            }
            Subject::Installation => {}
        }
        let revoked = self.inner.revoked.read();
        let release = authorized
            .app_version
            .as_ref()
            .map(|version| (authorized.app_id.clone(), version.clone()));
        !revoked.installations.contains(&authorized.installation_id)
            && !release.is_some_and(|release| revoked.releases.contains(&release))
    }
}

impl Gateway {
    /// Step 3: the token from the cache, or verified (either kind) and cached until `exp`.
    fn verified_token(&self, text: &str, now: UnixTime) -> Result<Arc<AnyToken>, TokenError> {
        let inner = &self.inner;
        let ath = token::access_token_hash(text);
        if let Some(token) = inner.tokens.get(&ath, now) {
            inner.metrics.token_cache(true);
            return Ok(token);
        }
        inner.metrics.token_cache(false);
        let keys = Arc::clone(&inner.keys.read());
        let expect = TokenExpectations {
            issuer: &inner.params.issuer,
            audience: &inner.params.audience,
            leeway_secs: inner.params.token_leeway_secs,
        };
        let verified = Arc::new(token::verify_any(text, &keys, &expect, now)?);
        inner.tokens.insert(Arc::clone(&verified), now);
        Ok(verified)
    }

    /// `Authorization: Bearer` with a partner's token, on a gateway that takes partners:
    /// `None` for every other request (a Bearer value that is no token of ours may be a
    /// credential's exchange token).
    fn check_partner_bearer(
        &self,
        parts: &Parts,
        path: &str,
        client: Option<IpAddr>,
        now: UnixTime,
    ) -> Option<Result<Authorized, (Refusal, Option<String>)>> {
        self.inner.params.partners.as_ref()?;
        let value = resource::single_header(&parts.headers, &http::header::AUTHORIZATION)
            .ok()
            .flatten()?;
        let (scheme, text) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let any = match self.verified_token(text.trim(), now) {
            Ok(any) => any,
            // Not a token of ours at all (a credential's exchange token, say): the next path.
            Err(TokenError::Jws(
                JwsError::AlgorithmNotAllowed
                | JwsError::Malformed(_)
                | JwsError::BadHeader(_)
                | JwsError::TooLarge { .. },
            )) => return None,
            // One of ours that no longer holds (expired, say): its own reason.
            Err(error) => return Some(Err((Refusal::InvalidToken(error.into()), None))),
        };
        let AnyToken::Partner(token) = &*any else {
            return None;
        };
        let partner = Some(token.client_id().to_string());
        Some(
            self.admit_partner(parts, path, token, true, client, now)
                .map_err(|refusal| (refusal, partner)),
        )
    }
}

/// How long a proof's replay key stays taken in the shared state: until the proof's `iat`
/// leaves the window (`acceptable_until`), on the slowest gateway clock the skew allows, plus
/// a second for whole-second clocks.
pub(crate) fn replay_lifetime(
    policy: &dpop::ProofPolicy,
    acceptable_until: UnixTime,
    now: UnixTime,
) -> Duration {
    Duration::from_secs(
        (acceptable_until.secs() - now.secs() + policy.window.max_skew_secs + 1)
            .max(1)
            .unsigned_abs(),
    )
}

/// What the replay cache's refusal is for the client: `replayed` for a proof seen before.
pub(crate) fn replay_refusal(error: ReplayError, replayed: impl FnOnce() -> Refusal) -> Refusal {
    match error {
        ReplayError::Replayed => replayed(),
        ReplayError::ShareExhausted => Refusal::RateLimited(Duration::from_secs(1)),
        ReplayError::Full => Refusal::Overloaded,
    }
}

/// The shared state's replay slot for a request with no proof (a credential, a partner's
/// Bearer token): a fresh random key, which can never collide, held a second.
pub(crate) fn unreplayable_key() -> Result<([u8; 32], Duration), Refusal> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| Refusal::Overloaded)?;
    Ok((key, Duration::from_secs(1)))
}

fn check_revocation(revoked: &Revoked, token: &VerifiedToken) -> Result<(), Refusal> {
    if revoked.installations.contains(token.installation_id()) {
        return Err(Refusal::InvalidToken(Why::new(
            "installation_revoked",
            "the installation has been revoked",
        )));
    }
    let release = (
        token.app_id().to_string(),
        token.claims().app_version.clone(),
    );
    if revoked.releases.contains(&release) {
        return Err(Refusal::InvalidToken(Why::new(
            "release_revoked",
            "the app release has been revoked",
        )));
    }
    Ok(())
}
