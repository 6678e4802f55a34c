"""python-tuf, the reference TUF implementation, against medgate's TUF code (driven by
crates/trust/tests/tuf_interop.rs).

  tuf_interop.py make-repo DIR
      Writes a repository python-tuf builds with its own Ed25519 keys: 1.root.json,
      2.root.json (the timestamp key rotated, signed by the old and the new root key),
      timestamp.json, snapshot.json, targets.json and targets/pins.json. medgate's client must
      accept it.
  tuf_interop.py refresh DIR TRUSTED_ROOT
      Serves DIR (a repository medgate wrote) on loopback and refreshes it with python-tuf's
      ngclient from TRUSTED_ROOT; prints one JSON line: {"ok": true, "pins": <target text>,
      "root_version": N} or {"ok": false, "error": "<exception class>"}.
  tuf_interop.py refresh-url BASE TRUSTED_ROOT
      The same against a running medgate node (BASE = <control plane>/v1/trust).
  tuf_interop.py canonical
      Prints securesystemslib's canonical JSON of a fixed object.
"""

import datetime
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading

from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer
from tuf.ngclient import Updater

PINS = b'{"version":1,"pins":[{"host":"**.example.org","sha256":["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}]}'


def in_days(days):
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(days=days)


def make_repo(out):
    os.makedirs(os.path.join(out, "targets"), exist_ok=True)
    signers = {role: CryptoSigner.generate_ed25519() for role in ("root", "timestamp", "snapshot", "targets")}
    root = Metadata(Root(expires=in_days(365)))
    for role, signer in signers.items():
        root.signed.add_key(signer.public_key, role)
    # Indented, as python-tuf writes by default: medgate must verify the canonical form.
    pretty = JSONSerializer(compact=False)
    root.sign(signers["root"])
    root.to_file(os.path.join(out, "1.root.json"), pretty)

    # Root 2: a new timestamp key and a new root key; signed by both root keys.
    new_root_signer = CryptoSigner.generate_ed25519()
    new_timestamp = CryptoSigner.generate_ed25519()
    root.signed.version = 2
    root.signed.revoke_key(signers["timestamp"].public_key.keyid, "timestamp")
    root.signed.add_key(new_timestamp.public_key, "timestamp")
    root.signed.revoke_key(signers["root"].public_key.keyid, "root")
    root.signed.add_key(new_root_signer.public_key, "root")
    root.signatures.clear()
    root.sign(signers["root"], append=True)
    root.sign(new_root_signer, append=True)
    root.to_file(os.path.join(out, "2.root.json"), pretty)
    signers["timestamp"] = new_timestamp

    with open(os.path.join(out, "targets", "pins.json"), "wb") as f:
        f.write(PINS)
    targets = Metadata(Targets(expires=in_days(7)))
    targets.signed.targets["pins.json"] = TargetFile.from_data("pins.json", PINS, ["sha256"])
    targets.sign(signers["targets"])
    targets_bytes = targets.to_bytes(pretty)
    with open(os.path.join(out, "targets.json"), "wb") as f:
        f.write(targets_bytes)
    snapshot = Metadata(Snapshot(expires=in_days(7)))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1)
    snapshot.sign(signers["snapshot"])
    snapshot.to_file(os.path.join(out, "snapshot.json"), pretty)
    timestamp = Metadata(Timestamp(expires=in_days(1)))
    timestamp.signed.snapshot_meta = MetaFile(version=1)
    timestamp.sign(signers["timestamp"])
    timestamp.to_file(os.path.join(out, "timestamp.json"), pretty)
    print(json.dumps({"pins": PINS.decode()}))


def refresh(repo, trusted_root):
    """Serves the folder `repo` on loopback and refreshes it."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=repo)
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        refresh_url(f"http://127.0.0.1:{server.server_address[1]}", trusted_root)
    finally:
        server.shutdown()


def refresh_url(base, trusted_root):
    """Refreshes the repository at `base` (metadata at base/, targets at base/targets/)."""
    work = tempfile.mkdtemp()
    try:
        metadata_dir = os.path.join(work, "metadata")
        os.makedirs(metadata_dir)
        with open(trusted_root, "rb") as f:
            bootstrap = f.read()
        updater = Updater(
            metadata_dir=metadata_dir,
            metadata_base_url=base + "/",
            target_dir=os.path.join(work, "targets"),
            target_base_url=base + "/targets/",
            bootstrap=bootstrap,
        )
        try:
            updater.refresh()
            info = updater.get_targetinfo("pins.json")
            if info is None:
                print(json.dumps({"ok": False, "error": "no pins.json"}))
                return
            os.makedirs(os.path.join(work, "targets"))
            path = updater.download_target(info)
            with open(path, "rb") as f:
                pins = f.read().decode()
            with open(os.path.join(metadata_dir, "root.json"), "rb") as f:
                root_version = json.load(f)["signed"]["version"]
            result = {"ok": True, "pins": pins, "root_version": root_version}
            # Managed roots, when the release has them: an ordinary target, its hosts in custom.
            roots = updater.get_targetinfo("roots.pem")
            if roots is not None:
                with open(updater.download_target(roots), "rb") as f:
                    result["roots_pem"] = f.read().decode()
                result["roots_hosts"] = roots.custom["hosts"]
            print(json.dumps(result))
        except Exception as error:  # the refusal is the result
            print(json.dumps({"ok": False, "error": type(error).__name__}))
    finally:
        shutil.rmtree(work)


def canonical():
    value = {"b": [1, -2, True, None], "a": "q\"uo\\te\n", "é": {"z": 0, "y": "ü"}}
    sys.stdout.buffer.write(encode_canonical(value).encode())


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "make-repo":
        make_repo(sys.argv[2])
    elif command == "refresh":
        refresh(sys.argv[2], sys.argv[3])
    elif command == "refresh-url":
        refresh_url(sys.argv[2], sys.argv[3])
    elif command == "canonical":
        canonical()
    else:
        sys.exit(f"unknown command {command}")
