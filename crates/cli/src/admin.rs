//! `medgate admin …`: the admin API from the command line. The admin token is read from
//! `<data_dir>/admin.token` unless `--token-file` says otherwise.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::{Args, Subcommand};
use http::Method;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use medgate_proto::admin;
use medgate_proto::policy::SdkEvidence;
use medgate_proto::time::UnixTime;
use medgate_proto::wire::SignalKind;
use medgate_sdk::client::{HttpClient, HttpResponse};
use medgate_service::clock::Clock as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Failure, load_config};

mod credential;
mod operator;
mod partner;
mod pins;
mod secret;

#[derive(Args)]
pub(crate) struct AdminArgs {
    /// The admin API's URL. Default: http://<admin.listen> from the config.
    #[arg(long, env = "MEDGATE_SERVER", value_name = "URL")]
    server: Option<String>,
    /// The admin token file. Default: <server.data_dir>/admin.token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print the server's JSON answer instead of a summary.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Apps and their attestation policy.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Registered builds of an app.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Installations that have attested.
    Installation {
        #[command(subcommand)]
        command: InstallationCommand,
    },
    /// Token-signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Hardware-backed evidence an app accepts: Apple App Attest, Android Key Attestation,
    /// Play Integrity.
    Platform {
        #[command(subcommand)]
        command: PlatformCommand,
    },
    /// One-time codes that enrol a self-built app (Loop, AndroidAPS, xDrip+).
    Enrolment {
        #[command(subcommand)]
        command: EnrolmentCommand,
    },
    /// SPKI pins per host, published to apps over the air as TUF metadata.
    Pins {
        #[command(subcommand)]
        command: pins::PinsCommand,
    },
    /// The TUF repository apps refresh their pins from (`medgate trust` signs its root).
    Trust {
        #[command(subcommand)]
        command: pins::TrustAdminCommand,
    },
    /// Upstream credentials the gateway injects, so that no app holds them.
    Secret {
        #[command(subcommand)]
        command: secret::SecretCommand,
    },
    /// Read-only credentials for followers that cannot attest (a caregiver's Nightscout
    /// share link, a watch face).
    Follower {
        #[command(subcommand)]
        command: credential::CredentialCommand,
    },
    /// Credentials for legacy uploaders that cannot attest (xDrip+, nightscout-cli): readings
    /// and device status only.
    Uploader {
        #[command(subcommand)]
        command: credential::CredentialCommand,
    },
    /// Partner backends (clinics' record systems, research partners): OAuth client
    /// credentials with a signed client assertion (SMART Backend Services).
    Partner {
        #[command(subcommand)]
        command: partner::PartnerCommand,
    },
    /// The people who sign in to the console (`/console` on the admin listener), and their
    /// roles.
    Operator {
        #[command(subcommand)]
        command: operator::OperatorCommand,
    },
    /// Attestation decisions and gateway outcomes counted per period (the telemetry series).
    Telemetry {
        /// How far back (e.g. 1h, 24h, 7d).
        #[arg(long, default_value = "24h")]
        since: String,
        /// The period each row sums (a whole number of minutes).
        #[arg(long, default_value = "1h")]
        step: String,
    },
}

#[derive(Subcommand)]
enum PlatformCommand {
    /// Set (replace) an app's policy for one platform.
    Set {
        app_id: String,
        #[command(subcommand)]
        platform: PlatformSpec,
    },
    /// Show an app's platform policies.
    Show { app_id: String },
    /// Store an app's Play Integrity response keys (from Play Console), sealed.
    PlayKeys {
        app_id: String,
        /// The base64 AES-256 decryption key.
        #[arg(long, env = "MEDGATE_PLAY_DECRYPTION_KEY", hide_env_values = true)]
        decryption_key: String,
        /// The base64 DER EC P-256 verification key.
        #[arg(long, env = "MEDGATE_PLAY_VERIFICATION_KEY")]
        verification_key: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnFailureArg {
    Reject,
    Degrade,
}

impl OnFailureArg {
    fn name(self) -> &'static str {
        match self {
            OnFailureArg::Reject => "reject",
            OnFailureArg::Degrade => "degrade",
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SecurityLevelArg {
    Software,
    TrustedEnvironment,
    StrongBox,
}

#[derive(Subcommand)]
enum PlatformSpec {
    /// Apple App Attest.
    AppleAppAttest {
        /// A registered build, TEAMID.bundle.id (repeat for several).
        #[arg(long = "app-id")]
        app_ids: Vec<String>,
        /// Accept keys from Apple's development environment.
        #[arg(long)]
        allow_development: bool,
        /// Accept self-built apps enrolled with a one-time code.
        #[arg(long)]
        allow_enrolment: bool,
        /// Whether a failing check rejects or degrades to the limited scopes.
        #[arg(long, value_enum, default_value = "reject")]
        on_failure: OnFailureArg,
    },
    /// Android Key Attestation.
    AndroidKeyAttestation {
        /// The app's Android package name (applicationId).
        #[arg(long)]
        package: String,
        /// SHA-256 of a registered signing certificate, hex (repeat for several).
        #[arg(long = "signing-digest")]
        signing_digests: Vec<String>,
        /// The lowest attestation and KeyMint security level accepted.
        #[arg(long, value_enum, default_value = "trusted-environment")]
        min_security_level: SecurityLevelArg,
        /// Accept devices whose bootloader is unlocked (RootOfTrust deviceLocked false).
        #[arg(long)]
        allow_unlocked_bootloader: bool,
        /// Accept a verified boot state other than Verified.
        #[arg(long)]
        allow_unverified_boot: bool,
        /// Refuse devices whose OS security patch is older than this many months.
        #[arg(long, value_name = "MONTHS")]
        max_patch_age_months: Option<u32>,
        /// Accept self-built apps enrolled with a one-time code.
        #[arg(long)]
        allow_enrolment: bool,
        /// Whether a failing check rejects or degrades to the limited scopes.
        #[arg(long, value_enum, default_value = "reject")]
        on_failure: OnFailureArg,
    },
    /// Google Play Integrity.
    PlayIntegrity {
        /// The app's Android package name (applicationId).
        #[arg(long)]
        package: String,
        /// SHA-256 of a registered signing certificate, hex (repeat for several).
        #[arg(long = "signing-digest")]
        signing_digests: Vec<String>,
        /// A device label every verdict must carry (repeat; default MEETS_DEVICE_INTEGRITY).
        #[arg(long = "require-label")]
        required_labels: Vec<String>,
        /// Accept builds Play does not recognise (self-built apps).
        #[arg(long)]
        allow_unrecognized: bool,
        /// Require Play to report the user got the app from Play (LICENSED).
        #[arg(long)]
        require_licensed: bool,
        /// Fail on Play Protect risk or apps capturing or controlling the screen.
        #[arg(long)]
        check_environment: bool,
        /// How old a verdict's request timestamp may be, in seconds.
        #[arg(long, default_value_t = 300)]
        max_age_secs: u32,
        /// Accept Play's test responses (license testers), degraded and at self_reported.
        #[arg(long)]
        allow_test_responses: bool,
        /// Accept self-built apps enrolled with a one-time code.
        #[arg(long)]
        allow_enrolment: bool,
        /// Whether a failing check rejects or degrades to the limited scopes.
        #[arg(long, value_enum, default_value = "reject")]
        on_failure: OnFailureArg,
    },
}

impl PlatformSpec {
    fn name_and_policy(self) -> (&'static str, serde_json::Value) {
        match self {
            PlatformSpec::AppleAppAttest {
                app_ids,
                allow_development,
                allow_enrolment,
                on_failure,
            } => (
                "apple-app-attest",
                serde_json::json!({"app_ids": app_ids, "allow_development": allow_development,
                    "allow_enrolment": allow_enrolment, "on_failure": on_failure.name()}),
            ),
            PlatformSpec::AndroidKeyAttestation {
                package,
                signing_digests,
                min_security_level,
                allow_unlocked_bootloader,
                allow_unverified_boot,
                max_patch_age_months,
                allow_enrolment,
                on_failure,
            } => (
                "android-key-attestation",
                serde_json::json!({"package_name": package, "signing_cert_digests": signing_digests,
                    "min_security_level": match min_security_level {
                        SecurityLevelArg::Software => "software",
                        SecurityLevelArg::TrustedEnvironment => "trusted_environment",
                        SecurityLevelArg::StrongBox => "strong_box",
                    },
                    "require_locked_bootloader": !allow_unlocked_bootloader,
                    "require_verified_boot": !allow_unverified_boot,
                    "max_patch_age_months": max_patch_age_months,
                    "allow_enrolment": allow_enrolment, "on_failure": on_failure.name()}),
            ),
            PlatformSpec::PlayIntegrity {
                package,
                signing_digests,
                required_labels,
                allow_unrecognized,
                require_licensed,
                check_environment,
                max_age_secs,
                allow_test_responses,
                allow_enrolment,
                on_failure,
            } => {
                let labels = if required_labels.is_empty() {
                    vec!["MEETS_DEVICE_INTEGRITY".to_string()]
                } else {
                    required_labels
                };
                (
                    "play-integrity",
                    serde_json::json!({"package_name": package, "signing_cert_digests": signing_digests,
                        "required_device_labels": labels, "require_play_recognized": !allow_unrecognized,
                        "require_licensed": require_licensed, "check_environment": check_environment,
                        "max_age_secs": max_age_secs, "allow_test_responses": allow_test_responses,
                        "allow_enrolment": allow_enrolment, "on_failure": on_failure.name()}),
                )
            }
        }
    }
}

#[derive(Subcommand)]
enum EnrolmentCommand {
    /// Create a one-time enrolment code (shown once).
    Create {
        app_id: String,
        /// How long the code can be used (e.g. 7d, 24h).
        #[arg(long, default_value = "7d")]
        ttl: String,
    },
    /// List an app's enrolments and what they enrolled.
    List { app_id: String },
    /// Revoke an enrolment (by its code's SHA-256, as `list` shows it): its build is no longer
    /// admitted and the installation it enrolled is revoked.
    Revoke { app_id: String, code_sha256: String },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Register an app.
    Create {
        app_id: String,
        /// How far SDK evidence (the app's own word) is trusted: `allow` grants the scopes,
        /// `limited` only the limited scopes, `deny` refuses it.
        #[arg(long, value_parser = parse_sdk_evidence, default_value = "limited")]
        sdk_evidence: SdkEvidence,
        /// Refuse SDK evidence: only hardware-backed platforms attest (`--sdk-evidence deny`).
        #[arg(long, conflicts_with = "sdk_evidence")]
        hardware_only: bool,
        /// Scopes a clean installation gets, space-separated.
        #[arg(long)]
        scopes: String,
        /// Scopes granted when a degrade signal is present, space-separated.
        #[arg(long, default_value = "")]
        limited_scopes: String,
        /// Signals that reject, comma-separated (debugger,hook,injected_library,root,emulator,tamper).
        #[arg(long, value_delimiter = ',')]
        reject_on: Option<Vec<String>>,
        /// Signals that degrade to the limited scopes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        degrade_on: Option<Vec<String>>,
        /// Refuse (as a hook) evidence without its detection pass's coverage: an SDK whose
        /// detectors were replaced reports none (App Attest evidence exempt).
        #[arg(long)]
        require_coverage: bool,
    },
    /// List apps.
    List,
}

#[derive(Subcommand)]
enum ReleaseCommand {
    /// Register a build: its version and the SHA-256 of its binary.
    Add {
        app_id: String,
        #[arg(long)]
        version: String,
        /// SHA-256 of the binary, for SDK evidence (hardware platforms attest the signer instead).
        #[arg(long, value_name = "HEX")]
        sdk_binary_sha256: Option<String>,
        /// The build's Android versionCode: Android Key Attestation and Play Integrity attest it,
        /// and refuse a build whose attested code is not its release's.
        #[arg(long, value_name = "N")]
        version_code: Option<i64>,
    },
    /// Revoke every build of a version.
    Revoke { app_id: String, version: String },
    /// List an app's releases.
    List { app_id: String },
}

#[derive(Subcommand)]
enum InstallationCommand {
    /// List installations, of one app or all, a page at a time in id order.
    List {
        app_id: Option<String>,
        /// Start after this installation id (the last of the previous page).
        #[arg(long, allow_hyphen_values = true)]
        after: Option<String>,
        /// Installations per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Revoke an installation; the gateway refuses it within seconds. (An id may start with
    /// `-`: thumbprints are base64url.)
    Revoke {
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a signing key that signs from now on; the old one stays published until its tokens expire.
    Rotate,
    /// List signing keys.
    List,
}

/// Signal kinds by name, as `--reject-on` and `--degrade-on` take them.
fn signal_kinds(names: &[String]) -> Result<std::collections::BTreeSet<SignalKind>, Failure> {
    names
        .iter()
        .map(|name| {
            SignalKind::from_name(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = SignalKind::ALL.iter().map(|kind| kind.as_str()).collect();
                Failure::Usage(anyhow!(
                    "{name:?} is not a signal kind (one of {})",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

fn parse_sdk_evidence(text: &str) -> Result<SdkEvidence, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| "one of allow, limited, deny".to_string())
}

/// The URL for a listen address: unspecified addresses are reached on loopback.
fn url_of(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// The admin API over HTTP.
pub(crate) struct AdminApi {
    http: HttpClient,
    base: String,
    token: String,
}

impl AdminApi {
    pub(crate) fn new(base: String, token: String) -> Self {
        AdminApi {
            http: HttpClient::default(),
            base,
            token,
        }
    }

    /// A request without a body.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
    ) -> Result<T, Failure> {
        self.exchange(method, path, Bytes::new()).await
    }

    /// A request with a JSON body.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Failure> {
        let body = serde_json::to_vec(body).context("the request does not serialise")?;
        self.exchange(method, path, Bytes::from(body)).await
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, Failure> {
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .context("the admin token is not a valid header value")?;
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let url = format!("{}/v1/admin{path}", self.base);
        let response = self.http.send(method, &url, headers, body).await?;
        if !response.status.is_success() {
            return Err(Failure::Refused(refusal(&response)));
        }
        serde_json::from_slice(&response.body)
            .with_context(|| {
                format!("{url} answered with something other than the admin API's JSON")
            })
            .map_err(Failure::from)
    }
}

fn refusal(response: &HttpResponse) -> anyhow::Error {
    match response.problem() {
        Some(problem) => anyhow!(
            "{} {}{}",
            response.status.as_u16(),
            problem.title,
            problem.detail.map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => anyhow!("the server answered {}", response.status),
    }
}

pub(crate) async fn run(config_path: Option<&Path>, args: AdminArgs) -> Result<(), Failure> {
    let config = load_config(config_path)?;
    let token_file = args
        .token_file
        .unwrap_or_else(|| config.server.data_dir.join(medgate_node::ADMIN_TOKEN_FILE));
    let token = std::fs::read_to_string(&token_file)
        .with_context(|| {
            format!(
                "cannot read the admin token from {} (has `medgate serve` run yet?)",
                token_file.display()
            )
        })
        .map_err(Failure::Usage)?
        .trim()
        .to_string();
    let api = AdminApi::new(
        args.server.unwrap_or_else(|| url_of(config.admin.listen)),
        token,
    );
    let json = args.json;
    let answer = match args.command {
        AdminCommand::App {
            command:
                AppCommand::Create {
                    app_id,
                    sdk_evidence,
                    hardware_only,
                    scopes,
                    limited_scopes,
                    reject_on,
                    degrade_on,
                    require_coverage,
                },
        } => {
            let body = admin::CreateApp {
                app_id,
                scopes: words(&scopes),
                limited_scopes: words(&limited_scopes),
                reject_on: reject_on.as_deref().map(signal_kinds).transpose()?,
                degrade_on: degrade_on.as_deref().map(signal_kinds).transpose()?,
                sdk_evidence: if hardware_only {
                    SdkEvidence::Deny
                } else {
                    sdk_evidence
                },
                require_coverage,
            };
            let app: admin::App = api.send(Method::POST, "/apps", &body).await?;
            summary(json, &app, || {
                format!(
                    "created app {} (scopes: {})",
                    app.id,
                    app.policy.scopes.join(" ")
                )
            })
        }
        AdminCommand::App {
            command: AppCommand::List,
        } => {
            let apps: Vec<admin::App> = api.call(Method::GET, "/apps").await?;
            summary(json, &apps, || {
                table(
                    &apps,
                    &["id", "sdk_evidence", "created_at"],
                    |app, column| match column {
                        "sdk_evidence" => app["policy"]["sdk_evidence"].to_string(),
                        _ => app[column].to_string(),
                    },
                )
            })
        }
        AdminCommand::Release {
            command:
                ReleaseCommand::Add {
                    app_id,
                    version,
                    sdk_binary_sha256,
                    version_code,
                },
        } => {
            let body = admin::AddRelease {
                version: version.clone(),
                sdk_binary_sha256,
                version_code,
            };
            let release: admin::Release = api
                .send(Method::POST, &format!("/apps/{app_id}/releases"), &body)
                .await?;
            summary(json, &release, || match &release.binary_sha256 {
                Some(hash) => format!("registered {app_id} {version} ({hash})"),
                None => format!("registered {app_id} {version} (hardware platforms only)"),
            })
        }
        AdminCommand::Release {
            command: ReleaseCommand::Revoke { app_id, version },
        } => {
            let revoked: admin::ReleaseRevoked = api
                .call(
                    Method::POST,
                    &format!("/apps/{app_id}/releases/{version}/revoke"),
                )
                .await?;
            summary(json, &revoked, || {
                format!(
                    "revoked {app_id} {version} ({} builds newly revoked)",
                    revoked.revoked
                )
            })
        }
        AdminCommand::Release {
            command: ReleaseCommand::List { app_id },
        } => {
            let releases: Vec<admin::Release> = api
                .call(Method::GET, &format!("/apps/{app_id}/releases"))
                .await?;
            summary(json, &releases, || {
                table(
                    &releases,
                    &["version", "binary_sha256", "version_code", "revoked_at"],
                    |r, c| r[c].to_string(),
                )
            })
        }
        AdminCommand::Installation {
            command:
                InstallationCommand::List {
                    app_id,
                    after,
                    limit,
                },
        } => {
            let mut query = format!("?limit={limit}");
            if let Some(app_id) = app_id {
                query.push_str(&format!("&app_id={app_id}"));
            }
            if let Some(after) = after {
                query.push_str(&format!("&after={after}"));
            }
            let installations: Vec<admin::Installation> = api
                .call(Method::GET, &format!("/installations{query}"))
                .await?;
            let next = Some(&installations)
                .filter(|page| page.len() == limit)
                .and_then(|page| page.last())
                .map(|last| last.id.clone());
            let columns = [
                "id",
                "app_id",
                "app_version",
                "platform",
                "last_decision",
                "last_seen",
                "revoked_at",
            ];
            summary(json, &installations, || {
                let mut text = table(&installations, &columns, |i, c| i[c].to_string());
                if let Some(next) = next {
                    text.push_str(&format!("\n(more: --after {next})"));
                }
                text
            })
        }
        AdminCommand::Installation {
            command: InstallationCommand::Revoke { id },
        } => {
            let revoked: admin::InstallationRevoked = api
                .call(Method::POST, &format!("/installations/{id}/revoke"))
                .await?;
            summary(json, &revoked, || format!("revoked installation {id}"))
        }
        AdminCommand::Keys {
            command: KeysCommand::Rotate,
        } => {
            let rotated: admin::KeysRotated = api.call(Method::POST, "/keys/rotate").await?;
            summary(json, &rotated, || {
                format!(
                    "new signing key {}; {} retired (still published until its tokens expire)",
                    rotated.kid, rotated.retired
                )
            })
        }
        AdminCommand::Platform {
            command: PlatformCommand::Set { app_id, platform },
        } => {
            let (name, policy) = platform.name_and_policy();
            let set: admin::PlatformPolicy = api
                .send(
                    Method::PUT,
                    &format!("/apps/{app_id}/platforms/{name}"),
                    &policy,
                )
                .await?;
            summary(json, &set, || {
                format!("{app_id} accepts {name}: {}", set.policy)
            })
        }
        AdminCommand::Platform {
            command: PlatformCommand::Show { app_id },
        } => {
            let shown: admin::Platforms = api
                .call(Method::GET, &format!("/apps/{app_id}/platforms"))
                .await?;
            summary(json, &shown, || {
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            })
        }
        AdminCommand::Platform {
            command:
                PlatformCommand::PlayKeys {
                    app_id,
                    decryption_key,
                    verification_key,
                },
        } => {
            let body = admin::PlayIntegrityKeys {
                decryption_key,
                verification_key,
            };
            let set: admin::PlayIntegrityKeysSet = api
                .send(
                    Method::PUT,
                    &format!("/apps/{app_id}/play-integrity-keys"),
                    &body,
                )
                .await?;
            summary(json, &set, || {
                format!("Play Integrity keys stored (sealed) for {app_id}")
            })
        }
        AdminCommand::Enrolment {
            command: EnrolmentCommand::Create { app_id, ttl },
        } => {
            let ttl = humantime::parse_duration(&ttl)
                .map_err(|e| Failure::Usage(anyhow!("--ttl {ttl:?}: {e}")))?;
            let body = admin::CreateEnrolment {
                ttl_secs: Some(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            };
            let created: admin::EnrolmentCreated = api
                .send(Method::POST, &format!("/apps/{app_id}/enrolments"), &body)
                .await?;
            summary(json, &created, || {
                format!(
                    "enrolment code for {app_id}: {} (single use, until {})",
                    created.code, created.expires_at
                )
            })
        }
        AdminCommand::Enrolment {
            command: EnrolmentCommand::List { app_id },
        } => {
            let listed: Vec<admin::Enrolment> = api
                .call(Method::GET, &format!("/apps/{app_id}/enrolments"))
                .await?;
            let columns = [
                "code_sha256",
                "created_at",
                "expires_at",
                "used_at",
                "identity",
                "revoked_at",
            ];
            summary(json, &listed, || {
                table(&listed, &columns, |e, c| e[c].to_string())
            })
        }
        AdminCommand::Enrolment {
            command:
                EnrolmentCommand::Revoke {
                    app_id,
                    code_sha256,
                },
        } => {
            let revoked: admin::EnrolmentRevoked = api
                .call(
                    Method::POST,
                    &format!("/apps/{app_id}/enrolments/{code_sha256}/revoke"),
                )
                .await?;
            summary(json, &revoked, || {
                format!(
                    "revoked enrolment {code_sha256} of {app_id} (installation {})",
                    revoked.installation_id.as_deref().unwrap_or("none")
                )
            })
        }
        AdminCommand::Secret { command } => secret::run(&api, json, command).await?,
        AdminCommand::Follower { command } => {
            credential::run(&api, json, admin::CredentialKind::Follower, command).await?
        }
        AdminCommand::Partner { command } => partner::run(&api, json, command).await?,
        AdminCommand::Operator { command } => operator::run(&api, json, command).await?,
        AdminCommand::Uploader { command } => {
            credential::run(&api, json, admin::CredentialKind::Uploader, command).await?
        }
        AdminCommand::Pins { command } => pins::pins(&api, json, command).await?,
        AdminCommand::Trust { command } => pins::trust(&api, json, command).await?,
        AdminCommand::Telemetry { since, step } => {
            let seconds = |flag: &str, text: &str| {
                humantime::parse_duration(text)
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    .map_err(|e| Failure::Usage(anyhow!("--{flag} {text:?}: {e}")))
            };
            let (since, step) = (seconds("since", &since)?, seconds("step", &step)?);
            // The range ends at the end of the running period, so whole hours are read from
            // the store's hourly sums (the server reads a range over 48 hours only so).
            let now = medgate_service::clock::SystemClock.now().secs();
            let to = now.saturating_add(step.max(1) - now.rem_euclid(step.max(1)));
            let query = format!("?from={}&to={to}&step={step}", to.saturating_sub(since));
            let counts: Vec<admin::TelemetryCount> =
                api.call(Method::GET, &format!("/telemetry{query}")).await?;
            summary(json, &counts, || {
                let columns = ["at", "series", "outcome", "reason", "platform", "count"];
                table(&counts, &columns, |row, column| match column {
                    "at" => row[column]
                        .as_i64()
                        .map(|at| medgate_service::clock::rfc3339(UnixTime::from_secs(at)))
                        .unwrap_or_default(),
                    "reason" | "platform" => match row[column].as_str() {
                        Some("") | None => "-".into(),
                        Some(text) => text.into(),
                    },
                    _ => row[column].to_string(),
                })
            })
        }
        AdminCommand::Keys {
            command: KeysCommand::List,
        } => {
            let keys: Vec<admin::SigningKey> = api.call(Method::GET, "/keys").await?;
            summary(json, &keys, || {
                table(
                    &keys,
                    &["kid", "active", "published", "created_at", "retired_at"],
                    |k, c| k[c].to_string(),
                )
            })
        }
    };
    println!("{answer}");
    Ok(())
}

/// The server's answer as JSON with `--json`, else `text`.
fn summary(json: bool, value: &impl Serialize, text: impl FnOnce() -> String) -> String {
    if json {
        serde_json::to_string(value).unwrap_or_default()
    } else {
        text()
    }
}

/// A plain text table: a header row, then one row per element, each cell read from the row
/// as JSON by `cell`.
fn table<T: Serialize>(
    rows: &[T],
    columns: &[&str],
    cell: impl Fn(&serde_json::Value, &str) -> String,
) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .filter_map(|row| serde_json::to_value(row).ok())
        .collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| cell(row, c).trim_matches('"').to_string())
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(columns.iter().map(|c| c.to_string()).collect())];
    out.extend(cells.into_iter().map(line));
    if rows.is_empty() {
        out.push("(none)".into());
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_are_reached_on_loopback() {
        assert_eq!(
            url_of("0.0.0.0:8700".parse().unwrap()),
            "http://127.0.0.1:8700"
        );
        assert_eq!(
            url_of("192.168.1.5:8700".parse().unwrap()),
            "http://192.168.1.5:8700"
        );
    }

    #[test]
    fn tables_align_columns() {
        let rows = [
            serde_json::json!({"id": "a", "n": 1}),
            serde_json::json!({"id": "longer", "n": null}),
        ];
        let text = table(&rows, &["id", "n"], |r, c| r[c].to_string());
        assert_eq!(text, "id      n\na       1\nlonger  null");
        let none: [serde_json::Value; 0] = [];
        assert!(table(&none, &["id"], |r, c| r[c].to_string()).ends_with("(none)"));
    }
}
