//! `medgate admin secret …`: an app's operator secrets (what gateway routes inject upstream).
//! A value is read from a file or an environment variable, never from the command line (where
//! `ps` and shell history would keep it), and is never printed.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, Subcommand};
use http::Method;
use medgate_proto::admin;
use zeroize::{Zeroize, Zeroizing};

use super::{AdminApi, summary, table};
use crate::Failure;

/// The largest value read (the server takes 8 KiB).
const MAX_VALUE_BYTES: u64 = 8 * 1024;

#[derive(Subcommand)]
pub(super) enum SecretCommand {
    /// Store a new secret for an app (version 1), sealed under the master key.
    Set {
        app_id: String,
        name: String,
        #[command(flatten)]
        value: ValueSource,
    },
    /// An app's secrets: names, versions, times and the routes that inject them; never values.
    List { app_id: String },
    /// Replace a secret's value with a new version.
    Rotate {
        app_id: String,
        name: String,
        #[command(flatten)]
        value: ValueSource,
    },
    /// Delete a secret; routes injecting it answer 503 from the next gateway refresh.
    Delete { app_id: String, name: String },
}

#[derive(Args)]
#[group(required = true, multiple = false)]
pub(super) struct ValueSource {
    /// Read the value from this file (its bytes, as they are).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Read the value from this environment variable.
    #[arg(long, value_name = "VAR")]
    from_env: Option<String>,
}

impl ValueSource {
    fn read(&self) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let value = match (&self.from_file, &self.from_env) {
            (Some(path), _) => {
                use std::io::Read;
                let mut bytes = Zeroizing::new(Vec::new());
                std::fs::File::open(path)
                    .and_then(|file| file.take(MAX_VALUE_BYTES + 1).read_to_end(&mut bytes))
                    .with_context(|| format!("reading {}", path.display()))?;
                bytes
            }
            (None, Some(variable)) => Zeroizing::new(
                std::env::var(variable)
                    .map_err(|_| Failure::Usage(anyhow!("${variable} is not set (or not UTF-8)")))?
                    .into_bytes(),
            ),
            (None, None) => return Err(Failure::Usage(anyhow!("--from-file or --from-env"))),
        };
        if value.is_empty() || value.len() as u64 > MAX_VALUE_BYTES {
            return Err(Failure::Usage(anyhow!(
                "a secret is 1 to {MAX_VALUE_BYTES} bytes"
            )));
        }
        Ok(value)
    }
}

pub(super) async fn run(
    api: &AdminApi,
    json: bool,
    command: SecretCommand,
) -> Result<String, Failure> {
    let encoded = |value: &[u8]| Zeroizing::new(STANDARD.encode(value));
    Ok(match command {
        SecretCommand::Set {
            app_id,
            name,
            value,
        } => {
            let value = value.read()?;
            let mut body = admin::SetSecret {
                name: name.clone(),
                value: encoded(&value).to_string(),
            };
            let set: Result<admin::SecretVersion, _> = api
                .send(Method::POST, &format!("/apps/{app_id}/secrets"), &body)
                .await;
            body.value.zeroize();
            let set = set?;
            summary(json, &set, || {
                format!("secret {name} of {app_id} stored (version 1, sealed)")
            })
        }
        SecretCommand::List { app_id } => {
            let listed: Vec<admin::Secret> = api
                .call(Method::GET, &format!("/apps/{app_id}/secrets"))
                .await?;
            let columns = [
                "name",
                "version",
                "created_at",
                "updated_at",
                "injected_by_routes",
                "sealed_to_installations",
            ];
            summary(json, &listed, || {
                table(&listed, &columns, |secret, column| match column {
                    "injected_by_routes" => secret[column]
                        .as_array()
                        .map(|routes| {
                            let routes: Vec<&str> =
                                routes.iter().filter_map(|r| r.as_str()).collect();
                            if routes.is_empty() {
                                "-".to_string()
                            } else {
                                routes.join(" ")
                            }
                        })
                        .unwrap_or_default(),
                    _ => secret[column].to_string(),
                })
            })
        }
        SecretCommand::Rotate {
            app_id,
            name,
            value,
        } => {
            let value = value.read()?;
            let mut body = admin::RotateSecret {
                value: encoded(&value).to_string(),
            };
            let rotated: Result<admin::SecretVersion, _> = api
                .send(
                    Method::PUT,
                    &format!("/apps/{app_id}/secrets/{name}"),
                    &body,
                )
                .await;
            body.value.zeroize();
            let rotated = rotated?;
            summary(json, &rotated, || {
                format!(
                    "secret {name} of {app_id} rotated to version {}",
                    rotated.version
                )
            })
        }
        SecretCommand::Delete { app_id, name } => {
            let deleted: admin::SecretDeleted = api
                .call(Method::DELETE, &format!("/apps/{app_id}/secrets/{name}"))
                .await?;
            summary(json, &deleted, || {
                format!("secret {name} of {app_id} deleted")
            })
        }
    })
}
