//! `medgate admin pins …` and `medgate admin trust …`: the over-the-air pin set and its
//! publication as TUF metadata.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use http::Method;
use medgate_proto::admin;
use medgate_trust::pins::Pin;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::{AdminApi, summary, table};
use crate::Failure;

#[derive(Subcommand)]
pub(super) enum PinsCommand {
    /// Pin a key for a host pattern (`api.example.org`, `*.example.org` one label,
    /// `**.example.org` any depth). Each host needs a backup pin before it is published.
    Add {
        #[arg(long)]
        host: String,
        /// Base64 SHA-256 of the key's SubjectPublicKeyInfo (or `sha256/…`).
        #[arg(long)]
        spki_sha256: String,
    },
    /// Remove one pin of a host, or all of them.
    Remove {
        #[arg(long)]
        host: String,
        #[arg(long)]
        spki_sha256: Option<String>,
    },
    /// Every pinned host and key.
    List,
    /// Print the pin of every certificate in a PEM file (leaf first), to add with `pins add`.
    FromCert { file: PathBuf },
}

#[derive(Subcommand)]
pub(super) enum TrustAdminCommand {
    /// Sign a new release of the pins and managed roots (targets, snapshot, timestamp) with
    /// the online keys.
    Publish,
    /// Each role's latest version and expiry, and the hosts of the managed roots.
    Status,
    /// Managed trust roots (`roots.pem`): the only CAs the SDK trusts for the hosts named,
    /// in place of the phone's store. Published with the next `trust publish`.
    Roots {
        #[command(subcommand)]
        command: RootsCommand,
    },
}

#[derive(Subcommand)]
pub(super) enum RootsCommand {
    /// Set the CA certificates (PEM) and the host patterns they are the only roots for.
    Set {
        file: PathBuf,
        /// A host pattern (`api.example.org`, `*.example.org`, `**.example.org`); repeat.
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
    /// Remove them: the next publication has no roots.pem, and apps use the phone's roots.
    Clear,
}

pub(super) async fn pins(
    api: &AdminApi,
    json: bool,
    command: PinsCommand,
) -> Result<String, Failure> {
    Ok(match command {
        PinsCommand::Add { host, spki_sha256 } => {
            let body = admin::AddPin { host, spki_sha256 };
            let added: admin::Pin = api.send(Method::POST, "/pins", &body).await?;
            summary(json, &added, || {
                format!("pinned {} for {}", added.pin, added.pattern)
            })
        }
        PinsCommand::Remove { host, spki_sha256 } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("host", &host);
            if let Some(pin) = &spki_sha256 {
                query.append_pair("spki_sha256", pin);
            }
            let removed: admin::PinsRemoved = api
                .call(Method::DELETE, &format!("/pins?{}", query.finish()))
                .await?;
            summary(json, &removed, || {
                format!("removed {} pin(s) of {host}", removed.removed)
            })
        }
        PinsCommand::List => {
            let listed: Vec<admin::Pin> = api.call(Method::GET, "/pins").await?;
            summary(json, &listed, || {
                table(&listed, &["pattern", "pin", "created_at"], |p, c| {
                    p[c].to_string()
                })
            })
        }
        PinsCommand::FromCert { file } => {
            let mut lines = Vec::new();
            for cert in CertificateDer::pem_file_iter(&file)
                .with_context(|| format!("reading {}", file.display()))?
            {
                let cert = cert.with_context(|| format!("{} is not PEM", file.display()))?;
                let pin = Pin::of_certificate(&cert)
                    .with_context(|| format!("a certificate in {}", file.display()))?;
                lines.push(pin.to_string());
            }
            if lines.is_empty() {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "{} holds no CERTIFICATE block",
                    file.display()
                )));
            }
            lines.join("\n")
        }
    })
}

pub(super) async fn trust(
    api: &AdminApi,
    json: bool,
    command: TrustAdminCommand,
) -> Result<String, Failure> {
    Ok(match command {
        TrustAdminCommand::Publish => {
            let published: admin::Published = api.call(Method::POST, "/trust/publish").await?;
            summary(json, &published, || {
                format!("published in targets version {}", published.targets_version)
            })
        }
        TrustAdminCommand::Status => {
            let status: admin::TrustStatus = api.call(Method::GET, "/trust").await?;
            summary(json, &status, || {
                let roles = [
                    ("root", &status.root),
                    ("timestamp", &status.timestamp),
                    ("snapshot", &status.snapshot),
                    ("targets", &status.targets),
                ];
                let mut lines: Vec<String> = roles
                    .iter()
                    .map(|(role, file)| match file {
                        None => format!("{role:<9}  (none)"),
                        Some(file) => format!(
                            "{role:<9}  version {}  expires {}",
                            file.version,
                            medgate_service::clock::rfc3339(file.expires_at)
                        ),
                    })
                    .collect();
                lines.push(match &status.managed_roots {
                    Some(roots) => format!("roots.pem  for {}", roots.hosts.join(" ")),
                    None => "roots.pem  (none: the phone's roots)".into(),
                });
                lines.join("\n")
            })
        }
        TrustAdminCommand::Roots {
            command: RootsCommand::Set { file, hosts },
        } => {
            let pem = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let body = admin::SetRoots {
                pem,
                hosts: hosts.clone(),
            };
            let set: admin::RootsSet = api.send(Method::PUT, "/trust/roots", &body).await?;
            summary(json, &set, || {
                format!(
                    "{} root certificate(s) for {}; published with the next `medgate admin trust publish`",
                    set.certificates,
                    hosts.join(" ")
                )
            })
        }
        TrustAdminCommand::Roots {
            command: RootsCommand::Clear,
        } => {
            let cleared: admin::RootsCleared = api.call(Method::DELETE, "/trust/roots").await?;
            summary(json, &cleared, || {
                "managed roots cleared; published with the next `medgate admin trust publish`"
                    .into()
            })
        }
    })
}
