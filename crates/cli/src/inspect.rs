//! `medgate inspect …`: decode and verify attestation evidence offline, for support triage.
//! Roots, expectations and the verification instant come from the command line; the decoded
//! fields and the verdict are printed as JSON. Exit 0 only for a passing verdict.
//!
//! Input files may be PEM, DER, raw CBOR, or the same bytes in base64 or base64url.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::Subcommand;
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self as android, AnchorKind, AndroidRoots};
use medgate_verify::android::revocation::RevocationList;
use medgate_verify::apple::{self, AttestationExpectations, DecodedAttestation};
use medgate_verify::platform::{self, AndroidPolicy, PlatformFacts};
use medgate_verify::play_integrity::{self, Expectations, PlayIntegrityKeys, RequestBinding};
use medgate_verify::roots;
use medgate_verify::x509::{self, Certificate, PublicKey, TrustAnchor};

use crate::Failure;

#[derive(Subcommand)]
pub(crate) enum InspectCommand {
    /// An Android key attestation chain (leaf first).
    AndroidChain {
        file: PathBuf,
        /// The verification instant, RFC 3339.
        #[arg(long)]
        at: String,
        /// The expected attestationChallenge, hex.
        #[arg(long)]
        challenge_hex: Option<String>,
        /// Evaluate the app's platform policy, as the server does: the package name the
        /// attestationApplicationId must contain. Without it only the chain is judged.
        #[arg(long)]
        package: Option<String>,
        /// A registered signing-certificate SHA-256 (hex); repeatable.
        #[arg(long = "signing-digest")]
        signing_digests: Vec<String>,
        /// The policy's minimum key security level.
        #[arg(long, value_parser = ["software", "trusted_environment", "strong_box"], default_value = "trusted_environment")]
        min_security_level: String,
        /// Do not require deviceLocked (the server's --allow-unlocked-bootloader).
        #[arg(long)]
        allow_unlocked_bootloader: bool,
        /// Do not require verifiedBootState Verified (the server's --allow-unverified-boot).
        #[arg(long)]
        allow_unverified_boot: bool,
        /// Refuse devices whose hardware-attested OS patch is older than this many months.
        #[arg(long, value_name = "MONTHS")]
        max_patch_age_months: Option<u32>,
        /// A revocation status list (JSON) to check serials against.
        #[arg(long)]
        revocation_list: Option<PathBuf>,
        /// An extra trusted root certificate (PEM or DER); repeatable.
        #[arg(long = "root")]
        roots: Vec<PathBuf>,
    },
    /// An Apple App Attest attestation object.
    AppleAttestation {
        file: PathBuf,
        /// The clientDataHash the app passed to attestKey, hex.
        #[arg(long)]
        client_data_hash_hex: String,
        /// TEAMID.bundle.id
        #[arg(long)]
        app_id: String,
        /// The verification instant, RFC 3339.
        #[arg(long)]
        at: String,
        /// The key id the app sent (base64); default: the one the object attests.
        #[arg(long)]
        key_id: Option<String>,
        /// Require this environment.
        #[arg(long, value_parser = ["production", "development"])]
        environment: Option<String>,
        /// An extra trusted root certificate (PEM or DER); repeatable.
        #[arg(long = "root")]
        roots: Vec<PathBuf>,
    },
    /// An Apple App Attest assertion.
    AppleAssertion {
        file: PathBuf,
        /// The attested public key (SPKI PEM or DER).
        #[arg(long)]
        public_key: PathBuf,
        /// The clientDataHash the app passed to generateAssertion, hex.
        #[arg(long)]
        client_data_hash_hex: String,
        /// TEAMID.bundle.id
        #[arg(long)]
        app_id: String,
        /// The counter stored from the key's last accepted assertion.
        #[arg(long, default_value_t = 0)]
        previous_counter: u32,
    },
    /// A Play Integrity token (decrypted and verified with the app's response keys).
    PlayIntegrity {
        file: PathBuf,
        /// The app's base64 AES-256 response decryption key (Play Console).
        #[arg(long, env = "MEDGATE_PLAY_DECRYPTION_KEY", hide_env_values = true)]
        decryption_key: String,
        /// The app's base64 DER EC P-256 response verification key (Play Console).
        #[arg(long, env = "MEDGATE_PLAY_VERIFICATION_KEY")]
        verification_key: String,
        /// Check requestDetails: this package name, the binding below and freshness at --at.
        #[arg(long)]
        package: Option<String>,
        /// The expected requestHash (standard requests).
        #[arg(long, conflicts_with = "nonce")]
        request_hash: Option<String>,
        /// The expected nonce (classic requests).
        #[arg(long)]
        nonce: Option<String>,
        /// The instant to judge freshness at, RFC 3339 (with --package).
        #[arg(long)]
        at: Option<String>,
        /// How old the verdict's request timestamp may be, in seconds.
        #[arg(long, default_value_t = 300)]
        max_age_secs: i64,
    },
}

fn instant(text: &str) -> Result<UnixTime, Failure> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Failure::Usage(anyhow!("--at {text:?} is not RFC 3339: {e}")))?;
    Ok(UnixTime::from_secs(parsed.unix_timestamp()))
}

fn hex(text: &str, what: &str) -> Result<Vec<u8>, Failure> {
    medgate_proto::hex::decode(text.trim())
        .ok_or_else(|| Failure::Usage(anyhow!("{what} must be hex")))
}

/// The bytes of a file that holds binary data, or the same data in base64 or base64url.
fn binary(path: &Path) -> Result<Vec<u8>, Failure> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(Failure::Usage)?;
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let looks_base64 = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_' | b'='));
    if looks_base64
        && let Ok(decoded) = STANDARD
            .decode(&text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
    {
        return Ok(decoded);
    }
    Ok(bytes)
}

/// Certificates from PEM, DER (one or several concatenated) or base64 DER.
fn certificates(path: &Path) -> Result<Vec<Vec<u8>>, Failure> {
    let raw = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(Failure::Usage)?;
    let text = String::from_utf8_lossy(&raw);
    if text.contains("-----BEGIN CERTIFICATE-----") {
        return x509::pem_blocks(&text, "CERTIFICATE")
            .map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())));
    }
    let der = binary(path)?;
    let certs =
        x509::split_der(&der).map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())))?;
    Ok(certs.into_iter().map(<[u8]>::to_vec).collect())
}

fn anchors(paths: &[PathBuf]) -> Result<Vec<TrustAnchor>, Failure> {
    let mut out = Vec::new();
    for path in paths {
        for (i, der) in certificates(path)?.iter().enumerate() {
            let cert = Certificate::from_der(der, i)
                .map_err(|e| Failure::Usage(anyhow!("--root {}: {e}", path.display())))?;
            out.push(TrustAnchor::from_certificate(
                path.display().to_string(),
                &cert,
            ));
        }
    }
    Ok(out)
}

fn report(mut value: serde_json::Value, errors: Vec<String>) -> Result<(), Failure> {
    let pass = errors.is_empty();
    value["verdict"] = if pass { "pass" } else { "fail" }.into();
    value["errors"] = errors.into();
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    if pass {
        Ok(())
    } else {
        Err(Failure::Refused(anyhow!("verdict: fail")))
    }
}

pub(crate) async fn run(command: InspectCommand) -> Result<(), Failure> {
    match command {
        InspectCommand::AndroidChain {
            file,
            at,
            challenge_hex,
            package,
            signing_digests,
            min_security_level,
            allow_unlocked_bootloader,
            allow_unverified_boot,
            max_patch_age_months,
            revocation_list,
            roots: extra,
        } => {
            let now = instant(&at)?;
            let chain = certificates(&file)?;
            let challenge = challenge_hex
                .as_deref()
                .map(|h| hex(h, "--challenge-hex"))
                .transpose()?;
            let mut roots = AndroidRoots::default();
            roots.hardware.extend(anchors(&extra)?);
            let list = match &revocation_list {
                Some(path) => {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))
                        .map_err(Failure::Usage)?;
                    Some(
                        RevocationList::parse(&bytes)
                            .map_err(|e| Failure::Usage(anyhow!("{}: {e}", path.display())))?,
                    )
                }
                None => None,
            };
            // The same policy document the server stores for the platform.
            let policy: Option<AndroidPolicy> = match package {
                Some(package) => Some(
                    serde_json::from_value(serde_json::json!({
                        "package_name": package,
                        "signing_cert_digests": signing_digests,
                        "min_security_level": min_security_level,
                        "require_locked_bootloader": !allow_unlocked_bootloader,
                        "require_verified_boot": !allow_unverified_boot,
                        "max_patch_age_months": max_patch_age_months,
                    }))
                    .map_err(|e| Failure::Usage(anyhow!("policy: {e}")))?,
                ),
                None => None,
            };
            let mut decoded = serde_json::to_value(
                android::describe(&chain).map_err(|e| Failure::Refused(e.into()))?,
            )
            .unwrap_or_default();
            let mut errors = Vec::new();
            match android::verify(&chain, &roots, list.as_ref(), challenge.as_deref(), now) {
                Err(error) => {
                    decoded["error_code"] = error.code().into();
                    errors.push(error.to_string());
                }
                Ok(verified) => {
                    decoded["anchor"] = serde_json::to_value(verified.anchor()).unwrap_or_default();
                    if verified.anchor() == AnchorKind::Software {
                        errors.push(
                            "software attestation: an AOSP software root proves nothing".into(),
                        );
                    }
                    if let PublicKey::Other { algorithm } = verified.leaf_key() {
                        decoded["leaf_key_note"] = format!("attested key algorithm {algorithm} is not usable as an installation key").into();
                    }
                    // Steps 1–3 of the platform policy, by the same code as the server.
                    if let Some(policy) = &policy {
                        let facts = PlatformFacts::android(&verified, None, policy, now);
                        let standing = platform::identity_standing(
                            facts.identities(),
                            &policy.registered_identities(),
                            &[],
                            false,
                            false,
                        );
                        let outcome = platform::evaluate(&facts, standing, policy.on_failure);
                        decoded["policy"] = serde_json::json!({
                            "integrity_level": outcome.level(),
                            "hardware_key": outcome.hardware_key(),
                            "version_code": outcome.version_code(),
                            "rejections": outcome.rejections(),
                            "degradations": outcome.degradations(),
                        });
                        errors.extend(
                            outcome
                                .rejections()
                                .iter()
                                .map(|reason| format!("policy: {reason}")),
                        );
                    }
                }
            }
            report(decoded, errors)
        }
        InspectCommand::AppleAttestation {
            file,
            client_data_hash_hex,
            app_id,
            at,
            key_id,
            environment,
            roots: extra,
        } => {
            let now = instant(&at)?;
            let object = binary(&file)?;
            let client_data_hash = hex(&client_data_hash_hex, "--client-data-hash-hex")?;
            let decoded =
                DecodedAttestation::decode(&object).map_err(|e| Failure::Refused(e.into()))?;
            let mut report_value = serde_json::to_value(decoded.report()).unwrap_or_default();
            let key_id = match key_id {
                Some(text) => STANDARD
                    .decode(text.trim())
                    .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim()))
                    .map_err(|_| Failure::Usage(anyhow!("--key-id is not base64")))?,
                None => report_value["key_id_sha256_hex"]
                    .as_str()
                    .map(|h| hex(h, "key id"))
                    .transpose()?
                    .unwrap_or_default(),
            };
            let mut anchors_list = roots::apple_app_attest();
            anchors_list.extend(anchors(&extra)?);
            let expect = AttestationExpectations {
                app_id: &app_id,
                client_data_hash: &client_data_hash,
                key_id: &key_id,
            };
            let mut errors = Vec::new();
            match apple::verify_attestation(&decoded, &expect, &anchors_list, now) {
                Err(error) => {
                    report_value["error_code"] = error.code().into();
                    errors.push(error.to_string());
                }
                Ok(verified) => {
                    let actual = serde_json::to_value(verified.environment()).unwrap_or_default();
                    if environment
                        .as_deref()
                        .is_some_and(|wanted| actual != wanted)
                    {
                        errors.push(format!(
                            "environment is {actual}, not {}",
                            environment.unwrap_or_default()
                        ));
                    }
                }
            }
            report(report_value, errors)
        }
        InspectCommand::AppleAssertion {
            file,
            public_key,
            client_data_hash_hex,
            app_id,
            previous_counter,
        } => {
            let assertion = binary(&file)?;
            let text = std::fs::read_to_string(&public_key).unwrap_or_default();
            let spki = match x509::pem_blocks(&text, "PUBLIC KEY") {
                Ok(mut blocks) if !blocks.is_empty() => blocks.remove(0),
                _ => binary(&public_key)?,
            };
            let point = match PublicKey::from_spki_der(&spki) {
                Ok(PublicKey::P256(point)) => point,
                _ => {
                    return Err(Failure::Usage(anyhow!(
                        "--public-key must be an EC P-256 public key"
                    )));
                }
            };
            let client_data_hash = hex(&client_data_hash_hex, "--client-data-hash-hex")?;
            match apple::verify_assertion(
                &assertion,
                &point,
                &app_id,
                &client_data_hash,
                previous_counter,
            ) {
                Ok(verified) => report(serde_json::json!({"counter": verified.counter()}), vec![]),
                Err(error) => report(
                    serde_json::json!({"error_code": error.code()}),
                    vec![error.to_string()],
                ),
            }
        }
        InspectCommand::PlayIntegrity {
            file,
            decryption_key,
            verification_key,
            package,
            request_hash,
            nonce,
            at,
            max_age_secs,
        } => {
            let token = String::from_utf8(
                std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))
                    .map_err(Failure::Usage)?,
            )
            .map_err(|_| Failure::Usage(anyhow!("the token file is not text")))?;
            let keys = PlayIntegrityKeys::from_console(&decryption_key, &verification_key)
                .map_err(|e| Failure::Usage(e.into()))?;
            let verdict = match play_integrity::decrypt_and_verify(token.trim(), &keys) {
                Ok(verdict) => verdict,
                Err(error) => return report(serde_json::json!({}), vec![error.to_string()]),
            };
            let mut errors = Vec::new();
            if let Some(package) = &package {
                let binding = match (&request_hash, &nonce) {
                    (Some(hash), _) => RequestBinding::RequestHash(hash),
                    (None, Some(nonce)) => RequestBinding::Nonce(nonce),
                    (None, None) => {
                        return Err(Failure::Usage(anyhow!(
                            "--package needs --request-hash or --nonce"
                        )));
                    }
                };
                let now = instant(
                    at.as_deref()
                        .ok_or_else(|| Failure::Usage(anyhow!("--package needs --at")))?,
                )?;
                let expect = Expectations {
                    package_name: package,
                    request_binding: binding,
                    max_age_ms: max_age_secs * 1000,
                    max_future_skew_ms: 60_000,
                };
                if let Err(error) =
                    play_integrity::check_request(&verdict, &expect, now.secs() * 1000)
                {
                    errors.push(error.to_string());
                }
            }
            report(serde_json::to_value(&verdict).unwrap_or_default(), errors)
        }
    }
}
