//! The `medgate` command. A thin layer over the libraries: parse arguments, load the config,
//! call the library, print, choose an exit code (0 success, 1 a refusal or a failed check,
//! 2 a usage or configuration error).

mod admin;
mod audit;
mod demo;
mod inspect;
mod nightscout;
mod provenance;
mod report;
mod selfcheck;
mod store;
mod tls;
mod trust;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use medgate_node::config::Config;
use medgate_node::{Node, NodeOptions};

#[derive(Parser)]
#[command(
    name = "medgate",
    version,
    about = "Attestation, DPoP-bound tokens and a verifying gateway for medical-device apps"
)]
struct Cli {
    /// Config file (TOML). Without one, every setting has its default.
    #[arg(long, global = true, env = "MEDGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane and the gateway until interrupted.
    Serve,
    /// Manage apps, releases, installations and signing keys through the admin API.
    Admin(admin::AdminArgs),
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Start a node with a sample upstream, run genuine and hostile clients, print what
    /// happened, then keep serving until interrupted.
    Demo(demo::DemoArgs),
    /// Decode and verify attestation evidence offline; print the decoded fields and verdict as
    /// JSON (exit 0 only for a passing verdict).
    Inspect {
        #[command(subcommand)]
        command: inspect::InspectCommand,
    },
    /// Put medgate in front of a Nightscout site.
    Nightscout {
        #[command(subcommand)]
        command: nightscout::NightscoutCommand,
    },
    /// Run the SDK's runtime threat detectors against this process and print the signals
    /// (exit 1 when the last pass saw a threat).
    Selfcheck(selfcheck::SelfcheckArgs),
    /// Reports for regulators and the security team, built offline from the store.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Move a deployment between stores.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// The TUF repository's root, signed with keys kept offline (pins are published with
    /// `medgate admin pins` and `medgate admin trust publish`).
    Trust {
        #[command(subcommand)]
        command: trust::TrustCommand,
    },
    /// Certificates for medgate's own listeners.
    Tls {
        #[command(subcommand)]
        command: tls::TlsCommand,
    },
    /// Re-verify, offline, a signed write an upstream kept: the installation key's signature
    /// over it and its body's digest (exit 0 only when both hold).
    VerifyProvenance(provenance::ProvenanceArgs),
    /// Apply the store's pending schema migrations (`[store] url`; a node also does at start)
    /// and exit.
    Migrate,
}

/// A failure and the exit code it deserves.
pub(crate) enum Failure {
    /// A check failed or the server refused (exit 1).
    Refused(anyhow::Error),
    /// Bad usage or configuration (exit 2).
    Usage(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::Refused(error.into())
    }
}

pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    match path {
        Some(path) => Config::load(path).map_err(|e| Failure::Usage(e.into())),
        None => Ok(Config::default()),
    }
}

fn init_logging() {
    let mut directives = std::env::var("MEDGATE_LOG")
        .ok()
        .filter(|text| !text.trim().is_empty())
        .unwrap_or_else(|| "info".into());
    // rustls warns at every handshake a client starts oddly (an IP address as SNI, as wrk and
    // curl send): any client could fill the log with it. Unless the filter names rustls.
    if !directives.contains("rustls") {
        directives.push_str(",rustls=error");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    // Colour only for a person at a terminal: escape codes in a log file or journal are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

async fn migrate(config_path: Option<&Path>) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let location = config
        .store_location()
        .map_err(|e| Failure::Usage(e.into()))?;
    // Opening applies what is pending (SQLite creates its folder, 0700, as it opens).
    medgate_node::open_store(&config)
        .await
        .map_err(|e| Failure::Usage(e.into()))?;
    println!(
        "the store is at the current schema ({})",
        match location {
            medgate_node::config::StoreLocation::Sqlite(_) => "SQLite",
            medgate_node::config::StoreLocation::Postgres(_) => "PostgreSQL",
        }
    );
    Ok(())
}

async fn serve(config_path: Option<&Path>) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let master_key = std::env::var("MEDGATE_MASTER_KEY")
        .ok()
        .filter(|k| !k.is_empty());
    let node = Node::start(
        config,
        NodeOptions {
            master_key,
            ..NodeOptions::default()
        },
    )
    .await
    .map_err(|e| Failure::Usage(e.into()))?;
    println!(
        "medgate control plane on {} (issuer {})",
        node.server_url(),
        node.issuer()
    );
    println!(
        "medgate gateway on {} (public URL {})",
        node.gateway_url(),
        node.public_url()
    );
    println!("medgate admin API and metrics on {}", node.admin_url());
    println!(
        "audit checkpoints in {} and at {}/v1/audit/checkpoint, signed by key {}",
        node.data_dir()
            .join(medgate_node::checkpoint::CHECKPOINT_FILE)
            .display(),
        node.server_url(),
        node.checkpoint_key_thumbprint()
    );
    println!(
        "admin token: {}",
        node.data_dir()
            .join(medgate_node::ADMIN_TOKEN_FILE)
            .display()
    );
    serve_until_shutdown(&node).await;
    println!("shutting down");
    node.shutdown(std::time::Duration::from_secs(10)).await;
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM; each SIGHUP meanwhile reloads the listeners' certificates.
#[cfg(unix)]
async fn serve_until_shutdown(node: &Node) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        tracing::warn!("SIGHUP cannot be handled here: certificates reload only on restart");
        return wait_for_shutdown_signal().await;
    };
    let shutdown = wait_for_shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = hangup.recv() => {
                // A failure is logged where it happened; the old certificates stay in use.
                if let Ok(listeners) = node.reload_tls() {
                    tracing::info!(listeners, "SIGHUP: TLS certificates reloaded");
                }
            }
        }
    }
}

#[cfg(not(unix))]
async fn serve_until_shutdown(_node: &Node) {
    wait_for_shutdown_signal().await;
}

/// Ctrl-C, or SIGTERM where there is one.
pub(crate) async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config = cli.config.as_deref();
    let result = match cli.command {
        Command::Serve => serve(config).await,
        Command::Admin(args) => admin::run(config, args).await,
        Command::Audit { command } => audit::run(config, command).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Inspect { command } => inspect::run(command).await,
        Command::Nightscout { command } => nightscout::run(command),
        Command::Selfcheck(args) => selfcheck::run(args).await,
        Command::Report { command } => report::run(config, command).await,
        Command::Store { command } => store::run(config, command).await,
        Command::Tls { command } => tls::run(command),
        Command::Trust { command } => trust::run(config, command).await,
        Command::VerifyProvenance(args) => provenance::run(args),
        Command::Migrate => migrate(config).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Refused(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(error)) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    #[test]
    fn a_checkpoint_key_thumbprint_may_start_with_a_hyphen() {
        for args in [
            &[
                "audit",
                "verify",
                "--checkpoint",
                "f",
                "--checkpoint-key",
                "-e3xK",
            ][..],
            &[
                "audit",
                "prune",
                "--checkpoint",
                "f",
                "--checkpoint-key",
                "-e3xK",
            ][..],
        ] {
            let parsed =
                Cli::try_parse_from(std::iter::once("medgate").chain(args.iter().copied()));
            assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
        }
    }

    #[test]
    fn an_installation_id_may_start_with_a_hyphen() {
        let parsed = Cli::try_parse_from([
            "medgate",
            "admin",
            "installation",
            "revoke",
            "-0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4",
        ]);
        assert!(parsed.is_ok(), "{:?}", parsed.err().map(|e| e.to_string()));
    }
}
