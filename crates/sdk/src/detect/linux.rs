//! The detectors that read this process through `/proc` (Linux and Android).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use medgate_proto::wire::{Coverage, SignalKind};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol, ObjectSymbolTable, SymbolKind};
use sha2::Digest;

use super::artefacts;
use super::linkmap;
use super::patterns::{self, Arch, Patch};
use super::procfs::{self, MAX_PROC_TEXT, Mapping};
use super::sys::{self, Probe};
use super::{Confidence, DetectConfig, Detection, Pass, Report};

/// What the first passes established.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// Whether a forked child could attach while nothing traced the process: only then does a
    /// later refusal mean a tracer.
    probe_works: Option<bool>,
    guard: Option<u32>,
    /// Library names the executable and the SDK's own module depend on, once computed.
    dependencies: Option<BTreeSet<String>>,
    /// Where the code check's round of the other modules goes on next pass.
    code_cursor: usize,
    /// SHA-256 of each compared mapping's bytes in its file, by (path, inode, offset, length), read
    /// once: memory found equal to the file byte for byte has the same digest.
    file_digests: std::collections::HashMap<(String, u64, u64, u64), [u8; 32]>,
    /// Where libraries loaded by name may come from, once computed.
    library_dirs: Option<LibraryDirs>,
    /// The GOT slots of the executable and the SDK's module, and what mapped modules export,
    /// read from their files once.
    got: Option<GotModel>,
}

impl State {
    pub(crate) fn start_guard(&mut self) -> std::io::Result<u32> {
        if let Some(pid) = self.guard {
            return Ok(pid);
        }
        // A faked task list is reported by the next pass; the guard attaches what is listed.
        let tids: Vec<i32> = task_ids(&mut Report::default())
            .into_iter()
            .filter_map(|t| i32::try_from(t).ok())
            .collect();
        let (_memory, watch) =
            guard_watch().ok_or_else(|| std::io::Error::other("/proc/self/mem cannot be read"))?;
        let pid = sys::start_guard(&tids, watch)?;
        let pid = u32::try_from(pid).map_err(std::io::Error::other)?;
        self.guard = Some(pid);
        Ok(pid)
    }
}

/// What the guard watches from outside: the prologues of the watched functions as they are
/// now, read through the returned `/proc/self/mem` (keep it open until the guard started).
pub(crate) fn guard_watch() -> Option<(File, sys::GuardWatch)> {
    let memory = open_proc("/proc/self/mem", &mut Report::default())?;
    let sites: Vec<(u64, [u8; PROLOGUE])> = watched_prologues(&memory)
        .into_iter()
        .map(|(_, address, bytes)| (address, bytes))
        .collect();
    let watch = sys::GuardWatch::new(&memory, &sites);
    Some((memory, watch))
}

/// The most threads and descriptors examined.
const MAX_ENTRIES: usize = 4096;
/// Bytes compared per read in the code check.
const CODE_CHUNK: usize = 64 * 1024;
/// Patches reported per module.
const MAX_PATCHES: usize = 16;
/// Modules beyond the dynamic linker, libc, the executable, the SDK's and the configured ones
/// compared per pass, in turn (all of them on a small Linux hub; a round over several passes
/// in an Android app's hundreds).
const OTHER_MODULES_PER_PASS: usize = 8;

pub(crate) fn run(config: &DetectConfig, state: &mut State, pass: Pass, report: &mut Report) {
    let _ = pass;
    // The process's own view of itself must be the kernel's: every /proc file read here is
    // checked to be on procfs, and a picture no running process can have (no mapping, no
    // thread, no libc where the executable needs one) is a detection, not a skipped check.
    let maps = proc_text("/proc/self/maps", report)
        .map(|text| procfs::parse_maps(&text))
        .unwrap_or_default();
    let threads = task_ids(report);
    let needs_libc = state
        .dependencies
        .get_or_insert_with(|| dependencies(&maps))
        .iter()
        .any(|name| is_libc(name));
    let own = run as *const () as u64;
    report.push(impossible_states(&maps, own, needs_libc, threads.len()));
    tracers(state, &threads, report);
    self_attach(config, state, report);
    report.push(artefacts::frida_in_maps(&maps));
    let fds = fd_targets(report);
    report.push(artefacts::frida_in_fds(&fds));
    let names = thread_names(&threads, report);
    report.push(artefacts::frida_threads(&names));
    for &port in &config.frida_ports {
        frida_port(port, report);
    }
    let mut tally = Tally::default();
    code(config, state, &maps, &mut tally, report);
    preload(config, report);
    if let Some(dependencies) = &state.dependencies {
        link_maps(dependencies, report);
    }
    libraries(config, state, &maps, report);
    interposition(&maps, report);
    got(state, &maps, &mut tally, report);
    report.coverage = tally.coverage(maps.len(), threads.len());
}

/// What the code and GOT checks of a pass examined, for the report's [`Coverage`]: `code`
/// hashes each compared mapping's file digest and every difference from it.
struct Tally {
    /// Whether this platform has a code check at all (a pass on one without claims no
    /// coverage, rather than an implausibly small one).
    code_check: bool,
    modules: u32,
    code_bytes: u64,
    code: sha2::Sha256,
    got_slots: u32,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            code_check: true,
            modules: 0,
            code_bytes: 0,
            code: sha2::Sha256::new(),
            got_slots: 0,
        }
    }
}

impl Tally {
    fn coverage(self, maps_lines: usize, threads: usize) -> Option<Coverage> {
        if !self.code_check {
            return None;
        }
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Some(Coverage {
            maps_lines: count(maps_lines),
            threads: count(threads),
            modules: self.modules,
            code_bytes: self.code_bytes,
            got_slots: self.got_slots,
            code_sha256: medgate_proto::hex::encode(&self.code.finalize()),
        })
    }
}

/// A `/proc` file of this process, opened with system calls of the SDK's own (no libc
/// wrapper or GOT slot to redirect) and only if it is on procfs; one that is not is a
/// detection. `None` when it cannot be opened or is not procfs.
fn open_proc(path: &str, report: &mut Report) -> Option<File> {
    let path_c = std::ffi::CString::new(path).ok()?;
    let file = sys::open_raw(&path_c).ok()?;
    match sys::is_procfs(&file) {
        Ok(true) => Some(file),
        _ => {
            report.push([Detection::new(
                SignalKind::Hook,
                "procfs",
                format!(
                    "{path} is not on procfs: something stands between this process and the kernel's view of it"
                ),
                Confidence::High,
            )]);
            None
        }
    }
}

/// The largest ELF file read whole (for its symbols or `DT_NEEDED`).
const MAX_ELF_FILE: u64 = 512 * 1024 * 1024;

/// A whole file, read with the SDK's own system calls (a rewritten `open` or `read` cannot
/// make the ELF files the detectors consult disappear or change).
fn read_file_raw(path: &str) -> std::io::Result<Vec<u8>> {
    let path = std::ffi::CString::new(path).map_err(std::io::Error::other)?;
    let file = sys::open_raw(&path)?;
    let (_, size) = sys::stat_raw(&file)?;
    if size > MAX_ELF_FILE {
        return Err(std::io::Error::other("too large"));
    }
    let mut data = vec![0u8; usize::try_from(size).map_err(std::io::Error::other)?];
    sys::pread_exact_raw(&file, &mut data, 0)?;
    Ok(data)
}

/// The text of a `/proc` file of this process ([`open_proc`]), bounded, read with the
/// `read` system call itself.
fn proc_text(path: &str, report: &mut Report) -> Option<String> {
    String::from_utf8(proc_bytes(path, report)?).ok()
}

/// The bytes of a `/proc` file of this process, as [`proc_text`].
fn proc_bytes(path: &str, report: &mut Report) -> Option<Vec<u8>> {
    let file = open_proc(path, report)?;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    while bytes.len() < MAX_PROC_TEXT {
        match sys::read_raw(&file, &mut buffer) {
            Ok(0) => break,
            Ok(read) => bytes.extend_from_slice(&buffer[..read]),
            Err(_) => return None,
        }
    }
    bytes.truncate(MAX_PROC_TEXT);
    Some(bytes)
}

/// What no running, untampered process shows of itself: no executable mapping holding the
/// detector's own code, no executable mapping of libc when the executable needs it, no
/// thread. Each means the maps or the task list were hidden or faked.
fn impossible_states(
    maps: &[Mapping],
    own: u64,
    needs_libc: bool,
    threads: usize,
) -> Vec<Detection> {
    let mut found = Vec::new();
    let mut impossible = |what: &str| {
        found.push(Detection::new(
            SignalKind::Hook,
            "self_view",
            format!("{what}: this process's view of itself is hidden or faked"),
            Confidence::High,
        ));
    };
    if !maps.iter().any(|m| m.executable && m.contains(own)) {
        impossible("no executable mapping holds the detector's own code");
    }
    if needs_libc && !maps.iter().any(|m| m.executable && is_libc(m.file_name())) {
        impossible("libc is needed but not mapped executable");
    }
    if threads == 0 {
        impossible("the process lists no thread");
    }
    found
}

fn read_text(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path)
        .ok()?
        .take(MAX_PROC_TEXT as u64)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// This process's thread ids (none if the task directory is not procfs).
fn task_ids(report: &mut Report) -> Vec<u32> {
    if open_proc("/proc/self/task", report).is_none() {
        return Vec::new();
    }
    std::fs::read_dir("/proc/self/task")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
                .take(MAX_ENTRIES)
                .collect()
        })
        .unwrap_or_default()
}

fn process_name(pid: u32) -> String {
    proc_text(&format!("/proc/{pid}/comm"), &mut Report::default())
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

// ---- The executable's measurement ------------------------------------------------------------

/// SHA-256 of the running executable, read with system calls of its own (no libc wrapper a
/// preload could redirect to the genuine file), from a file that must be the one mapped: its
/// inode is that of an executable mapping in (procfs-checked) maps.
pub(crate) fn measure_executable(report: &mut Report) -> Option<String> {
    use sha2::Sha256;
    let file = match sys::open_raw(c"/proc/self/exe") {
        Ok(file) => file,
        Err(error) => {
            report.note(format!("tamper: cannot open the executable: {error}"));
            return None;
        }
    };
    let maps = proc_text("/proc/self/maps", report)
        .map(|text| procfs::parse_maps(&text))
        .unwrap_or_default();
    let inode = sys::stat_raw(&file).ok().map(|(inode, _)| inode);
    let mapped = inode.is_some_and(|inode| {
        maps.iter()
            .any(|m| m.executable && m.is_file() && m.inode == inode)
    });
    if !mapped {
        report.push([Detection::new(
            SignalKind::Tamper,
            "tamper",
            "the executable file measured is not the one mapped",
            Confidence::High,
        )]);
    }
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match sys::read_raw(&file, &mut buffer) {
            Ok(0) => break,
            Ok(read) => hasher.update(&buffer[..read]),
            Err(error) => {
                report.note(format!("tamper: cannot read the executable: {error}"));
                return None;
            }
        }
    }
    Some(medgate_proto::hex::encode(&hasher.finalize()))
}

// ---- Debuggers and tracers ------------------------------------------------------------------

fn tracers(state: &State, threads: &[u32], report: &mut Report) {
    let mut traced_by_guard = false;
    let mut seen = BTreeSet::new();
    for tid in threads {
        let Some(status) = proc_text(&format!("/proc/self/task/{tid}/status"), report) else {
            continue;
        };
        match procfs::tracer_pid(&status) {
            Some(0) | None => {}
            Some(tracer) if Some(tracer) == state.guard => traced_by_guard = true,
            Some(tracer) => {
                if seen.insert(tracer) {
                    report.push([Detection::new(
                        SignalKind::Debugger,
                        "tracer",
                        format!(
                            "thread {tid} is traced by pid {tracer} ({})",
                            process_name(tracer)
                        ),
                        Confidence::High,
                    )]);
                }
            }
        }
    }
    if let Some(guard) = state.guard
        && !traced_by_guard
    {
        report.push([Detection::new(
            SignalKind::Debugger,
            "guard",
            format!("the self-ptrace guard (pid {guard}) no longer traces the process"),
            Confidence::Medium,
        )]);
    }
}

fn self_attach(config: &DetectConfig, state: &mut State, report: &mut Report) {
    if !config.self_attach_probe || state.guard.is_some() {
        return;
    }
    let traced = report
        .detections
        .iter()
        .any(|detection| detection.detector == "tracer");
    match (sys::probe_attach(), state.probe_works) {
        (Probe::Attached, _) => {
            if !traced {
                state.probe_works = Some(true);
            }
        }
        (Probe::Refused, Some(true)) => report.push([Detection::new(
            SignalKind::Debugger,
            "self_attach",
            "a forked child can no longer attach: another tracer holds the process",
            Confidence::High,
        )]),
        (Probe::Refused, None) if !traced => {
            state.probe_works = Some(false);
            report.note("self_attach: ptrace is restricted here from the start; probe not used");
        }
        (Probe::Refused, _) => {}
        (Probe::Unavailable, _) => report.note("self_attach: the probe could not run"),
    }
}

// ---- Frida ------------------------------------------------------------------------------------

fn fd_targets(report: &mut Report) -> Vec<String> {
    if open_proc("/proc/self/fd", report).is_none() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .take(MAX_ENTRIES)
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .collect()
}

fn thread_names(threads: &[u32], report: &mut Report) -> Vec<String> {
    threads
        .iter()
        .filter_map(|tid| proc_text(&format!("/proc/self/task/{tid}/comm"), report))
        .map(|name| name.trim().to_string())
        .collect()
}

fn frida_port(port: u16, report: &mut Report) {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(100)) else {
        return;
    };
    let mut nonce = [0u8; 16];
    if getrandom::fill(&mut nonce).is_err() {
        return;
    }
    let key = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(nonce)
    };
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(300)));
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    let mut response = Vec::with_capacity(1024);
    let mut buffer = [0u8; 512];
    while response.len() < 4096 && !response.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => response.extend_from_slice(&buffer[..read]),
        }
    }
    if artefacts::is_websocket_upgrade(&String::from_utf8_lossy(&response), &key) {
        report.push([Detection::new(
            SignalKind::Hook,
            "frida_port",
            format!("a Frida control service answers on 127.0.0.1:{port}"),
            Confidence::High,
        )]);
    } else {
        report.note(format!(
            "frida_port: 127.0.0.1:{port} accepts connections but is not Frida"
        ));
    }
}

// ---- Code integrity ------------------------------------------------------------------------

/// A library is libc: glibc's `libc.so.6` or bionic's `libc.so`.
fn is_libc(file_name: &str) -> bool {
    file_name == "libc.so" || file_name.starts_with("libc.so.") || file_name.starts_with("libc-2.")
}

/// Whether a library is the dynamic linker (glibc's, musl's, bionic's).
fn is_dynamic_linker(file_name: &str) -> bool {
    file_name.starts_with("ld-linux")
        || file_name.starts_with("ld-musl")
        || file_name == "ld.so"
        || file_name.starts_with("linker")
}

/// The modules whose code the check compares this pass: the dynamic linker first, libc, the
/// executable, the module holding this code and the configured ones every pass, then the
/// other file-backed executable mappings in turn, [`OTHER_MODULES_PER_PASS`] at a time from
/// `cursor` (which moves on).
fn modules_to_compare<'m>(
    maps: &'m [Mapping],
    exe: Option<&str>,
    own: u64,
    configured: &[String],
    cursor: &mut usize,
) -> Vec<&'m str> {
    let mut always: Vec<&str> = Vec::new();
    let mut others: BTreeSet<&str> = BTreeSet::new();
    for mapping in maps.iter().filter(|m| m.executable && m.is_file()) {
        let name = mapping.file_name();
        let core = is_dynamic_linker(name)
            || is_libc(name)
            || Some(mapping.path.as_str()) == exe
            || mapping.contains(own)
            || configured.iter().any(|module| module == name);
        if core {
            if !always.contains(&mapping.path.as_str()) {
                always.push(&mapping.path);
            }
        } else {
            others.insert(&mapping.path);
        }
    }
    always.sort_by_key(|path| !is_dynamic_linker(procfs::file_name(path)));
    let others: Vec<&str> = others.into_iter().filter(|p| !always.contains(p)).collect();
    if !others.is_empty() {
        let start = *cursor % others.len();
        let take = OTHER_MODULES_PER_PASS.min(others.len());
        always.extend(others.iter().cycle().skip(start).take(take));
        *cursor = (start + take) % others.len();
    }
    always
}

/// Compares the code of every file-backed executable mapping with its file: the dynamic
/// linker, libc, the executable, the SDK's module and the configured ones every pass, the rest
/// in turn ([`modules_to_compare`]).
fn code(
    config: &DetectConfig,
    state: &mut State,
    maps: &[Mapping],
    tally: &mut Tally,
    report: &mut Report,
) {
    let Some(arch) = Arch::current() else {
        report.note("code: no patch classifier for this architecture; skipped");
        tally.code_check = false;
        return;
    };
    let own = code as *const () as u64;
    let exe = std::fs::read_link("/proc/self/exe")
        .ok()
        .map(|path| path.to_string_lossy().into_owned());
    let modules = modules_to_compare(
        maps,
        exe.as_deref(),
        own,
        &config.code_modules,
        &mut state.code_cursor,
    );
    let Some(memory) = open_proc("/proc/self/mem", report) else {
        report.note("code: cannot read /proc/self/mem; skipped");
        return;
    };
    for module in modules {
        let mut patches = Vec::new();
        let mut compared = false;
        for mapping in maps.iter().filter(|m| m.executable && m.path == module) {
            let key = (
                mapping.path.clone(),
                mapping.inode,
                mapping.offset,
                mapping.len(),
            );
            let cached = state.file_digests.get(&key).copied();
            let mut file = cached.is_none().then(sha2::Sha256::new);
            let before = patches.len();
            match compare_mapping(&memory, mapping, file.as_mut(), tally, &mut patches) {
                Ok(()) => {
                    compared = true;
                    // The coverage digest: the file's digest, then every difference found.
                    let digest = cached.unwrap_or_else(|| {
                        let digest: [u8; 32] =
                            file.map(|f| f.finalize().into()).unwrap_or_default();
                        state.file_digests.insert(key, digest);
                        digest
                    });
                    tally.code.update(digest);
                    for patch in &patches[before..] {
                        tally.code.update(patch.file_offset.to_be_bytes());
                        tally.code.update(&patch.memory);
                    }
                }
                Err(note) => report.note(format!("code: {module}: {note}")),
            }
        }
        tally.modules += u32::from(compared);
        if !patches.is_empty() {
            report.push(describe_patches(arch, module, &patches));
        }
    }
}

/// A run of differing bytes: where it starts in the file, and the bytes now in memory from a
/// little before it.
struct Difference {
    file_offset: u64,
    memory: Vec<u8>,
}

/// Compares one mapping with its file, adding the differences to `patches`, the file's bytes
/// to `file` (when its digest is not known yet) and the bytes compared to `tally`.
fn compare_mapping(
    memory: &File,
    mapping: &Mapping,
    mut file_digest: Option<&mut sha2::Sha256>,
    tally: &mut Tally,
    patches: &mut Vec<Difference>,
) -> Result<(), String> {
    // Opened, examined and read with the SDK's own system calls, as the memory is: a
    // rewritten `open`, `fstat` or `pread` cannot hand either side a copy of the other.
    let path = std::ffi::CString::new(mapping.path.as_str()).map_err(|e| e.to_string())?;
    let file = sys::open_raw(&path).map_err(|e| format!("cannot open: {e}"))?;
    let (inode, size) = sys::stat_raw(&file).map_err(|e| e.to_string())?;
    if inode != mapping.inode {
        return Err("the file on disk was replaced since it was mapped; not compared".into());
    }
    let length = mapping.len().min(size.saturating_sub(mapping.offset));
    let mut in_memory = vec![0u8; CODE_CHUNK];
    let mut on_disk = vec![0u8; CODE_CHUNK];
    let mut position = 0u64;
    while position < length {
        let want = usize::try_from((length - position).min(CODE_CHUNK as u64)).unwrap_or(0);
        sys::pread_exact_raw(memory, &mut in_memory[..want], mapping.start + position)
            .map_err(|e| format!("cannot read memory: {e}"))?;
        sys::pread_exact_raw(&file, &mut on_disk[..want], mapping.offset + position)
            .map_err(|e| format!("cannot read the file: {e}"))?;
        if let Some(digest) = file_digest.as_mut() {
            digest.update(&on_disk[..want]);
        }
        tally.code_bytes += want as u64;
        if in_memory[..want] == on_disk[..want] {
            position += want as u64;
            continue;
        }
        let mut index = 0;
        while index < want && patches.len() < MAX_PATCHES {
            if in_memory[index] == on_disk[index] {
                index += 1;
                continue;
            }
            let start = index;
            // A patch is a run of differences with gaps under 8 bytes.
            let mut end = index + 1;
            while end < want && in_memory[end..want.min(end + 8)] != on_disk[end..want.min(end + 8)]
            {
                end += 1;
            }
            patches.push(Difference {
                file_offset: mapping.offset + position + start as u64,
                memory: in_memory[start..want.min(start + 16)].to_vec(),
            });
            index = end;
        }
        position += want as u64;
    }
    Ok(())
}

/// Names each patch by the function it lies in and what it is.
fn describe_patches(arch: Arch, module: &str, patches: &[Difference]) -> Vec<Detection> {
    let data = read_file_raw(module).unwrap_or_default();
    let functions = object::File::parse(&*data)
        .map(|elf| Functions::of(&elf))
        .unwrap_or_default();
    let name = procfs::file_name(module);
    patches
        .iter()
        .map(|patch| {
            let skip = match arch {
                // AArch64 instructions are 4-byte aligned.
                Arch::Aarch64 => usize::try_from(patch.file_offset % 4).unwrap_or(0),
                Arch::X86_64 => 0,
            };
            let what = patterns::classify(arch, patch.memory.get(skip..).unwrap_or_default());
            let place = match functions
                .containing(patch.file_offset)
                .or_else(|| functions.section(patch.file_offset))
            {
                Some((function, offset)) => format!("{name}!{function}+{offset:#x}"),
                None => format!("{name}+{:#x}", patch.file_offset),
            };
            let kind = if what == Patch::Breakpoint {
                SignalKind::Debugger
            } else {
                SignalKind::Hook
            };
            Detection::new(
                kind,
                "code",
                format!("{} at {place}", what.describe()),
                Confidence::High,
            )
        })
        .collect()
}

/// A module's functions by address, and its segments, to name a file offset.
#[derive(Default)]
struct Functions {
    /// `(start, size, name)`, sorted by start.
    symbols: Vec<(u64, u64, String)>,
    /// `(file offset, file size, address)` of each segment.
    segments: Vec<(u64, u64, u64)>,
    /// `(file offset, file size, name)` of each section, for code without a symbol (`.plt`).
    sections: Vec<(u64, u64, String)>,
}

impl Functions {
    fn of(elf: &object::File<'_>) -> Self {
        let mut symbols: Vec<(u64, u64, String)> = elf
            .dynamic_symbols()
            .chain(elf.symbols())
            .filter(|symbol| symbol.kind() == SymbolKind::Text)
            .filter_map(|symbol| {
                Some((
                    symbol.address(),
                    symbol.size(),
                    symbol.name().ok()?.to_string(),
                ))
            })
            .collect();
        // Aliases share an address (`signal`/`ssignal`, `sigaction`/`__sigaction`): keep the
        // one with the fewest leading underscores, then the shortest.
        symbols.sort_by_key(|(start, _, name)| {
            let underscores = name.len() - name.trim_start_matches('_').len();
            (*start, underscores, name.len())
        });
        symbols.dedup_by_key(|(start, _, _)| *start);
        let segments = elf
            .segments()
            .map(|segment| {
                let (offset, size) = segment.file_range();
                (offset, size, segment.address())
            })
            .collect();
        let sections = elf
            .sections()
            .filter_map(|section| {
                let (offset, size) = section.file_range()?;
                Some((offset, size, section.name().ok()?.to_string()))
            })
            .collect();
        Functions {
            symbols,
            segments,
            sections,
        }
    }

    /// The section holding a file offset, and the offset into it.
    fn section(&self, file_offset: u64) -> Option<(String, u64)> {
        self.sections.iter().find_map(|(start, size, name)| {
            (*start..start.saturating_add(*size))
                .contains(&file_offset)
                .then(|| (name.clone(), file_offset - start))
        })
    }

    /// The function holding a file offset, demangled, and the offset into it.
    fn containing(&self, file_offset: u64) -> Option<(String, u64)> {
        let address = self.segments.iter().find_map(|&(start, size, address)| {
            (start..start.saturating_add(size))
                .contains(&file_offset)
                .then(|| address + (file_offset - start))
        })?;
        let index = self
            .symbols
            .partition_point(|(start, _, _)| *start <= address)
            .checked_sub(1)?;
        let (start, size, name) = &self.symbols[index];
        (address < start.saturating_add((*size).max(1))).then(|| {
            (
                format!("{:#}", rustc_demangle::demangle(name)),
                address - start,
            )
        })
    }
}

// ---- Injected libraries -------------------------------------------------------------------

fn preload(config: &DetectConfig, report: &mut Report) {
    let environ = proc_bytes("/proc/self/environ", report).unwrap_or_default();
    for variable in ["LD_PRELOAD", "LD_AUDIT"] {
        if let Some(value) = std::env::var_os(variable).filter(|value| !value.is_empty()) {
            report.push([Detection::new(
                SignalKind::InjectedLibrary,
                "preload",
                format!("{variable}={}", value.to_string_lossy()),
                Confidence::High,
            )]);
        } else if let Some(value) = procfs::environ_sets(&environ, variable) {
            report.push([Detection::new(
                SignalKind::InjectedLibrary,
                "preload",
                format!("{variable}={value} at start, removed from the environment since"),
                Confidence::High,
            )]);
        }
    }
    let system = config.fs_root.join("etc/ld.so.preload");
    if let Some(text) = read_text(&system) {
        let entries: Vec<&str> = text
            .split_whitespace()
            .filter(|entry| !entry.starts_with('#'))
            .collect();
        if !entries.is_empty() {
            report.push([Detection::new(
                SignalKind::InjectedLibrary,
                "preload",
                format!("/etc/ld.so.preload loads {}", entries.join(" ")),
                Confidence::Medium,
            )]);
        }
    }
}

/// `/proc/self/mem` as the link-map walker reads it.
struct OwnMemory(File);

impl linkmap::Memory for OwnMemory {
    fn read(&self, address: u64, buffer: &mut [u8]) -> bool {
        sys::pread_exact_raw(&self.0, buffer, address).is_ok()
    }
}

/// What the dynamic linker itself lists ([`linkmap`]), whatever the environment says: objects
/// loaded before the executable's dependencies were preloaded, objects in a further link
/// namespace were loaded by an audit interface (`LD_AUDIT`) or `dlmopen`. A list that cannot be
/// walked in a dynamically linked process is a detection, not a skipped check.
fn link_maps(dependencies: &BTreeSet<String>, report: &mut Report) {
    let (Some(auxv), Some(memory)) = (
        proc_bytes("/proc/self/auxv", report),
        open_proc("/proc/self/mem", report),
    ) else {
        return;
    };
    let Some((phdr, phnum)) = linkmap::program_headers(&auxv) else {
        report.note("preload: the auxiliary vector names no program headers; link maps not read");
        return;
    };
    // A library loaded or unloaded by another thread meanwhile can break one walk: only a list
    // that cannot be walked three times running is a finding.
    let memory = OwnMemory(memory);
    let mut walked = linkmap::namespaces(&memory, phdr, phnum);
    for _ in 0..2 {
        if walked.is_ok() {
            break;
        }
        walked = linkmap::namespaces(&memory, phdr, phnum);
    }
    let namespaces = match walked {
        Ok(namespaces) => namespaces,
        Err(
            error @ (linkmap::LinkMapError::NoDynamicSection | linkmap::LinkMapError::NoDebugEntry),
        ) => {
            report.note(format!("preload: {}; link maps not read", error.as_str()));
            return;
        }
        Err(error) => {
            report.push([Detection::new(
                SignalKind::Hook,
                "self_view",
                format!(
                    "{}: the dynamic linker's list of loaded objects is broken",
                    error.as_str()
                ),
                Confidence::High,
            )]);
            return;
        }
    };
    let dependencies: Vec<String> = dependencies.iter().cloned().collect();
    let is_linker = |path: &str| is_dynamic_linker(procfs::file_name(path));
    let Some(preloaded) = linkmap::preloaded(&namespaces[0], &dependencies, &is_linker) else {
        report.note("preload: none of the executable's dependencies is in the link map; load order not judged");
        return;
    };
    let mut found: Vec<Detection> = preloaded
        .into_iter()
        .map(|path| {
            Detection::new(
                SignalKind::InjectedLibrary,
                "preload",
                format!("{path} was loaded before the executable's dependencies (preloaded)"),
                Confidence::High,
            )
        })
        .collect();
    for namespace in &namespaces[1..] {
        if let Some(first) = namespace.iter().find(|name| !name.is_empty()) {
            found.push(Detection::new(
                SignalKind::InjectedLibrary,
                "preload",
                format!(
                    "{first} is in a further link namespace, where audit libraries (LD_AUDIT) and dlmopen load"
                ),
                Confidence::Medium,
            ));
        }
    }
    report.push(found);
}

/// glibc's own libraries (which glibc, the Rust runtime and tools load on demand; since glibc
/// 2.34 several are empty stubs), allowed only from libc's own directory.
const DEFAULT_ALLOWED: &[&str] = &[
    "libnss_*",
    "libgcc_s.so*",
    "libresolv.so*",
    "libidn2.so*",
    "libpthread.so*",
    "librt.so*",
    "libdl.so*",
    "libm.so*",
    "libutil.so*",
    "libanl.so*",
];
/// Android: libraries from the system partitions and the app's own install directory.
const ANDROID_ALLOWED_DIRS: &[&str] = &[
    "/system/",
    "/apex/",
    "/vendor/",
    "/product/",
    "/system_ext/",
    "/odm/",
    "/data/app/",
];

/// Where libraries a process loads by name may come from: the system's library directories,
/// libc's own, and the executable's. A library of an expected name anywhere else (`/tmp`,
/// `/dev/shm`, a home directory) is not the one the name stands for.
#[derive(Debug, Clone, Default)]
pub(crate) struct LibraryDirs {
    libc: Option<String>,
    executable: Option<String>,
    /// The executable's and the SDK module's `DT_RUNPATH`/`DT_RPATH` (with `$ORIGIN`).
    runpaths: Vec<String>,
}

/// System library directories (and everything below them: multiarch, versioned subdirs).
const SYSTEM_LIBRARY_DIRS: &[&str] = &["/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/"];

fn directory(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

impl LibraryDirs {
    fn of(maps: &[Mapping], executable: Option<&str>) -> Self {
        LibraryDirs {
            libc: maps
                .iter()
                .find(|m| m.executable && is_libc(m.file_name()))
                .map(|m| directory(&m.path).to_string()),
            executable: executable.map(|path| directory(path).to_string()),
            runpaths: Vec::new(),
        }
    }

    /// Whether a library at `path` may be loaded there by name.
    fn trusted(&self, path: &str) -> bool {
        let dir = directory(path);
        SYSTEM_LIBRARY_DIRS
            .iter()
            .any(|system| path.starts_with(system))
            || self.libc.as_deref() == Some(dir)
            || self.executable.as_deref() == Some(dir)
            || self.runpaths.iter().any(|runpath| runpath == dir)
    }
}

/// Whether the allow-list accounts for the library at `path`: glibc's own names from libc's
/// directory; configured names and `prefix*` patterns from a trusted directory; configured
/// absolute paths exactly, and absolute directories (ending in `/`) by prefix.
fn allowed_by_pattern(path: &str, patterns: &[String], dirs: &LibraryDirs) -> bool {
    let name = procfs::file_name(path);
    let name_matches = |pattern: &str| match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    };
    let glibc = dirs.libc.as_deref() == Some(directory(path))
        && DEFAULT_ALLOWED.iter().any(|p| name_matches(p));
    glibc
        || patterns.iter().any(|pattern| {
            if pattern.starts_with('/') && pattern.ends_with('/') {
                path.starts_with(pattern.as_str())
            } else if pattern.starts_with('/') {
                path == pattern
            } else {
                name_matches(pattern) && dirs.trusted(path)
            }
        })
}

fn is_library(mapping: &Mapping) -> bool {
    let name = mapping.file_name();
    (mapping.path.starts_with('/') || mapping.path.starts_with("memfd:"))
        && (name.contains(".so") || name.ends_with(".dylib"))
}

/// The directories an ELF file's `DT_RUNPATH` and `DT_RPATH` name, `$ORIGIN` expanded (a
/// self-built Python's `lib/` beside its `bin/`, say): its own dependencies are loaded from
/// there.
fn runpaths(path: &str) -> Vec<String> {
    use object::read::elf::{Dyn, ElfFile64};
    let Ok(data) = read_file_raw(path) else {
        return Vec::new();
    };
    let Ok(elf) = ElfFile64::<object::Endianness>::parse(&*data) else {
        return Vec::new();
    };
    let endian = elf.endian();
    let sections = elf.elf_section_table();
    let origin = directory(path);
    let mut found = Vec::new();
    if let Ok(Some((entries, link))) = sections.dynamic(endian, &*data)
        && let Ok(strings) = sections.strings(endian, &*data, link)
    {
        for entry in entries {
            let tag = entry.tag(endian);
            if tag != object::elf::DT_RUNPATH && tag != object::elf::DT_RPATH {
                continue;
            }
            let Ok(list) = entry.string(endian, strings) else {
                continue;
            };
            for dir in String::from_utf8_lossy(list).split(':') {
                let dir = dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin);
                let dir = dir.trim_end_matches('/');
                if dir.starts_with('/') && !dir.split('/').any(|part| part == "..") {
                    found.push(dir.to_string());
                }
            }
        }
    }
    found
}

/// `DT_NEEDED` names and the interpreter's name of an ELF file (32- or 64-bit).
fn needed(path: &str) -> Vec<String> {
    use object::read::elf::{ElfFile32, ElfFile64, FileHeader};
    fn of<Elf: FileHeader<Endian = object::Endianness>>(
        elf: &object::read::elf::ElfFile<'_, Elf>,
        data: &[u8],
    ) -> Vec<String> {
        use object::read::elf::{Dyn, ProgramHeader};
        let endian = elf.endian();
        let mut names = Vec::new();
        for header in elf.elf_program_headers() {
            if let Ok(Some(interpreter)) = header.interpreter(endian, data) {
                names.push(procfs::file_name(&String::from_utf8_lossy(interpreter)).to_string());
            }
        }
        let sections = elf.elf_section_table();
        if let Ok(Some((entries, link))) = sections.dynamic(endian, data)
            && let Ok(strings) = sections.strings(endian, data, link)
        {
            for entry in entries {
                if entry.tag(endian) == object::elf::DT_NEEDED
                    && let Ok(name) = entry.string(endian, strings)
                {
                    names.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        names
    }
    let Ok(data) = read_file_raw(path) else {
        return Vec::new();
    };
    if let Ok(elf) = ElfFile64::<object::Endianness>::parse(&*data) {
        of(&elf, &data)
    } else if let Ok(elf) = ElfFile32::<object::Endianness>::parse(&*data) {
        of(&elf, &data)
    } else {
        Vec::new()
    }
}

/// The library names reachable through `DT_NEEDED` from the executable and from the module
/// holding this code, resolved through what is mapped.
fn dependencies(maps: &[Mapping]) -> BTreeSet<String> {
    let own = dependencies as *const () as u64;
    let mut roots: Vec<String> = std::fs::read_link("/proc/self/exe")
        .ok()
        .map(|path| path.to_string_lossy().into_owned())
        .into_iter()
        .collect();
    if let Some(mapping) = maps.iter().find(|m| m.contains(own) && m.is_file()) {
        roots.push(mapping.path.clone());
    }
    let mut names: BTreeSet<String> = roots
        .iter()
        .map(|root| procfs::file_name(root).to_string())
        .collect();
    let mut queue = roots;
    while let Some(path) = queue.pop() {
        for name in needed(&path) {
            if names.insert(name.clone())
                && let Some(mapping) = maps.iter().find(|m| m.is_file() && m.file_name() == name)
            {
                queue.push(mapping.path.clone());
            }
        }
    }
    names
}

fn libraries(config: &DetectConfig, state: &mut State, maps: &[Mapping], report: &mut Report) {
    let dirs = state
        .library_dirs
        .get_or_insert_with(|| {
            let executable = std::fs::read_link("/proc/self/exe")
                .ok()
                .map(|path| path.to_string_lossy().into_owned());
            let mut dirs = LibraryDirs::of(maps, executable.as_deref());
            let own = libraries as *const () as u64;
            let own_module = maps
                .iter()
                .find(|m| m.contains(own) && m.is_file())
                .map(|m| m.path.clone());
            for module in executable.iter().chain(own_module.iter()) {
                dirs.runpaths.extend(runpaths(module));
            }
            dirs
        })
        .clone();
    let rule = if cfg!(target_os = "android") {
        Libraries::Android
    } else {
        Libraries::Dependencies(state.dependencies.get_or_insert_with(|| dependencies(maps)))
    };
    report.push(unexpected_libraries(
        maps,
        &rule,
        &config.allowed_libraries,
        &dirs,
    ));
}

/// Which libraries an app maps by itself.
enum Libraries<'a> {
    /// Android: the system partitions and the app's own install directory.
    Android,
    /// Linux: the dependency closure of the executable and of the SDK's module, by name, each
    /// from a trusted directory.
    Dependencies(&'a BTreeSet<String>),
}

/// Mapped libraries the rule and the allow-list do not account for (Frida's agent is
/// reported by its own detector).
fn unexpected_libraries(
    maps: &[Mapping],
    rule: &Libraries<'_>,
    allowed: &[String],
    dirs: &LibraryDirs,
) -> Vec<Detection> {
    let mut seen = BTreeSet::new();
    maps.iter()
        .filter(|mapping| is_library(mapping))
        .filter(|mapping| seen.insert(mapping.path.as_str()))
        .filter(|mapping| !artefacts::is_frida_path(&mapping.path))
        .filter(|mapping| {
            let expected = match rule {
                Libraries::Android => ANDROID_ALLOWED_DIRS
                    .iter()
                    .any(|dir| mapping.path.starts_with(dir)),
                Libraries::Dependencies(names) => {
                    names.contains(mapping.file_name()) && dirs.trusted(&mapping.path)
                }
            };
            !expected && !allowed_by_pattern(&mapping.path, allowed, dirs)
        })
        .map(|mapping| {
            Detection::new(
                SignalKind::InjectedLibrary,
                "libraries",
                format!(
                    "{} is mapped but is not a dependency or allowed",
                    mapping.path
                ),
                Confidence::Medium,
            )
        })
        .collect()
}

/// libc functions the detectors themselves rely on, or that anti-detection shims replace.
fn watched_functions() -> [(&'static str, u64); 12] {
    [
        ("open", libc::open as *const () as u64),
        ("openat", libc::openat as *const () as u64),
        ("read", libc::read as *const () as u64),
        ("pread64", libc::pread64 as *const () as u64),
        ("readlink", libc::readlink as *const () as u64),
        ("fopen", libc::fopen as *const () as u64),
        ("ptrace", libc::ptrace as *const () as u64),
        ("getenv", libc::getenv as *const () as u64),
        ("strstr", libc::strstr as *const () as u64),
        ("access", libc::access as *const () as u64),
        ("fork", libc::fork as *const () as u64),
        ("connect", libc::connect as *const () as u64),
    ]
}

/// Each watched function must resolve into libc; an address in another library is a preload
/// shim or a GOT hook.
fn interposition(maps: &[Mapping], report: &mut Report) {
    for (name, address) in watched_functions() {
        let Some(mapping) = maps.iter().find(|m| m.contains(address)) else {
            // Every function this process calls is mapped somewhere.
            report.push([Detection::new(
                SignalKind::Hook,
                "self_view",
                format!(
                    "{name} is in no mapping: this process's view of itself is hidden or faked"
                ),
                Confidence::High,
            )]);
            continue;
        };
        if !is_libc(mapping.file_name()) {
            let place = if mapping.path.is_empty() {
                "anonymous memory".to_string()
            } else {
                mapping.path.clone()
            };
            report.push([Detection::new(
                SignalKind::InjectedLibrary,
                "interposition",
                format!("{name} resolves to {place}, not libc"),
                Confidence::High,
            )]);
        }
    }
}

// ---- The sentinel: a fast check between passes ------------------------------------------------

/// Bytes of each watched function's prologue the sentinel and the guard keep.
const PROLOGUE: usize = sys::GUARD_SITE;

/// The prologue of each watched function as it is now, read through `memory` (those that
/// cannot be read are left out): the picture the sentinel and the guard compare with.
fn watched_prologues(memory: &File) -> Vec<(&'static str, u64, [u8; PROLOGUE])> {
    watched_functions()
        .into_iter()
        .filter_map(|(name, address)| {
            let mut bytes = [0u8; PROLOGUE];
            sys::pread_exact_raw(memory, &mut bytes, address).ok()?;
            Some((name, address, bytes))
        })
        .collect()
}

/// What the sentinel watches between passes: the prologues of the watched functions and the
/// GOT regions of the executable and the SDK's module, as they were when it started. A hook
/// written and removed between two passes (a short attach, a `/proc/<pid>/mem` write) is
/// seen if it stays longer than the sentinel's interval.
pub(crate) struct Sentinel {
    memory: File,
    /// (name, address, bytes).
    prologues: Vec<(&'static str, u64, [u8; PROLOGUE])>,
    /// (module, address, bytes).
    gots: Vec<(String, u64, Vec<u8>)>,
}

impl Sentinel {
    /// Takes the picture to keep; `None` where `/proc/self/mem` cannot be read.
    pub(crate) fn start(state: &mut State) -> Option<Sentinel> {
        let mut report = Report::default();
        let memory = open_proc("/proc/self/mem", &mut report)?;
        let maps = proc_text("/proc/self/maps", &mut report)
            .map(|text| procfs::parse_maps(&text))
            .unwrap_or_default();
        let prologues = watched_prologues(&memory);
        // The GOT model of the passes (read from the files once).
        let model = got_model(state, &maps);
        let mut gots = Vec::new();
        for (module, slots) in &model.slots {
            // A lazily bound module's slots change at each first call; only the prologues
            // are watched there.
            if !model.bound_now.contains(module) {
                continue;
            }
            let Some((address, _, length)) = got_region(&maps, module, slots) else {
                continue;
            };
            let mut bytes = vec![0u8; length];
            if sys::pread_exact_raw(&memory, &mut bytes, address).is_ok() {
                gots.push((module.clone(), address, bytes));
            }
        }
        Some(Sentinel {
            memory,
            prologues,
            gots,
        })
    }

    /// One look: what changed since the start (nothing, normally).
    pub(crate) fn check(&self) -> Vec<Detection> {
        let mut found = Vec::new();
        let mut now = [0u8; PROLOGUE];
        for (name, address, bytes) in &self.prologues {
            let changed =
                sys::pread_exact_raw(&self.memory, &mut now, *address).is_err() || &now != bytes;
            if changed {
                found.push(Detection::new(
                    SignalKind::Hook,
                    "sentinel",
                    format!("the code of {name} changed between passes"),
                    Confidence::High,
                ));
            }
        }
        for (module, address, bytes) in &self.gots {
            let mut current = vec![0u8; bytes.len()];
            let changed = sys::pread_exact_raw(&self.memory, &mut current, *address).is_err()
                || &current != bytes;
            if changed {
                found.push(Detection::new(
                    SignalKind::Hook,
                    "sentinel",
                    format!(
                        "the GOT of {} changed between passes",
                        procfs::file_name(module)
                    ),
                    Confidence::High,
                ));
            }
        }
        found
    }
}

// ---- GOT slots -------------------------------------------------------------------------------

/// The most GOT slot findings reported per module, and the largest GOT region read.
const MAX_GOT_FINDINGS: usize = 16;
const MAX_GOT_REGION: u64 = 1024 * 1024;

/// What the GOT check needs of the files, read once.
#[derive(Debug, Default)]
pub(crate) struct GotModel {
    /// By module path: (slot offset from the module's load bias, symbol).
    slots: Vec<(String, Vec<(u64, String)>)>,
    /// The modules among them bound at load (`BIND_NOW`): their slots never change after.
    bound_now: Vec<String>,
    /// By module path: its defined dynamic symbols, each name with every value it has
    /// (versioned symbols repeat a name) and whether it is an IFUNC.
    exports: std::collections::HashMap<String, std::collections::HashMap<String, Vec<(u64, bool)>>>,
}

/// The GOT slots (`GLOB_DAT`, `JUMP_SLOT`) of an ELF file and the symbols they are for.
fn got_slots(data: &[u8]) -> Vec<(u64, String)> {
    use object::elf;
    use object::read::elf::ElfFile64;
    let Ok(file) = ElfFile64::<object::Endianness>::parse(data) else {
        return Vec::new();
    };
    let (Some(relocations), Some(symbols)) =
        (file.dynamic_relocations(), file.dynamic_symbol_table())
    else {
        return Vec::new();
    };
    relocations
        .filter_map(|(offset, relocation)| {
            let object::RelocationFlags::Elf { r_type } = relocation.flags() else {
                return None;
            };
            let got = matches!(
                r_type,
                elf::R_X86_64_GLOB_DAT
                    | elf::R_X86_64_JUMP_SLOT
                    | elf::R_AARCH64_GLOB_DAT
                    | elf::R_AARCH64_JUMP_SLOT
            );
            let object::RelocationTarget::Symbol(index) = relocation.target() else {
                return None;
            };
            let name = symbols.symbol_by_index(index).ok()?.name().ok()?;
            (got && !name.is_empty()).then(|| (offset, name.to_string()))
        })
        .collect()
}

/// Whether an ELF file asks to be bound at load (`DF_BIND_NOW`, `DF_1_NOW`, `DT_BIND_NOW`).
fn binds_now(data: &[u8]) -> bool {
    use object::read::elf::{Dyn, ElfFile64};
    let Ok(elf) = ElfFile64::<object::Endianness>::parse(data) else {
        return false;
    };
    let endian = elf.endian();
    let Ok(Some((entries, _))) = elf.elf_section_table().dynamic(endian, data) else {
        return false;
    };
    entries.iter().any(|entry| {
        let (tag, value) = (entry.tag(endian), entry.val(endian));
        // DF_BIND_NOW (0x8) in DT_FLAGS, DF_1_NOW (0x1) in DT_FLAGS_1 (the ELF gABI's values).
        tag == object::elf::DT_BIND_NOW
            || (tag == object::elf::DT_FLAGS && value & 0x8 != 0)
            || (tag == object::elf::DT_FLAGS_1 && value & 0x1 != 0)
    })
}

/// The defined dynamic symbols of an ELF file.
fn exports(data: &[u8]) -> std::collections::HashMap<String, Vec<(u64, bool)>> {
    use object::read::elf::ElfFile64;
    let mut exported: std::collections::HashMap<String, Vec<(u64, bool)>> =
        std::collections::HashMap::new();
    let Ok(file) = ElfFile64::<object::Endianness>::parse(data) else {
        return exported;
    };
    for symbol in file.dynamic_symbols() {
        if symbol.is_undefined() {
            continue;
        }
        let Ok(name) = symbol.name() else { continue };
        let ifunc = symbol.elf_symbol().st_type() == object::elf::STT_GNU_IFUNC;
        exported
            .entry(name.to_string())
            .or_default()
            .push((symbol.address(), ifunc));
    }
    exported
}

/// Where a module's GOT slots lie in memory: (address of the lowest, its offset from the load
/// bias, length of the whole run); `None` if the module is not mapped or the run is too long.
fn got_region(
    maps: &[Mapping],
    module: &str,
    slots: &[(u64, String)],
) -> Option<(u64, u64, usize)> {
    let bias = load_bias(maps, module)?;
    let low = slots.iter().map(|(offset, _)| *offset).min()?;
    let high = slots.iter().map(|(offset, _)| *offset).max()?;
    let length = high - low + 8;
    if length > MAX_GOT_REGION {
        return None;
    }
    Some((bias + low, low, usize::try_from(length).ok()?))
}

/// Where a mapped module's file offset 0 is (its load bias for files whose first segment is
/// at address 0, as shared objects and position-independent executables are).
fn load_bias(maps: &[Mapping], path: &str) -> Option<u64> {
    maps.iter()
        .find(|m| m.path == path && m.offset == 0)
        .map(|m| m.start)
}

/// The GOT model, read from the files at the first call: the slots of the executable and of
/// the module holding this code, and what every mapped module exports (each file read once).
fn got_model<'s>(state: &'s mut State, maps: &[Mapping]) -> &'s GotModel {
    state.got.get_or_insert_with(|| {
        let own = got_model as *const () as u64;
        let exe = std::fs::read_link("/proc/self/exe")
            .ok()
            .map(|path| path.to_string_lossy().into_owned());
        let mut checked: Vec<String> = exe.into_iter().collect();
        if let Some(mapping) = maps.iter().find(|m| m.contains(own) && m.is_file())
            && !checked.contains(&mapping.path)
        {
            checked.push(mapping.path.clone());
        }
        let mut model = GotModel::default();
        for path in checked {
            if let Ok(data) = read_file_raw(&path) {
                if binds_now(&data) {
                    model.bound_now.push(path.clone());
                }
                model.exports.insert(path.clone(), exports(&data));
                model.slots.push((path, got_slots(&data)));
            }
        }
        for mapping in maps.iter().filter(|m| m.is_file() && m.offset == 0) {
            if !model.exports.contains_key(&mapping.path)
                && let Ok(data) = read_file_raw(&mapping.path)
            {
                model.exports.insert(mapping.path.clone(), exports(&data));
            }
        }
        model
    })
}

/// Every GOT slot of the executable and of the module holding the SDK must hold exactly the
/// address of its symbol in a module that defines it (for an IFUNC, an address in that
/// module's code or the vDSO; a slot of a lazily bound module not resolved yet, its own PLT):
/// a slot rewritten to another function, even one inside libc, is a hook.
fn got(state: &mut State, maps: &[Mapping], tally: &mut Tally, report: &mut Report) {
    let model = got_model(state, maps);
    let Some(memory) = open_proc("/proc/self/mem", report) else {
        return;
    };
    for (module, slots) in &model.slots {
        let Some((address, low, length)) = got_region(maps, module, slots) else {
            continue;
        };
        let mut region = vec![0u8; length];
        if sys::pread_exact_raw(&memory, &mut region, address).is_err() {
            report.note(format!("got: cannot read the GOT of {module}"));
            continue;
        }
        let mut findings = 0;
        for (offset, symbol) in slots {
            let at = usize::try_from(offset - low).unwrap_or(usize::MAX);
            let Some(bytes) = region.get(at..at + 8) else {
                continue;
            };
            let value = u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            tally.got_slots += 1;
            if value == 0 {
                // An unresolved weak symbol.
                continue;
            }
            // A slot not resolved yet (lazy binding) points at its own module's PLT.
            if maps
                .iter()
                .any(|m| m.path == *module && m.executable && m.contains(value))
                && !model.bound_now.contains(module)
            {
                continue;
            }
            let mut defined = false;
            let mut holds = false;
            for (path, exported) in &model.exports {
                let (Some(values), Some(bias)) = (exported.get(symbol), load_bias(maps, path))
                else {
                    continue;
                };
                defined = true;
                // An IFUNC resolves to an implementation in its module, or in the vDSO
                // (glibc's `time`, `gettimeofday`).
                holds |= values.iter().any(|(address, ifunc)| {
                    value == bias + address
                        || (*ifunc
                            && maps.iter().any(|m| {
                                (m.path == *path || m.path == "[vdso]")
                                    && m.executable
                                    && m.contains(value)
                            }))
                });
            }
            if defined && !holds && findings < MAX_GOT_FINDINGS {
                findings += 1;
                let place =
                    maps.iter()
                        .find(|m| m.contains(value))
                        .map_or("unmapped memory", |m| {
                            if m.path.is_empty() {
                                "anonymous memory"
                            } else {
                                m.path.as_str()
                            }
                        });
                report.push([Detection::new(
                    SignalKind::Hook,
                    "got",
                    format!(
                        "{}: the GOT slot of {symbol} holds an address in {place} that is not {symbol}",
                        procfs::file_name(module)
                    ),
                    Confidence::High,
                )]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_libraries_in_recorded_android_and_linux_maps() {
        // An Android app (arm64) with a library injected from /data/local/tmp.
        let android = procfs::parse_maps(
            "\
7a1b000000-7a1b100000 r-xp 00000000 fd:08 10 /apex/com.android.runtime/lib64/bionic/libc.so
7a1c000000-7a1c100000 r-xp 00000000 fd:08 11 /system/lib64/libandroid_runtime.so
7a1d000000-7a1d100000 r-xp 00000000 fd:08 12 /data/app/~~Xy==/org.example.cgm-Ab==/lib/arm64/libmedgate_ffi.so
7a1e000000-7a1e100000 r-xp 00000000 fd:08 13 /data/local/tmp/libinject.so
7a1f000000-7a1f100000 r-xp 00000000 fd:08 14 /data/local/tmp/re.frida.server/frida-agent-64.so
",
        );
        let dirs = LibraryDirs::of(&android, Some("/system/bin/app_process64"));
        let found = unexpected_libraries(&android, &Libraries::Android, &[], &dirs);
        assert_eq!(found.len(), 1);
        assert!(found[0].detail.starts_with("/data/local/tmp/libinject.so"));
        // A Linux hub: dependencies by name, glibc's own always, the rest only when allowed.
        let linux = procfs::parse_maps(
            "\
7f00000000-7f00100000 r-xp 00000000 fd:01 20 /usr/lib/x86_64-linux-gnu/libc.so.6
7f01000000-7f01100000 r-xp 00000000 fd:01 21 /usr/lib/x86_64-linux-gnu/libpthread.so.0
7f02000000-7f02100000 r-xp 00000000 fd:01 22 /opt/hub/plugins/libsensor.so
7f03000000-7f03100000 r-xp 00000000 fd:01 23 /tmp/libshim.so
7f04000000-7f04100000 r-xp 00000000 fd:01 24 /tmp/x/libnss_files.so.2
7f05000000-7f05100000 r-xp 00000000 fd:01 25 /dev/shm/libssl.so.3
7f06000000-7f06100000 r-xp 00000000 fd:01 26 /usr/lib/x86_64-linux-gnu/libssl.so.3
",
        );
        let dirs = LibraryDirs::of(&linux, Some("/opt/hub/bin/hub"));
        let dependencies: BTreeSet<String> =
            ["libc.so.6".to_string(), "libssl.so.3".to_string()].into();
        let rule = Libraries::Dependencies(&dependencies);
        // glibc's own names only from libc's directory, a dependency's name only from a
        // trusted one: a copy elsewhere under either name is an injected library.
        let found = unexpected_libraries(&linux, &rule, &[], &dirs);
        let paths: Vec<&str> = found
            .iter()
            .map(|d| d.detail.split(' ').next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "/opt/hub/plugins/libsensor.so",
                "/tmp/libshim.so",
                "/tmp/x/libnss_files.so.2",
                "/dev/shm/libssl.so.3"
            ]
        );
        let found = unexpected_libraries(&linux, &rule, &["/opt/hub/plugins/".into()], &dirs);
        assert_eq!(found.len(), 3);
        assert!(found[0].detail.starts_with("/tmp/libshim.so"));
    }

    #[test]
    fn a_view_no_running_process_has_is_a_detection() {
        let maps = procfs::parse_maps(
            "55d0a0000000-55d0a0100000 r-xp 00001000 08:01 100 /usr/bin/app\n\
             7f0000000000-7f0000100000 r-xp 00028000 08:01 200 /usr/lib/x86_64-linux-gnu/libc.so.6\n",
        );
        let own = 0x55d0_a000_0800;
        assert!(impossible_states(&maps, own, true, 3).is_empty());
        let found = |maps: &[Mapping], own, needs_libc, threads| -> Vec<String> {
            impossible_states(maps, own, needs_libc, threads)
                .into_iter()
                .map(|d| d.detail)
                .collect()
        };
        // Own code elsewhere, libc missing, no thread, nothing mapped at all.
        assert_eq!(found(&maps, 0x1000, true, 3).len(), 1);
        assert_eq!(found(&maps[..1], own, true, 3).len(), 1);
        assert!(found(&maps[..1], own, false, 3).is_empty());
        assert_eq!(found(&maps, own, true, 0).len(), 1);
        let all = found(&[], own, true, 0);
        assert_eq!(all.len(), 3, "{all:?}");
        assert!(all.iter().all(|detail| detail.contains("hidden or faked")));
    }

    #[test]
    fn this_process_reads_itself_from_procfs() {
        let mut report = Report::default();
        assert!(open_proc("/proc/self/maps", &mut report).is_some());
        assert!(!task_ids(&mut report).is_empty());
        // A file elsewhere standing in for a /proc file is a detection.
        let copy = std::env::temp_dir().join(format!("medgate-maps-{}", std::process::id()));
        std::fs::write(&copy, "fake").unwrap();
        assert!(open_proc(copy.to_str().unwrap(), &mut report).is_none());
        std::fs::remove_file(&copy).unwrap();
        assert_eq!(report.detections.len(), 1, "{:?}", report.detections);
        assert_eq!(report.detections[0].detector, "procfs");
    }

    #[test]
    fn every_executable_module_is_compared_the_dynamic_linker_first_the_rest_in_turn() {
        let mut text = String::from(
            "55d0a0000000-55d0a0100000 r-xp 00001000 08:01 100 /usr/bin/app\n\
             7f0000000000-7f0000100000 r-xp 00028000 08:01 200 /usr/lib/x86_64-linux-gnu/libc.so.6\n\
             7f0100000000-7f0100100000 r--p 00000000 08:01 201 /usr/lib/x86_64-linux-gnu/libdata.so\n\
             7f0200000000-7f0200100000 r-xp 00001000 08:01 202 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2\n",
        );
        for n in 0..10 {
            text.push_str(&format!(
                "7f1{n}00000000-7f1{n}00100000 r-xp 00001000 08:01 3{n:02} /usr/lib/libextra{n}.so\n"
            ));
        }
        let maps = procfs::parse_maps(&text);
        let mut cursor = 0;
        let first = modules_to_compare(
            &maps,
            Some("/usr/bin/app"),
            0x55d0_a000_0800,
            &[],
            &mut cursor,
        );
        assert_eq!(
            &first[..3],
            [
                "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                "/usr/bin/app",
                "/usr/lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
        assert_eq!(first.len(), 3 + OTHER_MODULES_PER_PASS);
        assert!(
            !first.contains(&"/usr/lib/x86_64-linux-gnu/libdata.so"),
            "not executable"
        );
        let second = modules_to_compare(
            &maps,
            Some("/usr/bin/app"),
            0x55d0_a000_0800,
            &[],
            &mut cursor,
        );
        // Over two passes every other module has had its turn.
        let mut seen: BTreeSet<&str> = first[3..].iter().chain(&second[3..]).copied().collect();
        seen.retain(|path| path.contains("libextra"));
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn the_measurement_is_of_the_mapped_executable_read_by_system_calls() {
        let mut report = Report::default();
        let measured = measure_executable(&mut report).unwrap();
        assert_eq!(
            measured,
            crate::measure::current_executable_sha256().unwrap()
        );
        assert!(report.detections.is_empty(), "{:?}", report.detections);
    }

    #[test]
    fn every_got_slot_of_this_process_holds_its_symbol() {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let slots = got_slots(&std::fs::read(&exe).unwrap());
        assert!(
            slots.iter().any(|(_, symbol)| symbol == "read"),
            "{} slots",
            slots.len()
        );
        let mut state = State::default();
        let mut report = Report::default();
        let maps = procfs::parse_maps(&std::fs::read_to_string("/proc/self/maps").unwrap());
        let mut tally = Tally::default();
        got(&mut state, &maps, &mut tally, &mut report);
        // Every slot of the executable and the SDK's module was read and checked.
        assert!(
            tally.got_slots as usize >= slots.len(),
            "{}",
            tally.got_slots
        );
        let found: Vec<_> = report
            .detections
            .iter()
            .filter(|d| d.detector == "got")
            .collect();
        assert!(found.is_empty(), "{found:?}");
        assert!(!state.got.unwrap().exports.is_empty());
    }

    #[test]
    fn the_sentinel_sees_nothing_change_in_an_untouched_process() {
        let mut state = State::default();
        let sentinel = Sentinel::start(&mut state).unwrap();
        assert_eq!(sentinel.prologues.len(), watched_functions().len());
        for _ in 0..3 {
            assert!(sentinel.check().is_empty());
        }
    }

    #[test]
    fn library_allow_list_patterns() {
        let allowed = vec![
            "libplugin.so".to_string(),
            "/opt/app/lib/".to_string(),
            "libpy*".to_string(),
        ];
        let dirs = LibraryDirs {
            libc: Some("/usr/lib/x86_64-linux-gnu".into()),
            executable: Some("/x".into()),
            runpaths: vec!["/opt/py/lib".into()],
        };
        let allowed_here = |path| allowed_by_pattern(path, &allowed, &dirs);
        assert!(allowed_by_pattern(
            "/usr/lib/x86_64-linux-gnu/libnss_files.so.2",
            &[],
            &dirs
        ));
        assert!(!allowed_by_pattern("/tmp/libnss_files.so.2", &[], &dirs));
        assert!(!allowed_by_pattern(
            "/usr/local/lib/libnss_x.so",
            &[],
            &dirs
        ));
        assert!(allowed_here("/x/libplugin.so"));
        assert!(!allowed_here("/tmp/libplugin.so"));
        assert!(allowed_here("/opt/app/lib/libanything.so"));
        assert!(allowed_here("/usr/lib/libpython3.so"));
        assert!(!allowed_here("/home/u/libpython3.so"));
        // A name from the executable's RUNPATH counts there.
        assert!(allowed_here("/opt/py/lib/libpython3.so"));
        assert!(!allowed_here("/tmp/libshim.so"));
        let exact = vec!["/srv/app/libvendor.so".to_string()];
        assert!(allowed_by_pattern("/srv/app/libvendor.so", &exact, &dirs));
        assert!(!allowed_by_pattern("/tmp/libvendor.so", &exact, &dirs));
    }
}
