//! The cost of runtime detection on this process: one full pass (what an attestation runs
//! first, including hashing the executable), one periodic pass (what the monitor runs every
//! interval), a periodic pass without the self-attach probe (its fork is the probe's cost), and
//! one look of the sentinel (what its thread does every few milliseconds), and one look of the
//! guard (what the guard process does every 5 ms).
//! Numbers scale with the size of the executable's and libc's code (the code check reads both)
//! and of the memory map.
//!
//! Run: `cargo bench -p medgate-sdk --bench detect`

use criterion::{Criterion, criterion_group, criterion_main};
use medgate_sdk::detect::{DetectConfig, Detector, Pass};

fn detection(c: &mut Criterion) {
    let mut group = c.benchmark_group("detect");
    group.sample_size(20);
    let mut detector = Detector::new(DetectConfig::default());
    let first = detector.run(Pass::Full);
    assert!(
        first.detections.is_empty(),
        "the benchmark process is not clean: {first:?}"
    );
    group.bench_function("full_pass", |b| b.iter(|| detector.run(Pass::Full)));
    group.bench_function("periodic_pass", |b| b.iter(|| detector.run(Pass::Periodic)));
    let mut without_probe = Detector::new(DetectConfig {
        self_attach_probe: false,
        ..DetectConfig::default()
    });
    group.bench_function("periodic_pass_without_probe", |b| {
        b.iter(|| without_probe.run(Pass::Periodic))
    });
    // What the sentinel thread does every few milliseconds, measured as one look.
    let sentinel = medgate_sdk::detect::sentinel_look();
    group.bench_function("sentinel_look", |b| b.iter(&sentinel));
    let guard = medgate_sdk::detect::guard_look();
    assert!(!guard(), "the watched code changed under the benchmark");
    group.bench_function("guard_look", |b| b.iter(&guard));
    group.finish();
}

criterion_group!(benches, detection);
criterion_main!(benches);
