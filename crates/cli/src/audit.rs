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
        /// A head hash recorded earlier, outside the database (hex): the chain must still
        /// contain it, or its tail was cut off or rewritten (exit 1).
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
    },
}

pub(crate) async fn run(config: Option<&Path>, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Verify { json, expect_head } = command;
    let expected = match expect_head.as_deref() {
        None => None,
        Some(text) => Some(
            medgate_proto::hex::decode(text.trim())
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| Failure::Usage(anyhow!("--expect-head must be 64 hex digits")))?,
        ),
    };
    let config = load_config(config)?;
    let database = config.server.data_dir.join(FILE_NAME);
    if !database.exists() {
        return Err(Failure::Usage(anyhow!(
            "no medgate database at {}",
            database.display()
        )));
    }
    let store = SqliteStore::open(&config.server.data_dir).map_err(|e| Failure::Usage(e.into()))?;
    let walked = match expected {
        Some(expected) => medgate_store::verify_audit_chain_containing(&store, expected).await?,
        None => medgate_store::verify_audit_chain(&store)
            .await?
            .map(|(entries, head)| (entries, head, true)),
    };
    match walked {
        Ok((entries, head, found)) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": found, "entries": entries, "head": head, "expected_head_found": expected.map(|_| found)})
                );
            } else if found {
                println!("audit log verifies: {entries} entries, head {head}");
            }
            if found {
                Ok(())
            } else {
                Err(Failure::Refused(anyhow!(
                    "the audit log verifies but no longer contains the expected head: its tail was cut off or the chain rewritten"
                )))
            }
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
