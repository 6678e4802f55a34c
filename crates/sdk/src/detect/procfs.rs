//! Parsers for the `/proc` text the detectors read. Pure functions over hostile text: a hooked
//! `read` or a fake `/proc` can hand the SDK anything, so every parser is bounded, never
//! panics, and skips what it does not understand.

/// The most text a detector reads from one `/proc` file (a large app's maps is a few MiB).
pub const MAX_PROC_TEXT: usize = 16 * 1024 * 1024;
/// The most maps lines parsed.
pub const MAX_MAPS_LINES: usize = 200_000;

/// `TracerPid` from `/proc/<pid>/status` (or a task's status): `Some(0)` when untraced, `None`
/// when the field is missing or malformed.
pub fn tracer_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))
        .and_then(|value| value.trim().parse().ok())
}

/// One line of `/proc/<pid>/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub executable: bool,
    /// Offset in the file of `start`.
    pub offset: u64,
    pub inode: u64,
    /// The path, `[vdso]`-style pseudo name, or `memfd:…`; empty for anonymous memory.
    /// A deleted file keeps its ` (deleted)` suffix.
    pub path: String,
}

impl Mapping {
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the mapping is a regular file on disk (not anonymous, pseudo, memfd or deleted).
    pub fn is_file(&self) -> bool {
        self.path.starts_with('/') && self.inode != 0 && !self.path.ends_with(" (deleted)")
    }

    pub fn contains(&self, address: u64) -> bool {
        (self.start..self.end).contains(&address)
    }

    /// The file name of the path.
    pub fn file_name(&self) -> &str {
        file_name(&self.path)
    }
}

/// The last component of a path.
pub fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Parses `/proc/<pid>/maps`. Malformed lines are skipped; at most [`MAX_MAPS_LINES`] are read.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines()
        .take(MAX_MAPS_LINES)
        .filter_map(parse_maps_line)
        .collect()
}

/// `start-end perms offset dev inode [path]`, with the path possibly containing spaces.
fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start_matches(' ');
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (value, tail) = trimmed.split_at(end);
        rest = tail;
        (!value.is_empty()).then_some(value)
    };
    let range = field()?;
    let perms = field()?.as_bytes();
    let offset = field()?;
    let _device = field()?;
    let inode = field()?;
    let path = rest.trim_start_matches(' ').to_string();
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    if end < start || perms.len() != 4 {
        return None;
    }
    Some(Mapping {
        start,
        end,
        readable: perms[0] == b'r',
        executable: perms[2] == b'x',
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode: inode.parse().ok()?,
        path,
    })
}

/// Whether `/proc/self/environ` (NUL-separated `NAME=value`) sets `name` to a non-empty value.
/// That block is the environment the process started with: a library that unset a variable
/// after start does not change it.
pub fn environ_sets(environ: &[u8], name: &str) -> Option<String> {
    environ.split(|&b| b == 0).find_map(|entry| {
        let entry = std::str::from_utf8(entry).ok()?;
        let value = entry.strip_prefix(name)?.strip_prefix('=')?;
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracer_pid_of_recorded_status_files() {
        let traced = "Name:\tmedgate-victim\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\nPPid:\t1\nTracerPid:\t4250\nUid:\t0\t0\t0\t0\n";
        assert_eq!(tracer_pid(traced), Some(4250));
        assert_eq!(tracer_pid("Name:\tx\nTracerPid:\t0\n"), Some(0));
        assert_eq!(tracer_pid("Name:\tx\n"), None);
        assert_eq!(tracer_pid("TracerPid:\tlots\n"), None);
    }

    #[test]
    fn maps_lines_with_spaces_memfd_and_pseudo_paths() {
        // Recorded from a process with Frida attached (x86_64) and from an Android app.
        let text = "\
55d4c1a00000-55d4c1a2c000 r--p 00000000 fd:01 1311                       /usr/bin/medgate-victim
7fdb51b8c000-7fdb51d52000 r--p 00000000 00:01 1193                       /memfd:frida-agent-64.so (deleted)
7fdb51d52000-7fdb532d3000 r-xp 001c6000 00:01 1193                       /memfd:frida-agent-64.so (deleted)
7f0e1c600000-7f0e1c628000 r-xp 00028000 fd:01 2254                       /usr/lib/x86_64-linux-gnu/libc.so.6
7ffd3b5f2000-7ffd3b5f4000 r-xp 00000000 00:00 0                          [vdso]
7f0e1c400000-7f0e1c500000 rw-p 00000000 00:00 0 
7a1b2c3d4000-7a1b2c3e4000 r-xp 00000000 fd:08 77                         /data/app/~~x==/org.example.cgm-1/lib/arm64/libapp with space.so
garbage line
7f0e1c628000-7f0e1c600000 r-xp 00000000 fd:01 2254 /backwards
";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 7);
        assert_eq!(maps[0].file_name(), "medgate-victim");
        assert!(maps[0].is_file() && !maps[0].executable);
        assert_eq!(maps[2].path, "/memfd:frida-agent-64.so (deleted)");
        assert!(!maps[2].is_file());
        assert_eq!(maps[3].offset, 0x28000);
        assert!(maps[3].executable && maps[3].is_file());
        assert!(maps[3].contains(0x7f0e1c600000) && !maps[3].contains(0x7f0e1c628000));
        assert_eq!(maps[4].path, "[vdso]");
        assert_eq!(maps[5].path, "");
        assert_eq!(maps[6].file_name(), "libapp with space.so");
    }

    #[test]
    fn environ_keeps_what_the_process_started_with() {
        let environ = b"HOME=/root\0LD_PRELOAD=/tmp/shim.so\0EMPTY=\0";
        assert_eq!(
            environ_sets(environ, "LD_PRELOAD").as_deref(),
            Some("/tmp/shim.so")
        );
        assert_eq!(environ_sets(environ, "EMPTY"), None);
        assert_eq!(environ_sets(environ, "LD_AUDIT"), None);
        assert_eq!(environ_sets(b"LD_PRELOADX=1\0", "LD_PRELOAD"), None);
    }
}
