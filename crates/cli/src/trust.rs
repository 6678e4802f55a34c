//! `medgate trust …`: the TUF repository's root, signed on the operator's machine with keys
//! kept offline. These commands open the store themselves (`[store]`, `MEDGATE_MASTER_KEY`
//! for the online keys); nodes serve the new root within 30 seconds.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use medgate_server::trust::{self, OfflineRoot, RootChange};
use medgate_store::NewAuditEntry;
use medgate_store::seal::Sealer;
use medgate_verify::UnixTime;

use crate::{Failure, load_config};

#[derive(Subcommand)]
pub(crate) enum TrustCommand {
    /// Create the repository: a root key written to DIR (keep it offline), online keys sealed
    /// in the store, root version 1. Then `medgate admin trust publish`.
    Init(Offline),
    /// Sign the next root version with the root key in DIR: rotate the root key or online keys.
    SignRoot {
        #[command(flatten)]
        offline: Offline,
        /// A new root key replaces the current one (both sign this version).
        #[arg(long)]
        new_root_key: bool,
        /// New online keys for these roles (comma-separated: timestamp,snapshot,targets).
        #[arg(long, value_delimiter = ',', value_parser = ["timestamp", "snapshot", "targets"])]
        rotate: Vec<String>,
    },
}

#[derive(Args)]
pub(crate) struct Offline {
    /// The folder of offline root keys (created 0700; each key a 0600 file).
    #[arg(long, value_name = "DIR")]
    offline_root: PathBuf,
}

fn entry(kind: &str, now: UnixTime, detail: serde_json::Value) -> NewAuditEntry {
    NewAuditEntry {
        at: now,
        kind: kind.into(),
        actor: "operator".into(),
        subject: "trust".into(),
        detail,
    }
}

pub(crate) async fn run(config_path: Option<&Path>, command: TrustCommand) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let store = medgate_node::open_store(&config)
        .await
        .map_err(|e| Failure::Usage(e.into()))?;
    let sealer = match std::env::var("MEDGATE_MASTER_KEY") {
        Ok(key) if !key.is_empty() => {
            Sealer::from_master_key(&key).map_err(|e| Failure::Usage(e.into()))?
        }
        _ => Sealer::plain(),
    };
    let now = UnixTime::from_secs(time::OffsetDateTime::now_utc().unix_timestamp());
    let refused = |error: trust::TrustError| Failure::Refused(error.into());
    match command {
        TrustCommand::Init(Offline { offline_root }) => {
            let version = trust::init(
                &*store,
                &sealer,
                &OfflineRoot::new(&offline_root),
                now,
                &entry("trust.init", now, serde_json::json!({"root_version": 1})),
            )
            .await
            .map_err(refused)?;
            println!(
                "trust repository created: root version {version}, its key in {} (move that folder offline)",
                offline_root.display()
            );
        }
        TrustCommand::SignRoot {
            offline,
            new_root_key,
            rotate,
        } => {
            let change = RootChange {
                new_root_key,
                rotate_timestamp: rotate.iter().any(|r| r == "timestamp"),
                rotate_snapshot: rotate.iter().any(|r| r == "snapshot"),
                rotate_targets: rotate.iter().any(|r| r == "targets"),
            };
            let version = trust::sign_root(
                &*store,
                &sealer,
                &OfflineRoot::new(&offline.offline_root),
                change,
                now,
                &entry(
                    "trust.root",
                    now,
                    serde_json::json!({"new_root_key": new_root_key, "rotated": rotate}),
                ),
            )
            .await
            .map_err(refused)?;
            println!("root version {version} signed");
        }
    }
    Ok(())
}
