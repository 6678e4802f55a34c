//! Runtime threat detection: what the SDK can see of its own process and device.
//!
//! The SDK detects and reports; the server's policy decides. Each detector returns
//! [`Detection`]s (a signal kind, the detector that saw it, what it saw, a confidence), and
//! things it looked at but could not decide go into [`Report::notes`]. Detections travel to the
//! server as the evidence's `signals`.
//!
//! | Detector | Kind | Sees |
//! |---|---|---|
//! | `tracer` | debugger | `TracerPid` of every thread (and the tracer's name) |
//! | `self_attach` | debugger | a forked child cannot attach where it could at start |
//! | `guard` | debugger | the optional self-ptrace guard is gone or replaced |
//! | `frida_maps` | hook | Frida agent or gadget in the memory map (memfd, temp dir, gadget) |
//! | `frida_fds` | hook | linjector pipes or Frida files among open descriptors |
//! | `frida_threads` | hook | Frida's thread names (`gum-js-loop`, `pool-frida`, …) |
//! | `frida_port` | hook | a Frida control service answering its WebSocket handshake |
//! | `code` | hook / debugger | libc's, the app's and the SDK's code in memory differs from the file (inline hook, breakpoint) |
//! | `preload` | injected_library | `LD_PRELOAD`/`LD_AUDIT` now or at start, `/etc/ld.so.preload` |
//! | `libraries` | injected_library | a mapped library neither the executable's dependencies nor allowed |
//! | `interposition` | injected_library | a libc function resolving outside libc (preload shim, GOT hook) |
//! | `android_root` | root | su binaries, Magisk/KernelSU paths, test-keys, `ro.debuggable`, `ro.secure` |
//! | `android_emulator` | emulator | qemu/goldfish/ranchu properties, devices and files (phones only) |
//! | `ios_jailbreak` | root | jailbreak paths, a write outside the sandbox (iOS only) |
//! | `tamper` | tamper | the app's measurement differs from the expected one |
//!
//! Every Linux and Android pass also says what it examined ([`Report::coverage`], sent in the
//! evidence): a pass whose detectors were replaced or skipped reports none, and the server's
//! policy counts that, or coverage too small for a real pass, as a hook.
//!
//! Detectors that read the device take a file-system root ([`DetectConfig::fs_root`]) so
//! tests run them against fake Android and iOS trees. Pure parsers of `/proc` text, property
//! files, tool artefacts and code bytes live in [`procfs`], [`props`], [`artefacts`] and
//! [`patterns`], and are fuzzed.
//!
//! What in-process checks cannot do: an attacker with root can hide from them (patch this
//! code, fake `/proc`, hook the reads). Hardware attestation is the trust root; these checks
//! raise the cost and tell the server what a casual or automated attack leaves behind.

use std::path::PathBuf;

use medgate_proto::wire::{Coverage, Signal, SignalKind};
use serde::Serialize;

#[cfg(feature = "cli-args")]
pub mod args;
pub mod artefacts;
pub mod device;
pub mod linkmap;
pub mod patterns;
pub mod procfs;
pub mod props;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod sys;

/// How sure a detector is that what it saw is an attack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    /// Consistent with an attack, with a plausible benign explanation.
    Medium,
    /// An artefact an attack tool leaves; benign causes are unusual.
    High,
}

impl Confidence {
    pub const fn as_str(self) -> &'static str {
        match self {
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// One thing a detector saw.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Detection {
    pub kind: SignalKind,
    /// The detector's name (see the module table).
    pub detector: &'static str,
    /// What was seen: paths, names, addresses. Never secrets.
    pub detail: String,
    pub confidence: Confidence,
}

impl Detection {
    pub(crate) fn new(
        kind: SignalKind,
        detector: &'static str,
        detail: impl Into<String>,
        confidence: Confidence,
    ) -> Self {
        Detection {
            kind,
            detector,
            detail: detail.into(),
            confidence,
        }
    }

    /// The signal reported in the evidence.
    pub fn signal(&self) -> Signal {
        let mut detail = format!("{}: {}", self.detector, self.detail);
        if detail.len() > MAX_SIGNAL_DETAIL {
            let mut end = MAX_SIGNAL_DETAIL;
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
        }
        Signal {
            kind: self.kind.as_str().to_string(),
            detail,
            confidence: Some(self.confidence.as_str().to_string()),
        }
    }
}

/// The server refuses signal details longer than this.
const MAX_SIGNAL_DETAIL: usize = 1024;

/// Which detectors a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pass {
    /// Everything, including the app's measurement (hashing the executable).
    Full,
    /// Everything that can change while the app runs: tracers, hooks, injected code, new root
    /// artefacts. Skips re-measuring the executable (the code check covers what runs).
    Periodic,
}

/// The result of one pass.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub detections: Vec<Detection>,
    /// What a detector could not decide or did not run, and why.
    pub notes: Vec<String>,
    /// The app's measurement (lowercase hex SHA-256 of the executable), in a full pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measurement: Option<String>,
    /// What the pass examined (Linux and Android): sent with the signals, so that a pass that
    /// was silenced (its detectors replaced or skipped) is told apart from a clean one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

impl Report {
    /// The signals for the evidence, one per detection.
    pub fn signals(&self) -> Vec<Signal> {
        self.detections.iter().map(Detection::signal).collect()
    }

    /// Whether any detection is new compared with `earlier` (same kind, detector and detail).
    pub fn has_new_threats(&self, earlier: &Report) -> bool {
        self.detections.iter().any(|detection| {
            !earlier.detections.iter().any(|seen| {
                seen.kind == detection.kind
                    && seen.detector == detection.detector
                    && seen.detail == detection.detail
            })
        })
    }

    fn push(&mut self, detections: impl IntoIterator<Item = Detection>) {
        for detection in detections {
            if !self.detections.contains(&detection) {
                self.detections.push(detection);
            }
        }
    }

    fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

/// What the detectors look at and for.
#[derive(Debug, Clone)]
pub struct DetectConfig {
    /// Where device files are read from: `/` on a device, a fake tree in tests.
    pub fs_root: PathBuf,
    /// Loopback ports probed for a Frida control service (default 27042). Empty: no probe.
    pub frida_ports: Vec<u16>,
    /// The measurement the app expects of itself (for example delivered by the server);
    /// a different one is a tamper detection.
    pub expected_measurement: Option<String>,
    /// Extra libraries that may be mapped: an absolute path, an absolute directory ending in
    /// `/`, or a file name (`libfoo.so`) or name prefix ending in `*` (`libfoo*`), which count
    /// only in the system's library directories, libc's or the executable's (a library of an
    /// allowed name in `/tmp` is still reported).
    pub allowed_libraries: Vec<String>,
    /// Extra shared objects whose code is compared with their file, by file name.
    pub code_modules: Vec<String>,
    /// Run the self-attach probe (forks a short-lived child).
    pub self_attach_probe: bool,
    /// Read Android properties by running `getprop` when the tree has one (besides the
    /// property files).
    pub run_getprop: bool,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            fs_root: PathBuf::from("/"),
            frida_ports: vec![27042],
            expected_measurement: None,
            allowed_libraries: Vec::new(),
            code_modules: Vec::new(),
            self_attach_probe: true,
            run_getprop: cfg!(target_os = "android"),
        }
    }
}

/// One look of a sentinel started on this process, for the benchmark: what the sentinel's
/// thread does every interval.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[doc(hidden)]
pub fn sentinel_look() -> impl Fn() -> usize {
    let sentinel = linux::Sentinel::start(&mut linux::State::default());
    move || {
        sentinel
            .as_ref()
            .map_or(0, |sentinel| sentinel.check().len())
    }
}

/// One look of the guard at this process's watched code, for the benchmark: what the guard
/// process does every 5 ms.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[doc(hidden)]
pub fn guard_look() -> impl Fn() -> bool {
    let watch = linux::guard_watch();
    move || watch.as_ref().is_some_and(|(_, watch)| watch.changed())
}

/// Runs passes, remembering what held at the first one (whether the self-attach probe works
/// here, the guard) so later passes can tell a change from a property of the platform.
#[derive(Debug)]
pub struct Detector {
    config: DetectConfig,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    state: linux::State,
    /// What the sentinel thread saw change between passes (kept: a hook that came and went
    /// still happened).
    sentinel: Option<std::sync::Arc<std::sync::Mutex<Vec<Detection>>>>,
}

impl Detector {
    pub fn new(config: DetectConfig) -> Self {
        Detector {
            config,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            state: linux::State::default(),
            sentinel: None,
        }
    }

    /// Starts the sentinel (Linux and Android): a thread that, every `interval` (a few
    /// milliseconds), compares the prologues of the watched functions and the GOT of the
    /// executable and the SDK's module with what they were at the start, so that a hook
    /// written and removed between two passes is still reported by the next one. Call it after
    /// a clean first pass.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn start_sentinel(&mut self, interval: std::time::Duration) -> std::io::Result<()> {
        if self.sentinel.is_some() {
            return Ok(());
        }
        let sentinel = linux::Sentinel::start(&mut self.state)
            .ok_or_else(|| std::io::Error::other("/proc/self/mem cannot be read"))?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let shared = std::sync::Arc::downgrade(&seen);
        std::thread::Builder::new()
            .name("medgate-sentinel".into())
            .spawn(move || {
                // Ends when the detector is dropped.
                while let Some(seen) = shared.upgrade() {
                    let found = sentinel.check();
                    if !found.is_empty() {
                        let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                        for detection in found {
                            if !seen.contains(&detection) && seen.len() < 64 {
                                seen.push(detection);
                            }
                        }
                    }
                    drop(seen);
                    std::thread::sleep(interval);
                }
            })?;
        self.sentinel = Some(seen);
        Ok(())
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Starts the self-ptrace guard (Linux and Android): a child process that traces this one,
    /// so no debugger or injector can attach. Call it early, before other threads start; later
    /// passes report a debugger if the guard is gone or someone else traces the process.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub fn start_guard(&mut self) -> std::io::Result<u32> {
        self.state.start_guard()
    }

    /// One pass of every detector that applies to this platform.
    pub fn run(&mut self, pass: Pass) -> Report {
        let mut report = Report::default();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        linux::run(&self.config, &mut self.state, pass, &mut report);
        device::run(&self.config, &mut report);
        if let Some(seen) = &self.sentinel {
            report.push(
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .iter()
                    .cloned(),
            );
        }
        if pass == Pass::Full {
            measure(&self.config, &mut report);
        }
        report
    }
}

fn measure(config: &DetectConfig, report: &mut Report) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let measured = linux::measure_executable(report).ok_or("see the notes");
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let measured = crate::measure::current_executable_sha256();
    match measured {
        Ok(measurement) => {
            if let Some(expected) = &config.expected_measurement
                && !expected.eq_ignore_ascii_case(&measurement)
            {
                report.push([Detection::new(
                    SignalKind::Tamper,
                    "tamper",
                    format!("executable SHA-256 {measurement} is not the expected {expected}"),
                    Confidence::High,
                )]);
            }
            report.measurement = Some(measurement);
        }
        Err(error) => report.note(format!("tamper: cannot measure the executable: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(detail: &str) -> Detection {
        Detection::new(SignalKind::Hook, "frida_maps", detail, Confidence::High)
    }

    #[test]
    fn new_threats_are_told_apart_from_ones_already_reported() {
        let earlier = Report {
            detections: vec![hook("mapped: /memfd:frida-agent-64.so (deleted)")],
            ..Report::default()
        };
        let same = earlier.clone();
        assert!(!same.has_new_threats(&earlier));
        assert!(!Report::default().has_new_threats(&earlier));
        let mut more = earlier.clone();
        more.push([hook("mapped: /tmp/frida-1/frida-agent-64.so")]);
        more.push([hook("mapped: /tmp/frida-1/frida-agent-64.so")]);
        assert_eq!(more.detections.len(), 2);
        assert!(more.has_new_threats(&earlier));
    }

    #[test]
    fn signals_name_the_detector_and_fit_the_servers_limit() {
        let signal = hook("mapped: x").signal();
        assert_eq!(signal.kind, "hook");
        assert_eq!(signal.detail, "frida_maps: mapped: x");
        assert_eq!(signal.confidence.as_deref(), Some("high"));
        let long = hook(&"é".repeat(MAX_SIGNAL_DETAIL)).signal();
        assert!(long.detail.len() <= MAX_SIGNAL_DETAIL);
    }

    /// The test process itself: no debugger, no Frida, no preload. A false positive on an
    /// ordinary Linux process fails here (the attack suite repeats it on a release build).
    #[test]
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn this_process_is_clean() {
        if std::env::var_os("LD_PRELOAD").is_some() {
            eprintln!("skipped: LD_PRELOAD is set for the test run");
            return;
        }
        let mut detector = Detector::new(DetectConfig {
            frida_ports: Vec::new(),
            ..DetectConfig::default()
        });
        let first = detector.run(Pass::Full);
        let traced = first.detections.iter().any(|d| d.detector == "tracer");
        if traced {
            eprintln!("skipped: the tests run under a tracer");
            return;
        }
        assert_eq!(first.detections, [], "{first:?}");
        assert_eq!(first.measurement.as_ref().map(String::len), Some(64));
        // The pass says what it examined: the map, the threads, the code of the test binary,
        // libc and the dynamic linker, their GOT slots.
        let coverage = first.coverage.expect("a pass reports its coverage");
        assert!(coverage.maps_lines > 8, "{coverage:?}");
        assert!(coverage.threads >= 1, "{coverage:?}");
        assert!(coverage.modules >= 3, "{coverage:?}");
        assert!(coverage.code_bytes > 1 << 20, "{coverage:?}");
        assert!(coverage.got_slots > 10, "{coverage:?}");
        let periodic = detector.run(Pass::Periodic);
        assert_eq!(periodic.detections, []);
        // The same code compared again hashes the same (nothing in it changed).
        assert_eq!(
            periodic.coverage.map(|c| c.code_sha256),
            Some(coverage.code_sha256)
        );
    }
}
