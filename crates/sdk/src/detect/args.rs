//! The detector's command-line options, shared by `medgate selfcheck` and the attack tests'
//! victim (feature `cli-args`).

use std::path::PathBuf;

use super::{DetectConfig, Detector};

#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Read device files (Android and iOS rules, /etc/ld.so.preload) from this root.
    #[arg(long, default_value = "/")]
    pub fs_root: PathBuf,
    /// Probe this loopback port for a Frida control service (repeatable; default 27042).
    #[arg(long = "frida-port", value_name = "PORT")]
    pub frida_ports: Vec<u16>,
    /// The measurement (executable SHA-256, hex) this build expects of itself.
    #[arg(long, value_name = "HEX")]
    pub expected_sha256: Option<String>,
    /// A library that may be mapped: a file name, `prefix*`, or `/dir/` (repeatable).
    #[arg(long = "allow-library", value_name = "PATTERN")]
    pub allowed_libraries: Vec<String>,
    /// Start the self-ptrace guard first (Linux, Android): no debugger can attach after.
    #[arg(long)]
    pub guard: bool,
    /// Start the sentinel after a first pass: watched prologues and GOT slots compared every
    /// this many milliseconds (Linux, Android).
    #[arg(long, value_name = "MS")]
    pub sentinel_ms: Option<u64>,
}

impl DetectArgs {
    pub fn config(&self) -> DetectConfig {
        let defaults = DetectConfig::default();
        DetectConfig {
            fs_root: self.fs_root.clone(),
            frida_ports: if self.frida_ports.is_empty() {
                defaults.frida_ports.clone()
            } else {
                self.frida_ports.clone()
            },
            expected_measurement: self.expected_sha256.clone(),
            allowed_libraries: self.allowed_libraries.clone(),
            ..defaults
        }
    }

    /// A detector for these options, with the guard started when asked. Returns the guard's
    /// pid, if one runs.
    pub fn detector(&self) -> std::io::Result<(Detector, Option<u32>)> {
        let mut detector = Detector::new(self.config());
        let guard = if self.guard {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                Some(detector.start_guard()?)
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the guard needs Linux or Android",
                ));
            }
        } else {
            None
        };
        if let Some(ms) = self.sentinel_ms {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            {
                detector.run(super::Pass::Periodic);
                detector.start_sentinel(std::time::Duration::from_millis(ms.max(1)))?;
            }
            #[cfg(not(any(target_os = "linux", target_os = "android")))]
            {
                let _ = ms;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "the sentinel needs Linux or Android",
                ));
            }
        }
        Ok((detector, guard))
    }
}
