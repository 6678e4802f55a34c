//! `medgate admin follower|uploader …`: credentials for apps that cannot attest, by Nightscout
//! class (`medgate_node::nightscout::profile::credential_scopes`). The secret and share link
//! are printed once, by `create`; nothing else ever shows them.

use anyhow::anyhow;
use clap::Subcommand;
use http::Method;
use medgate_node::nightscout::profile::credential_scopes;
use medgate_proto::admin::{self, CredentialKind};

use super::{AdminApi, summary, table};
use crate::Failure;

#[derive(Subcommand)]
pub(super) enum CredentialCommand {
    /// Make a credential; its secret and share link are printed once.
    Create {
        app_id: String,
        /// Who holds it ("School nurse"); shown in listings and the audit log.
        #[arg(long)]
        name: String,
        /// Nightscout classes, comma-separated (follower: read; uploader: read, data-write).
        #[arg(long, value_delimiter = ',', required = true)]
        classes: Vec<String>,
        /// How long it lasts ("30d", "12h"); default: until revoked.
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// An app's credentials of this kind: id, name, scopes, state; never a secret.
    List { app_id: String },
    /// Revoke a credential; every gateway refuses it within its refresh interval (≤ 5 s).
    Revoke { id: String },
}

pub(super) async fn run(
    api: &AdminApi,
    json: bool,
    kind: CredentialKind,
    command: CredentialCommand,
) -> Result<String, Failure> {
    let kind_name = kind.as_str();
    Ok(match command {
        CredentialCommand::Create {
            app_id,
            name,
            classes,
            expires,
        } => {
            let scopes =
                credential_scopes(kind_name, &classes).map_err(|e| Failure::Usage(anyhow!(e)))?;
            let expires_in_secs = expires
                .map(|text| {
                    humantime::parse_duration(&text)
                        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                        .map_err(|e| Failure::Usage(anyhow!("--expires {text:?}: {e}")))
                })
                .transpose()?;
            let body = admin::CreateCredential {
                kind,
                name: name.clone(),
                scopes: scopes.clone(),
                expires_in_secs,
            };
            let created: admin::CredentialCreated = api
                .send(Method::POST, &format!("/apps/{app_id}/credentials"), &body)
                .await?;
            summary(json, &created, || {
                format!(
                    "{kind_name} {} ({name}) of {app_id}: {}\n\
                     secret (shown once): {}\n\
                     share link: {}\n\
                     expires: {}",
                    created.credential.id,
                    scopes.join(" "),
                    created.secret,
                    created.share_link,
                    created
                        .credential
                        .expires_at
                        .map_or("never (until revoked)".to_string(), |t| t
                            .secs()
                            .to_string()),
                )
            })
        }
        CredentialCommand::List { app_id } => {
            let listed: Vec<admin::Credential> = api
                .call(Method::GET, &format!("/apps/{app_id}/credentials"))
                .await?;
            let mine: Vec<admin::Credential> = listed
                .into_iter()
                .filter(|credential| credential.kind == kind)
                .collect();
            summary(json, &mine, || {
                table(
                    &mine,
                    &["id", "name", "scopes", "state", "created_at", "expires_at"],
                    |c, column| match column {
                        "name" | "id" | "state" => {
                            c[column].as_str().unwrap_or_default().to_string()
                        }
                        _ => c[column].to_string(),
                    },
                )
            })
        }
        CredentialCommand::Revoke { id } => {
            let revoked: admin::CredentialRevoked = api
                .call(Method::POST, &format!("/credentials/{id}/revoke"))
                .await?;
            summary(json, &revoked, || {
                format!("{kind_name} credential {id} revoked")
            })
        }
    })
}
