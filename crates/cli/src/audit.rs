//! `medgate audit …`: checks run directly against the store, offline or beside a running
//! server (SQLite's WAL lets readers in while the server writes).

use std::path::Path;

use anyhow::anyhow;
use clap::Subcommand;
use medgate_store::Store;
use medgate_store::sqlite::FILE_NAME;

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
        /// The checkpoint key's thumbprint, as recorded when the node first started (base64url:
        /// it may start with `-`).
        #[arg(
            long,
            value_name = "THUMBPRINT",
            requires = "checkpoint",
            allow_hyphen_values = true
        )]
        checkpoint_key: Option<String>,
    },
    /// Delete the entries before the last signed checkpoint in FILE (which must verify, pinned
    /// to the checkpoint key, and be an entry of this chain); what remains still verifies.
    Prune {
        /// The checkpoint file (`<data_dir>/audit-checkpoints`).
        #[arg(long, value_name = "FILE")]
        checkpoint: std::path::PathBuf,
        /// The checkpoint key's thumbprint (required: pruning trusts the checkpoint).
        #[arg(long, value_name = "THUMBPRINT", allow_hyphen_values = true)]
        checkpoint_key: String,
    },
}

pub(crate) async fn run(config: Option<&Path>, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Verify {
            json,
            expect_head,
            checkpoint,
            checkpoint_key,
        } => {
            let expected = match (expect_head.as_deref(), checkpoint) {
                (Some(text), _) => Some(
                    medgate_proto::hex::decode(text.trim())
                        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                        .ok_or_else(|| {
                            Failure::Usage(anyhow!("--expect-head must be 64 hex digits"))
                        })?,
                ),
                (None, Some(path)) => {
                    Some(checkpoint_head(&path, checkpoint_key.as_deref())?.hash())
                }
                (None, None) => None,
            };
            verify(&*open_store(config).await?, json, expected).await
        }
        AuditCommand::Prune {
            checkpoint,
            checkpoint_key,
        } => {
            let store = open_store(config).await?;
            let signed = checkpoint_head(&checkpoint, Some(&checkpoint_key))?;
            // Only a checkpoint of this very chain may anchor what remains.
            match medgate_store::audit_chain_report(&*store, Some(signed.hash())).await? {
                Ok(report) if report.contains_expected => {}
                Ok(_) => {
                    return Err(Failure::Refused(anyhow!(
                        "the audit log does not contain the checkpoint's entry: nothing pruned"
                    )));
                }
                Err(broken) => {
                    return Err(Failure::Refused(anyhow!(
                        "audit entry {} does not verify ({}): nothing pruned",
                        broken.seq,
                        broken.problem
                    )));
                }
            }
            let deleted = store.prune_audit(signed.seq()).await?;
            println!(
                "pruned {deleted} audit entries before entry {}; keep the checkpoint file to verify what remains",
                signed.seq()
            );
            Ok(())
        }
    }
}

/// The store the config names; an embedded database that is not there yet is an error (not
/// a new, empty one).
async fn open_store(config: Option<&Path>) -> Result<std::sync::Arc<dyn Store>, Failure> {
    let config = load_config(config)?;
    let location = config
        .store_location()
        .map_err(|e| Failure::Usage(e.into()))?;
    if let medgate_node::config::StoreLocation::Sqlite(dir) = &location {
        let database = dir.join(FILE_NAME);
        if !database.exists() {
            return Err(Failure::Usage(anyhow!(
                "no medgate database at {}",
                database.display()
            )));
        }
    }
    medgate_node::open_store(&config)
        .await
        .map_err(|e| Failure::Usage(e.into()))
}

async fn verify(store: &dyn Store, json: bool, expected: Option<[u8; 32]>) -> Result<(), Failure> {
    match medgate_store::audit_chain_report(store, expected).await? {
        Ok(report) => {
            let found = report.contains_expected;
            let pruned = report.first_seq > 1;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": found, "entries": report.entries, "head": report.head,
                        "pruned_before": pruned.then_some(report.first_seq),
                        "expected_head_found": expected.map(|_| found)})
                );
            } else if found {
                println!(
                    "audit log verifies: {} entries, head {}",
                    report.entries, report.head
                );
                if pruned {
                    println!(
                        "entries before {} were pruned: the first remaining one is vouched for by the checkpoint used to prune (check with --checkpoint)",
                        report.first_seq
                    );
                }
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

/// The last checkpoint in `path`, once its signature (and pinned key) verify.
fn checkpoint_head(
    path: &Path,
    pinned: Option<&str>,
) -> Result<medgate_verify::checkpoint::VerifiedCheckpoint, Failure> {
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
    Ok(verified)
}
