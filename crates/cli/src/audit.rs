//! `medgate audit …`: checks run directly against the store, offline or beside a running
//! server (SQLite's WAL lets readers in while the server writes).

use std::path::Path;

use anyhow::anyhow;
use clap::Subcommand;
use medgate_store::sqlite::{FILE_NAME, SqliteStore};

use crate::{Failure, load_config};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every link of the hash chain; name the first entry that does not verify.
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(config: Option<&Path>, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Verify { json } = command;
    let config = load_config(config)?;
    let database = config.server.data_dir.join(FILE_NAME);
    if !database.exists() {
        return Err(Failure::Usage(anyhow!(
            "no medgate database at {}",
            database.display()
        )));
    }
    let store = SqliteStore::open(&config.server.data_dir).map_err(|e| Failure::Usage(e.into()))?;
    match medgate_store::verify_audit_chain(&store).await? {
        Ok((entries, head)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "entries": entries, "head": head})
                );
            } else {
                println!("audit log verifies: {entries} entries, head {head}");
            }
            Ok(())
        }
        Err(broken) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "first_bad_entry": broken.seq, "problem": broken.problem})
                );
            }
            Err(Failure::Refused(anyhow!(
                "audit entry {} does not verify: {}",
                broken.seq,
                broken.problem
            )))
        }
    }
}
