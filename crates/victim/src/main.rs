//! `medgate-victim`: a small app built from the medgate SDK, for the attack tests
//! (`tests/attacks`). Real tools (gdb, strace, ltrace, Frida, LD_PRELOAD, bubblewrap) attack
//! it, and it reports what the SDK's detectors see, one JSON object per line.
//!
//! ```text
//! medgate-victim once  [OPTIONS]   one full detection pass, printed, then exit
//! medgate-victim serve [OPTIONS]   print {"ready":…}, then answer commands on stdin:
//!     check              a detection pass
//!     dose N             call victim_dose(N) (a function the tests hook)
//!     attest             attest to --server (signals from a fresh pass)
//!     get PATH           a request through --gateway
//!     watch SECONDS      start the SDK's periodic monitor; its re-attestations are printed
//!     quit
//! ```

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use medgate_sdk::client::{ClientConfig, ClientError, MedgateClient, MonitorEvent};
use medgate_sdk::detect::args::DetectArgs;
use medgate_sdk::detect::{Pass, Report};
use medgate_sdk::evidence::AppIdentity;
use medgate_sdk::key::InstallationKey;
use serde_json::{Value, json};

#[derive(Parser)]
#[command(name = "medgate-victim", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One full detection pass.
    Once(Options),
    /// Answer commands on stdin.
    Serve(Options),
}

#[derive(Args)]
struct Options {
    #[command(flatten)]
    detect: DetectArgs,
    /// Write output lines to this file instead of stdout.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The control plane, for `attest`.
    #[arg(long, default_value = "http://127.0.0.1:8700")]
    server: String,
    /// The gateway, for `get`.
    #[arg(long, default_value = "http://127.0.0.1:8701")]
    gateway: String,
    #[arg(long, default_value = "org.example.victim")]
    app_id: String,
    #[arg(long, default_value = "1.0.0")]
    app_version: String,
}

/// The function the tests hook or break on. Not inlined, so it has its own symbol.
#[inline(never)]
fn victim_dose(units: u32) -> u32 {
    std::hint::black_box(units).saturating_mul(10)
}

struct Output(Box<dyn Write + Send>);

impl Output {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Self> {
        Ok(Output(match path {
            Some(path) => Box::new(
                std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?,
            ),
            None => Box::new(std::io::stdout()),
        }))
    }

    fn line(&mut self, value: &Value) {
        let _ = writeln!(self.0, "{value}");
        let _ = self.0.flush();
    }
}

fn report_json(report: &Report) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

fn attestation_json(outcome: &Result<medgate_sdk::client::Attestation, ClientError>) -> Value {
    match outcome {
        Ok(attestation) => json!({"attested": {
            "decision": attestation.decision,
            "scope": attestation.scope,
            "reasons": attestation.reasons,
            "installation_id": attestation.installation_id,
        }}),
        Err(ClientError::Refused { status, problem }) => {
            json!({"refused": {"status": status, "reasons": problem.reasons}})
        }
        Err(error) => json!({"error": error.to_string()}),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Once(options) => {
            let mut out = Output::open(options.out.as_ref())?;
            let (mut detector, _) = options
                .detect
                .detector()
                .context("cannot start the guard")?;
            out.line(&report_json(&detector.run(Pass::Full)));
            Ok(())
        }
        Command::Serve(options) => serve(options),
    }
}

fn serve(options: Options) -> anyhow::Result<()> {
    let mut out = Output::open(options.out.as_ref())?;
    let (detector, guard) = options
        .detect
        .detector()
        .context("cannot start the guard")?;
    let measurement = medgate_sdk::measure::current_executable_sha256()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = Arc::new(
        MedgateClient::new(
            ClientConfig {
                server_url: options.server.clone(),
                gateway_url: options.gateway.clone(),
                app: AppIdentity {
                    app_id: options.app_id.clone(),
                    app_version: options.app_version.clone(),
                    binary_sha256: measurement.clone(),
                },
                refresh_margin_secs: 30,
            },
            InstallationKey::generate()?,
        )
        .with_detector(detector),
    );
    out.line(&json!({
        "ready": true,
        "pid": std::process::id(),
        "measurement": measurement,
        "guard": guard,
    }));
    let (lines, mut events) = tokio::sync::mpsc::channel::<Value>(64);
    let printer = std::thread::spawn(move || {
        while let Some(line) = events.blocking_recv() {
            out.line(&line);
        }
    });
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next()) {
            (Some("check"), _) => runtime
                .block_on(client.detect(Pass::Periodic))
                .map_or(Value::Null, |report| report_json(&report)),
            (Some("dose"), Some(units)) => {
                json!({"dose": victim_dose(units.parse().unwrap_or(0))})
            }
            (Some("attest"), _) => attestation_json(&runtime.block_on(client.attest())),
            (Some("get"), Some(path)) => match runtime.block_on(client.get(path)) {
                Ok(response) => json!({"status": response.status.as_u16()}),
                Err(error) => json!({"error": error.to_string()}),
            },
            (Some("watch"), Some(seconds)) => {
                let seconds: f64 = seconds.parse().unwrap_or(1.0);
                let _guard = runtime.enter();
                let (_handle, mut monitor) =
                    client.spawn_monitor(std::time::Duration::from_secs_f64(seconds));
                let lines = lines.clone();
                runtime.spawn(async move {
                    while let Some(event) = monitor.recv().await {
                        if let MonitorEvent::Reattested { report, outcome } = event {
                            let _ = lines
                                .send(json!({"monitor": {
                                    "report": report_json(&report),
                                    "outcome": attestation_json(&outcome),
                                }}))
                                .await;
                        }
                    }
                });
                json!({"watching": seconds})
            }
            (Some("quit"), _) => break,
            _ => json!({"error": format!("unknown command {line:?}")}),
        };
        if lines.blocking_send(answer).is_err() {
            break;
        }
    }
    drop(lines);
    runtime.shutdown_background();
    let _ = printer.join();
    Ok(())
}
