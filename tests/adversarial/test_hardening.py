"""The hardening classes, from outside: raw sockets against the release `medgate serve`, as an
unauthenticated attacker on the network would send them.

What this suite shows closed (each class has a Rust end-to-end test as well; requests that
need a token and a DPoP proof are signed by the Python bindings and sent byte by byte):

- a flood of unauthenticated junk writes a bounded number of audit rows, none holding the junk;
- slow bodies and idle sockets are closed on time;
- with its file-descriptor limit at 1024 and more than that many connections held open against
  it, the node keeps answering;
- behind a trusted proxy two clients have separate rate limits, and an untrusted peer's
  forwarding headers change nothing;
- a full data volume gives 503 and not-ready, and once space is back the gap is in the
  verified audit chain (needs root for the tmpfs; skipped otherwise, but CI runs as root);
- one installation cannot starve another's replay capacity, and refused requests take none;
- path and header tricks reach the upstream only in canonical form, with what it received.
"""

import hashlib
import http.server
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from medgate_testing import Echo, free_port, wait_for  # noqa: E402

MEDGATE = os.environ["MEDGATE_BIN"]
sys.path.insert(0, os.environ["MEDGATE_BINDINGS"])


def interpreter_sha256():
    # The SDK measures the running executable: this Python interpreter.
    with open("/proc/self/exe", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
JUNK = "PATIENT-NOTE-" * 40


class Node:
    """`medgate serve` with its own data directory, an echoing upstream and the given extra
    config (`server`: keys of [server]; `gateway`: keys of [gateway])."""

    def __init__(self, extra=None, data_dir=None, fd_limit=None):
        extra = extra or {}
        self.upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        self.dir = tempfile.mkdtemp(prefix="medgate-adversarial-")
        self.data = data_dir or os.path.join(self.dir, "data")
        self.server_port, self.gateway_port, self.admin_port = free_port(), free_port(), free_port()
        self.config = os.path.join(self.dir, "medgate.toml")
        with open(self.config, "w") as f:
            f.write(
                f"""
[server]
listen = "127.0.0.1:{self.server_port}"
data_dir = "{self.data}"
{extra.get("server", "")}
[admin]
listen = "127.0.0.1:{self.admin_port}"
[gateway]
listen = "127.0.0.1:{self.gateway_port}"
upstream = "http://127.0.0.1:{self.upstream.server_address[1]}"
{extra.get("gateway", "")}
[[gateway.routes]]
path = "/api/v1/entries*"
scopes = ["entries:read"]
{extra.get("tables", "")}
"""
            )
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.apps = set()

        def limit():
            if fd_limit:
                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.process = subprocess.Popen(
            [MEDGATE, "--config", self.config, "serve"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=limit,
        )
        wait_for(lambda: self.status("GET", "/healthz") == 200, timeout=30, what="medgate serve")

    def request(self, method, path, headers=(), body=b"", port=None, source="127.0.0.1", timeout=5):
        """One HTTP/1.1 request on a fresh socket; returns (status, head, body) or None."""
        with socket.create_connection(
            ("127.0.0.1", port or self.server_port), timeout=timeout, source_address=(source, 0)
        ) as s:
            lines = [f"{method} {path} HTTP/1.1", "Host: x", "Connection: close"]
            lines += [f"{name}: {value}" for name, value in headers]
            if body:
                lines.append(f"Content-Length: {len(body)}")
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except (ConnectionResetError, socket.timeout):
                pass
        if not data.startswith(b"HTTP/1."):
            return None
        head, _, rest = data.partition(b"\r\n\r\n")
        return int(data[9:12]), head.decode(errors="replace"), rest

    def status(self, method, path, **kwargs):
        try:
            answer = self.request(method, path, **kwargs)
        except OSError:
            return None
        return answer[0] if answer else None

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.log.close()
        self.upstream.shutdown()
        self.upstream.server_close()

    def attested_client(self, app):
        """An installation of `app` (registered now, trusting SDK evidence), through the Python
        bindings: what signs the requests the raw sockets then send."""
        import medgate_ffi

        if app not in self.apps:
            for args in (
                ("app", "create", app, "--scopes", "entries:read", "--sdk-evidence", "allow"),
                ("release", "add", app, "--version", "1.0.0", "--sdk-binary-sha256", interpreter_sha256()),
            ):
                done = self.medgate("admin", *args)
                assert done.returncode == 0, done.stderr
            self.apps.add(app)
        client = medgate_ffi.MedgateClient(
            medgate_ffi.MedgateConfig(
                server_url=f"http://127.0.0.1:{self.server_port}",
                gateway_url=f"http://127.0.0.1:{self.gateway_port}",
                app_id=app,
                app_version="1.0.0",
                measurement=None,
                key_path=None,
                detect=False,
                allowed_libraries=[],
                refresh_margin_secs=30,
            )
        )
        client.attest()
        return client

    def signed(self, client, method, proof_path, sent_path=None, extra=()):
        headers = client.sign_request(method, proof_path)
        return self.request(
            method,
            sent_path or proof_path,
            headers=[("Authorization", headers.authorization), ("DPoP", headers.dpop), *extra],
            port=self.gateway_port,
        )

    def audit_rows(self):
        with sqlite3.connect(os.path.join(self.data, "medgate.db")) as db:
            return db.execute("SELECT kind, subject, detail FROM audit_log ORDER BY seq").fetchall()

    def medgate(self, *args):
        return subprocess.run(
            [MEDGATE, "--config", self.config, *args], capture_output=True, text=True, timeout=60
        )


class Adversarial(unittest.TestCase):
    def node(self, **kwargs):
        node = Node(**kwargs)
        self.addCleanup(node.stop)
        return node

    def test_a_flood_of_unauthenticated_junk_writes_a_bounded_audit_log(self):
        node = self.node()
        before = len(node.audit_rows())
        answers = set()
        for i in range(1500):
            headers = [("X-Junk", JUNK)]
            if i % 3 == 1:
                headers.append(("Authorization", f"DPoP {JUNK}"))
            elif i % 3 == 2:
                headers.append(("Authorization", "Bearer " + JUNK))
            answers.add(node.status("GET", f"/api/v1/entries?{JUNK}", headers=headers, port=node.gateway_port))
        self.assertEqual(answers, {401})
        node.stop()  # the tally of the last minute is written at shutdown
        added = node.audit_rows()[before:]
        # The bound: one row per minute, kind, code, route and installation; three kinds of
        # junk in at most two minutes make at most six.
        self.assertLessEqual(len(added), 6, added)
        counted = sum(json.loads(detail)["count"] for kind, _, detail in added if kind == "gateway.refusals")
        self.assertEqual(counted, 1500)
        for row in added:
            self.assertNotIn("PATIENT", repr(row))
        self.assertLess(os.path.getsize(os.path.join(node.data, "medgate.db")), 2 * 1024 * 1024)
        verified = node.medgate("audit", "verify", "--json")
        self.assertEqual(verified.returncode, 0, verified.stderr)

    def test_slow_bodies_and_idle_sockets_are_closed_on_time(self):
        node = self.node(
            extra={
                "server": 'body_read_timeout = "1s"\n[server.connections]\nheader_read_timeout = "1s"\n'
            }
        )
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", node.server_port), timeout=10) as s:
            s.sendall(
                b"POST /v1/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{\"app_id\":"
            )
            reply = s.recv(65536)
        self.assertTrue(reply.startswith(b"HTTP/1.1 408"), reply[:80])
        self.assertLess(time.monotonic() - started, 8)
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", node.server_port), timeout=10) as s:
            self.assertEqual(s.recv(1), b"", "an idle socket is closed")
        self.assertLess(time.monotonic() - started, 8)

    def test_the_node_keeps_answering_with_1024_descriptors_and_more_connections_held(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 4096:
            self.skipTest(f"this process may open only {hard} files")
        wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
        node = self.node(
            extra={"server": '[server.connections]\nheader_read_timeout = "3s"\n'}, fd_limit=1024
        )
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        # 1,200 idle connections from 40 addresses, beyond the node's 1,024 descriptors.
        for source in range(2, 42):
            for _ in range(30):
                try:
                    held.append(
                        socket.create_connection(
                            ("127.0.0.1", node.server_port), timeout=2, source_address=(f"127.0.0.{source}", 0)
                        )
                    )
                except OSError:
                    pass
        self.assertGreater(len(held), 1024)
        # A newcomer is answered: the listener's cap keeps descriptors free, and the header
        # deadline closes held connections so the backlog drains.
        self.assertEqual(node.status("GET", "/healthz", timeout=60), 200)
        self.assertIsNone(node.process.poll(), "the node is still running")

    def test_behind_a_trusted_proxy_clients_have_separate_limits(self):
        node = self.node(
            extra={
                "server": "client_rate_limit = { per_second = 1, burst = 2 }\n"
                '[server.connections]\ntrusted_proxies = ["127.0.0.1/32"]\n'
            }
        )
        body = b'{"app_id":"org.example.cgm"}'
        challenge = lambda client, source="127.0.0.1": node.status(  # noqa: E731
            "POST",
            "/v1/challenge",
            headers=[("Content-Type", "application/json"), ("X-Forwarded-For", client)],
            body=body,
            source=source,
        )
        started = time.monotonic()
        first = [challenge("198.51.100.1") for _ in range(8)]
        allowed = 2 + int(time.monotonic() - started) + 1
        self.assertIn(429, first)
        self.assertLessEqual(first.count(201), allowed, first)
        self.assertEqual(challenge("198.51.100.2"), 201, "another client behind the proxy")
        # An untrusted peer claiming many addresses is one client.
        started = time.monotonic()
        direct = [challenge(f"203.0.113.{i}", source="127.0.0.9") for i in range(8)]
        allowed = 2 + int(time.monotonic() - started) + 1
        self.assertLessEqual(direct.count(201), allowed, direct)

    def test_a_full_data_volume_gives_503_and_the_gap_is_recorded(self):
        volume = tempfile.mkdtemp(prefix="medgate-volume-")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", volume], capture_output=True)
        if mounted.returncode != 0:
            if os.environ.get("MEDGATE_CI"):
                self.fail("CI must be able to mount a tmpfs (run as root)")
            self.skipTest("mounting a tmpfs needs root")
        self.addCleanup(os.rmdir, volume)
        self.addCleanup(subprocess.run, ["umount", "-l", volume], capture_output=True)
        node = self.node(data_dir=os.path.join(volume, "data"))
        filler = os.path.join(volume, "filler")
        # Unbuffered: a buffered file would try again to write what did not fit when it is
        # closed, and raise there, outside the `try`.
        with open(filler, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        body = b'{"app_id":"org.example.cgm"}'
        statuses = []
        for _ in range(3000):
            status = node.status("POST", "/v1/challenge", headers=[("Content-Type", "application/json")], body=body)
            statuses.append(status)
            if status != 201:
                break
        self.assertEqual(statuses[-1], 503, statuses[-5:])
        self.assertEqual(node.status("GET", "/readyz"), 503)
        os.remove(filler)
        wait_for(lambda: node.status("GET", "/readyz") == 200, timeout=60, what="ready again")
        node.stop()
        verified = node.medgate("audit", "verify", "--json")
        self.assertEqual(verified.returncode, 0, verified.stderr)
        self.assertTrue(any(kind == "audit.dropped" for kind, _, _ in node.audit_rows()))


    def test_one_installation_cannot_starve_anothers_replay_capacity(self):
        node = self.node(
            extra={"gateway": "replay_cache_size = 8\nreplay_share = 4\nrate_limit = { per_second = 0, burst = 0 }\n"}
        )
        flooder = node.attested_client("org.example.flooder")
        # Refused requests take no place in the shared cache...
        denied = {node.signed(flooder, "GET", "/not/a/route")[0] for _ in range(20)}
        self.assertEqual(denied, {403})
        # ...and admitted ones only the installation's share; beyond it, 429 for it alone.
        statuses = [node.signed(flooder, "GET", "/api/v1/entries")[0] for _ in range(10)]
        self.assertEqual(statuses[:4], [200] * 4, statuses)
        self.assertEqual(set(statuses[4:]), {429}, statuses)
        other = node.attested_client("org.example.other")
        self.assertEqual(node.signed(other, "GET", "/api/v1/entries")[0], 200)

    def test_path_and_header_tricks_reach_the_upstream_only_in_canonical_form(self):
        node = self.node()
        client = node.attested_client("org.example.paths")
        # (sent, proof made for, status, path the upstream saw)
        table = [
            ("/api/v1/entries/%65x", "/api/v1/entries/ex", 200, "/api/v1/entries/ex"),
            ("/api/v1/entries/a%2bb", "/api/v1/entries/a%2Bb", 200, "/api/v1/entries/a%2Bb"),
            ("/api/v1/entries/..;/admin", "/api/v1/entries", 400, None),
            ("/api/v1/entries;jsessionid=x", "/api/v1/entries", 400, None),
            ("/api/v1/entries/%3b/admin", "/api/v1/entries", 400, None),
            ("/api/v1/entries%2f..%2fadmin", "/api/v1/entries", 400, None),
            ("/api/v1/entries/%2e%2e/admin", "/api/v1/entries", 400, None),
            ("/api/v1/entries/%c0%ae%c0%ae/admin", "/api/v1/entries", 400, None),
            ("/api/v1/entries/%ef%bc%8e%ef%bc%8e/admin", "/api/v1/entries", 400, None),
            ("/api/v1/entries/x%00.json", "/api/v1/entries", 400, None),
            ("/api/v1/entries//admin", "/api/v1/entries", 400, None),
            ("/api/v1/entries/" + "a" * 3000, "/api/v1/entries", 414, None),
        ]
        for sent, proof_path, status, seen in table:
            answer = node.signed(client, "GET", proof_path, sent_path=sent)
            self.assertEqual(answer[0], status, sent)
            if seen:
                self.assertEqual(json.loads(answer[2])["path"], seen, sent)
        spoofed = [
            ("X_Medgate_Scope", "admin"),
            ("X-Medgate-Installation", "someone-else"),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X_Forwarded_For", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6"),
            ("X-Real-IP", "6.6.6.6"),
            ("X-Original-URL", "/admin"),
            ("X-Rewrite-URL", "/admin"),
            ("X-HTTP-Method-Override", "DELETE"),
        ]
        status, _, body = node.signed(client, "GET", "/api/v1/entries", extra=spoofed)
        self.assertEqual(status, 200)
        seen = json.loads(body)["headers"]
        self.assertEqual(seen["x-medgate-scope"], "entries:read")
        self.assertEqual(seen["x-medgate-installation"], client.installation_id())
        self.assertEqual(seen["x-forwarded-for"], "127.0.0.1")
        for name in ("x_medgate_scope", "x_forwarded_for", "forwarded", "x-real-ip", "x-original-url",
                     "x-rewrite-url", "x-http-method-override"):
            self.assertNotIn(name, seen)


if __name__ == "__main__":
    unittest.main()
