//! `medgate tls`: certificates for medgate's own listeners.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use medgate_trust::pins::Pin;

use crate::Failure;

/// How long a development certificate is valid.
const SELF_SIGNED_DAYS: i64 = 90;

#[derive(Subcommand)]
pub(crate) enum TlsCommand {
    /// Write a self-signed development certificate and its key (ECDSA P-256), and print the
    /// SPKI SHA-256 pin a client would pin it by. Not for production: clients must be told to
    /// trust it.
    SelfSigned {
        /// Host name or IP address the certificate is for (repeat for more).
        #[arg(long = "host", required = true, value_name = "HOST")]
        hosts: Vec<String>,
        /// Folder for `cert.pem` and `key.pem` (created `0700`; existing files are not
        /// overwritten).
        #[arg(long, value_name = "DIR", default_value = "medgate-tls")]
        out: PathBuf,
    },
}

pub(crate) fn run(command: TlsCommand) -> Result<(), Failure> {
    match command {
        TlsCommand::SelfSigned { hosts, out } => self_signed(hosts, &out),
    }
}

fn self_signed(hosts: Vec<String>, out: &Path) -> Result<(), Failure> {
    let mut params = rcgen::CertificateParams::new(hosts)
        .map_err(|e| Failure::Usage(anyhow::anyhow!("--host: {e}")))?;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(SELF_SIGNED_DAYS);
    let key = rcgen::KeyPair::generate().context("generating the key")?;
    let cert = params
        .self_signed(&key)
        .context("signing the certificate")?;

    medgate_store::sqlite::create_private_dir(out)?;
    let cert_path = out.join("cert.pem");
    let key_path = out.join("key.pem");
    // The key first: a failure leaves no certificate without its key.
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;

    println!("certificate: {}", cert_path.display());
    println!("key:         {}", key_path.display());
    println!(
        "SPKI SHA-256 pin: {}",
        Pin::of_spki(&rcgen::PublicKeyData::subject_public_key_info(&key))
    );
    println!(
        "valid for {SELF_SIGNED_DAYS} days; use it in medgate.toml as\n  [server.tls]\n  cert = \"{}\"\n  key = \"{}\"",
        cert_path.display(),
        key_path.display()
    );
    Ok(())
}

/// Creates `path` with `mode`, refusing to replace a file that exists.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failure> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::Usage(anyhow::anyhow!(
                "{} exists; choose another --out or remove it",
                path.display()
            ))
        } else {
            Failure::Refused(anyhow::Error::new(e).context(format!("creating {}", path.display())))
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
