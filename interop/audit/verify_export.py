"""An audit export verifier written from the README's description of the format ("Audit
exports"), not from medgate's code, as an auditor's own tool would be. The checkpoint's
signature is checked with joserfc (PyPI), a JOSE library nobody at medgate wrote.

    python verify_export.py EXPORT [--checkpoint-key THUMBPRINT]

Prints one JSON object: {"ok": true, "first_seq", "last_seq", "head_hash", "checkpoint_seq"}
or {"ok": false, "problem"}; exits 0 or 1 (2: this verifier failed, no verdict).
"""

import base64
import hashlib
import json
import struct
import sys

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

FORMAT = "medgate-audit-export/1"
HEADER_KEYS = {"format", "first_seq", "last_seq", "prev_hash", "head_hash", "checkpoint"}
ENTRY_KEYS = {"seq", "at", "kind", "actor", "subject", "detail", "prev_hash", "hash"}
CEF_HEADER_KEYS = {"cn1Label": "first_seq", "cn1": None, "cn2Label": "last_seq", "cn2": None,
                   "cs3Label": "prev_hash", "cs3": None, "cs4Label": "head_hash", "cs4": None}
CEF_ENTRY_KEYS = {"rt": None, "suser": None, "cs1Label": "subject", "cs1": None, "cs2Label": "detail",
                  "cs2": None, "cn1Label": "seq", "cn1": None, "cs3Label": "prev_hash", "cs3": None,
                  "cs4Label": "hash", "cs4": None}


class Invalid(Exception):
    pass


def strict_json(line, keys):
    def no_duplicates(pairs):
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)):
            raise Invalid("a repeated member")
        return dict(pairs)
    value = json.loads(line, object_pairs_hook=no_duplicates)
    if not isinstance(value, dict) or set(value) != keys:
        raise Invalid("not the members the format names")
    return value


def hex64(text):
    if not isinstance(text, str) or len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise Invalid("not 64 lowercase hex digits")
    return text


def severity(kind):
    if kind.startswith("admin."):
        return "6"
    if "reject" in kind or "refus" in kind:
        return "5"
    return "3"


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def entry_hash(entry):
    digest = hashlib.sha256()
    digest.update(b"medgate-audit-v1")
    digest.update(struct.pack(">q", entry["seq"]))
    digest.update(struct.pack(">q", entry["at"]))
    for field in ("kind", "actor", "subject", "detail"):
        data = entry[field].encode("utf-8")
        digest.update(struct.pack(">Q", len(data)))
        digest.update(data)
    digest.update(bytes.fromhex(entry["prev_hash"]))
    return digest.hexdigest()


def cef_unescape(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            i += 1
            out.append({"n": "\n", "r": "\r", "\\": "\\", "=": "="}[text[i]])
        else:
            out.append(text[i])
        i += 1
    return "".join(out)


def cef_parse(line):
    if not line.startswith("CEF:"):
        raise Invalid("not a CEF record")
    rest, fields, field, i = line[4:], [], [], 0
    while len(fields) < 7:
        c = rest[i]
        if c == "\\":
            field.append(rest[i + 1])
            i += 2
            continue
        if c == "|":
            fields.append("".join(field))
            field = []
        else:
            field.append(c)
        i += 1
    extension = rest[i:]
    # A key is the word before an unescaped "="; its value runs to the space before the next key.
    keys, j = [], 0
    while j < len(extension):
        if extension[j] == "\\":
            j += 2
            continue
        if extension[j] == "=":
            keys.append((extension.rfind(" ", 0, j) + 1, j))
        j += 1
    pairs = {}
    for n, (start, equals) in enumerate(keys):
        end = keys[n + 1][0] - 1 if n + 1 < len(keys) else len(extension)
        key = extension[start:equals]
        if key in pairs:
            raise Invalid("a repeated key")
        pairs[key] = cef_unescape(extension[equals + 1:end])
    return fields, pairs


def cef_strict(fields, pairs, title, severity_value, keys):
    # Everything a SIEM shows is checked: the header fields and exactly the documented keys.
    if fields[:4] != ["0", "medgate", "medgate", "1"] or fields[5] != title or fields[6] != severity_value:
        raise Invalid("CEF header fields are not the documented ones")
    if set(pairs) != set(keys) or any(label is not None and pairs[key] != label for key, label in keys.items()):
        raise Invalid("CEF keys are not the documented ones")


def header_of(line):
    if line.startswith("CEF:"):
        fields, pairs = cef_parse(line)
        if fields[4] != "audit.export":
            raise Invalid("the first line is not an export header")
        keys = dict(CEF_HEADER_KEYS)
        if "cs5" in pairs:
            keys.update({"cs5Label": "checkpoint", "cs5": None})
        cef_strict(fields, pairs, "audit export", "1", keys)
        return {
            "format": FORMAT,
            "first_seq": int(pairs["cn1"]),
            "last_seq": int(pairs["cn2"]),
            "prev_hash": pairs["cs3"],
            "head_hash": pairs["cs4"],
            "checkpoint": pairs.get("cs5"),
        }
    return strict_json(line, HEADER_KEYS)


def entry_of(line, cef):
    if not cef:
        return strict_json(line, ENTRY_KEYS)
    fields, pairs = cef_parse(line)
    cef_strict(fields, pairs, fields[4], severity(fields[4]), CEF_ENTRY_KEYS)
    if int(pairs["rt"]) % 1000 != 0:
        raise Invalid("rt is not whole seconds")
    return {
        "seq": int(pairs["cn1"]),
        "at": int(pairs["rt"]) // 1000,
        "kind": fields[4],
        "actor": pairs["suser"],
        "subject": pairs["cs1"],
        "detail": pairs["cs2"],
        "prev_hash": pairs["cs3"],
        "hash": pairs["cs4"],
    }


def thumbprint(jwk):
    # RFC 7638 for an EC key: the required members, sorted, no whitespace.
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def checkpoint_claims(compact, pinned):
    header = json.loads(b64url_decode(compact.split(".")[0]))
    typ = str(header.get("typ", "")).lower()
    typ = typ[len("application/"):] if typ.startswith("application/") else typ
    if typ != "medgate-audit-checkpoint+jwt" or header.get("alg") != "ES256":
        raise Invalid("the checkpoint is not an ES256 medgate checkpoint")
    if pinned is not None and thumbprint(header["jwk"]) != pinned:
        raise Invalid("the checkpoint is signed by another key than the pinned one")
    verified = jws.deserialize_compact(compact, ECKey.import_key(header["jwk"]), algorithms=["ES256"])
    return json.loads(verified.payload)


def verify(path, pinned):
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or any(line == "" or "\r" in line for line in lines):
        raise Invalid("an empty export, a blank line or a carriage return")
    header = header_of(lines[0])
    if header.get("format") != FORMAT:
        raise Invalid("not a medgate audit export")
    if not 1 <= header["first_seq"] <= header["last_seq"]:
        raise Invalid("the header names no range")
    hex64(header["prev_hash"])
    hex64(header["head_hash"])
    cef = lines[0].startswith("CEF:")
    claims = checkpoint_claims(header["checkpoint"], pinned) if header.get("checkpoint") is not None else None
    expected_seq, prev = header["first_seq"], header["prev_hash"]
    for line in lines[1:]:
        entry = entry_of(line, cef)
        if entry["seq"] != expected_seq:
            raise Invalid(f"entry {expected_seq} is missing")
        if entry["prev_hash"] != prev:
            raise Invalid(f"entry {entry['seq']}: prev_hash is not the previous entry's hash")
        hex64(entry["prev_hash"])
        if entry_hash(entry) != hex64(entry["hash"]):
            raise Invalid(f"entry {entry['seq']}: content does not match its hash")
        if claims is not None and claims["seq"] == entry["seq"] and bytes.fromhex(claims["hash"]) != bytes.fromhex(entry["hash"]):
            raise Invalid(f"entry {entry['seq']} does not have the checkpoint's hash")
        prev, expected_seq = entry["hash"], expected_seq + 1
    if expected_seq - 1 != header["last_seq"] or prev != header["head_hash"]:
        raise Invalid("the export does not end at the header's head")
    if claims is not None and not header["first_seq"] <= claims["seq"] <= header["last_seq"]:
        raise Invalid("the checkpoint's entry is not in the export")
    return {
        "ok": True,
        "first_seq": header["first_seq"],
        "last_seq": header["last_seq"],
        "head_hash": header["head_hash"],
        "checkpoint_seq": claims["seq"] if claims else None,
    }


def main():
    args = sys.argv[1:]
    pinned = None
    if "--checkpoint-key" in args:
        index = args.index("--checkpoint-key")
        pinned = args[index + 1]
        del args[index:index + 2]
    try:
        print(json.dumps(verify(args[0], pinned)))
    except (Invalid, KeyError, ValueError, IndexError, TypeError) as problem:
        print(json.dumps({"ok": False, "problem": str(problem)}))
        sys.exit(1)
    except JoseError as problem:
        print(json.dumps({"ok": False, "problem": f"checkpoint: {type(problem).__name__}"}))
        sys.exit(1)
    # Anything else is a bug in this verifier: exit 2 (a traceback), never a verdict.


if __name__ == "__main__":
    main()
