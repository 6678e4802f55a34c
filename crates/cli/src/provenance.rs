//! `medgate verify-provenance`: re-verifies, offline, a signed write an upstream kept.
//!
//! The request file is JSON, as an upstream stores what the gateway forwarded on a
//! `dpop+signature` route:
//!
//! ```json
//! {"method": "POST", "target_uri": "https://gw.example.org/api/v1/treatments",
//!  "headers": {"signature-input": "…", "signature": "…", "content-digest": "…",
//!              "x-medgate-key": "<installation id>", "x-medgate-authorization": "DPoP …"},
//!  "body_base64": "…"}
//! ```
//!
//! `target_uri` is the URL the app addressed (the gateway's public URL, path and query). The
//! key is the installation's public JWK (`GET /v1/installations/{id}/jwk` answers it). Checks:
//! the key is the one `X-Medgate-Key` and the signature's `keyid` name, the signature verifies
//! over the stored components (whenever it was made: `created` is reported, not judged), and
//! the body is the one `Content-Digest` names. Prints the verdict as JSON; exit 0 only when
//! every check passed.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::Args;
use medgate_proto::PublicJwk;
use medgate_verify::httpsig::{StoredRequest, verify_stored};

use crate::Failure;

/// The largest request file read.
const MAX_FILE: u64 = 16 * 1024 * 1024;

#[derive(Args)]
pub(crate) struct ProvenanceArgs {
    /// The stored request (JSON, see above).
    #[arg(long, value_name = "FILE")]
    request: PathBuf,
    /// The installation's public key: a JWK, or the answer of
    /// `GET /v1/installations/{id}/jwk` (`{"jwk": …}`).
    #[arg(long, value_name = "FILE")]
    jwk: PathBuf,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(Failure::Usage(anyhow!("{} is too large", path.display())));
    }
    Ok(bytes)
}

pub(crate) fn run(args: ProvenanceArgs) -> Result<(), Failure> {
    let stored: StoredRequest = serde_json::from_slice(&read(&args.request)?)
        .map_err(|e| Failure::Usage(anyhow!("the request file: {e}")))?;
    let key_file: serde_json::Value = serde_json::from_slice(&read(&args.jwk)?)
        .map_err(|e| Failure::Usage(anyhow!("the key file: {e}")))?;
    let jwk: PublicJwk =
        serde_json::from_value(key_file.get("jwk").unwrap_or(&key_file).clone())
            .map_err(|e| Failure::Usage(anyhow!("the key file is not a public JWK: {e}")))?;
    let mut report = verify_stored(&stored, &jwk);
    // The control plane's answer says whether the installation has been revoked since: a
    // write its key signed is then not to be trusted, signature or not.
    if key_file.get("revoked").and_then(serde_json::Value::as_bool) == Some(true) {
        report.verified = false;
        report
            .failures
            .push("the installation has been revoked".into());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    if report.verified {
        Ok(())
    } else {
        Err(Failure::Refused(anyhow!(
            "the request's provenance does not verify"
        )))
    }
}
