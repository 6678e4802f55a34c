"""SMART Backend Services interop with Authlib, an OAuth 2.0 client nobody at medgate wrote.

A partner backend asks medgate's token endpoint for an access token with the client
credentials grant (RFC 6749 §4.4), authenticating with a private_key_jwt client assertion
(RFC 7523), then calls the gateway with the token as a Bearer token (Authlib's requests
session sends only Bearer tokens; see openid_client.mjs for DPoP).

  authlib_client.py keygen --alg RS384|ES384|ES256 --out-jwks PUBLIC_JWKS.json --out-key PRIVATE.pem
      Makes a fresh key pair with joserfc (Authlib's JOSE library): writes the private key as
      PKCS#8 PEM and the public key as a JWKS {"keys": [{..., "kid", "alg", "use": "sig"}]}
      (kid = RFC 7638 thumbprint). Prints {"kid": ..., "alg": ..., "jwks": ...}.

  authlib_client.py fetch --token-endpoint URL --client-id ID --key PRIVATE.pem --kid KID
                          --alg RS384|ES384|ES256 --scope SCOPE [--get GATEWAY_URL]
                          [--lifetime SECONDS] [--aud AUD] [--expect-error]
      OAuth2Session(client_id, key, token_endpoint_auth_method="private_key_jwt") with
      PrivateKeyJWT(token_endpoint, headers={"kid": KID}, alg=ALG) registered, then
      fetch_token(grant_type="client_credentials", scope=SCOPE), then session.get(GATEWAY_URL).
      The assertion lives --lifetime seconds (default 300, SMART's maximum; Authlib's own
      default would be 3600). --aud replaces the aud claim (default: the token endpoint URL).
      Prints {"token_status", "token_type", "scope", "expires_in", "token_body", "get_status",
      "get_body"}; with --expect-error a token error is expected and printed as
      {"token_status", "error", "error_description", "token_body"} (exit 0; without
      --expect-error the same object is printed and the exit code is 2), and a token success
      is printed with "error": null and exits 3.

Unexpected exceptions: message on stderr, exit 1.
"""

import argparse
import json
import sys

from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, RSAKey

CURVES = {"ES256": "P-256", "ES384": "P-384"}


def keygen(alg, out_jwks, out_key):
    params = {"alg": alg, "use": "sig"}
    if alg in CURVES:
        key = ECKey.generate_key(CURVES[alg], parameters=params, auto_kid=True)
    elif alg == "RS384":
        key = RSAKey.generate_key(2048, parameters=params, auto_kid=True)
    else:
        raise SystemExit(f"unsupported --alg {alg}")
    public = key.as_dict(private=False)
    public.setdefault("kid", key.thumbprint())
    jwks = {"keys": [public]}
    with open(out_key, "wb") as f:
        f.write(key.as_pem(private=True))
    with open(out_jwks, "w") as f:
        json.dump(jwks, f)
    return {"kid": public["kid"], "alg": alg, "jwks": jwks}


class SmartPrivateKeyJWT(PrivateKeyJWT):
    """Authlib's PrivateKeyJWT, only with the assertion lifetime SMART allows (and, for
    negative tests, another aud). Everything else (header, iss, sub, jti, iat, form fields)
    is Authlib's own."""

    def __init__(self, token_endpoint, headers, alg, lifetime, aud=None):
        super().__init__(token_endpoint, headers=headers, alg=alg)
        self.lifetime = lifetime
        self.aud = aud

    def sign(self, auth, token_endpoint):
        from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign

        return private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            token_endpoint=self.aud or token_endpoint,
            claims=None,  # a fresh jti each call (a claims dict given here would be reused)
            header=dict(self.headers),
            alg=self.alg,
            expires_in=self.lifetime,
        )


def load_key(path, alg):
    with open(path, "rb") as f:
        pem = f.read()
    return ECKey.import_key(pem) if alg in CURVES else RSAKey.import_key(pem)


def body_of(resp):
    try:
        return resp.json()
    except ValueError:
        return resp.text


def fetch(args):
    key = load_key(args.key, args.alg)
    session = OAuth2Session(
        client_id=args.client_id,
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
        token_endpoint=args.token_endpoint,
        default_timeout=30,
        trust_env=False,  # the node is on 127.0.0.1: never through a proxy from the environment
    )
    session.register_client_auth_method(
        SmartPrivateKeyJWT(
            args.token_endpoint, {"kid": args.kid}, args.alg, args.lifetime, args.aud
        )
    )
    seen = {}

    def keep(resp):
        seen["status"] = resp.status_code
        seen["body"] = body_of(resp)
        return resp

    session.register_compliance_hook("access_token_response", keep)
    try:
        token = session.fetch_token(
            args.token_endpoint, grant_type="client_credentials", scope=args.scope
        )
    except OAuthError as err:
        return {
            "token_status": seen.get("status"),
            "error": err.error,
            "error_description": err.description,
            "token_body": seen.get("body"),
        }, 0 if args.expect_error else 2
    out = {
        "token_status": seen.get("status"),
        "token_type": token.get("token_type"),
        "scope": token.get("scope"),
        "expires_in": token.get("expires_in"),
        "token_body": seen.get("body"),
    }
    if args.expect_error:
        out["error"] = None
        return out, 3
    if args.get:
        resp = session.get(args.get)
        out["get_status"] = resp.status_code
        out["get_body"] = body_of(resp)
        out["get_www_authenticate"] = resp.headers.get("WWW-Authenticate")
    return out, 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("--alg", required=True, choices=["RS384", "ES384", "ES256"])
    k.add_argument("--out-jwks", required=True)
    k.add_argument("--out-key", required=True)
    f = sub.add_parser("fetch")
    f.add_argument("--token-endpoint", required=True)
    f.add_argument("--client-id", required=True)
    f.add_argument("--key", required=True)
    f.add_argument("--kid", required=True)
    f.add_argument("--alg", required=True, choices=["RS384", "ES384", "ES256"])
    f.add_argument("--scope", required=True)
    f.add_argument("--get")
    f.add_argument("--lifetime", type=int, default=300)
    f.add_argument("--aud")
    f.add_argument("--expect-error", action="store_true")
    args = parser.parse_args()
    try:
        if args.mode == "keygen":
            out, code = keygen(args.alg, args.out_jwks, args.out_key), 0
        else:
            out, code = fetch(args)
    except Exception as err:  # noqa: BLE001 - the test wants the message, not a traceback
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return code


if __name__ == "__main__":
    sys.exit(main())
