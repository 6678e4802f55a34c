"""Shared by the Python test suites (tests/attacks, tests/bindings): a real `medgate serve`
on loopback ports with a small upstream API, and polling helpers."""

import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class JsonHandler(http.server.BaseHTTPRequestHandler):
    """An upstream API that answers every GET with `self.answer()` as JSON."""

    def do_GET(self):
        self.respond(self.answer())

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = self.rfile.read(length)
        self.respond({**self.answer(), "body_bytes": len(received)})

    def respond(self, answer):
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Upstream(JsonHandler):
    """The protected API: an empty entry list, and the `X-Medgate-*` headers the gateway
    added."""

    def answer(self):
        return {
            "entries": [],
            "installation": self.headers.get("X-Medgate-Installation"),
            "scope": self.headers.get("X-Medgate-Scope"),
            "key": self.headers.get("X-Medgate-Key"),
        }


class Echo(JsonHandler):
    """An upstream that answers with the path and headers it received."""

    def answer(self):
        return {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}


class MedgateServer:
    """`medgate serve` with its own data directory, and the admin CLI against it. Routes:
    `/api` needs scope `entries:read`; a POST to `/api/treatments` also a signature over its
    body (`proof = "dpop+signature"`); a GET of `/api/readings` a session-key signature
    instead of a proof (`proof = "session-mac"`).

    With `testnode` (the `medgate-testnode` binary) the node is that one instead: the same
    node from the same config, which also trusts test App Attest and Android attestation CAs
    and mints evidence under them (`mint`)."""

    def __init__(self, medgate, testnode=None):
        self.medgate = medgate
        self.dir = tempfile.mkdtemp(prefix="medgate-e2e-")
        self.upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
        threading.Thread(target=self.upstream.serve_forever, daemon=True).start()
        server_port, gateway_port, admin_port = free_port(), free_port(), free_port()
        self.server_url = f"http://127.0.0.1:{server_port}"
        self.gateway_url = f"http://127.0.0.1:{gateway_port}"
        self.config = os.path.join(self.dir, "medgate.toml")
        # The platform suite attests dozens of times a second from one address.
        limits = "client_rate_limit = { per_second = 0, burst = 0 }" if testnode else ""
        with open(self.config, "w") as f:
            f.write(
                f"""
[server]
listen = "127.0.0.1:{server_port}"
data_dir = "{self.dir}/data"
{limits}
[admin]
listen = "127.0.0.1:{admin_port}"
[gateway]
listen = "127.0.0.1:{gateway_port}"
upstream = "http://127.0.0.1:{self.upstream.server_address[1]}"
[[gateway.routes]]
path = "/api/readings"
methods = ["GET"]
scopes = ["entries:read"]
proof = "session-mac"
[[gateway.routes]]
path = "/api/treatments"
methods = ["POST"]
scopes = ["entries:read"]
proof = "dpop+signature"
[[gateway.routes]]
path = "/api"
scopes = ["entries:read"]
"""
            )
        self.log = open(os.path.join(self.dir, "serve.log"), "w")
        self.minting = threading.Lock()
        if testnode is None:
            self.process = subprocess.Popen(
                [medgate, "--config", self.config, "serve"],
                stdout=self.log,
                stderr=subprocess.STDOUT,
            )
        else:
            self.process = subprocess.Popen(
                [testnode, "--config", self.config],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self.log,
                text=True,
            )
            ready = self.process.stdout.readline()
            assert ready and json.loads(ready).get("ready"), f"medgate-testnode said {ready!r}"
        wait_for(self.healthy, timeout=30, what="medgate serve")

    def mint(self, **request):
        """Asks the test node to play the platform (see crates/testnode)."""
        with self.minting:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = json.loads(self.process.stdout.readline())
        assert "error" not in answer, answer
        return answer

    def healthy(self):
        try:
            with urllib.request.urlopen(f"{self.server_url}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def admin(self, *args):
        done = subprocess.run(
            [self.medgate, "--config", self.config, "admin", *args, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    def installation(self, installation_id):
        return next(i for i in self.admin("installation", "list") if i["id"] == installation_id)

    def close(self):
        if self.process.stdin:
            self.process.stdin.close()
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()
        self.upstream.shutdown()
        self.upstream.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)
