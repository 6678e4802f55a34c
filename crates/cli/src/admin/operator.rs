//! `medgate admin operator …`: the people who sign in to the console. A password is read from
//! a file, an environment variable or a prompt that does not echo, never from the command
//! line (where `ps` and shell history would keep it), and is never printed.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use http::Method;
use medgate_proto::admin;
use zeroize::{Zeroize, Zeroizing};

use super::{AdminApi, summary, table};
use crate::Failure;

#[derive(Subcommand)]
pub(super) enum OperatorCommand {
    /// Add an operator: a name (a-z 0-9 . _ -), a role, and a password of 12 to 256 characters.
    Add {
        name: String,
        #[arg(long, value_enum)]
        role: Role,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Every operator and their role; never a password.
    List,
    /// Remove an operator; their console sessions end at once.
    Remove { name: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub(super) enum Role {
    /// Reads every console page; changes nothing.
    Viewer,
    /// Also revokes installations.
    Operator,
    Admin,
}

impl From<Role> for admin::OperatorRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => admin::OperatorRole::Viewer,
            Role::Operator => admin::OperatorRole::Operator,
            Role::Admin => admin::OperatorRole::Admin,
        }
    }
}

#[derive(Args)]
#[group(multiple = false)]
pub(super) struct PasswordSource {
    /// Read the password from this file's first line.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
}

impl PasswordSource {
    /// The password; asked for twice, without echo, when neither flag is given.
    fn read(&self) -> Result<Zeroizing<String>, Failure> {
        let password = match (&self.password_file, &self.password_env) {
            (Some(path), _) => {
                let text = Zeroizing::new(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                );
                Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
            }
            (None, Some(variable)) => {
                Zeroizing::new(std::env::var(variable).map_err(|_| {
                    Failure::Usage(anyhow!("${variable} is not set (or not UTF-8)"))
                })?)
            }
            (None, None) => {
                if !std::io::stdin().is_terminal() {
                    return Err(Failure::Usage(anyhow!(
                        "no terminal to ask on: give --password-file or --password-env"
                    )));
                }
                let first = Zeroizing::new(
                    rpassword::prompt_password("Password: ").context("reading the password")?,
                );
                let again = Zeroizing::new(
                    rpassword::prompt_password("Again: ").context("reading the password")?,
                );
                if first != again {
                    return Err(Failure::Usage(anyhow!("the two passwords differ")));
                }
                first
            }
        };
        if !admin::OPERATOR_PASSWORD_CHARS.contains(&password.chars().count()) {
            return Err(Failure::Usage(anyhow!(
                "a password is 12 to 256 characters"
            )));
        }
        Ok(password)
    }
}

pub(super) async fn run(
    api: &AdminApi,
    json: bool,
    command: OperatorCommand,
) -> Result<String, Failure> {
    Ok(match command {
        OperatorCommand::Add {
            name,
            role,
            password,
        } => {
            let mut body = admin::CreateOperator {
                name,
                role: role.into(),
                password: password.read()?.to_string(),
            };
            let added: Result<admin::Operator, _> =
                api.send(Method::POST, "/operators", &body).await;
            body.password.zeroize();
            let added = added?;
            summary(json, &added, || {
                format!(
                    "operator {} added as {}: they sign in at /console on the admin listener",
                    added.name,
                    added.role.as_str()
                )
            })
        }
        OperatorCommand::List => {
            let listed: Vec<admin::Operator> = api.call(Method::GET, "/operators").await?;
            summary(json, &listed, || {
                table(&listed, &["name", "role", "created_at"], |row, column| {
                    row[column]
                        .as_str()
                        .map_or_else(|| row[column].to_string(), str::to_string)
                })
            })
        }
        OperatorCommand::Remove { name } => {
            if !medgate_proto::wire::names::is_operator_name(&name) {
                return Err(Failure::Usage(anyhow!(
                    "an operator's name is 1-64 characters of a-z 0-9 . _ -"
                )));
            }
            let removed: admin::OperatorRemoved = api
                .call(Method::DELETE, &format!("/operators/{name}"))
                .await?;
            summary(json, &removed, || format!("operator {name} removed"))
        }
    })
}
