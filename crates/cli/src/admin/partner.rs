//! `medgate admin partner …`: partner backends (SMART Backend Services). A partner holds no
//! secret here: it signs its token requests with a key from its JWKS, given by URL (fetched
//! by the node) or as a file; `create` prints the `client_id` and token endpoint it needs.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use http::Method;

use medgate_proto::admin;

use super::{AdminApi, summary, table};
use crate::Failure;

/// Where a partner's public keys are: exactly one.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(super) struct KeySource {
    /// Its JWKS URL (https; plain http only to this machine).
    #[arg(long)]
    jwks_url: Option<String>,
    /// A JWKS file it handed over.
    #[arg(long)]
    jwks_file: Option<PathBuf>,
}

impl KeySource {
    fn body(self) -> Result<admin::PartnerKeySource, Failure> {
        match (self.jwks_url, self.jwks_file) {
            (Some(url), _) => Ok(admin::PartnerKeySource {
                jwks_url: Some(url),
                jwks: None,
            }),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Failure::Usage(anyhow!("--jwks-file {}: {e}", path.display())))?;
                let jwks: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    Failure::Usage(anyhow!("--jwks-file {} is not JSON: {e}", path.display()))
                })?;
                Ok(admin::PartnerKeySource {
                    jwks_url: None,
                    jwks: Some(jwks),
                })
            }
            (None, None) => Err(Failure::Usage(anyhow!("give --jwks-url or --jwks-file"))),
        }
    }
}

#[derive(Subcommand)]
pub(super) enum PartnerCommand {
    /// Register a partner backend; prints its client_id and the token endpoint.
    Create {
        /// Who it is ("St. Elsewhere clinic EHR"); shown in listings and the audit log.
        name: String,
        #[command(flatten)]
        keys: KeySource,
        /// SMART scopes it may be granted, space- or comma-separated
        /// ("system/Observation.rs system/Patient.read").
        #[arg(long, required = true)]
        scopes: String,
        /// Its tokens' audience, when not this gateway's public URL.
        #[arg(long)]
        audience: Option<String>,
        /// Address blocks it may come from (CIDR); default: any.
        #[arg(long, value_delimiter = ',')]
        ip_allow: Vec<String>,
        /// Issue it only DPoP-bound tokens (RFC 9449).
        #[arg(long)]
        require_dpop: bool,
    },
    /// Every partner: id, name, scopes, state; keys by URL or key ids.
    List,
    /// Disable a partner: no new token, and every gateway refuses its tokens within its
    /// refresh interval (≤ 5 s).
    Disable { id: String },
    /// Replace a partner's keys (a new JWKS URL or file).
    Rotate {
        id: String,
        #[command(flatten)]
        keys: KeySource,
    },
}

pub(super) async fn run(
    api: &AdminApi,
    json: bool,
    command: PartnerCommand,
) -> Result<String, Failure> {
    Ok(match command {
        PartnerCommand::Create {
            name,
            keys,
            scopes,
            audience,
            ip_allow,
            require_dpop,
        } => {
            let scopes: Vec<String> = scopes
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let source = keys.body()?;
            let body = admin::CreatePartner {
                name: name.clone(),
                jwks_url: source.jwks_url,
                jwks: source.jwks,
                scopes: scopes.clone(),
                audience,
                ip_allow,
                require_dpop,
            };
            let created: admin::PartnerCreated = api.send(Method::POST, "/partners", &body).await?;
            summary(json, &created, || {
                format!(
                    "partner {name}\nclient_id: {}\ntoken endpoint: {}\nscopes: {}\nDPoP required: {require_dpop}",
                    created.client_id,
                    created.token_endpoint,
                    scopes.join(" "),
                )
            })
        }
        PartnerCommand::List => {
            let listed: Vec<admin::Partner> = api.call(Method::GET, "/partners").await?;
            summary(json, &listed, || {
                table(
                    &listed,
                    &["id", "name", "scopes", "require_dpop", "state", "keys"],
                    |p, column| match column {
                        "name" | "id" | "state" => {
                            p[column].as_str().unwrap_or_default().to_string()
                        }
                        _ => p[column].to_string(),
                    },
                )
            })
        }
        PartnerCommand::Disable { id } => {
            let disabled: admin::PartnerDisabled = api
                .call(Method::POST, &format!("/partners/{id}/disable"))
                .await?;
            summary(json, &disabled, || format!("partner {id} disabled"))
        }
        PartnerCommand::Rotate { id, keys } => {
            let rotated: admin::PartnerRotated = api
                .send(
                    Method::POST,
                    &format!("/partners/{id}/rotate"),
                    &keys.body()?,
                )
                .await?;
            summary(json, &rotated, || {
                let keys = match (&rotated.keys.jwks_url, &rotated.keys.kids) {
                    (Some(url), _) => url.clone(),
                    (None, Some(kids)) => format!("kids {}", kids.join(", ")),
                    (None, None) => "none".into(),
                };
                format!("partner {id}: keys replaced ({keys})")
            })
        }
    })
}
