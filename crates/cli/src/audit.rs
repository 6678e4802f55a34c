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
        #[arg(long, value_name = "HASH", conflicts_with = "checkpoint")]
        expect_head: Option<String>,
        /// A file of signed checkpoints (`<data_dir>/audit-checkpoints`, shipped elsewhere):
        /// the last one must verify, and the chain must still contain its head.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
        /// The checkpoint key's thumbprint, as recorded when the node first started.
        #[arg(long, value_name = "THUMBPRINT", requires = "checkpoint")]
        checkpoint_key: Option<String>,
    },
}

pub(crate) async fn run(config: Option<&Path>, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::Verify {
        json,
        expect_head,
        checkpoint,
        checkpoint_key,
    } = command;
    let expected = match (expect_head.as_deref(), checkpoint) {
        (Some(text), _) => Some(
            medgate_proto::hex::decode(text.trim())
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or_else(|| Failure::Usage(anyhow!("--expect-head must be 64 hex digits")))?,
        ),
        (None, Some(path)) => Some(checkpoint_head(&path, checkpoint_key.as_deref())?),
        (None, None) => None,
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

/// The head hash the last checkpoint in `path` signs, once its signature (and pinned key)
/// verify.
fn checkpoint_head(path: &Path, pinned: Option<&str>) -> Result<[u8; 32], Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(anyhow!("cannot read {}: {e}", path.display())))?;
    let last = text
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .ok_or_else(|| Failure::Usage(anyhow!("{} holds no checkpoint", path.display())))?;
    let pinned = pinned.map(|t| medgate_proto::Thumbprint::from_wire(t.trim().to_string()));
    let verified = medgate_verify::checkpoint::verify(last, pinned.as_ref())
        .map_err(|e| Failure::Refused(anyhow!("the checkpoint does not verify: {e}")))?;
    Ok(verified.hash())
}
