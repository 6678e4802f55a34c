#!/usr/bin/env bash
# Seeds the fuzz corpora from real vectors and from tokens a running medgate produces.
# Usage: fuzz/seed.sh  (reads $MEDGATE_VECTORS, default ../shared/vectors)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vectors=${MEDGATE_VECTORS:-$here/../../shared/vectors}
corpus=$here/corpus
mkdir -p "$corpus"/{jws,access_token,dpop_proof,evidence,jwk,config,routes}
if [ -d "$vectors/standards" ]; then
  python3 - "$vectors" "$corpus" <<'PY'
import json, sys, os, hashlib
vectors, corpus = sys.argv[1], sys.argv[2]
def put(target, data):
    data = data.encode() if isinstance(data, str) else data
    with open(os.path.join(corpus, target, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
d = json.load(open(f"{vectors}/standards/rfc9449-dpop/vectors.json"))
for p in d["proofs"]:
    put("dpop_proof", p["jwt"]); put("jws", p["jwt"]); put("jwk", json.dumps(p["header"]["jwk"]))
put("access_token", d["access_token_jwt_with_cnf"]["jwt"])
for f in ["rfc7515-es256-jws", "rfc8037-ed25519-jws"]:
    v = json.load(open(f"{vectors}/standards/{f}/vectors.json"))
    put("jws", v["jws_compact"]); put("jwk", json.dumps(v["public_jwk"])); put("jwk", json.dumps(v["private_jwk"]))
PY
fi
# Config and route seeds from the project's own example config.
cp "$here/../medgate.example.toml" "$corpus/config/example.toml" 2>/dev/null || true
printf '/api/v1/entries*\n/api/v1/entries.json' > "$corpus/routes/entries"
printf '/a*b*c/\n/aXbYc/d' > "$corpus/routes/stars"
echo "seeded $(find "$corpus" -type f | wc -l) corpus files"
