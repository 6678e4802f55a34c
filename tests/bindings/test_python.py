"""The Python bindings (UniFFI, crates/ffi) driving the real flow against a running
`medgate serve`: configure, attest, get a token, sign requests, read signals.

Run through `scripts/binding-tests`, which generates the bindings and sets:
  MEDGATE_BINDINGS  the directory holding medgate_ffi.py and libmedgate_ffi.so
  MEDGATE_BIN       the medgate CLI
"""

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.environ["MEDGATE_BINDINGS"])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import medgate_ffi  # noqa: E402
from medgate_testing import MedgateServer  # noqa: E402

APP = "org.example.python"
VERSION = "2.0.0"


def interpreter_sha256():
    # The SDK measures the running executable: this Python interpreter.
    with open("/proc/self/exe", "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def python_library_dirs():
    """What this interpreter loads on purpose: its extension modules and shared libraries."""
    dirs = {os.path.dirname(os.path.realpath(module.__file__))
            for module in list(sys.modules.values())
            if getattr(module, "__file__", None) and module.__file__.endswith(".so")}
    dirs.add(os.environ["MEDGATE_BINDINGS"])
    return [d.rstrip("/") + "/" for d in dirs] + ["libpython*", "libssl*", "libcrypto*", "libffi*",
                                                  "libz.so*", "libbz2*", "liblzma*", "libexpat*",
                                                  "libuuid*", "libsqlite3*", "libreadline*",
                                                  "libtinfo*", "libncurses*", "libmpdec*", "libgdbm*"]


class PythonBindings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.medgate = MedgateServer(os.environ["MEDGATE_BIN"])
        cls.medgate.admin("app", "create", APP, "--scopes", "entries:read", "--sdk-evidence", "allow")
        cls.medgate.admin(
            "release", "add", APP, "--version", VERSION, "--sdk-binary-sha256", interpreter_sha256()
        )
        cls.dir = tempfile.mkdtemp(prefix="medgate-bindings-")

    @classmethod
    def tearDownClass(cls):
        cls.medgate.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def config(self, **overrides):
        values = dict(
            server_url=self.medgate.server_url,
            gateway_url=self.medgate.gateway_url,
            app_id=APP,
            app_version=VERSION,
            measurement=None,
            key_path=os.path.join(self.dir, "installation.jwk"),
            detect=True,
            allowed_libraries=python_library_dirs(),
            refresh_margin_secs=30,
        )
        values.update(overrides)
        return medgate_ffi.MedgateConfig(**values)

    def get(self, path, headers):
        request = urllib.request.Request(
            self.medgate.gateway_url + path,
            headers={"Authorization": headers.authorization, "DPoP": headers.dpop},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def test_configure_attest_sign_and_call_the_api(self):
        client = medgate_ffi.MedgateClient(self.config())
        self.assertEqual(client.current_signals(), [], "this test process should look clean")
        attestation = client.attest()
        self.assertEqual(attestation.decision, "allow")
        self.assertEqual(attestation.scope, "entries:read")
        self.assertEqual(attestation.installation_id, client.installation_id())
        self.assertEqual(attestation.integrity_level, "self_reported")
        # The key was persisted with mode 0600; a second client with it is the same installation.
        key_path = os.path.join(self.dir, "installation.jwk")
        self.assertEqual(stat.S_IMODE(os.stat(key_path).st_mode), 0o600)
        self.assertEqual(
            medgate_ffi.MedgateClient(self.config()).installation_id(), client.installation_id()
        )
        self.assertEqual(client.access_token().count("."), 2)
        status, body = self.get("/api/entries", client.sign_request("GET", "/api/entries"))
        self.assertEqual(status, 200, body)
        self.assertEqual(body["installation"], client.installation_id())
        # A proof is bound to its method and path, and used once.
        headers = client.sign_request("GET", "/api/entries")
        self.assertEqual(self.get("/api/other", headers)[0], 401)
        self.assertEqual(self.get("/api/entries", headers)[0], 200)
        self.assertEqual(self.get("/api/entries", headers)[0], 401)

    def test_a_signed_write_passes_and_a_changed_body_does_not(self):
        client = medgate_ffi.MedgateClient(self.config(key_path=None))
        client.attest()
        body = b'[{"eventType": "Correction Bolus", "insulin": 1.5}]'

        def post(headers, sent):
            fields = {"Authorization": headers.authorization, "DPoP": headers.dpop}
            if headers.signature_input is not None:
                fields["Signature-Input"] = headers.signature_input
                fields["Signature"] = headers.signature
                fields["Content-Digest"] = headers.content_digest
            request = urllib.request.Request(
                self.medgate.gateway_url + "/api/treatments", data=sent, method="POST", headers=fields
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, json.loads(response.read())
            except urllib.error.HTTPError as error:
                return error.code, json.loads(error.read() or b"{}")

        signed = client.sign_request("POST", "/api/treatments", body)
        self.assertTrue(signed.signature_input.startswith('medgate=("@method" "@target-uri"'))
        self.assertTrue(signed.content_digest.startswith("sha-256=:"))
        status, answer = post(signed, body)
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["key"], client.installation_id())
        self.assertEqual(answer["body_bytes"], len(body))
        # The dose changed on the way: refused.
        status, answer = post(client.sign_request("POST", "/api/treatments", body), body.replace(b"1.5", b"15"))
        self.assertEqual(status, 401, answer)
        self.assertEqual(answer["type"], "urn:medgate:problem:invalid-signature")
        # Without a body to sign, only a proof: not enough on this route.
        status, answer = post(client.sign_request("POST", "/api/treatments"), body)
        self.assertEqual(status, 401, answer)
        self.assertEqual(answer["type"], "urn:medgate:problem:invalid-signature")

    def test_errors_map_to_the_public_enum(self):
        unknown = medgate_ffi.MedgateClient(self.config(app_version="9.9.9", key_path=None))
        with self.assertRaises(medgate_ffi.MedgateError.Refused) as refused:
            unknown.attest()
        self.assertEqual(refused.exception.status, 403)
        self.assertEqual(refused.exception.reasons, ["release_unknown"])
        offline = medgate_ffi.MedgateClient(
            self.config(server_url="http://127.0.0.1:9", key_path=None)
        )
        with self.assertRaises(medgate_ffi.MedgateError.Network):
            offline.attest()
        not_a_dir = os.path.join(self.dir, "not-a-directory")
        with open(not_a_dir, "w") as f:
            f.write("x")
        with self.assertRaises(medgate_ffi.MedgateError.Config):
            medgate_ffi.MedgateClient(self.config(key_path=os.path.join(not_a_dir, "key.jwk")))


class UrllibFetcher(medgate_ffi.TrustFetcher):
    """What an app does in its own HTTP stack: GET <server>/v1/trust/<name>, None for a 404.
    `tamper` rewrites a file on the way, as a man in the middle would."""

    def __init__(self, server_url, tamper=None):
        self.server_url = server_url
        self.tamper = tamper or {}
        self.fetched = []

    def fetch(self, name):
        self.fetched.append(name)
        try:
            with urllib.request.urlopen(f"{self.server_url}/v1/trust/{name}", timeout=10) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise medgate_ffi.MedgateError.Network(f"status {error.code}")
        return self.tamper.get(name, lambda b: b)(body)


class OverTheAirPins(unittest.TestCase):
    """PinSet: the deployment's TUF repository (medgate trust init, pins add, trust publish)
    verified by the SDK from a fetcher written in Python."""

    PIN_A = "XNJS+wzokyQ2+vjM0QQJgbie5K1rn+niorfnGqyyfNM="
    PIN_B = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="

    @classmethod
    def setUpClass(cls):
        cls.medgate = MedgateServer(os.environ["MEDGATE_BIN"])
        cls.dir = tempfile.mkdtemp(prefix="medgate-pins-")
        import subprocess
        subprocess.run(
            [cls.medgate.medgate, "--config", cls.medgate.config, "trust", "init",
             "--offline-root", os.path.join(cls.dir, "offline-root")],
            check=True, capture_output=True,
        )
        for pin in (cls.PIN_A, cls.PIN_B):
            cls.medgate.admin("pins", "add", "--host", "**.example.org", "--spki-sha256", pin)
        cls.medgate.admin("trust", "publish")
        with urllib.request.urlopen(f"{cls.medgate.server_url}/v1/trust/1.root.json") as response:
            cls.root = response.read()

    @classmethod
    def tearDownClass(cls):
        cls.medgate.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_a_refresh_pins_hosts_and_a_tampered_file_changes_nothing(self):
        folder = os.path.join(self.dir, "kept")
        pins = medgate_ffi.PinSet(self.root, folder)
        self.assertEqual(pins.pins_for("api.example.org"), [])
        status = pins.refresh(UrllibFetcher(self.medgate.server_url))
        self.assertEqual(status.root_version, 1)
        self.assertEqual(status.targets_version, 1)
        self.assertEqual(status.hosts, 1)
        self.assertEqual(sorted(pins.pins_for("api.example.org")), sorted([self.PIN_A, self.PIN_B]))
        self.assertEqual(pins.pins_for("example.com"), [])

        # Kept for the next run, offline.
        again = medgate_ffi.PinSet(self.root, folder)
        self.assertEqual(sorted(again.pins_for("x.example.org")), sorted([self.PIN_A, self.PIN_B]))

        # A pin set rewritten on the way is refused and the pins in force stay.
        fresh = medgate_ffi.PinSet(self.root, None)
        forged = lambda body: body.replace(self.PIN_A.encode(), self.PIN_B.encode())  # noqa: E731
        with self.assertRaises(medgate_ffi.MedgateError.Pins):
            fresh.refresh(UrllibFetcher(self.medgate.server_url, {"targets/pins.json": forged}))
        self.assertEqual(fresh.pins_for("api.example.org"), [])
        self.assertIn("target", fresh.status().last_error)
        # A fetcher that raises: reported as a failed refresh, not a crash.
        offline = UrllibFetcher("http://127.0.0.1:9")
        with self.assertRaises(medgate_ffi.MedgateError.Pins):
            pins.refresh(offline)
        self.assertEqual(sorted(pins.pins_for("api.example.org")), sorted([self.PIN_A, self.PIN_B]))

    def test_managed_roots_reach_the_app_for_its_hosts_only(self):
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deployment root")])
        now = datetime.datetime.now(datetime.timezone.utc)
        ca = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        pem_path = os.path.join(self.dir, "roots.pem")
        with open(pem_path, "wb") as f:
            f.write(ca.public_bytes(serialization.Encoding.PEM))
        self.medgate.admin("trust", "roots", "set", pem_path, "--host", "**.example.net")
        self.medgate.admin("trust", "publish")
        pins = medgate_ffi.PinSet(self.root, None)
        status = pins.refresh(UrllibFetcher(self.medgate.server_url))
        self.assertEqual(status.managed_root_hosts, 1)
        der = ca.public_bytes(serialization.Encoding.DER)
        self.assertEqual([bytes(c) for c in pins.managed_roots_for("api.example.net")], [der])
        self.assertEqual(pins.managed_roots_for("api.example.org"), [])

        self.medgate.admin("trust", "roots", "clear")
        self.medgate.admin("trust", "publish")
        self.assertEqual(pins.refresh(UrllibFetcher(self.medgate.server_url)).managed_root_hosts, 0)
        self.assertEqual(pins.managed_roots_for("api.example.net"), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
