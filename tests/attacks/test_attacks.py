"""Real attack tools against a real process built from the medgate SDK.

Each test starts `medgate-victim` (crates/victim), attacks it with a real tool (gdb, strace,
ltrace, Frida, LD_PRELOAD, bubblewrap, a modified binary) and asserts what the SDK's
detectors report. A clean run must report nothing, so false positives fail the build. The
end-to-end tests run a real `medgate serve` and show the server refusing (or degrading) a
hooked victim.

Run through `scripts/attack-tests`, which installs the tools, builds the victim and sets:
  MEDGATE_VICTIM  the victim binary (a release build, as an app would ship)
  MEDGATE_BIN     the medgate CLI
Needs root (Frida attaches as root). Tests run serially.
"""

import hashlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import frida

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from medgate_testing import MedgateServer, free_port, wait_for  # noqa: E402

VICTIM = os.environ["MEDGATE_VICTIM"]
MEDGATE = os.environ["MEDGATE_BIN"]
HERE = os.path.dirname(os.path.abspath(__file__))


def tracer_of(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def detections(report):
    return [(d["kind"], d["detector"], d["detail"]) for d in report["detections"]]


class Victim:
    """`medgate-victim serve`: one JSON line per command."""

    def __init__(self, *args, env=None, executable=VICTIM):
        self.process = subprocess.Popen(
            [executable, "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.ready = self.read_line(timeout=20)
        assert self.ready.get("ready"), self.ready
        self.pid = self.ready["pid"]
        self.extra = []

    def read_line(self, timeout=20):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"victim said nothing for {timeout}s")
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError(f"victim exited: {self.process.stderr.read()}")
        return json.loads(line)

    def command(self, command, timeout=20):
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        while True:
            line = self.read_line(timeout)
            if "monitor" in line:
                self.extra.append(line)
                continue
            return line

    def check(self):
        return self.command("check")

    def next_monitor_event(self, timeout=15):
        if self.extra:
            return self.extra.pop(0)
        line = self.read_line(timeout)
        assert "monitor" in line, line
        return line

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


def run_once(*args, env=None, executable=VICTIM, wrapper=()):
    done = subprocess.run(
        [*wrapper, executable, "once", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # ltrace and gdb may print their own lines; the report is the JSON line.
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


class Tool:
    """A long-running attack tool, stopped at the end of the test."""

    def __init__(self, *argv):
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate(timeout=10)


class AttackTest(unittest.TestCase):
    def setUp(self):
        self.cleanups = []

    def tearDown(self):
        for cleanup in reversed(self.cleanups):
            cleanup()

    def victim(self, *args, **kwargs):
        victim = Victim(*args, **kwargs)
        self.cleanups.append(victim.close)
        return victim

    def tool(self, *argv):
        tool = Tool(*argv)
        self.cleanups.append(tool.close)
        return tool

    def tempdir(self):
        path = tempfile.mkdtemp(prefix="medgate-attack-")
        self.cleanups.append(lambda: shutil.rmtree(path, ignore_errors=True))
        return path

    def modified_copy(self):
        """A copy of the victim with bytes appended, as a repackaged build differs."""
        copy = os.path.join(self.tempdir(), "medgate-victim")
        shutil.copy2(VICTIM, copy)
        with open(copy, "ab") as f:
            f.write(b"\0patched by an attacker\0")
        return copy

    def shim(self):
        """tests/attacks/shim.c built into a preloadable library."""
        path = os.path.join(self.tempdir(), "libshim.so")
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", path, os.path.join(HERE, "shim.c")], check=True
        )
        return path

    def assertDetected(self, report, kind, detector, fragment=""):
        found = detections(report)
        self.assertTrue(
            any(k == kind and d == detector and fragment in detail for k, d, detail in found),
            f"expected {kind}/{detector} containing {fragment!r}, got {json.dumps(found, indent=1)}",
        )


class CleanRun(AttackTest):
    def test_a_clean_run_reports_no_threats(self):
        # The compiler pads functions with int3; the code check must not take it for
        # breakpoints (it is in the file too).
        disassembly = subprocess.run(
            ["objdump", "-d", "--no-show-raw-insn", VICTIM], capture_output=True, text=True, check=True
        ).stdout
        self.assertGreater(disassembly.count("\tint3"), 1000)
        report = run_once()
        self.assertEqual(detections(report), [], report)
        victim = self.victim()
        for _ in range(3):
            self.assertEqual(detections(victim.check()), [])
        self.assertEqual(victim.command("dose 4"), {"dose": 40})


class Debuggers(AttackTest):
    def test_gdb_attach(self):
        victim = self.victim()
        self.tool("gdb", "-q", "-nx", "-batch", "-p", str(victim.pid), "-ex", "continue")
        wait_for(lambda: tracer_of(victim.pid), what="gdb to attach")
        self.assertDetected(victim.check(), "debugger", "tracer", "(gdb)")

    def test_gdb_breakpoint_on_a_function(self):
        victim = self.victim()
        self.tool(
            "gdb", "-q", "-nx", "-batch", "-p", str(victim.pid),
            # rbreak also finds functions through the symbol table (release builds carry line
            # tables only).
            "-ex", "rbreak victim_dose", "-ex", "continue",
        )
        wait_for(lambda: tracer_of(victim.pid), what="gdb to attach")
        # gdb inserts its breakpoints when the inferior resumes.
        report = wait_for(
            lambda: (r := victim.check()) and any(d == "code" for _, d, _ in detections(r)) and r,
            what="the breakpoint to be inserted",
        )
        self.assertDetected(
            report, "debugger", "code", "software breakpoint at medgate-victim!medgate_victim::victim_dose"
        )

    def test_code_written_into_the_dynamic_linker_and_libm_and_left_there(self):
        # gdb writes a breakpoint into the dynamic linker and a jump into libm (functions the
        # victim never calls) and detaches: no tracer remains, only the changed code.
        victim = self.victim()
        gdb = subprocess.run(
            ["gdb", "-q", "-nx", "-batch", "-p", str(victim.pid),
             "-ex", "set {unsigned char}_dl_mcount = 0xcc",
             "-ex", "set {unsigned char}jn = 0xe9",
             "-ex", "set {int}((char *)jn + 1) = 0",
             "-ex", "detach"],
            capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(gdb.returncode, 0, gdb.stdout + gdb.stderr)
        wait_for(lambda: tracer_of(victim.pid) == 0, what="gdb to detach")
        report = victim.check()
        self.assertDetected(report, "debugger", "code", "ld-linux-x86-64.so.2!_dl_mcount")
        self.assertDetected(report, "hook", "code", "libm.so.6!jn")
        self.assertEqual(victim.command("dose 3"), {"dose": 30})

    def test_strace_attach(self):
        victim = self.victim()
        self.tool("strace", "-p", str(victim.pid), "-o", "/dev/null")
        wait_for(lambda: tracer_of(victim.pid), what="strace to attach")
        self.assertDetected(victim.check(), "debugger", "tracer", "(strace)")

    def test_ltrace(self):
        report = run_once(wrapper=("ltrace", "-o", "/dev/null"))
        self.assertDetected(report, "debugger", "tracer", "(ltrace)")
        # ltrace's breakpoints sit in the executable's PLT.
        self.assertDetected(report, "debugger", "code", "software breakpoint at medgate-victim!.plt")

    def test_the_guard_keeps_debuggers_out(self):
        victim = self.victim("--guard")
        guard = victim.ready["guard"]
        self.assertEqual(tracer_of(victim.pid), guard)
        gdb = subprocess.run(
            ["gdb", "-q", "-nx", "-batch", "-p", str(victim.pid), "-ex", "detach"],
            capture_output=True, text=True, timeout=60,
        )
        self.assertIn("Operation not permitted", gdb.stdout + gdb.stderr)
        strace = subprocess.run(
            ["strace", "-p", str(victim.pid), "-o", "/dev/null"],
            capture_output=True, text=True, timeout=60,
        )
        self.assertNotEqual(strace.returncode, 0)
        self.assertIn("Operation not permitted", strace.stderr)
        # Still clean, still working (signals reach it through the guard).
        self.assertEqual(detections(victim.check()), [])
        self.assertEqual(victim.command("dose 2"), {"dose": 20})
        # Killing the guard is noticed.
        os.kill(guard, 9)
        wait_for(lambda: tracer_of(victim.pid) == 0, what="the guard to go")
        self.assertDetected(victim.check(), "debugger", "guard", "no longer traces")

    def test_code_written_through_proc_mem_ends_a_guarded_process(self):
        # Root writes through /proc/<pid>/mem need no ptrace, so the guard cannot refuse them.
        # It looks at the watched functions' code from outside every few milliseconds and ends
        # the process at a change: it fails closed even if the detectors inside were silenced.
        victim = self.victim("--guard")
        self.assertEqual(victim.command("dose 2"), {"dose": 20})
        libc_base, libc = mapped_base(victim.pid, "/libc.so.6")
        address = libc_base + symbol_value(libc, "access")
        with open(f"/proc/{victim.pid}/mem", "r+b", buffering=0) as memory:
            memory.seek(address)
            memory.write(b"\xe9\x00\x00\x00\x00")
        victim.process.wait(timeout=10)
        self.assertEqual(victim.process.returncode, -9, "ended by SIGKILL from its guard")


HOOK_DOSE = """
const symbol = Process.mainModule.enumerateSymbols().find(s => s.name.includes('victim_dose'));
Interceptor.attach(symbol.address, { onLeave(result) { result.replace(ptr(7)); } });
send(symbol.name);
"""


class Frida(AttackTest):
    def setUp(self):
        super().setUp()
        self.sessions = []
        self.cleanups.append(self.detach_all)

    def detach_all(self):
        for session in self.sessions:
            try:
                session.detach()
            except frida.InvalidOperationError:
                pass

    def attach(self, pid):
        session = frida.attach(pid)
        self.sessions.append(session)
        return session

    def test_frida_attach(self):
        victim = self.victim()
        self.attach(victim.pid)
        report = victim.check()
        self.assertDetected(report, "hook", "frida_maps", "frida-agent")
        # A bare attach rewrites these libc functions (Frida's exception and exit handling).
        for function in ("abort", "signal", "sigaction", "exit", "_exit"):
            self.assertDetected(report, "hook", "code", f"inline hook) at libc.so.6!{function}+0x0")

    def test_frida_interceptor_hook_on_a_named_function(self):
        victim = self.victim()
        clean = victim.check()["coverage"]
        session = self.attach(victim.pid)
        script = session.create_script(HOOK_DOSE)
        names = []
        script.on("message", lambda message, data: names.append(message.get("payload")))
        script.load()
        wait_for(lambda: names, what="the script to load")
        # The hook is real: it changes the function's result.
        self.assertEqual(victim.command("dose 4"), {"dose": 7})
        hooked = victim.check()
        self.assertDetected(
            hooked, "hook", "code", "inline hook) at medgate-victim!medgate_victim::victim_dose+0x0"
        )
        # The report's digest of the compared code is not the clean one's (and Frida's agent
        # brought modules of its own to compare).
        self.assertGreaterEqual(hooked["coverage"]["modules"], clean["modules"])
        self.assertNotEqual(hooked["coverage"]["code_sha256"], clean["code_sha256"])

    def test_frida_spawn(self):
        out = os.path.join(self.tempdir(), "report.json")
        device = frida.get_local_device()
        pid = device.spawn([VICTIM, "once", "--out", out])
        self.cleanups.append(lambda: subprocess.run(["kill", "-9", str(pid)], capture_output=True))
        session = device.attach(pid)
        self.sessions.append(session)
        device.resume(pid)
        text = wait_for(lambda: read_text(out).strip(), what="the spawned victim's report")
        report = json.loads(text)
        self.assertDetected(report, "hook", "frida_maps", "frida-agent")
        self.assertDetected(report, "hook", "code", "libc.so.6!_exit")

    def test_frida_control_service_on_its_default_port(self):
        portal = frida.PortalService(
            frida.EndpointParameters(address="127.0.0.1", port=free_port()),
            frida.EndpointParameters(address="127.0.0.1", port=27042),
        )
        portal.start()
        self.cleanups.append(portal.stop)
        self.assertDetected(run_once(), "hook", "frida_port", "127.0.0.1:27042")
        portal.stop()
        self.cleanups.remove(portal.stop)
        self.assertEqual(detections(run_once()), [])

    def test_frida_with_the_guard_cannot_inject(self):
        victim = self.victim("--guard")
        # Frida cannot ptrace it; its fallback (writing a stub through /proc/<pid>/mem) times
        # out waiting for the stub, and may leave the process unresponsive. How it gives up
        # varies with the machine's load (not responding, permission denied, failed to mmap a
        # region for the loader): the outcome is what counts, no session and no agent mapped.
        try:
            session = frida.attach(victim.pid)
        except Exception:  # noqa: BLE001 - any refusal is the expected outcome
            session = None
        if session is not None:
            self.sessions.append(session)
        self.assertIsNone(session, "Frida attached to a guarded process")
        self.assertNotIn("frida", read_text(f"/proc/{victim.pid}/maps"), "an agent was mapped")
        self.assertTrue(os.path.exists(f"/proc/{victim.pid}"), "the victim is still running")


class InjectedLibraries(AttackTest):
    def test_ld_preload_shim(self):
        shim = self.shim()
        report = run_once(env={**os.environ, "LD_PRELOAD": shim})
        self.assertDetected(report, "injected_library", "preload", f"LD_PRELOAD={shim}")
        self.assertDetected(report, "injected_library", "libraries", shim)
        self.assertDetected(report, "injected_library", "interposition", f"ptrace resolves to {shim}")

    def test_ld_preload_shim_that_hides_itself(self):
        shim = self.shim()
        report = run_once(env={**os.environ, "LD_PRELOAD": shim, "SHIM_UNSET": "1"})
        self.assertDetected(
            report, "injected_library", "preload", f"LD_PRELOAD={shim} at start, removed from the environment"
        )
        self.assertDetected(report, "injected_library", "interposition", "ptrace resolves to")


class LibraryAllowList(AttackTest):
    def test_a_library_named_like_glibcs_own_from_elsewhere_is_seen(self):
        # It hooks nothing and erases LD_PRELOAD from the environment block: only where it
        # was loaded from gives it away.
        path = os.path.join(self.tempdir(), "libnss_medgate.so.2")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", path, os.path.join(HERE, "scrub.c")], check=True)
        report = run_once(env={**os.environ, "LD_PRELOAD": path})
        self.assertDetected(report, "injected_library", "libraries", path)
        self.assertFalse(
            any("LD_PRELOAD" in detail for _, _, detail in detections(report)),
            "the environment no longer shows the preload; the library's place must be what tells",
        )


class LinkMaps(AttackTest):
    def test_preloaded_and_audit_libraries_from_an_allowed_directory_that_erase_the_environment(self):
        # Class 5: both come from a directory the app allows (its plugins), so their place does
        # not give them away, and they erase LD_PRELOAD and LD_AUDIT from the environment block;
        # the dynamic linker's own list, read from memory, still does.
        plugins = self.tempdir()
        preloaded = os.path.join(plugins, "libplugin.so")
        audit = os.path.join(plugins, "libaudit.so")
        for path in (preloaded, audit):
            subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", path, os.path.join(HERE, "scrub.c")], check=True)
        allowed = ("--allow-library", plugins + "/")
        report = run_once(*allowed, env={**os.environ, "LD_PRELOAD": preloaded})
        self.assertDetected(report, "injected_library", "preload", f"{preloaded} was loaded before the executable's dependencies")
        report = run_once(*allowed, env={**os.environ, "LD_AUDIT": audit})
        self.assertDetected(report, "injected_library", "preload", f"{audit} is in a further link namespace")
        for _, detector, detail in detections(report):
            self.assertNotIn("LD_AUDIT=", detail, "the environment no longer shows it")
            self.assertNotEqual(detector, "libraries", "its place is allowed")


class FakedProcfs(AttackTest):
    """A root attacker hides an injected library from every detector that reads /proc: in a
    private mount namespace, clean files are bind-mounted over the victim's own maps and
    environment block before it starts, and the preloaded shim removes LD_PRELOAD from the
    environment. The files the detectors read are then not procfs, and the picture they give
    (no mapping of the detector's code, of libc, of the functions it calls) is one no running
    process has."""

    def test_bind_mounts_over_proc_files_are_seen(self):
        shim = self.shim()
        scratch = self.tempdir()
        fake_maps = os.path.join(scratch, "maps")
        fake_environ = os.path.join(scratch, "environ")
        # Another process's clean maps, and an environment without LD_PRELOAD.
        with open(fake_maps, "w") as f:
            f.write(subprocess.run(["cat", "/proc/self/maps"], capture_output=True, text=True, check=True).stdout)
        with open(fake_environ, "wb") as f:
            f.write(b"PATH=/usr/bin:/bin\0")
        script = (
            'mount --bind "$1" /proc/$$/maps && mount --bind "$2" /proc/$$/environ && shift 2 '
            f'&& exec env LD_PRELOAD={shim} SHIM_UNSET=1 "$@"'
        )
        wrapper = ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", fake_maps, fake_environ)
        report = run_once(wrapper=wrapper)
        self.assertDetected(report, "hook", "procfs", "/proc/self/maps is not on procfs")
        self.assertDetected(report, "hook", "procfs", "/proc/self/environ is not on procfs")
        self.assertDetected(report, "hook", "self_view", "no executable mapping holds the detector's own code")
        self.assertDetected(report, "hook", "self_view", "libc is needed but not mapped executable")
        # The same namespace without the bind mounts: nothing (the namespace itself is no threat).
        clean = run_once(wrapper=("unshare", "--mount", "--propagation", "private"))
        self.assertEqual(detections(clean), [], clean)


ANDROID_STOCK = {
    "system/build.prop": "ro.build.tags=release-keys\nro.debuggable=0\nro.secure=1\n"
    "ro.hardware=tensor\nro.product.model=Pixel 8\nro.product.manufacturer=Google\n",
    "default.prop": "ro.secure=1\n",
}
ANDROID_ROOTED_EMULATOR = {
    "system/build.prop": "ro.build.tags=test-keys\nro.debuggable=1\nro.hardware=goldfish\n"
    "ro.product.model=Android SDK built for x86_64\n",
    "default.prop": "ro.secure=0\nro.kernel.qemu=1\n",
    "system/xbin/su": "",
    "sbin/.magisk/mirror": "",
    "data/adb/magisk/magisk64": "",
    "qemu_pipe": "",
}


class FakeAndroid(AttackTest):
    def run_in(self, files):
        root = self.tempdir()
        for path, text in files.items():
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        for directory in ("system", "sbin", "data"):
            os.makedirs(os.path.join(root, directory), exist_ok=True)
        argv = [
            "bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib",
            "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/bin", "/bin",
            "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--unshare-pid",
            "--ro-bind", os.path.join(root, "system"), "/system",
            "--ro-bind", os.path.join(root, "sbin"), "/sbin",
            "--ro-bind", os.path.join(root, "data"), "/data",
            "--ro-bind", os.path.join(root, "default.prop"), "/default.prop",
            "--ro-bind", VICTIM, "/victim",
        ]
        if "qemu_pipe" in files:
            argv += ["--ro-bind", os.path.join(root, "qemu_pipe"), "/dev/qemu_pipe"]
        return run_once(wrapper=argv, executable="/victim")

    def test_a_stock_android_tree_is_clean(self):
        self.assertEqual(detections(self.run_in(ANDROID_STOCK)), [])

    def test_a_rooted_emulator_tree(self):
        report = self.run_in(ANDROID_ROOTED_EMULATOR)
        for fragment in (
            "su binary at /system/xbin/su",
            "root manager file /sbin/.magisk",
            "root manager file /data/adb/magisk",
            "test-keys",
            "ro.debuggable=1",
            "ro.secure=0",
        ):
            self.assertDetected(report, "root", "android_root", fragment)
        for fragment in ("ro.kernel.qemu=1", "ro.hardware=goldfish", "Android SDK built for", "/dev/qemu_pipe"):
            self.assertDetected(report, "emulator", "android_emulator", fragment)


def victim_sha256(path=VICTIM):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Tamper(AttackTest):
    def test_a_modified_copy_of_the_victim(self):
        original = victim_sha256()
        copy = self.modified_copy()
        self.assertEqual(detections(run_once("--expected-sha256", original)), [])
        report = run_once("--expected-sha256", original, executable=copy)
        self.assertNotEqual(report["measurement"], original)
        self.assertDetected(report, "tamper", "tamper", f"is not the expected {original}")


def got_slot(executable, symbol):
    """The offset of `symbol`'s GOT slot in `executable` (its GLOB_DAT or JUMP_SLOT relocation)."""
    relocations = subprocess.run(["readelf", "-rW", executable], capture_output=True, text=True, check=True)
    for line in relocations.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[4].split("@")[0] == symbol and fields[2].endswith(("GLOB_DAT", "JUMP_SLOT")):
            return int(fields[0], 16)
    raise AssertionError(f"no GOT slot for {symbol} in {executable}")


def mapped_base(pid, path_suffix):
    """Where the file whose path ends with `path_suffix` is mapped in `pid` (its offset-0 mapping)."""
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and fields[2] == "00000000" and fields[5].endswith(path_suffix):
                return int(fields[0].split("-")[0], 16), fields[5]
    raise AssertionError(f"{path_suffix} is not mapped in {pid}")


def symbol_value(library, symbol):
    names = subprocess.run(["nm", "-D", "--defined-only", library], capture_output=True, text=True, check=True)
    for line in names.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[2].split("@")[0] == symbol:
            return int(fields[0], 16)
    raise AssertionError(f"{symbol} is not in {library}")


class GotWrites(AttackTest):
    def test_a_data_only_got_write_does_not_blind_the_thread_scan_or_the_probe(self):
        # gdb sits attached; then, with no ptrace and no code byte changed, the victim's GOT
        # slots are rewritten through /proc/<pid>/mem: `open64` now calls `close` (every open
        # through libc fails) and `ptrace` calls `sched_yield` (returns 0: "attached").
        victim = self.victim()
        # A clean pass first: the probe learns that a child can attach here.
        self.assertEqual(detections(victim.check()), [])
        self.tool("gdb", "-q", "-nx", "-batch", "-p", str(victim.pid), "-ex", "continue")
        wait_for(lambda: tracer_of(victim.pid), what="gdb to attach")
        base, _ = mapped_base(victim.pid, "/" + os.path.basename(VICTIM))
        libc_base, libc = mapped_base(victim.pid, "/libc.so.6")
        with open(f"/proc/{victim.pid}/mem", "r+b", buffering=0) as memory:
            for slot, target in [("open64", "close"), ("ptrace", "sched_yield")]:
                memory.seek(base + got_slot(VICTIM, slot))
                memory.write((libc_base + symbol_value(libc, target)).to_bytes(8, "little"))
        report = victim.check()
        self.assertDetected(report, "debugger", "tracer", "(gdb)")
        self.assertDetected(report, "debugger", "self_attach", "another tracer holds the process")
        # And the slots themselves: each holds a libc function, but not its own.
        self.assertDetected(report, "hook", "got", "the GOT slot of open64 holds an address in")
        self.assertDetected(report, "hook", "got", "the GOT slot of ptrace holds an address in")


class ShortHooks(AttackTest):
    def test_a_hook_written_and_removed_between_passes_is_seen(self):
        # No ptrace: a jump written into libc's `access` through /proc/<pid>/mem while the
        # victim runs, left 0.3 s (a hundred looks of the sentinel), then the original bytes
        # put back before the next pass.
        victim = self.victim("--sentinel-ms", "2")
        self.assertEqual(detections(victim.check()), [])
        libc_base, libc = mapped_base(victim.pid, "/libc.so.6")
        address = libc_base + symbol_value(libc, "access")
        with open(f"/proc/{victim.pid}/mem", "r+b", buffering=0) as memory:
            memory.seek(address)
            original = memory.read(5)
            memory.seek(address)
            memory.write(b"\xe9\x00\x00\x00\x00")
            time.sleep(0.3)
            memory.seek(address)
            memory.write(original)
        report = victim.check()
        self.assertDetected(report, "hook", "sentinel", "the code of access changed between passes")
        # The code is whole again; the sentinel's finding stays.
        self.assertFalse(any(d == "code" for _, d, _ in detections(report)), report)


class MeasuredByPath(AttackTest):
    def test_a_preload_that_hands_over_the_genuine_file_is_not_believed(self):
        original = victim_sha256()
        copy = self.modified_copy()
        redirect = os.path.join(self.tempdir(), "libredirect.so")
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O2", "-o", redirect, os.path.join(HERE, "redirect.c"), "-ldl"],
            check=True,
        )
        # The redirect works: a process that opens /proc/self/exe through libc's open (as
        # Python does, and Rust's std) reads the genuine victim instead of itself.
        env = {**os.environ, "LD_PRELOAD": redirect, "GENUINE": VICTIM}
        through_libc = subprocess.run(
            [sys.executable, "-c",
             "import hashlib; print(hashlib.sha256(open('/proc/self/exe', 'rb').read()).hexdigest())"],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()
        self.assertEqual(through_libc, original)
        report = run_once("--expected-sha256", original, executable=copy, env=env)
        self.assertNotEqual(report["measurement"], original)
        self.assertDetected(report, "tamper", "tamper", f"is not the expected {original}")


class Selfcheck(AttackTest):
    """`medgate selfcheck`: the operator's view of the same detectors."""

    def selfcheck(self, *args, wrapper=()):
        return subprocess.run(
            [*wrapper, MEDGATE, "selfcheck", "--json", *args],
            capture_output=True, text=True, timeout=120,
        )

    def test_clean_and_under_strace(self):
        clean = self.selfcheck()
        self.assertEqual(clean.returncode, 0, clean.stdout + clean.stderr)
        self.assertEqual(detections(json.loads(clean.stdout)), [])
        traced = self.selfcheck(wrapper=("strace", "-f", "-o", "/dev/null"))
        self.assertEqual(traced.returncode, 1)
        report = json.loads(traced.stdout.splitlines()[-1])
        self.assertDetected(report, "debugger", "tracer", "(strace)")

    def test_watch_sees_frida_attach_later(self):
        watch = subprocess.Popen(
            [MEDGATE, "selfcheck", "--json", "--watch", "0.3"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.cleanups.append(lambda: (watch.kill(), watch.wait(), watch.stdout.close()))
        first = json.loads(watch.stdout.readline())
        self.assertEqual(detections(first), [])
        session = frida.attach(first["pid"])
        self.cleanups.append(session.detach)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            report = json.loads(watch.stdout.readline())
            if report["detections"]:
                self.assertDetected(report, "hook", "frida_maps", "frida-agent")
                return
        self.fail("selfcheck --watch did not see Frida")


class EndToEnd(AttackTest):
    """A real `medgate serve`, and the victim attesting to it."""

    @classmethod
    def setUpClass(cls):
        cls.medgate = MedgateServer(MEDGATE)
        sha = victim_sha256()
        # These apps trust SDK evidence fully: the suite is about what the SDK's detectors catch.
        cls.medgate.admin(
            "app", "create", "org.example.victim", "--scopes", "entries:read write", "--sdk-evidence", "allow"
        )
        cls.medgate.admin(
            "release", "add", "org.example.victim", "--version", "1.0.0", "--sdk-binary-sha256", sha
        )
        # A lenient app: hooks only degrade to read access.
        cls.medgate.admin(
            "app", "create", "org.example.lenient", "--scopes", "entries:read write", "--sdk-evidence", "allow",
            "--limited-scopes", "entries:read", "--reject-on", "debugger,injected_library,tamper",
            "--degrade-on", "hook,root,emulator",
        )
        cls.medgate.admin(
            "release", "add", "org.example.lenient", "--version", "1.0.0", "--sdk-binary-sha256", sha
        )
        # The victim as an app ships: stripped of its symbol table (`cargo build --profile
        # app`, or Gradle and Xcode stripping native code), by an app that requires every
        # evidence to say what its detection pass examined.
        cls.scratch = tempfile.mkdtemp(prefix="medgate-attack-")
        cls.shipped = os.path.join(cls.scratch, "medgate-victim")
        subprocess.run(["strip", "--strip-all", "-o", cls.shipped, VICTIM], check=True)
        cls.medgate.admin(
            "app", "create", "org.example.covered", "--scopes", "entries:read write", "--sdk-evidence", "allow",
            "--require-coverage",
        )
        cls.medgate.admin(
            "release", "add", "org.example.covered", "--version", "1.0.0",
            "--sdk-binary-sha256", victim_sha256(cls.shipped),
        )

    @classmethod
    def tearDownClass(cls):
        cls.medgate.close()
        shutil.rmtree(cls.scratch, ignore_errors=True)

    def client(self, app_id="org.example.victim", executable=VICTIM):
        return self.victim(
            "--server", self.medgate.server_url, "--gateway", self.medgate.gateway_url,
            "--app-id", app_id, executable=executable,
        )

    def test_a_hooked_victim_is_refused_within_one_interval(self):
        victim = self.client()
        attested = victim.command("attest")
        self.assertEqual(attested["attested"]["decision"], "allow", attested)
        self.assertEqual(victim.command("get /api/entries"), {"status": 200})
        victim.command("watch 1")
        session = frida.attach(victim.pid)
        self.cleanups.append(session.detach)
        script = session.create_script(HOOK_DOSE)
        script.load()
        started = time.monotonic()
        event = victim.next_monitor_event(timeout=15)["monitor"]
        elapsed = time.monotonic() - started
        self.assertIn("refused", event["outcome"], event)
        self.assertIn("hook_detected", event["outcome"]["refused"]["reasons"])
        self.assertLess(elapsed, 5, "the server should learn of the hook within about one interval")
        installation = self.medgate.installation(attested["attested"]["installation_id"])
        self.assertEqual(installation["last_decision"], "reject")
        self.assertIn("hook_detected", installation["last_reasons"])
        # The app's next request attests again and is refused while the hook is there.
        refused = victim.command("get /api/entries")
        self.assertIn("hook_detected", refused.get("error", ""), refused)

    def test_a_hooked_victim_gets_limited_scopes_where_policy_degrades(self):
        victim = self.client("org.example.lenient")
        session = frida.attach(victim.pid)
        self.cleanups.append(session.detach)
        attested = victim.command("attest")["attested"]
        self.assertEqual(attested["decision"], "allow_limited")
        self.assertEqual(attested["scope"], "entries:read")
        self.assertIn("hook_detected", attested["reasons"])
        self.assertEqual(victim.command("get /api/entries"), {"status": 200})

    def test_a_replaced_detector_pass_is_refused_as_a_hook(self):
        # Class 4: one Interceptor.replace of the detector's pass made every later pass report
        # "clean". The shipped build has no symbol to find the pass by.
        names = subprocess.run(["nm", self.shipped], capture_output=True, text=True)
        self.assertIn("no symbols", names.stderr)
        victim = self.client("org.example.covered", executable=self.shipped)
        clean = victim.command("attest")
        self.assertEqual(clean.get("attested", {}).get("decision"), "allow", clean)
        session = frida.attach(victim.pid)
        self.cleanups.append(session.detach)
        # An attacker who found the pass anyway (here: its offset in the unstripped build,
        # standing in for reverse engineering) makes it do nothing.
        offset = None
        for line in subprocess.run(["nm", "-C", VICTIM], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.endswith(" medgate_sdk::detect::linux::run"):
                offset = int(line.split()[0], 16)
        self.assertIsNotNone(offset, "the unstripped victim names its detector pass")
        messages = []
        script = session.create_script(f"""
            const named = Process.mainModule.enumerateSymbols().filter(s => s.name.includes('detect'));
            Interceptor.replace(Process.mainModule.base.add({offset}),
                new NativeCallback(() => {{}}, 'void', ['pointer', 'pointer', 'int', 'pointer']));
            send(named.length);
        """)
        script.on("message", lambda message, data: messages.append(message))
        script.load()
        wait_for(lambda: messages, timeout=10)
        self.assertEqual(messages[0].get("payload"), 0, messages)
        # Silenced: Frida is attached and nothing is reported, but nothing was examined either.
        report = victim.check()
        self.assertEqual(detections(report), [], report)
        self.assertNotIn("coverage", report)
        refused = victim.command("attest")
        self.assertEqual(refused.get("refused", {}).get("reasons"), ["hook_detected"], refused)
        installation = self.medgate.installation(clean["attested"]["installation_id"])
        self.assertEqual(installation["last_decision"], "reject")

    def test_a_modified_copy_is_refused_as_tampered(self):
        copy = os.path.join(self.tempdir(), "medgate-victim")
        shutil.copy2(VICTIM, copy)
        with open(copy, "ab") as f:
            f.write(b"\0patched\0")
        victim = self.client(executable=copy)
        refused = victim.command("attest")
        self.assertEqual(refused.get("refused", {}).get("reasons"), ["tamper_detected"], refused)


if __name__ == "__main__":
    unittest.main(verbosity=2)
