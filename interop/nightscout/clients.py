"""Nightscout clients from PyPI, nobody at medgate wrote, against medgate's gateway in front of a
Nightscout-compatible upstream (crates/node/tests/end_to_end/followers.rs starts both).

The test has uploaded an xDrip+-style reading of 131 mg/dL. A follower's credential reads it
with py-nightscout (as `token=<secret>`, and as the SHA-1 hex it computes from a plain secret)
and with python-nightscout (SHA-1 hex); then an uploader's credential pushes, lists and deletes
a reading with nightscout-cli (raw `API-SECRET`), and the follower's cannot push; tconnectsync's
`NightscoutApi` (SHA-1 header plus a plaintext `?api_secret=`) uploads a reading with the
uploader's credential, but its insulin bolus is refused: a therapy write needs an attested
installation's signed request, whatever credential comes with it. (py-nightscout
1.3.3 fails on an entry without `delta`, which nightscout-cli does not send: the reads come
first.) Prints one JSON line per check: {"check", "ok", "detail"}.

Environment: MEDGATE_GATEWAY (http://127.0.0.1:PORT), MEDGATE_FOLLOWER, MEDGATE_UPLOADER.
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from urllib.parse import urlparse

import nightscout  # python-nightscout
import py_nightscout
from tconnectsync.api.common import ApiException
from tconnectsync.nightscout import NightscoutApi
from tconnectsync.parser.nightscout import NightscoutEntry

GATEWAY = os.environ["MEDGATE_GATEWAY"]
FOLLOWER = os.environ["MEDGATE_FOLLOWER"]
UPLOADER = os.environ["MEDGATE_UPLOADER"]


def report(check, ok, detail=""):
    print(json.dumps({"check": check, "ok": bool(ok), "detail": str(detail)}), flush=True)


def attempt(check, fn):
    try:
        ok, detail = fn()
    except Exception as error:  # the client's own error is the detail
        ok, detail = False, f"{type(error).__name__}: {error}"
    report(check, ok, detail)


async def py_nightscout_reads(secret):
    api = py_nightscout.Api(GATEWAY, api_secret=secret)
    sgvs = await api.get_sgvs()
    treatments = await api.get_treatments()
    return sgvs, treatments


def cli(secret, *args):
    """nightscout-cli, configured by environment (it reads ~/.config too: HOME is a temp dir)."""
    url = urlparse(GATEWAY)
    with tempfile.TemporaryDirectory() as home:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": home,
            "NIGHTSCOUT_HOST": url.hostname,
            "NIGHTSCOUT_PORT": str(url.port),
            "NIGHTSCOUT_API_SECRET": secret,
        }
        program = os.path.join(os.path.dirname(sys.executable), "nightscout")
        return subprocess.run(
            [program, *args], env=env, capture_output=True, text=True, timeout=60
        )


def main():
    def follower_reads(secret):
        sgvs, treatments = asyncio.run(py_nightscout_reads(secret))
        return any(s.sgv == 131 for s in sgvs), f"{len(sgvs)} sgvs, {len(treatments)} treatments"

    attempt("py-nightscout reads (token=<secret>)", lambda: follower_reads("token=" + FOLLOWER))
    attempt("py-nightscout reads (SHA-1 of the secret)", lambda: follower_reads(FOLLOWER))

    def python_nightscout_reads():
        sgvs = nightscout.Api(GATEWAY, api_secret=FOLLOWER).get_sgvs()
        return any(s.sgv == 131 for s in sgvs), f"{len(sgvs)} sgvs"

    attempt("python-nightscout reads (SHA-1 of the secret)", python_nightscout_reads)

    pushed = cli(UPLOADER, "push", "142", "--direction", "Flat")
    report("nightscout-cli push (uploader)", pushed.returncode == 0, pushed.stdout + pushed.stderr)
    listed = cli(UPLOADER, "list", "--count", "5")
    rows = [l.split(",") for l in listed.stdout.splitlines()[1:] if l.count(",") == 2]
    report(
        "nightscout-cli list (uploader)",
        listed.returncode == 0 and any(r[2] == "142" for r in rows),
        listed.stdout + listed.stderr,
    )
    refused = cli(FOLLOWER, "push", "99")
    report(
        "nightscout-cli push with a follower's credential is refused",
        refused.returncode != 0,
        refused.stdout + refused.stderr,
    )
    ids = [r[0] for r in rows if r[2] == "142"]
    deleted = cli(UPLOADER, "delete", *ids[:1]) if ids else None
    report(
        "nightscout-cli delete (uploader)",
        deleted is not None and deleted.returncode == 0 and "Deleted 1 entries" in deleted.stdout,
        (deleted.stdout + deleted.stderr) if deleted else "nothing listed to delete",
    )

    tconnect = NightscoutApi(GATEWAY + "/", UPLOADER)

    def tconnectsync_uploads_a_reading():
        tconnect.upload_entry(NightscoutEntry.entry(155, "2026-01-01T00:10:00Z"), entity="entries")
        return True, "uploaded"

    attempt("tconnectsync uploads a reading (uploader)", tconnectsync_uploads_a_reading)

    def tconnectsync_bolus_is_refused():
        bolus = NightscoutEntry.bolus(2.5, 0, "2026-01-01T00:10:00Z")
        try:
            tconnect.upload_entry(bolus, entity="treatments")
        except ApiException as error:
            return error.status_code == 403, str(error)
        return False, "the bolus was accepted"

    attempt("tconnectsync's insulin bolus is refused (uploader)", tconnectsync_bolus_is_refused)


main()
