//! Partner backends (`[gateway.partners]`): servers that got a token from the control plane's
//! token endpoint (SMART Backend Services), sent as `Authorization: Bearer`, or as
//! `Authorization: DPoP` with a proof when the token is bound to a key.
//!
//! In place of steps 4–7 for an installation:
//!
//! 1. The partner is registered and not disabled (as of the last refresh).
//! 2. Possession: a DPoP-bound token needs the `DPoP` scheme and a proof by its key (RFC 9449
//!    §7.1: presented as `Bearer` it is refused); an unbound one is refused with the `DPoP`
//!    scheme, and refused altogether when the partner's policy now requires DPoP.
//! 3. The route says `partners = true`; an app's route never takes a partner's token.
//! 4. The route's scopes are among those the token's SMART scopes give, through the
//!    configured mapping (`[[gateway.partners.scopes]]`).
//! 5. The partner's rate limit and the route's own.
//! 6. A proof takes its place in the replay cache, in the partner's share.
//!
//! The partner's address allow-list is checked right after step 1, before the request spends
//! anything of the partner's. Every accepted request is counted in the audit tally per
//! partner, route and minute (`gateway.partner_uses`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;
use medgate_service::client_ip::Cidr;
use medgate_service::ratelimit::RateLimit;
use medgate_service::resource::{self, Refusal, Why};
use medgate_verify::UnixTime;
use medgate_verify::dpop::{self, RequestTarget};
use medgate_verify::smart_scope::{self, SmartScope};
use medgate_verify::token::VerifiedPartnerToken;

use crate::Gateway;
use crate::authorize::{Authorized, Subject, replay_lifetime, replay_refusal, unreplayable_key};
use crate::routes::{self, ProofMode};

/// `[gateway.partners]`.
#[derive(Debug, Clone)]
pub struct PartnerParams {
    /// What each SMART scope gives on this gateway's routes.
    pub scopes: Vec<ScopeMapping>,
    /// Per partner (in place of the per-installation limit).
    pub rate_limit: RateLimit,
}

/// A SMART scope a token must cover (`system/Observation.rs`), and the route scopes that
/// gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeMapping {
    pub smart: String,
    pub grants: Vec<String>,
}

/// A registered, enabled partner as the gateway needs it.
#[derive(Debug, Clone)]
pub(crate) struct LivePartner {
    pub(crate) name: String,
    /// From any address (no allow-list), or only from these blocks (an entry that does not
    /// parse allows nothing).
    pub(crate) any_address: bool,
    pub(crate) ip_allow: Vec<Cidr>,
    pub(crate) require_dpop: bool,
}

/// The enabled partners, by id, from the store at every refresh.
pub(crate) type Partners = HashMap<String, LivePartner>;

fn refused(code: &'static str, detail: &'static str) -> Refusal {
    Refusal::InvalidToken(Why::new(code, detail))
}

impl Gateway {
    /// The route scopes a partner token's SMART scopes give.
    fn partner_route_scopes(
        &self,
        params: &PartnerParams,
        token: &VerifiedPartnerToken,
    ) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for mapping in &params.scopes {
            let Some(required) = SmartScope::parse(&mapping.smart) else {
                continue;
            };
            if smart_scope::allows(token.scope(), &required) {
                scopes.extend(mapping.grants.iter().cloned());
            }
        }
        scopes
    }

    /// Steps 1–6 of the module documentation for a verified partner token presented with
    /// `bearer` (or the `DPoP` scheme).
    pub(crate) fn admit_partner(
        &self,
        parts: &Parts,
        path: &str,
        token: &VerifiedPartnerToken,
        bearer: bool,
        client: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Authorized, Refusal> {
        let inner = &self.inner;
        let params = inner.params.partners.as_ref().ok_or_else(|| {
            refused(
                "partners_not_accepted",
                "this gateway takes no partner tokens",
            )
        })?;
        // Step 1.
        let partner = inner
            .partners
            .read()
            .get(token.client_id())
            .cloned()
            .ok_or_else(|| {
                refused(
                    "partner_disabled",
                    "the partner is not registered or disabled",
                )
            })?;
        let allowed = partner.any_address
            || client
                .is_some_and(|client| partner.ip_allow.iter().any(|block| block.contains(client)));
        if !allowed {
            return Err(refused(
                "address_not_allowed",
                "this partner may not use its token from this address",
            ));
        }
        let id = token.client_id().to_string();
        // Step 2.
        let proof = match (token.jkt(), bearer) {
            (Some(_), true) => {
                return Err(refused(
                    "dpop_bound",
                    "a DPoP-bound token is sent with the DPoP scheme and a proof",
                ));
            }
            (Some(jkt), false) => {
                let text = resource::dpop_proof(&parts.headers)?;
                let uri = crate::signature::htu(inner, path)?;
                let target = RequestTarget {
                    method: parts.method.as_str(),
                    uri: &uri,
                };
                let proof = dpop::verify_proof_for(
                    text,
                    token.ath(),
                    jkt,
                    target,
                    &inner.params.proof,
                    now,
                )
                .map_err(|error| Refusal::InvalidProof(error.into()))?;
                Some(proof)
            }
            (None, false) => {
                return Err(refused(
                    "not_bound",
                    "a token not bound to a key is sent with the Bearer scheme",
                ));
            }
            (None, true) if partner.require_dpop => {
                return Err(refused(
                    "dpop_required",
                    "this partner's tokens must be DPoP-bound",
                ));
            }
            (None, true) => None,
        };
        // Step 3.
        let route = routes::find(&inner.params.routes, path, &parts.method, parts.uri.query())
            .filter(|route| route.accepts_partners())
            .ok_or(Refusal::RouteDenied)?;
        // Step 4.
        let granted = self.partner_route_scopes(params, token);
        route.require_scopes(|scope| granted.iter().any(|held| held == scope))?;
        // Step 5.
        inner
            .partner_limiter
            .check(&id)
            .and_then(|()| route.check_limit(&id))
            .map_err(Refusal::RateLimited)?;
        // Step 6.
        let owner = medgate_verify::partner::owner_key(&id);
        let (replay_key, replay_lifetime, key) = match proof {
            Some(proof) => {
                let until = proof.iat().plus(inner.params.proof.window.max_age_secs);
                inner
                    .replays
                    .admit(proof.replay_key(), owner, until, now)
                    .map_err(|error| {
                        replay_refusal(error, || {
                            Refusal::InvalidProof(Why::new(
                                "replayed",
                                "DPoP proof jti was already used",
                            ))
                        })
                    })?;
                (
                    proof.replay_key(),
                    replay_lifetime(&inner.params.proof, until, now),
                    Some(proof.key().clone()),
                )
            }
            None => {
                let (key, lifetime) = unreplayable_key()?;
                (key, lifetime, None)
            }
        };
        inner
            .audit
            .count_use(medgate_service::audit::CredentialUse {
                by: medgate_service::audit::UseBy::Partner,
                credential: id.clone(),
                name: partner.name.clone(),
                route: Some(route.pattern().to_string()),
            });
        Ok(Authorized {
            installation_id: id,
            subject: Subject::Partner,
            expires_at: Some(token.expires_at()),
            app_version: None,
            app_id: String::new(),
            scope: granted.join(" "),
            path: path.to_string(),
            replay_key,
            replay_lifetime,
            redis_down: route.redis_down(&parts.method),
            inject: Arc::clone(route.inject()),
            proof_mode: ProofMode::Dpop,
            tunnel: None,
            key,
            jkt: token
                .jkt()
                .map(|jkt| jkt.as_str().to_string())
                .unwrap_or_default(),
            owner,
        })
    }
}
