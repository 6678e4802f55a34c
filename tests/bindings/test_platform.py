"""The bindings on a phone's terms, end to end: the installation key held by the app's own code
(a Python key standing in for Android Keystore or the Secure Enclave, never passed to Rust),
and hardware attestation through the app's platform callback, first contact and refresh.

The node is `medgate-testnode` (crates/testnode): the node `medgate serve` runs, from the same
config, which also trusts throw-away App Attest and Android attestation CAs and mints evidence
under them, playing Apple's and the phone's part. Play Integrity tokens are made here with
jwcrypto under Play Console keys this test generates and stores with the admin CLI.

Run through `scripts/binding-tests`, which generates the bindings and sets MEDGATE_BINDINGS,
MEDGATE_BIN and MEDGATE_TESTNODE.
"""

import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwe, jwk, jws

sys.path.insert(0, os.environ["MEDGATE_BINDINGS"])
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import medgate_ffi  # noqa: E402
from medgate_testing import MedgateServer  # noqa: E402

APP = "org.example.phone"
VERSION = "3.0.0"
VERSION_CODE = "42"  # what the test node's Android chains attest (KeyDescription::VERSION_CODE)
SIGNER = "ab" * 32  # the registered signing certificate digest
SELF_BUILT = "cd" * 32  # a patient's own build, signed with their own certificate
APPLE_APP_ID = "ABCDE12345." + APP
MEASUREMENT = "5d" * 32
SECRET_NAME = "partner_key"
SECRET_VALUE = "partner-api-key-sealed-to-one-phone"
Method = medgate_ffi.AttestationMethod
Step = medgate_ffi.PlatformStep
Statement = medgate_ffi.PlatformStatement


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(public_key):
    """RFC 7638: the installation id of a P-256 public key."""
    numbers = public_key.public_numbers()
    members = {
        "crv": "P-256",
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


class PythonSigner(medgate_ffi.InstallationSigner):
    """A key the Python side holds, as Android Keystore or the Secure Enclave would: the public
    key goes out, signatures come back (DER, as both platforms return them)."""

    def __init__(self, spki=False):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.spki = spki
        self.signed = 0
        self.failure = None

    def point(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def public_key(self):
        if self.spki:  # what Android's PublicKey.getEncoded() returns
            return self.key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return self.point()  # what SecKeyCopyExternalRepresentation returns

    def sign(self, message):
        if self.failure is not None:
            raise self.failure
        self.signed += 1
        return self.key.sign(bytes(message), ec.ECDSA(hashes.SHA256()))


class PythonAgreementKey(medgate_ffi.KeyAgreementKey):
    """The installation's key-agreement key, held by Python as Android Keystore
    (PURPOSE_AGREE_KEY) or the Secure Enclave would hold it: only ECDH results come back."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.agreed = 0

    def public_key(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def agree(self, peer):
        self.agreed += 1
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes(peer))
        return self.key.exchange(ec.ECDH(), point)


class PlayConsole:
    """A Play Console key pair made here, and tokens made with jwcrypto the way Google makes
    them: a JWS (ES256) over the verdict inside a JWE (A256KW, A256GCM)."""

    def __init__(self):
        self.decryption = secrets.token_bytes(32)
        self.verification = ec.generate_private_key(ec.SECP256R1())

    def console_strings(self):
        spki = self.verification.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(self.decryption).decode(), base64.b64encode(spki).decode()

    def token(self, request_hash):
        verdict = {
            "requestDetails": {
                "requestPackageName": APP,
                "requestHash": request_hash,
                "timestampMillis": str(int(time.time() * 1000)),
            },
            "appIntegrity": {
                "appRecognitionVerdict": "PLAY_RECOGNIZED",
                "packageName": APP,
                "certificateSha256Digest": [b64url(bytes.fromhex(SIGNER))],
                "versionCode": VERSION_CODE,
            },
            "deviceIntegrity": {"deviceRecognitionVerdict": ["MEETS_DEVICE_INTEGRITY"]},
            "accountDetails": {"appLicensingVerdict": "LICENSED"},
        }
        signed = jws.JWS(json.dumps(verdict).encode())
        pem = self.verification.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        signed.add_signature(jwk.JWK.from_pem(pem), None, json.dumps({"alg": "ES256"}))
        sealed = jwe.JWE(
            signed.serialize(compact=True).encode(),
            json.dumps({"alg": "A256KW", "enc": "A256GCM"}),
        )
        sealed.add_recipient(jwk.JWK(kty="oct", k=b64url(self.decryption)))
        return sealed.serialize(compact=True)


class Attestor(medgate_ffi.PlatformAttestor):
    """The app's platform step, played by the test node (Android, App Attest) and the Play
    Console keys (Play Integrity). Records each step it was asked for."""

    def __init__(self, medgate, signer, play=None, digest=SIGNER):
        self.medgate, self.signer, self.play, self.digest = medgate, signer, play, digest
        self.steps = []
        self.counter = 0
        self.failure = None
        self.answer = None

    def attest(self, step):
        self.steps.append(step)
        if self.failure is not None:
            raise self.failure
        if self.answer is not None:
            return self.answer
        if isinstance(step, Step.ANDROID_KEY_ATTESTATION):
            return Statement.ANDROID_KEY_ATTESTATION(certificate_chain=self.android_chain(step.challenge))
        if isinstance(step, Step.APP_ATTEST_KEY):
            minted = self.medgate.mint(
                op="app_attest_key", app_id=APPLE_APP_ID, client_data_hash=b64url(step.client_data_hash)
            )
            return Statement.APP_ATTEST_KEY(
                key_id=unb64url(minted["key_id"]),
                attestation_object=unb64url(minted["attestation_object"]),
                app_id=None,
            )
        if isinstance(step, Step.APP_ATTEST_ASSERTION):
            self.counter += 1
            return Statement.APP_ATTEST_ASSERTION(
                key_id=step.key_id, assertion=self.assertion(step.key_id, step.client_data_hash)
            )
        if isinstance(step, Step.PLAY_INTEGRITY):
            return Statement.PLAY_INTEGRITY(token=self.play.token(step.request_hash))
        raise AssertionError(f"unexpected step {step}")

    def android_chain(self, challenge):
        minted = self.medgate.mint(
            op="android_chain",
            public_key=b64url(self.signer.point()),
            challenge=b64url(challenge),
            package=APP,
            signing_digest=self.digest,
        )
        return [unb64url(der) for der in minted["certificate_chain"]]

    def assertion(self, key_id, client_data_hash):
        minted = self.medgate.mint(
            op="app_attest_assert",
            key_id=b64url(key_id),
            app_id=APPLE_APP_ID,
            client_data_hash=b64url(client_data_hash),
            counter=self.counter,
        )
        return unb64url(minted["assertion"])


class PlatformBindings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.medgate = MedgateServer(os.environ["MEDGATE_BIN"], testnode=os.environ["MEDGATE_TESTNODE"])
        admin = cls.medgate.admin
        admin(
            "app", "create", APP, "--scopes", "entries:read secret:" + SECRET_NAME,
            "--sdk-evidence", "allow",
        )
        os.environ["MEDGATE_TEST_SECRET"] = SECRET_VALUE
        admin("secret", "set", APP, SECRET_NAME, "--from-env", "MEDGATE_TEST_SECRET")
        admin(
            "release", "add", APP, "--version", VERSION,
            "--sdk-binary-sha256", MEASUREMENT, "--version-code", VERSION_CODE,
        )
        admin(
            "platform", "set", APP, "android-key-attestation",
            "--package", APP, "--signing-digest", SIGNER, "--allow-enrolment",
        )
        admin("platform", "set", APP, "apple-app-attest", "--app-id", APPLE_APP_ID)
        cls.play = PlayConsole()
        decryption, verification = cls.play.console_strings()
        admin("platform", "play-keys", APP, "--decryption-key", decryption, "--verification-key", verification)
        admin("platform", "set", APP, "play-integrity", "--package", APP, "--signing-digest", SIGNER)
        cls.dir = tempfile.mkdtemp(prefix="medgate-platform-")

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
            measurement=MEASUREMENT,
            key_path=None,
            detect=False,
            allowed_libraries=[],
            refresh_margin_secs=30,
        )
        values.update(overrides)
        return medgate_ffi.MedgateConfig(**values)

    def client(self, method, signer=None, attestor=None, **config):
        signer = signer or PythonSigner()
        return medgate_ffi.MedgateClient.with_platform(self.config(**config), signer, attestor, method)

    def get(self, headers, path="/api/entries"):
        request = urllib.request.Request(
            self.medgate.gateway_url + path,
            headers={"Authorization": headers.authorization, "DPoP": headers.dpop},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def test_sdk_evidence_and_proofs_signed_by_a_key_python_holds(self):
        for spki in (False, True):
            signer = PythonSigner(spki=spki)
            client = self.client(Method.SDK, signer)
            self.assertEqual(client.installation_id(), thumbprint(signer.key.public_key()))
            granted = client.attest()
            self.assertEqual((granted.decision, granted.integrity_level), ("allow", "self_reported"))
            status, body = self.get(client.sign_request("GET", "/api/entries"))
            self.assertEqual(status, 200, body)
            self.assertEqual(body["installation"], client.installation_id())
            # The evidence and the proof were both signed by the Python key.
            self.assertEqual(signer.signed, 2)

    def test_a_proof_from_another_installations_copied_key_file_is_refused(self):
        victim = self.client(Method.SDK)
        victim.attest()
        token = victim.access_token()
        # The attacker copied another installation's key file (root, a backup) and signs a
        # proof for the victim's token with it.
        key_path = os.path.join(self.dir, "other-installation.jwk")
        other = medgate_ffi.MedgateClient(self.config(key_path=key_path))
        other.attest()
        with open(key_path) as f:
            copied = jwk.JWK(**json.load(f))
        proof = jws.JWS(json.dumps({
            "jti": secrets.token_urlsafe(16),
            "htm": "GET",
            "htu": self.medgate.gateway_url + "/api/entries",
            "iat": int(time.time()),
            "ath": b64url(hashlib.sha256(token.encode()).digest()),
        }).encode())
        public = json.loads(copied.export_public())
        proof.add_signature(copied, None, json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": public}))
        forged = medgate_ffi.RequestHeaders(authorization="DPoP " + token, dpop=proof.serialize(compact=True))
        status, body = self.get(forged)
        self.assertEqual(status, 401, body)
        self.assertIn("not the key the access token is bound to", body.get("detail", ""))
        # The same proof shape from the victim's own (Python-held) key is accepted.
        self.assertEqual(self.get(victim.sign_request("GET", "/api/entries"))[0], 200)

    def test_android_key_attestation_first_contact_and_refresh_with_a_fresh_chain(self):
        signer = PythonSigner(spki=True)
        attestor = Attestor(self.medgate, signer)
        client = self.client(Method.ANDROID_KEY_ATTESTATION, signer, attestor)
        granted = client.attest()
        self.assertEqual(
            (granted.decision, granted.integrity_level, granted.hardware_key), ("allow", "hardware", True)
        )
        self.assertEqual(self.get(client.sign_request("GET", "/api/entries"))[0], 200)
        # A refresh asks the platform for a fresh chain over a new challenge.
        again = client.attest()
        self.assertEqual(again.integrity_level, "hardware")
        self.assertEqual(len(attestor.steps), 2)
        self.assertTrue(all(isinstance(step, Step.ANDROID_KEY_ATTESTATION) for step in attestor.steps))
        self.assertNotEqual(attestor.steps[0].challenge, attestor.steps[1].challenge)
        # By hand: prepare, have the platform attest the binding, finish.
        prepared = client.prepare_attestation()
        self.assertEqual(len(prepared.binding), 32)
        self.assertEqual(prepared.request_hash, b64url(prepared.binding))
        by_hand = client.attest_android_key_attestation(prepared, attestor.android_chain(prepared.binding))
        self.assertEqual(by_hand.integrity_level, "hardware")
        # A chain minted for another challenge is refused.
        stale = client.prepare_attestation()
        with self.assertRaises(medgate_ffi.MedgateError.Refused) as refused:
            client.attest_android_key_attestation(stale, attestor.android_chain(prepared.binding))
        self.assertEqual(refused.exception.reasons, ["evidence_invalid"])

    def test_app_attest_then_assertions_whose_counter_advances_and_cannot_be_replayed(self):
        attestor = Attestor(self.medgate, None)
        signer = PythonSigner()
        client = self.client(Method.APPLE_APP_ATTEST, signer, attestor)
        first = client.attest()
        self.assertEqual((first.decision, first.integrity_level), ("allow", "hardware"))
        self.assertIsInstance(attestor.steps[0], Step.APP_ATTEST_KEY)
        # Refreshes assert with the key attested, counter 1, then 2.
        for _ in range(2):
            self.assertEqual(client.attest().integrity_level, "hardware")
        self.assertTrue(all(isinstance(step, Step.APP_ATTEST_ASSERTION) for step in attestor.steps[1:]))
        key_id = attestor.steps[1].key_id
        self.assertEqual(client.app_attest_key_id(), key_id)
        self.assertEqual(attestor.counter, 2)
        self.assertEqual(self.get(client.sign_request("GET", "/api/entries"))[0], 200)
        # An assertion with a counter already used, over a fresh challenge, is refused.
        prepared = client.prepare_attestation()
        with self.assertRaises(medgate_ffi.MedgateError.Refused) as refused:
            client.attest_app_attest_assertion(prepared, key_id, attestor.assertion(key_id, prepared.binding))
        self.assertEqual(refused.exception.reasons, ["evidence_invalid"])
        # So is a verbatim replay of an accepted one.
        prepared = client.prepare_attestation()
        attestor.counter += 1
        assertion = attestor.assertion(key_id, prepared.binding)
        self.assertEqual(client.attest_app_attest_assertion(prepared, key_id, assertion).decision, "allow")
        with self.assertRaises(medgate_ffi.MedgateError.Refused):
            client.attest_app_attest_assertion(client.prepare_attestation(), key_id, assertion)
        # After a restart (the same installation key, a new client) the app restores its key
        # id, and the client asserts with it instead of attesting a new key.
        restarted = self.client(Method.APPLE_APP_ATTEST, signer, attestor)
        restarted.restore_app_attest_key(key_id)
        steps = len(attestor.steps)
        self.assertEqual(restarted.attest().integrity_level, "hardware")
        self.assertIsInstance(attestor.steps[steps], Step.APP_ATTEST_ASSERTION)
        # An app that lost the key id (reinstalled, or the answer never arrived) attests a new
        # key, which replaces the old one: the old key's assertions are refused from then on.
        forgetful = self.client(Method.APPLE_APP_ATTEST, signer, attestor)
        self.assertEqual(forgetful.attest().decision, "allow")
        self.assertNotEqual(forgetful.app_attest_key_id(), key_id)
        attestor.counter += 1
        prepared = client.prepare_attestation()
        with self.assertRaises(medgate_ffi.MedgateError.Refused):
            client.attest_app_attest_assertion(prepared, key_id, attestor.assertion(key_id, prepared.binding))

    def test_play_integrity_with_console_keys(self):
        attestor = Attestor(self.medgate, None, play=self.play)
        client = self.client(Method.PLAY_INTEGRITY, attestor=attestor)
        granted = client.attest()
        # MEETS_DEVICE_INTEGRITY is Play's word for a genuine device.
        self.assertEqual((granted.decision, granted.integrity_level), ("allow", "device"))
        step = attestor.steps[0]
        self.assertIsInstance(step, Step.PLAY_INTEGRITY)
        prepared = client.prepare_attestation()
        token = self.play.token(prepared.request_hash)
        self.assertEqual(client.attest_play_integrity(prepared, token).decision, "allow")
        # A token for another request is refused.
        with self.assertRaises(medgate_ffi.MedgateError.Refused):
            client.attest_play_integrity(client.prepare_attestation(), token)

    def test_a_self_built_app_enrols_with_a_one_time_code(self):
        signer = PythonSigner()
        attestor = Attestor(self.medgate, signer, digest=SELF_BUILT)
        stranger = self.client(Method.ANDROID_KEY_ATTESTATION, signer, attestor)
        with self.assertRaises(medgate_ffi.MedgateError.Refused) as refused:
            stranger.attest()
        self.assertEqual(refused.exception.reasons, ["app_identity_mismatch"])
        code = self.medgate.admin("enrolment", "create", APP)["code"]
        enrolling = self.client(Method.ANDROID_KEY_ATTESTATION, signer, attestor, enrolment_code=code)
        self.assertEqual(enrolling.attest().decision, "allow")
        # The code is spent; the enrolled build keeps attesting without it.
        self.assertEqual(enrolling.attest().decision, "allow")
        # An app that restarts with the code still in its config (it never read the answer
        # that spent it) is this installation, already enrolled: not refused.
        restarted = self.client(Method.ANDROID_KEY_ATTESTATION, signer, attestor, enrolment_code=code)
        self.assertEqual(restarted.attest().decision, "allow")
        another = PythonSigner()
        with self.assertRaises(medgate_ffi.MedgateError.Refused) as spent:
            self.client(
                Method.ANDROID_KEY_ATTESTATION, another, Attestor(self.medgate, another, digest="ef" * 32),
                enrolment_code=code,
            ).attest()
        self.assertEqual(spent.exception.reasons, ["enrolment_invalid"])

    def test_a_secret_sealed_to_a_key_python_holds_opens_on_the_phone(self):
        agreement = PythonAgreementKey()
        # Its gateway is the control plane, so sign_request makes proofs for the secret's URL.
        client = self.client(Method.SDK, gateway_url=self.medgate.server_url)
        client.set_encryption_key(agreement)
        self.assertEqual(client.attest().decision, "allow")
        # The attestation's session key was sealed to it too: one agreement each.
        before = agreement.agreed
        self.assertEqual(bytes(client.secret(SECRET_NAME)), SECRET_VALUE.encode())
        self.assertEqual(agreement.agreed, before + 1)

        # The same answer, fetched by hand, opens with jwcrypto and the Python-held key.
        path = "/v1/secrets/" + SECRET_NAME
        headers = client.sign_request("GET", path)
        request = urllib.request.Request(
            self.medgate.server_url + path,
            headers={"Authorization": headers.authorization, "DPoP": headers.dpop},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(response.headers["Content-Type"], "application/jose")
            sealed = response.read().decode()
        pem = agreement.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        token = jwe.JWE()
        token.deserialize(sealed, key=jwk.JWK.from_pem(pem))
        self.assertEqual(token.payload, SECRET_VALUE.encode())
        self.assertEqual(json.loads(token.objects["protected"])["alg"], "ECDH-ES+A256KW")

        # A secret the token has no scope for, and a client that has no key to open with.
        with self.assertRaises(medgate_ffi.MedgateError.Refused) as refused:
            client.secret("not_granted")
        self.assertEqual(refused.exception.status, 403)
        self.assertEqual(refused.exception.reasons, ["urn:medgate:problem:insufficient-scope"])
        with self.assertRaises(medgate_ffi.MedgateError.Protocol):
            self.client(Method.SDK).secret(SECRET_NAME)

    def test_a_session_mac_read_with_a_session_key_opened_by_a_python_held_key(self):
        agreement = PythonAgreementKey()
        client = self.client(Method.SDK)
        client.set_encryption_key(agreement)
        client.attest()
        # The attestation's session key was sealed to the Python-held key and opened with it.
        self.assertEqual(agreement.agreed, 1)
        session = client.session_headers("GET", "/api/readings")
        self.assertTrue(
            session.signature_input.startswith('medgate=("@method" "@target-uri" "authorization")')
        )
        request = urllib.request.Request(
            self.medgate.gateway_url + "/api/readings",
            headers={
                "Authorization": session.authorization,
                "Signature-Input": session.signature_input,
                "Signature": session.signature,
            },
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            self.assertEqual(json.loads(response.read())["installation"], client.installation_id())
        # A client without a key-agreement key has no session key.
        with self.assertRaises(medgate_ffi.MedgateError.Protocol):
            plain = self.client(Method.SDK)
            plain.attest()
            plain.session_headers("GET", "/api/readings")

    def test_failing_callbacks_are_clean_errors(self):
        signer = PythonSigner()
        client = self.client(Method.SDK, signer)
        for failure in (medgate_ffi.MedgateError.Platform("the key was invalidated"), ValueError("boom")):
            signer.failure = failure
            with self.assertRaises(medgate_ffi.MedgateError.Platform):
                client.attest()
        # A signer that answers with another key's signatures is caught before anything is sent.
        signer.failure = None
        signer.key, original = ec.generate_private_key(ec.SECP256R1()), signer.key
        with self.assertRaises(medgate_ffi.MedgateError.Platform) as mismatch:
            client.attest()
        self.assertIn("does not verify", str(mismatch.exception))
        signer.key = original
        self.assertEqual(client.attest().decision, "allow")

        class NoKey(medgate_ffi.InstallationSigner):
            def public_key(self):
                raise RuntimeError("no key in the keystore")

            def sign(self, message):
                raise AssertionError("never called")

        with self.assertRaises(medgate_ffi.MedgateError.Platform):
            self.client(Method.SDK, NoKey())

        class NotP256(NoKey):
            def public_key(self):
                return b"\x04" + b"\x01" * 64

        with self.assertRaises(medgate_ffi.MedgateError.Platform):
            self.client(Method.SDK, NotP256())

        # A prepared attestation whose challenge the app changed is not one medgate issued;
        # the binding the app hands back is not trusted, it is computed again.
        forged = medgate_ffi.PreparedAttestation(challenge="not base64!", binding=b"\0" * 32, request_hash="")
        with self.assertRaises(medgate_ffi.MedgateError.Config):
            client.attest_play_integrity(forged, "token")

    def test_a_refresh_whose_platform_step_fails_is_reported_not_downgraded(self):
        signer = PythonSigner()
        attestor = Attestor(self.medgate, signer)
        client = self.client(Method.ANDROID_KEY_ATTESTATION, signer, attestor, refresh_margin_secs=10**6)
        self.assertEqual(client.attest().integrity_level, "hardware")
        attestor.failure = RuntimeError("Keystore is unavailable")
        with self.assertRaises(medgate_ffi.MedgateError.Platform) as failed:
            client.access_token()  # the margin makes every token due for refresh
        self.assertIn("Keystore is unavailable", str(failed.exception))
        # A platform step answered with another platform's statement is refused too.
        attestor.failure = None
        attestor.answer = Statement.PLAY_INTEGRITY(token="t")
        with self.assertRaises(medgate_ffi.MedgateError.Platform):
            client.attest()
        # No SDK evidence was sent instead: the installation's last decision is still the
        # hardware one.
        installation = self.medgate.installation(client.installation_id())
        self.assertEqual(installation["platform"], "android-key-attestation", installation)
        self.assertEqual(client.attestation_method(), Method.ANDROID_KEY_ATTESTATION)
        # No attestor at all: a hardware client says so instead of attesting in software.
        bare = self.client(Method.APPLE_APP_ATTEST)
        with self.assertRaises(medgate_ffi.MedgateError.Platform) as bare_failed:
            bare.attest()
        self.assertIn("no platform attester", str(bare_failed.exception))

    def test_the_generated_kotlin_attests_and_calls_the_gateway_with_a_kotlin_key(self):
        classpath = os.environ.get("MEDGATE_KOTLIN_CLASSPATH")
        if not classpath:
            if os.environ.get("MEDGATE_CI"):
                self.fail("MEDGATE_KOTLIN_CLASSPATH is not set (scripts/binding-tests sets it)")
            self.skipTest("skipped: the Kotlin bindings were not compiled (run scripts/binding-tests)")
        done = subprocess.run(
            ["java", "-Djna.library.path=" + os.environ["MEDGATE_BINDINGS"], "-cp", classpath, "KotlinSmokeKt",
             self.medgate.server_url, self.medgate.gateway_url, APP, VERSION, MEASUREMENT],
            capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("4 passed, 0 failed", done.stdout)

    def test_android_as_the_glue_does_it_a_short_lived_attestation_key(self):
        # On a phone the chain certifies a key made for this attestation, not the installation
        # key (Keystore fixes the challenge when a key is made): the device and build are
        # proven, the installation key's hardware is not.
        signer = PythonSigner()
        attestor = Attestor(self.medgate, PythonSigner())
        granted = self.client(Method.ANDROID_KEY_ATTESTATION, signer, attestor).attest()
        self.assertEqual(
            (granted.decision, granted.integrity_level, granted.hardware_key), ("allow", "hardware", False)
        )

    def test_the_callbacks_can_run_on_several_threads(self):
        signer = PythonSigner()
        client = self.client(Method.SDK, signer)
        client.attest()
        results = []

        def call():
            results.append(self.get(client.sign_request("GET", "/api/entries"))[0])

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        self.assertEqual(results, [200] * 8)


if __name__ == "__main__":
    unittest.main(verbosity=2)
