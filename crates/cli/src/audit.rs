//! `medgate audit …`: checks run directly against the store, offline or beside a running
//! server (SQLite's WAL lets readers in while the server writes).

use std::path::Path;

use anyhow::anyhow;
use clap::Subcommand;
use medgate_store::audit_export::{self, Format, Header};
use medgate_store::sqlite::FILE_NAME;
use medgate_store::{AuditEntry, Store, each_audit_entry};

use crate::{Failure, load_config};

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// Check every link of the hash chain; name the first entry that does not verify. With
    /// `--file`, check an export instead (no database needed).
    Verify {
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// An export written by `medgate audit export` (either format).
        #[arg(long, value_name = "FILE", conflicts_with_all = ["expect_head", "checkpoint"])]
        file: Option<std::path::PathBuf>,
        /// A head hash recorded earlier, outside the database (hex): the chain must still
        /// contain it, or its tail was cut off or rewritten (exit 1).
        #[arg(long, value_name = "HASH", conflicts_with = "checkpoint")]
        expect_head: Option<String>,
        /// A file of signed checkpoints (`<data_dir>/audit-checkpoints`, shipped elsewhere):
        /// the last one must verify, and the chain must still contain its head.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
        /// The checkpoint key's thumbprint, as recorded when the node first started (base64url:
        /// it may start with `-`); with `--checkpoint` or `--file`.
        #[arg(long, value_name = "THUMBPRINT", allow_hyphen_values = true)]
        checkpoint_key: Option<String>,
    },
    /// Write the entries recorded from `--from` until `--to` (a contiguous range of the chain)
    /// with what proves them: the hash before the range, the head, and the latest signed
    /// checkpoint inside it. JSON Lines or CEF for a SIEM; `audit verify --file` (or the
    /// README's recipe, in any language) checks it offline.
    Export {
        /// The first moment included: RFC 3339 or Unix seconds (default: the first entry).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// The first moment no longer included (default: now).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        #[arg(long, value_parser = ["jsonl", "cef"], default_value = "jsonl")]
        format: String,
        /// Where to write (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// The checkpoint file (default: `<data_dir>/audit-checkpoints` when there is one).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
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
            file: Some(file),
            json,
            checkpoint_key,
            ..
        } => verify_export(&file, json, checkpoint_key.as_deref()),
        AuditCommand::Export {
            from,
            to,
            format,
            out,
            checkpoint,
        } => {
            let config = load_config(config)?;
            let checkpoint = checkpoint.or_else(|| node_checkpoints(&config));
            let range = (
                from.as_deref().map(moment).transpose()?.unwrap_or(i64::MIN),
                to.as_deref().map(moment).transpose()?.unwrap_or(i64::MAX),
            );
            let format = if format == "cef" {
                Format::Cef
            } else {
                Format::Jsonl
            };
            let store = open_store_of(&config).await?;
            export(
                &*store,
                range,
                format,
                out.as_deref(),
                checkpoint.as_deref(),
            )
            .await
        }
        AuditCommand::Verify {
            file: None,
            json,
            expect_head,
            checkpoint,
            checkpoint_key,
        } => {
            if checkpoint_key.is_some() && checkpoint.is_none() {
                return Err(Failure::Usage(anyhow!(
                    "--checkpoint-key needs --checkpoint or --file"
                )));
            }
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
    open_store_of(&load_config(config)?).await
}

pub(crate) async fn open_store_of(
    config: &medgate_node::config::Config,
) -> Result<std::sync::Arc<dyn Store>, Failure> {
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
    medgate_node::open_store(config)
        .await
        .map_err(|e| Failure::Usage(e.into()))
}

/// The node's own checkpoint file, `<data_dir>/audit-checkpoints`, when there is one.
pub(crate) fn node_checkpoints(
    config: &medgate_node::config::Config,
) -> Option<std::path::PathBuf> {
    let file = config
        .server
        .data_dir
        .join(medgate_node::checkpoint::CHECKPOINT_FILE);
    file.exists().then_some(file)
}

/// RFC 3339 or Unix seconds.
pub(crate) fn moment(text: &str) -> Result<i64, Failure> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs);
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|moment| moment.unix_timestamp())
        .map_err(|_| Failure::Usage(anyhow!("{text:?} is neither RFC 3339 nor Unix seconds")))
}

/// Two passes: the range (first and last entry recorded in `[from, to)`, contiguous), then
/// the entries themselves, streamed.
async fn export(
    store: &dyn Store,
    (from, to): (i64, i64),
    format: Format,
    out: Option<&Path>,
    checkpoints: Option<&Path>,
) -> Result<(), Failure> {
    let signed = match checkpoints {
        Some(path) => signed_checkpoints(path)?,
        None => Vec::new(),
    };
    let mut range: Option<(AuditEntry, AuditEntry)> = None;
    // The latest checkpoint that signs an entry of the range as this chain has it.
    let mut checkpoint: Option<(i64, &str)> = None;
    each_audit_entry::<Failure>(store, 0, |entry| {
        if entry.at.secs() >= to {
            return Ok(false);
        }
        if entry.at.secs() >= from || range.is_some() {
            if let Some((_, line)) = signed.iter().find(|(checkpoint, _)| {
                checkpoint.seq() == entry.seq && checkpoint.hash() == entry.hash
            }) && checkpoint.is_none_or(|(seq, _)| seq < entry.seq)
            {
                checkpoint = Some((entry.seq, line.as_str()));
            }
            match &mut range {
                Some((_, last)) => *last = entry,
                None => range = Some((entry.clone(), entry)),
            }
        }
        Ok(true)
    })
    .await?;
    let (first, last) = range.ok_or_else(|| {
        Failure::Refused(anyhow!("no audit entries were recorded in that time range"))
    })?;
    let checkpoint = checkpoint.map(|(_, line)| line.to_string());
    let header = Header::of(&first, &last, checkpoint.as_deref());
    let mut writer: Box<dyn std::io::Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| Failure::Usage(anyhow!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let failed = |e: std::io::Error| Failure::Usage(anyhow!("cannot write the export: {e}"));
    audit_export::write_header(&mut writer, format, &header).map_err(failed)?;
    each_audit_entry::<Failure>(store, first.seq - 1, |entry| {
        if entry.seq > last.seq {
            return Ok(false);
        }
        audit_export::write_entry(&mut writer, format, &entry).map_err(failed)?;
        Ok(entry.seq < last.seq)
    })
    .await?;
    writer.flush().map_err(failed)?;
    if out.is_some() {
        eprintln!(
            "exported audit entries {} to {}, head {}{}",
            first.seq,
            last.seq,
            header.head_hash,
            match &checkpoint {
                Some(_) => ", with a signed checkpoint inside the range",
                None => ", without a signed checkpoint inside the range",
            }
        );
    }
    Ok(())
}

/// The checkpoints in `path` whose signatures verify, with their lines.
fn signed_checkpoints(
    path: &Path,
) -> Result<Vec<(medgate_verify::checkpoint::VerifiedCheckpoint, String)>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(anyhow!("cannot read {}: {e}", path.display())))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter_map(|line| {
            medgate_verify::checkpoint::verify(line, None)
                .ok()
                .map(|signed| (signed, line.to_string()))
        })
        .collect())
}

fn verify_export(path: &Path, json: bool, pinned: Option<&str>) -> Result<(), Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::Usage(anyhow!("cannot read {}: {e}", path.display())))?;
    let pinned = pinned.map(|t| medgate_proto::Thumbprint::from_wire(t.trim().to_string()));
    match audit_export::verify(&mut std::io::BufReader::new(file), pinned.as_ref()) {
        Ok(verified) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "export": verified, "checkpoint_key_pinned": pinned.is_some()})
                );
            } else {
                println!(
                    "export verifies ({}): audit entries {} to {}, head {}",
                    verified.format, verified.first_seq, verified.last_seq, verified.head_hash
                );
                match (verified.checkpoint_seq, &pinned) {
                    (Some(seq), Some(_)) => println!(
                        "entries up to {seq} are vouched for by a checkpoint signed with the pinned key"
                    ),
                    (Some(seq), None) => println!(
                        "entries up to {seq} are vouched for by a checkpoint; pin its key (--checkpoint-key) to know whose"
                    ),
                    (None, _) => println!(
                        "no signed checkpoint inside the range: the export is consistent, not vouched for"
                    ),
                }
            }
            Ok(())
        }
        Err(error) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "problem": error.to_string()})
                );
            }
            Err(Failure::Refused(anyhow!(
                "the export does not verify: {error}"
            )))
        }
    }
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
pub(crate) fn checkpoint_head(
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
