//! Reading the telemetry series as a console's charts would, on each store side by side in one
//! run: 30 days of minutes with a dozen outcomes each (what a busy node writes), then the
//! periods of each time range the console offers (1 h per minute, 24 h per 15 minutes, 7 d per
//! hour, 30 d per 6 hours; the last two, whole hours, are read from the hourly sums). Prints
//! the median and slowest of `RUNS` reads per range and backend.
//!
//! Measured on the shared 2-core machine (2026-12-07), SQLite / PostgreSQL medians: 1 h 0.8 /
//! 2.3 ms, 24 h 14.5 / 22 ms, 7 d 2.4 / 15 ms, 30 d 17 / 14 ms. Before the hourly sums, 7 d
//! took 145 / 56 ms and 30 d 564 / 232 ms.
//!
//! Run: `cargo bench -p medgate-store --features conformance --bench telemetry` (PostgreSQL
//! from `MEDGATE_TEST_POSTGRES` or the local default, on a fresh database; skipped when none).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use medgate_store::sqlite::SqliteStore;
use medgate_store::{TelemetryCount, TelemetrySeries, TelemetryStore};
use medgate_verify::UnixTime;

const DAYS: i64 = 30;
const RUNS: usize = 25;
/// A whole hour, as a console aligns its ranges.
const NOW: i64 = 1_800_000_000;

/// One minute's rows: what a node with attestations on three platforms and steady gateway
/// traffic writes.
fn minute(at: i64) -> Vec<TelemetryCount> {
    let row = |series, outcome: &str, reason: &str, platform: &str, count| TelemetryCount {
        at: UnixTime::from_secs(at),
        series,
        outcome: outcome.into(),
        reason: reason.into(),
        platform: platform.into(),
        count,
    };
    use TelemetrySeries::{Attestation, Gateway};
    vec![
        row(Attestation, "allow", "", "sdk", 40),
        row(Attestation, "allow", "", "apple-app-attest", 25),
        row(Attestation, "allow", "", "play-integrity", 30),
        row(Attestation, "allow_limited", "root_detected", "sdk", 3),
        row(Attestation, "reject", "hook_detected", "sdk", 1),
        row(
            Attestation,
            "reject",
            "challenge_invalid",
            "apple-app-attest",
            1,
        ),
        row(
            Attestation,
            "reject",
            "release_revoked",
            "play-integrity",
            2,
        ),
        row(Gateway, "forwarded", "", "", 900),
        row(Gateway, "missing_token", "", "", 12),
        row(Gateway, "invalid_token", "token_expired", "", 20),
        row(Gateway, "invalid_proof", "proof_replayed", "", 2),
        row(Gateway, "rate_limited", "", "", 4),
    ]
}

async fn seed(store: &dyn TelemetryStore) -> usize {
    let mut rows = 0;
    for day in 0..DAYS {
        let start = NOW - (DAYS - day) * 86_400;
        let day: Vec<TelemetryCount> = (0..1440).flat_map(|m| minute(start + m * 60)).collect();
        rows += day.len();
        store.add_telemetry(&day).await.unwrap();
    }
    rows
}

async fn measure(name: &str, store: &dyn TelemetryStore) {
    for (range, span, step) in [
        ("1h / 1 min", 3600, 60),
        ("24h / 15 min", 86_400, 900),
        ("7d / 1 h", 7 * 86_400, 3600),
        ("30d / 6 h", 30 * 86_400, 6 * 3600),
    ] {
        let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
        let mut periods = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let counts = store
                .telemetry(
                    UnixTime::from_secs(NOW - span),
                    UnixTime::from_secs(NOW),
                    step,
                )
                .await
                .unwrap();
            times.push(started.elapsed());
            periods = counts.len();
        }
        times.sort();
        println!(
            "{name:<10} {range:<13} {periods:>6} rows  median {:>8.2} ms  slowest {:>8.2} ms",
            times[RUNS / 2].as_secs_f64() * 1000.0,
            times[RUNS - 1].as_secs_f64() * 1000.0
        );
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path()).unwrap();
    let started = Instant::now();
    let rows = seed(&sqlite).await;
    println!(
        "seeded {rows} rows ({DAYS} days) into SQLite in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    measure("sqlite", &sqlite).await;
    if let Some((postgres, _database)) = medgate_store::postgres::testing::fresh().await {
        let started = Instant::now();
        seed(&postgres).await;
        println!(
            "seeded PostgreSQL in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        measure("postgres", &postgres).await;
    }
}
