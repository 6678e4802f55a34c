//! `medgate selfcheck`: every runtime detector of the SDK against this very process, so the
//! operator of a Linux hub sees what the SDK sees, and anyone can attack it with real tools
//! and watch the signals appear.

use std::time::Duration;

use anyhow::anyhow;
use medgate_sdk::detect::args::DetectArgs;
use medgate_sdk::detect::{Pass, Report};

use crate::Failure;

#[derive(clap::Args)]
pub(crate) struct SelfcheckArgs {
    #[command(flatten)]
    detect: DetectArgs,
    /// Print one JSON object per pass.
    #[arg(long)]
    json: bool,
    /// Run a pass every SECONDS until interrupted (the first is a full pass, later ones the
    /// periodic pass an app runs).
    #[arg(long, value_name = "SECONDS")]
    watch: Option<f64>,
}

fn print(report: &Report, pass: u64, json: bool) {
    if json {
        let mut value = serde_json::to_value(report).unwrap_or_default();
        value["pass"] = pass.into();
        value["pid"] = std::process::id().into();
        println!("{value}");
        return;
    }
    if report.detections.is_empty() {
        println!("pass {pass}: no threats detected");
    } else {
        println!("pass {pass}: {} threat(s)", report.detections.len());
        for detection in &report.detections {
            println!(
                "  {:<16} {:<7} {:<16} {}",
                detection.kind.as_str(),
                detection.confidence.as_str(),
                detection.detector,
                detection.detail
            );
        }
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
    if let Some(measurement) = &report.measurement {
        println!("  measurement: {measurement}");
    }
}

/// Exit 0 when the (last) pass saw no threat, 1 otherwise.
pub(crate) async fn run(args: SelfcheckArgs) -> Result<(), Failure> {
    let (mut detector, guard) = args
        .detect
        .detector()
        .map_err(|e| Failure::Usage(anyhow!("cannot start the guard: {e}")))?;
    if let Some(guard) = guard {
        eprintln!("self-ptrace guard running as pid {guard}");
    }
    let interval = match args.watch {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 => {
            Some(Duration::from_secs_f64(seconds))
        }
        Some(_) => return Err(Failure::Usage(anyhow!("--watch takes a positive number"))),
        None => None,
    };
    if !args.json {
        println!("medgate selfcheck, pid {}", std::process::id());
    }
    let mut pass = 1;
    let mut report = detector.run(Pass::Full);
    print(&report, pass, args.json);
    if let Some(interval) = interval {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = crate::wait_for_shutdown_signal() => break,
            }
            pass += 1;
            report = tokio::task::block_in_place(|| detector.run(Pass::Periodic));
            print(&report, pass, args.json);
        }
    }
    if report.detections.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(anyhow!(
            "{} threat(s) detected",
            report.detections.len()
        )))
    }
}
