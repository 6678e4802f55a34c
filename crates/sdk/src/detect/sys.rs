//! The system calls detection needs that `std` does not offer: `fork` and `ptrace`, for the
//! self-attach probe and the self-ptrace guard, and `fstatfs`, to know a `/proc` file is on
//! procfs. This is the only module in medgate with `unsafe` code; every block says why it is
//! sound.
//!
//! After `fork` in a multi-threaded process the child may only make async-signal-safe calls:
//! the child code here calls `sigprocmask` (first: it blocks every signal, so none of the
//! app's handlers run in the child), `read`, `write`, `close`, `ptrace`, `waitpid`, `getppid`,
//! `signalfd`, `poll`, `pread64`, `kill` and `_exit`, allocates nothing and takes no lock.
#![allow(unsafe_code)]

use std::io;

/// Linux's `PTRACE_SEIZE` and `PTRACE_LISTEN` request numbers (include/uapi/linux/ptrace.h,
/// the same on every architecture). The `libc` crate defines them for glibc, not for bionic.
const PTRACE_SEIZE: libc::c_int = 0x4206;
const PTRACE_LISTEN: libc::c_int = 0x4208;

/// A system call made by this code itself, not through libc: on x86-64 and AArch64 the
/// instruction is here, so no GOT slot, PLT stub or libc wrapper an injected library or a
/// data-only write rewrote stands between the detectors and the kernel (elsewhere, libc's
/// `syscall`). Returns the kernel's result, or its errno.
fn raw_syscall(number: libc::c_long, args: [usize; 4]) -> Result<usize, i32> {
    #[cfg(target_arch = "x86_64")]
    let result: isize = {
        let result: isize;
        // SAFETY: the `syscall` instruction with the Linux x86-64 convention (number in rax,
        // arguments in rdi, rsi, rdx, r10; rcx and r11 clobbered). The callers below pass the
        // arguments each system call documents, pointers only to memory valid for it.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") number as isize => result,
                in("rdi") args[0],
                in("rsi") args[1],
                in("rdx") args[2],
                in("r10") args[3],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        result
    };
    #[cfg(target_arch = "aarch64")]
    let result: isize = {
        let result: isize;
        // SAFETY: `svc 0` with the Linux AArch64 convention (number in x8, arguments and the
        // result in x0..x3); the callers pass what each system call documents.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") number,
                inlateout("x0") args[0] as isize => result,
                in("x1") args[1],
                in("x2") args[2],
                in("x3") args[3],
                options(nostack),
            );
        }
        result
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let result: isize = {
        // SAFETY: libc's `syscall` with the same arguments; see above.
        let result = unsafe { libc::syscall(number, args[0], args[1], args[2], args[3]) };
        if result < 0 {
            -(errno() as isize)
        } else {
            result as isize
        }
    };
    // The kernel returns -errno in -4095..-1.
    if (-4095..0).contains(&result) {
        Err(i32::try_from(-result).unwrap_or(libc::EIO))
    } else {
        Ok(result.unsigned_abs())
    }
}

/// What a forked child's `PTRACE_SEIZE` of its parent returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The child could attach: nobody else traces this process.
    Attached,
    /// `EPERM`: another tracer holds the process, or the kernel forbids it here.
    Refused,
    /// The probe could not run (fork failed, the child's status was lost).
    Unavailable,
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// A pipe whose ends are closed on exec.
fn pipe() -> io::Result<[i32; 2]> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid, writable array of two c_ints, as pipe2 requires.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0 {
        Ok(fds)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn close(fd: i32) {
    // SAFETY: closing a descriptor this module created and owns; errors are irrelevant.
    unsafe {
        libc::close(fd);
    }
}

fn write_byte(fd: i32, byte: u8) -> bool {
    // SAFETY: writes one byte from a valid stack location to a descriptor this module owns.
    unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) == 1 }
}

/// Reads one byte, retrying on EINTR; `None` at end of file or on error.
fn read_byte(fd: i32) -> Option<u8> {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into a valid stack location from a descriptor this
        // module owns.
        let read = unsafe { libc::read(fd, std::ptr::from_mut(&mut byte).cast(), 1) };
        match read {
            1 => return Some(byte),
            -1 if errno() == libc::EINTR => continue,
            _ => return None,
        }
    }
}

/// Allows `child` to ptrace this process where Yama restricts ptrace to ancestors
/// (`ptrace_scope` 1); `0` withdraws it. Without Yama the call fails harmlessly.
fn allow_tracer(child: i32) {
    // SAFETY: PR_SET_PTRACER takes a pid by value and touches no memory of ours.
    unsafe {
        libc::prctl(
            libc::PR_SET_PTRACER,
            libc::c_ulong::try_from(child).unwrap_or(0),
        );
    }
}

/// `PTRACE_SEIZE` of `tid` with `options`; the errno on failure.
fn seize(tid: i32, options: libc::c_int) -> Result<(), i32> {
    // PTRACE_SEIZE reads no memory of ours: addr is ignored (0) and data carries the options
    // by value. Made by raw_syscall: a rewritten `ptrace` GOT slot cannot answer for it.
    raw_syscall(
        libc::SYS_ptrace,
        [
            PTRACE_SEIZE as usize,
            tid.unsigned_abs() as usize,
            0,
            options.unsigned_abs() as usize,
        ],
    )
    .map(|_| ())
}

/// A restarting ptrace request (`PTRACE_CONT`, `PTRACE_LISTEN`) delivering `signal`.
fn restart(request: libc::c_int, tid: i32, signal: libc::c_int) {
    // SAFETY: restarting requests read no memory of ours: addr is ignored and data carries the
    // signal number by value.
    unsafe {
        libc::ptrace(
            request as _,
            tid,
            std::ptr::null_mut::<libc::c_void>(),
            signal as libc::c_long as *mut libc::c_void,
        );
    }
}

/// `waitpid`, retrying on EINTR: `(pid, status)`, or the errno.
fn wait(pid: i32, flags: libc::c_int) -> Result<(i32, i32), i32> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid, writable c_int.
        let waited = unsafe { libc::waitpid(pid, &mut status, flags) };
        if waited >= 0 {
            return Ok((waited, status));
        }
        let error = errno();
        if error != libc::EINTR {
            return Err(error);
        }
    }
}

fn exit_child(code: i32) -> ! {
    // SAFETY: `_exit` ends the forked child without running this process's atexit handlers
    // or destructors, which belong to the parent.
    unsafe { libc::_exit(code) }
}

/// Forks a child that waits for the parent's go-ahead (after it has been allowed to trace the
/// parent) and then runs `child`, which must be async-signal-safe, and exits. Returns
/// the child's pid and the read end of a pipe the child may report on.
fn fork_tracer(child: impl FnOnce(i32, i32)) -> io::Result<(i32, i32)> {
    let go = pipe()?;
    let report = match pipe() {
        Ok(report) => report,
        Err(error) => {
            close(go[0]);
            close(go[1]);
            return Err(error);
        }
    };
    // SAFETY: `getpid` has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child branch below only makes async-signal-safe calls (see the module doc)
    // and leaves with `_exit`; the parent branch continues normally.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // The child keeps the app's signal handlers, which must not run here (a Ctrl-C reaches
        // the whole process group): every signal is blocked. The guard reads SIGCHLD from a
        // signalfd; SIGKILL, which ends it with its parent, cannot be blocked.
        // SAFETY: `all` is a valid sigset_t that sigfillset initialises; sigprocmask reads it.
        unsafe {
            let mut all = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut all);
            libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        }
        close(go[1]);
        close(report[0]);
        if read_byte(go[0]).is_none() {
            exit_child(3);
        }
        close(go[0]);
        child(parent, report[1]);
        exit_child(0);
    }
    close(go[0]);
    close(report[1]);
    if pid < 0 {
        let error = io::Error::last_os_error();
        close(go[1]);
        close(report[0]);
        return Err(error);
    }
    allow_tracer(pid);
    write_byte(go[1], 1);
    close(go[1]);
    Ok((pid, report[0]))
}

/// Forks a child that tries to attach to this process and reports whether it could.
pub fn probe_attach() -> Probe {
    let Ok((pid, report)) = fork_tracer(|parent, report| {
        // The child exits at once, which detaches the seized parent without stopping it.
        let outcome = match seize(parent, 0) {
            Ok(()) => b'a',
            Err(libc::EPERM) => b'r',
            Err(_) => b'u',
        };
        write_byte(report, outcome);
    }) else {
        return Probe::Unavailable;
    };
    let outcome = read_byte(report);
    close(report);
    let _ = wait(pid, 0);
    allow_tracer(0);
    match outcome {
        Some(b'a') => Probe::Attached,
        Some(b'r') => Probe::Refused,
        _ => Probe::Unavailable,
    }
}

/// Code the guard compares from outside this process while it runs: the bytes at each address
/// when the guard started, read again through a descriptor of this process's
/// `/proc/self/mem` (opened here, inherited by the guard). Fixed-size: the guard allocates
/// nothing.
#[derive(Clone, Copy)]
pub struct GuardWatch {
    memory: i32,
    sites: [(u64, [u8; GUARD_SITE]); GUARD_SITES],
    count: usize,
}

/// Bytes per watched site, the most sites, and how often the guard looks (milliseconds).
pub const GUARD_SITE: usize = 16;
const GUARD_SITES: usize = 16;
const GUARD_WATCH_MS: libc::c_int = 5;

impl GuardWatch {
    /// Watches `sites` (address, current bytes), the first [`GUARD_SITES`] of them, read through
    /// `memory`, which must stay open until the guard has started.
    pub fn new(memory: &std::fs::File, sites: &[(u64, [u8; GUARD_SITE])]) -> GuardWatch {
        use std::os::fd::AsRawFd;
        let mut watch = GuardWatch {
            memory: memory.as_raw_fd(),
            sites: [(0, [0; GUARD_SITE]); GUARD_SITES],
            count: sites.len().min(GUARD_SITES),
        };
        watch.sites[..watch.count].copy_from_slice(&sites[..watch.count]);
        watch
    }

    /// Whether a watched site now holds other bytes. A site that cannot be read (the process
    /// replaced its image with `exec`) is not a change.
    pub fn changed(&self) -> bool {
        self.sites[..self.count].iter().any(|(address, bytes)| {
            let mut now = [0u8; GUARD_SITE];
            // `now` is writable for its length; the descriptor was inherited from the parent.
            let read = raw_syscall(
                libc::SYS_pread64,
                [
                    self.memory.unsigned_abs() as usize,
                    now.as_mut_ptr() as usize,
                    GUARD_SITE,
                    *address as usize,
                ],
            );
            read == Ok(GUARD_SITE) && now != *bytes
        })
    }
}

/// Starts a guard process that seizes every thread in `tids` (this process's threads) and
/// then forwards every signal, so the process behaves as if untraced while no other tracer
/// can attach. New threads are traced automatically (`PTRACE_O_TRACECLONE`). Between
/// signals, every few milliseconds, it compares the `watch`ed code from outside the process:
/// a change (a hook written through `/proc/<pid>/mem`, which no tracer can refuse root) ends
/// the process with `SIGKILL` — it fails closed, even where the detectors inside were
/// silenced. The guard ends when this process does: when its main thread's exit is reported,
/// when no traced thread is left, or when it is no longer this process's child (not with
/// `PR_SET_PDEATHSIG`, which follows the thread that forked it: a guard started from a thread
/// that later ends would die with it). Returns the guard's pid once it is attached.
pub fn start_guard(tids: &[i32], watch: GuardWatch) -> io::Result<i32> {
    let (pid, report) = fork_tracer(|parent, report| {
        for &tid in tids {
            if seize(tid, libc::PTRACE_O_TRACECLONE).is_err() && tid == parent {
                write_byte(report, b'r');
                exit_child(1);
            }
        }
        write_byte(report, b'a');
        close(report);
        guard_loop(parent, &watch);
    })?;
    let outcome = read_byte(report);
    close(report);
    if outcome == Some(b'a') {
        Ok(pid)
    } else {
        let _ = wait(pid, 0);
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the guard could not attach (another tracer, or ptrace is not allowed here)",
        ))
    }
}

/// The guard's life: restart every stopped thread, delivering the signal it stopped for, and
/// look at the watched code every [`GUARD_WATCH_MS`], until the traced process is gone.
fn guard_loop(parent: i32, watch: &GuardWatch) -> ! {
    let signals = child_signals();
    loop {
        // Every stopped or ended thread, without blocking.
        loop {
            match wait(-1, libc::__WALL | libc::WNOHANG) {
                Ok((0, _)) => break,
                Ok((tid, status)) => on_stop(parent, tid, status),
                Err(_) => exit_child(0),
            }
        }
        // SAFETY: `getppid` has no preconditions.
        if unsafe { libc::getppid() } != parent {
            exit_child(0);
        }
        if watch.changed() {
            // SAFETY: `kill` takes a pid and a signal number by value.
            unsafe {
                libc::kill(parent, libc::SIGKILL);
            }
            exit_child(0);
        }
        // Wake on the next SIGCHLD (a thread stopped or ended) or after the interval. Without a
        // signalfd, `poll` ignores the negative descriptor and just waits.
        let mut ready = libc::pollfd {
            fd: signals,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let woke = unsafe { libc::poll(&mut ready, 1, GUARD_WATCH_MS) };
        if woke > 0 && ready.revents & libc::POLLIN != 0 {
            let mut drained = [0u8; 128 * 8];
            // SAFETY: `drained` is writable for its length (a whole number of
            // signalfd_siginfo records).
            unsafe {
                libc::read(signals, drained.as_mut_ptr().cast(), drained.len());
            }
        }
    }
}

/// A descriptor SIGCHLD (blocked since the fork) is read from, or -1.
fn child_signals() -> i32 {
    // SAFETY: `set` is a valid sigset_t that sigemptyset initialises before use; signalfd
    // reads it.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    }
}

/// One traced thread's stop or end.
fn on_stop(parent: i32, tid: i32, status: i32) {
    if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
        if tid == parent {
            exit_child(0);
        }
        return;
    }
    if !libc::WIFSTOPPED(status) {
        return;
    }
    let signal = libc::WSTOPSIG(status);
    let event = status >> 16;
    if event == libc::PTRACE_EVENT_STOP {
        if matches!(
            signal,
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
        ) {
            // Group-stop: stay stopped (job control keeps working) until SIGCONT.
            restart(PTRACE_LISTEN, tid, 0);
        } else {
            // A new thread's first stop, or an interrupt.
            restart(libc::PTRACE_CONT as libc::c_int, tid, 0);
        }
    } else if event != 0 {
        // PTRACE_EVENT_CLONE: the new thread is traced; let the creator go on.
        restart(libc::PTRACE_CONT as libc::c_int, tid, 0);
    } else {
        // Signal-delivery-stop: deliver the signal as if no one were tracing.
        restart(libc::PTRACE_CONT as libc::c_int, tid, signal);
    }
}

/// The `fstat` and `fstatfs` system call numbers: the generic table's on AArch64 (the libc
/// crate lacks them for Android there), libc's elsewhere.
#[cfg(target_arch = "aarch64")]
const SYS_FSTAT: libc::c_long = 80;
#[cfg(target_arch = "aarch64")]
const SYS_FSTATFS: libc::c_long = 44;
#[cfg(not(target_arch = "aarch64"))]
const SYS_FSTAT: libc::c_long = libc::SYS_fstat;
#[cfg(not(target_arch = "aarch64"))]
const SYS_FSTATFS: libc::c_long = libc::SYS_fstatfs;

/// `PROC_SUPER_MAGIC` (include/uapi/linux/magic.h).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Whether `file` is on procfs. A bind mount over a `/proc` file, or a descriptor a hooked
/// `open` handed back (a memfd, a copy on tmpfs), would not be: such a file feeds the detectors
/// a picture someone chose.
pub fn is_procfs(file: &std::fs::File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // The kernel's struct statfs starts with `f_type`, a long on every Linux architecture the
    // SDK targets; the buffer is larger than the whole struct anywhere (120 bytes on 64-bit).
    let mut stat: [libc::c_long; 64] = [0; 64];
    // The buffer is valid and writable; the descriptor belongs to `file`, which outlives the
    // call. Made by raw_syscall, as are the reads: no GOT slot answers for it.
    raw_syscall(
        SYS_FSTATFS,
        [
            file.as_raw_fd().unsigned_abs() as usize,
            stat.as_mut_ptr() as usize,
            0,
            0,
        ],
    )
    .map_err(io::Error::from_raw_os_error)?;
    // `c_long` is i64 here and i32 on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let kind = i64::from(stat[0]);
    Ok(kind == PROC_SUPER_MAGIC)
}

/// Opens `path` read-only with the `openat` system call itself ([`raw_syscall`]): a preload
/// or a GOT write that redirects `open` (to hand over a clean copy, or the genuine
/// executable) does not see it.
pub fn open_raw(path: &std::ffi::CStr) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let flags = (libc::O_RDONLY | libc::O_CLOEXEC).unsigned_abs() as usize;
    // AT_FDCWD is negative; the kernel reads the register as an int.
    let fd = raw_syscall(
        libc::SYS_openat,
        [
            libc::AT_FDCWD as isize as usize,
            path.as_ptr() as usize,
            flags,
            0,
        ],
    )
    .map_err(io::Error::from_raw_os_error)?;
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just returned this descriptor to us; the File takes sole ownership.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Reads into `buffer` with the `read` system call itself ([`raw_syscall`]).
pub fn read_raw(file: &std::fs::File, buffer: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    loop {
        // `buffer` is valid and writable for its length; the descriptor belongs to `file`.
        match raw_syscall(
            libc::SYS_read,
            [
                file.as_raw_fd().unsigned_abs() as usize,
                buffer.as_mut_ptr() as usize,
                buffer.len(),
                0,
            ],
        ) {
            Ok(read) => return Ok(read),
            Err(libc::EINTR) => continue,
            Err(error) => return Err(io::Error::from_raw_os_error(error)),
        }
    }
}

/// The inode and size of an open file, from the `fstat` system call itself
/// ([`raw_syscall`]).
pub fn stat_raw(file: &std::fs::File) -> io::Result<(u64, u64)> {
    use std::os::fd::AsRawFd;
    /// libc's struct stat for this target is the kernel's; the spare room is for safety.
    #[repr(C)]
    struct Buffer {
        stat: libc::stat,
        _spare: [u64; 16],
    }
    let mut buffer = std::mem::MaybeUninit::<Buffer>::zeroed();
    // The buffer is writable and larger than the kernel's struct stat for this target.
    raw_syscall(
        SYS_FSTAT,
        [
            file.as_raw_fd().unsigned_abs() as usize,
            buffer.as_mut_ptr() as usize,
            0,
            0,
        ],
    )
    .map_err(io::Error::from_raw_os_error)?;
    // SAFETY: fstat returned 0, so it filled the struct (and the rest was zeroed).
    let stat = unsafe { buffer.assume_init() }.stat;
    #[allow(clippy::unnecessary_cast)]
    Ok((stat.st_ino as u64, u64::try_from(stat.st_size).unwrap_or(0)))
}

/// Fills `buffer` from `offset` of `file` with the `pread64` system call itself
/// ([`raw_syscall`]): how the code check reads this process's memory through `/proc/self/mem`.
pub fn pread_exact_raw(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut done = 0;
    while done < buffer.len() {
        let at = usize::try_from(offset + done as u64).map_err(io::Error::other)?;
        // `buffer[done..]` is valid and writable for its length; the descriptor is `file`'s.
        match raw_syscall(
            libc::SYS_pread64,
            [
                file.as_raw_fd().unsigned_abs() as usize,
                buffer[done..].as_mut_ptr() as usize,
                buffer.len() - done,
                at,
            ],
        ) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(read) => done += read,
            Err(libc::EINTR) => {}
            Err(error) => return Err(io::Error::from_raw_os_error(error)),
        }
    }
    Ok(())
}
