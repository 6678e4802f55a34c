//! `medgate admin follower|uploader …`: credentials for apps that cannot attest, by Nightscout
//! class (`medgate_node::nightscout::profile::credential_scopes`). The secret and share link
//! are printed once, by `create`; nothing else ever shows them.

use anyhow::anyhow;
use clap::Subcommand;
use http::Method;
use medgate_node::nightscout::profile::credential_scopes;

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
    kind: &'static str,
    command: CredentialCommand,
) -> Result<String, Failure> {
    Ok(match command {
        CredentialCommand::Create {
            app_id,
            name,
            classes,
            expires,
        } => {
            let scopes =
                credential_scopes(kind, &classes).map_err(|e| Failure::Usage(anyhow!(e)))?;
            let expires_in_secs = expires
                .map(|text| {
                    humantime::parse_duration(&text)
                        .map(|d| d.as_secs())
                        .map_err(|e| Failure::Usage(anyhow!("--expires {text:?}: {e}")))
                })
                .transpose()?;
            let body = serde_json::json!({
                "kind": kind,
                "name": name,
                "scopes": scopes,
                "expires_in_secs": expires_in_secs,
            });
            let created = api
                .call(
                    Method::POST,
                    &format!("/apps/{app_id}/credentials"),
                    Some(body),
                )
                .await?;
            summary(json, &created, || {
                format!(
                    "{kind} {} ({name}) of {app_id}: {}\n\
                     secret (shown once): {}\n\
                     share link: {}\n\
                     expires: {}",
                    created["id"].as_str().unwrap_or_default(),
                    scopes.join(" "),
                    created["secret"].as_str().unwrap_or_default(),
                    created["share_link"].as_str().unwrap_or_default(),
                    created["expires_at"]
                        .as_i64()
                        .map_or("never (until revoked)".to_string(), |t| t.to_string()),
                )
            })
        }
        CredentialCommand::List { app_id } => {
            let listed = api
                .call(Method::GET, &format!("/apps/{app_id}/credentials"), None)
                .await?;
            let mine = serde_json::Value::Array(
                listed
                    .as_array()
                    .map(|all| all.iter().filter(|c| c["kind"] == kind).cloned().collect())
                    .unwrap_or_default(),
            );
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
            let revoked = api
                .call(Method::POST, &format!("/credentials/{id}/revoke"), None)
                .await?;
            summary(json, &revoked, || format!("{kind} credential {id} revoked"))
        }
    })
}
