//! `medgate report postmarket`: what a manufacturer reports after release, built from the
//! store and the audit log, offline (SQLite's WAL lets it run beside a serving node).
//! Writes `report.html` (one static page, see [`html`]) and `metrics.json` (the same figures)
//! into a directory, and with `--pdf` `report.pdf`, printed by a headless Chromium. The audit
//! chain must verify first: a report is evidence only if the log behind it is.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Subcommand;

use medgate_service::postmarket;

use crate::audit::{checkpoint_head, moment, node_checkpoints, open_store_of};
use crate::{Failure, load_config};

mod html;

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
        /// Also print the report to `report.pdf` with a headless Chromium.
        #[arg(long)]
        pdf: bool,
        /// The browser that prints it (default: `chromium`, `chromium-browser` or
        /// `google-chrome` on the PATH).
        #[arg(long, value_name = "PATH", env = "MEDGATE_CHROMIUM")]
        chromium: Option<PathBuf>,
    },
}

/// How long the browser may take to print.
const PDF_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The browser to print with: the one named, else the first known one on the PATH.
fn browser(named: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(path) = named {
        return Ok(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| {
            ["chromium", "chromium-browser", "google-chrome"].map(|name| dir.join(name))
        })
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            Failure::Usage(anyhow!(
                "--pdf needs a Chromium: none on the PATH (apt-get install chromium), or name one with --chromium"
            ))
        })
}

/// Prints `html` (the report's own static page: no script, nothing fetched) to `pdf` with a
/// headless Chromium in a throwaway profile. Its sandbox is off because Chromium refuses it to
/// root, which is who runs it on many servers; the page it renders is medgate's own.
async fn print_pdf(chromium: &Path, html: &Path, pdf: &Path) -> Result<(), Failure> {
    let profile = tempfile::tempdir().map_err(anyhow::Error::from)?;
    let page = url::Url::from_file_path(html)
        .map_err(|()| Failure::Usage(anyhow!("{} is not an absolute path", html.display())))?;
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(page.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(PDF_DEADLINE, run)
        .await
        .map_err(|_| {
            anyhow!(
                "{} did not print the report within a minute",
                chromium.display()
            )
        })?
        .map_err(|e| Failure::Usage(anyhow!("cannot run {}: {e}", chromium.display())))?;
    let printed = std::fs::read(pdf).unwrap_or_default();
    if !status.success() || !printed.starts_with(b"%PDF-") {
        return Err(anyhow!("{} did not print the report to PDF", chromium.display()).into());
    }
    Ok(())
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
        pdf,
        chromium,
    } = command;
    // Before any work: a PDF asked for needs a browser.
    let chromium = pdf.then(|| browser(chromium)).transpose()?;
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
    let (report, chain) =
        postmarket::gather(&*store, from, to, checkpoint.as_ref().map(|c| c.hash()))
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
    if let Some(chromium) = &chromium {
        let out = std::path::absolute(&out).map_err(anyhow::Error::from)?;
        print_pdf(chromium, &out.join("report.html"), &out.join("report.pdf")).await?;
    }
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
