//! `medgate report postmarket`: what a manufacturer reports after release, built from the
//! store and the audit log, offline (SQLite's WAL lets it run beside a serving node).
//! Writes `report.html` (one static page, see [`html`]) and `metrics.json` (the same figures)
//! into a directory. The audit chain must verify first: a report is evidence only if the log
//! behind it is.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Subcommand;

use crate::audit::{checkpoint_head, moment, node_checkpoints, open_store_of};
use crate::{Failure, load_config};

mod html;
mod model;

#[derive(Subcommand)]
pub(crate) enum ReportCommand {
    /// Attestation and threat statistics, release adoption (time from a release to 50 % and
    /// 90 % of the installations), revoked releases still in use and revocations, with the
    /// audit chain head and signed checkpoint it was built from.
    Postmarket {
        /// The first moment included: RFC 3339 or Unix seconds (default: the first entry).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// The first moment no longer included (default: now).
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// The directory to write `report.html` and `metrics.json` into (created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The checkpoint file (default: `<data_dir>/audit-checkpoints` when there is one): the
        /// chain must contain its last checkpoint's entry.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The checkpoint key's thumbprint (as `medgate serve` printed it; it may start with `-`):
        /// the last checkpoint must be signed by it.
        #[arg(long, value_name = "THUMBPRINT", allow_hyphen_values = true)]
        checkpoint_key: Option<String>,
        /// medgate's SBOM (`scripts/sbom` makes it: CycloneDX 1.5 JSON), copied into the report
        /// as `sbom.cdx.json` and summarised in it.
        #[arg(long, value_name = "FILE")]
        sbom: Option<PathBuf>,
    },
}

/// The largest SBOM read.
const MAX_SBOM: u64 = 64 * 1024 * 1024;

/// The number of components of a CycloneDX 1.5 JSON document, or why it is not one.
fn sbom_components(path: &Path) -> Result<usize, Failure> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SBOM).read_to_string(&mut text))
        .map_err(|e| Failure::Usage(anyhow!("cannot read {}: {e}", path.display())))?;
    let bom: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| Failure::Usage(anyhow!("{} is not JSON", path.display())))?;
    if bom["bomFormat"] != "CycloneDX" || bom["specVersion"] != "1.5" {
        return Err(Failure::Usage(anyhow!(
            "{} is not a CycloneDX 1.5 document",
            path.display()
        )));
    }
    Ok(bom["components"].as_array().map_or(0, Vec::len))
}

pub(crate) async fn run(config: Option<&Path>, command: ReportCommand) -> Result<(), Failure> {
    let ReportCommand::Postmarket {
        from,
        to,
        out,
        checkpoint,
        checkpoint_key,
        sbom,
    } = command;
    let sbom = sbom
        .map(|path| sbom_components(&path).map(|components| (path, components)))
        .transpose()?;
    let config = load_config(config)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let from = from.as_deref().map(moment).transpose()?;
    // By default everything so far, this very second included.
    let to = to.as_deref().map(moment).transpose()?.unwrap_or(now + 1);
    // The last checkpoint must verify (under the pinned key, when given), as for `audit verify`.
    let checkpoint = checkpoint
        .or_else(|| node_checkpoints(&config))
        .map(|path| checkpoint_head(&path, checkpoint_key.as_deref()))
        .transpose()?;
    let store = open_store_of(&config).await?;
    // One pass: the chain is checked entry by entry as the figures are counted, so the report
    // says nothing the verified chain does not (a node may append meanwhile; the head says
    // where the report stopped).
    let mut builder = model::Builder::new(from, to);
    let chain = medgate_store::audit_chain_report_visiting(
        &*store,
        checkpoint.as_ref().map(|c| c.hash()),
        |entry| builder.add(entry),
    )
    .await?
    .map_err(|broken| {
        Failure::Refused(anyhow!(
            "the audit log does not verify (entry {}: {}): no report is built on it",
            broken.seq,
            broken.problem
        ))
    })?;
    if let Some(signed) = &checkpoint
        && !chain.contains_expected
    {
        return Err(Failure::Refused(anyhow!(
            "the audit log no longer contains the checkpoint's entry {}: its tail was cut off or the chain rewritten; no report is built on it",
            signed.seq()
        )));
    }
    let provenance = html::Provenance {
        head_seq: i64::try_from(chain.entries).unwrap_or(i64::MAX),
        head_hash: chain.head,
        checkpoint: checkpoint.map(|c| (c.seq(), medgate_proto::hex::encode(&c.hash()))),
        pruned_before: (chain.first_seq > 1).then_some(chain.first_seq),
        generated_at: now,
        sbom_components: sbom.as_ref().map(|(_, components)| *components),
    };
    let mut releases = Vec::new();
    for app in store.list_apps().await? {
        releases.extend(store.list_releases(&app.id).await?);
    }
    let mut installations = Vec::new();
    loop {
        let after = installations
            .last()
            .map(|i: &medgate_store::Installation| i.id.clone());
        let page = store
            .list_installations(None, after.as_deref(), 1000)
            .await?;
        let full = page.len() == 1000;
        installations.extend(page);
        if !full {
            break;
        }
    }
    let report = builder.finish(&releases, &installations);
    std::fs::create_dir_all(&out)
        .map_err(|e| Failure::Usage(anyhow!("cannot create {}: {e}", out.display())))?;
    let write = |name: &str, text: String| {
        std::fs::write(out.join(name), text)
            .map_err(|e| Failure::Usage(anyhow!("cannot write {}: {e}", out.join(name).display())))
    };
    if let Some((path, _)) = &sbom {
        std::fs::copy(path, out.join("sbom.cdx.json"))
            .map_err(|e| Failure::Usage(anyhow!("cannot copy {}: {e}", path.display())))?;
    }
    write("report.html", html::page(&report, &provenance))?;
    let metrics = serde_json::json!({
        "report": report,
        "audit": {
            "head_seq": provenance.head_seq,
            "head_hash": provenance.head_hash,
            "checkpoint": provenance.checkpoint.as_ref().map(|(seq, hash)| serde_json::json!({"seq": seq, "hash": hash})),
        },
        "generated_at": provenance.generated_at,
        "sbom": provenance.sbom_components.map(|components| serde_json::json!({"file": "sbom.cdx.json", "components": components})),
    });
    write(
        "metrics.json",
        serde_json::to_string_pretty(&metrics).map_err(anyhow::Error::from)?,
    )?;
    println!(
        "postmarket report in {}: {} attestations, {} releases, audit head {}",
        out.display(),
        report.attestations.total(),
        report.releases.len(),
        provenance.head_seq
    );
    Ok(())
}
