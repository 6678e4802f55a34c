//! The console overview's reads, on each store side by side in one run: the telemetry series
//! (30 days of minutes with a dozen outcomes each, what a busy node writes) read per period for
//! each range the overview offers (1 h per minute, 24 h per hour, 7 d per 6 hours, 30 d per
//! day; all but the first, whole hours, from the hourly sums), and the count of installations
//! in use among 100,000. Prints the median and slowest of `RUNS` reads per range and backend.
//!
//! Measured on the shared 2-core machine (2026-12-07), telemetry only, SQLite / PostgreSQL
//! medians: 1 h 0.8 / 2.3 ms, 7 d 2.4 / 15 ms, 30 d 17 / 14 ms (then 24 h was read per 15
//! minutes, 7 d per hour, 30 d per 6 hours). Before the hourly sums, 7 d took 145 / 56 ms and
//! 30 d 564 / 232 ms.
//!
//! With the overview's own steps and 100,000 installations (2026-12-08), SQLite / PostgreSQL
//! medians, series + count in use: 1 h 0.9 + 5.9 / 1.6 + 8.3 ms, 24 h 0.5 + 5.7 / 1.3 + 8.1
//! ms, 7 d 1.1 + 5.6 / 3.1 + 9.2 ms, 30 d 4.0 + 6.4 / 10.4 + 10.6 ms: an overview reads in
//! about 10 ms on SQLite and 21 ms on PostgreSQL (it never reads the audit log, so its size
//! does not matter).
//!
//! Run: `cargo bench -p medgate-store --features conformance --bench telemetry` (PostgreSQL
//! from `MEDGATE_TEST_POSTGRES` or the local default, on a fresh database; skipped when none).

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use medgate_proto::wire::Decision;
use medgate_store::sqlite::SqliteStore;
use medgate_store::{Store, TelemetryCount, TelemetrySeries, conformance};
use medgate_verify::UnixTime;

const DAYS: i64 = 30;
const RUNS: usize = 25;
const INSTALLATIONS: i64 = 100_000;
/// A whole hour, as a console aligns its ranges (the conformance scenarios' time zero).
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

async fn seed(store: &dyn Store) -> usize {
    // Installations last seen over the 30 days, one in twenty refused at its last attestation.
    conformance::add_sample_app(store, "org.example.cgm").await;
    for i in 0..INSTALLATIONS {
        let decision = if i % 20 == 0 {
            Decision::Reject
        } else {
            Decision::Allow
        };
        let offset = -(i * 26) % (DAYS * 86_400);
        store
            .record_attestation(&conformance::attestation(
                &format!("inst-{i}"),
                offset,
                decision,
                vec![],
            ))
            .await
            .unwrap();
    }
    let mut rows = 0;
    for day in 0..DAYS {
        let start = NOW - (DAYS - day) * 86_400;
        let day: Vec<TelemetryCount> = (0..1440).flat_map(|m| minute(start + m * 60)).collect();
        rows += day.len();
        store.add_telemetry(&day).await.unwrap();
    }
    rows
}

fn report(name: &str, what: &str, rows: String, times: &mut [Duration]) {
    times.sort();
    println!(
        "{name:<10} {what:<22} {rows:>8}  median {:>8.2} ms  slowest {:>8.2} ms",
        times[RUNS / 2].as_secs_f64() * 1000.0,
        times[RUNS - 1].as_secs_f64() * 1000.0
    );
}

async fn measure(name: &str, store: &dyn Store) {
    for (range, span, step) in [
        ("1h / 1 min", 3600, 60),
        ("24h / 1 h", 86_400, 3600),
        ("7d / 6 h", 7 * 86_400, 6 * 3600),
        ("30d / 1 d", 30 * 86_400, 86_400),
    ] {
        let mut series: Vec<Duration> = Vec::with_capacity(RUNS);
        let mut counting: Vec<Duration> = Vec::with_capacity(RUNS);
        let (mut rows, mut in_use) = (0, 0);
        for _ in 0..RUNS {
            let started = Instant::now();
            rows = store
                .telemetry(
                    UnixTime::from_secs(NOW - span),
                    UnixTime::from_secs(NOW),
                    step,
                )
                .await
                .unwrap()
                .len();
            series.push(started.elapsed());
            let started = Instant::now();
            in_use = store
                .installations_in_use_since(UnixTime::from_secs(NOW - span))
                .await
                .unwrap();
            counting.push(started.elapsed());
        }
        report(
            name,
            &format!("series {range}"),
            format!("{rows} rows"),
            &mut series,
        );
        report(
            name,
            &format!("in use {range}"),
            format!("{in_use}"),
            &mut counting,
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
