#!/usr/bin/env bash
# Seeds the fuzz corpora from real vectors and from tokens a running medgate produces.
# Usage: fuzz/seed.sh  (reads $MEDGATE_VECTORS, default ../shared/vectors)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vectors=${MEDGATE_VECTORS:-$here/../../shared/vectors}
corpus=$here/corpus
mkdir -p "$corpus"/{jws,access_token,dpop_proof,evidence,jwk,config,routes,play_integrity}
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
# play_integrity seeds: the first byte picks the branch (0: token, 1: verdict JSON). Google's
# documented example verdicts, and tokens made from them under the fixed test keys
# (TestPlayKeys::fixed) by the play_integrity_token example; a small verdict of our own when
# the vectors are absent.
pi=$vectors/play-integrity
pi_verdicts=()
if [ -d "$pi" ]; then
  pi_verdicts=("$pi"/standard-request-verdict.google-docs-example.json "$pi"/decodeIntegrityToken-response.google-docs-example.json)
  for f in "${pi_verdicts[@]}"; do
    { printf '\001'; cat "$f"; } > "$corpus/play_integrity/verdict-$(basename "$f")"
  done
fi
own='{"requestDetails":{"requestPackageName":"org.example.cgm","nonce":"bm9uY2Utbm9uY2Utbm9uY2U","timestampMillis":"1800000000000"},"appIntegrity":{"appRecognitionVerdict":"PLAY_RECOGNIZED","versionCode":"7"},"deviceIntegrity":{"deviceRecognitionVerdict":["MEETS_DEVICE_INTEGRITY"]},"testingDetails":{"isTestingResponse":true}}'
{ printf '\001'; printf '%s' "$own"; } > "$corpus/play_integrity/verdict-own.json"
mint() {
  cargo run -q --manifest-path "$here/../Cargo.toml" -p medgate-verify --features test-tokens \
    --example play_integrity_token
}
n=0
for f in "${pi_verdicts[@]}" -; do
  if [ "$f" = - ]; then token=$(printf '%s' "$own" | mint); else token=$(mint < "$f"); fi
  n=$((n + 1))
  { printf '\000'; printf '%s' "$token"; } > "$corpus/play_integrity/token-$n"
done
# Config and route seeds from the project's own example config.
cp "$here/../medgate.example.toml" "$corpus/config/example.toml" 2>/dev/null || true
printf '/api/v1/entries*\n/api/v1/entries.json' > "$corpus/routes/entries"
printf '/a*b*c/\n/aXbYc/d' > "$corpus/routes/stars"
echo "seeded $(find "$corpus" -type f | wc -l) corpus files"
