"""RFC 9421 interop with pyauth's http-message-signatures, which nobody at medgate wrote.

  httpsig_interop.py sign-and-send URL KEY_JWK KEYID AUTHORIZATION DPOP BODY_FILE [TAMPERED_BODY_FILE]
      Signs a POST of BODY_FILE to URL with the installation key (a JWK file with "d"), as a
      medgate app would: label "medgate", ecdsa-p256-sha256, keyid KEYID, covering @method,
      @target-uri, content-digest (sha-256, made by the library) and authorization, with a
      nonce. Sends it (with TAMPERED_BODY_FILE as the body instead, if given) and prints
      {"status": …, "body": …}.
"""

import base64
import datetime
import json
import secrets
import sys
import urllib.error
import urllib.request

from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageSigner, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.digests import ContentDigest


def b64int(text):
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


class Key(HTTPSignatureKeyResolver):
    def __init__(self, jwk):
        public = ec.EllipticCurvePublicNumbers(b64int(jwk["x"]), b64int(jwk["y"]), ec.SECP256R1())
        self.key = ec.EllipticCurvePrivateNumbers(b64int(jwk["d"]), public).private_key()

    def resolve_private_key(self, key_id):
        return self.key


class Sha256Digest(ContentDigest):
    algorithm = "sha-256"


class Request:
    """The message interface the library reads: method, url, headers."""

    def __init__(self, method, url, headers):
        self.method = method
        self.url = url
        self.headers = headers


def sign_and_send(url, key_file, keyid, authorization, dpop, body_file, tampered_file=None):
    with open(key_file) as f:
        jwk = json.load(f)
    with open(body_file, "rb") as f:
        body = f.read()
    request = Request(
        "POST", url, {"authorization": authorization, "dpop": dpop, "content-type": "application/json"}
    )
    signer = HTTPMessageSigner(signature_algorithm=algorithms.ECDSA_P256_SHA256, key_resolver=Key(jwk))
    signer.content_digest_class = Sha256Digest
    signer.sign(
        request,
        key_id=keyid,
        label="medgate",
        nonce=secrets.token_urlsafe(16),
        created=datetime.datetime.now(datetime.timezone.utc),
        covered_component_ids=("@method", "@target-uri", "content-digest", "authorization"),
        body=body,
    )
    if tampered_file:
        with open(tampered_file, "rb") as f:
            body = f.read()
    sent = urllib.request.Request(url, data=body, method="POST", headers=dict(request.headers))
    try:
        with urllib.request.urlopen(sent, timeout=10) as response:
            print(json.dumps({"status": response.status, "body": response.read().decode()}))
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code, "body": error.read().decode(), "headers": dict(request.headers)}))


if __name__ == "__main__":
    if sys.argv[1] == "sign-and-send":
        sign_and_send(*sys.argv[2:])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
