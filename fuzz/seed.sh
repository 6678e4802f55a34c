#!/usr/bin/env bash
# Seeds the fuzz corpora from real vectors and from tokens a running medgate produces.
# Usage: fuzz/seed.sh  (reads $MEDGATE_VECTORS, default ../shared/vectors)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vectors=${MEDGATE_VECTORS:-$here/../../shared/vectors}
corpus=$here/corpus
mkdir -p "$corpus"/{jws,access_token,dpop_proof,evidence,jwk,config,routes,path,forwarded,checkpoint,play_integrity,key_description,apple_attestation,apple_assertion,x509,runtime_text,revocation_list,platform_key,pins,tuf_metadata,jwe,managed_roots,httpsig,credential,socketio,partner,audit_export,admin_bodies,console_input}
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
# revocation_list seeds: Google's status lists from the vectors, and a small one of our own.
if [ -d "$vectors/android-revocation-status" ]; then
  cp "$vectors"/android-revocation-status/*.json "$corpus/revocation_list/"
fi
printf '%s' '{"entries":{"00c8966fcb2fbb0d7a":{"status":"SUSPENDED","reason":"SOFTWARE_FLAW"},"1":{"status":"REVOKED"}}}' \
  > "$corpus/revocation_list/own.json"
# KeyDescription seeds: the Android Key Attestation extension value of every certificate that has
# one (only leaves do), found by a minimal DER walk of each PEM certificate.
if [ -d "$vectors/android-key-attestation" ]; then
  python3 - "$vectors/android-key-attestation" "$corpus/key_description" <<'PY'
import base64, hashlib, os, re, sys
folder, out = sys.argv[1], sys.argv[2]
OID = bytes.fromhex("2b06010401d679020111")  # 1.3.6.1.4.1.11129.2.1.17
def tlv(b, i):  # -> (tag byte, content start, end); short-form tags suffice for certificates
    tag, n = b[i], b[i + 1]
    i += 2
    if n & 0x80:
        k = n & 0x7F
        n = int.from_bytes(b[i:i + k], "big")
        i += k
    return tag, i, i + n
def children(b, start, end):
    while start < end:
        tag, s, e = tlv(b, start)
        yield tag, s, e
        start = e
def key_description(cert):
    _, s, e = tlv(cert, 0)
    _, s, e = next(children(cert, s, e))  # tbsCertificate
    for tag, fs, fe in children(cert, s, e):
        if tag != 0xA3:  # [3] extensions
            continue
        _, xs, xe = tlv(cert, fs)
        for _, es, ee in children(cert, xs, xe):
            parts = list(children(cert, es, ee))
            if cert[parts[0][1]:parts[0][2]] == OID:
                return cert[parts[-1][1]:parts[-1][2]]
    return None
count = 0
for root, _, files in os.walk(folder):
    for name in files:
        if not name.endswith(".pem"):
            continue
        text = open(os.path.join(root, name)).read()
        for body in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", text, re.S):
            value = key_description(base64.b64decode("".join(body.split())))
            if value is not None:
                with open(os.path.join(out, hashlib.sha1(value).hexdigest()), "wb") as f:
                    f.write(value)
                count += 1
print(f"key_description: {count} extensions from {folder}")
PY
fi
# CBOR and X.509 seeds: App Attest objects and assertions, Android chains (DER back to back)
# and single certificates.
if [ -d "$vectors/apple-app-attest" ]; then
  python3 - "$vectors" "$corpus" <<'PY'
import base64, glob, hashlib, json, os, re, sys
vectors, corpus = sys.argv[1], sys.argv[2]
def put(target, data):
    with open(os.path.join(corpus, target, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
def b64(text):
    text = text.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except Exception:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
apple = os.path.join(vectors, "apple-app-attest")
put("apple_attestation", b64(open(os.path.join(apple, "apple-doc-sample/test_attestation_object.b64")).read()))
for path in glob.glob(os.path.join(apple, "node-app-attest/*.json")):
    doc = json.load(open(path))
    if "attestation" in doc: put("apple_attestation", b64(doc["attestation"]))
    if "assertion" in doc: put("apple_assertion", b64(doc["assertion"]))
for path in glob.glob(os.path.join(apple, "veehaitch-devicecheck-appattest/*.yaml")):
    for line in open(path):
        if line.startswith("attestationBase64:"): put("apple_attestation", b64(line.split(":", 1)[1]))
        if line.startswith("assertionBase64:"): put("apple_assertion", b64(line.split(":", 1)[1]))
for path in glob.glob(os.path.join(vectors, "android-key-attestation/**/*.pem"), recursive=True):
    ders = [base64.b64decode("".join(body.split())) for body in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", open(path).read(), re.S)]
    if ders:
        put("x509", b"".join(ders))
        for der in ders: put("x509", der)
PY
fi

# Config and route seeds from the project's own example config.
cp "$here/../medgate.example.toml" "$corpus/config/example.toml" 2>/dev/null || true
printf '/api/v1/entries*\n/api/v1/entries.json' > "$corpus/routes/entries"
printf '/a*b*c/\n/aXbYc/d' > "$corpus/routes/stars"
# Checkpoints are compact JWS: start from the JWS seeds.
cp "$corpus"/jws/* "$corpus/checkpoint/" 2>/dev/null || true
printf 'eyJhbGciOiJFUzI1NiIsInR5cCI6Im1lZGdhdGUtYXVkaXQtY2hlY2twb2ludCtqd3QifQ.eyJzZXEiOjEsImhhc2giOiIwMCIsImF0IjowfQ.AA' > "$corpus/checkpoint/shape"
# socket.io polling bodies: the first byte picks Engine.IO 3 (even) or 4 (odd).
printf '\x01%s\x1e%s\x1e%s' '42["authorize",{"client":"web"}]' '42["dbAdd",{"collection":"entries","data":{}}]' '42/alarm,7["ack",2,"default",900000]' > "$corpus/socketio/v4"
printf '\x002:4035:42["dbRemove",{"collection":"food"}]1:2' > "$corpus/socketio/v3"
# Credentials: the secret, its `token=` and SHA-1 spellings, and an exchange token's shape.
printf 'follower-0123456789abcdef0123456789abcdef' > "$corpus/credential/secret"
printf 'token=follower-0123456789abcdef0123456789abcdef' > "$corpus/credential/token"
printf 'follower-0123456789abcdef0123456789abcdef' | sha1sum | cut -c1-40 | tr -d '\n' > "$corpus/credential/sha1"
printf 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjcmVkXzAwMTEyMjMzNDQ1NTY2NzciLCJpYXQiOjAsImV4cCI6MX0.AAAA' > "$corpus/credential/jwt"
printf 'for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711"\n6.6.6.6, 10.0.0.5' > "$corpus/forwarded/rfc7239"
printf 'for=unknown\n203.0.113.9:8080, 10.0.0.1' > "$corpus/forwarded/unknown"
for trick in '/api/v1/status/..;/..;/admin' '/api/v1/%65ntries%3b' '/a/%c0%ae%c0%ae/b' '/a%2Bb/%7e/' '/x//y/%2e%2e'; do
  printf '%s' "$trick" > "$corpus/path/$(printf '%s' "$trick" | sha1sum | cut -c1-16)"
done

# runtime_text seeds: this machine's own /proc text, and Android property files and getprop
# output as the detectors read them. The first byte picks the parser.
rt=$corpus/runtime_text
{ printf '\000'; cat /proc/self/maps; } > "$rt/maps" 2>/dev/null || true
{ printf '\001'; cat /proc/self/status; } > "$rt/status" 2>/dev/null || true
printf '\002HOME=/root\000LD_PRELOAD=/tmp/libshim.so\000EMPTY=\000' > "$rt/environ"
printf '\003ro.build.tags=test-keys\nro.debuggable=1\n# comment\nimport /x.prop\n[ro.kernel.qemu]: [1]\n' > "$rt/props"
printf '\004/memfd:frida-agent-64.so (deleted)\ngum-js-loop\n/tmp/frida-1/linjector-3\nHTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n' > "$rt/artefacts"
printf '\005\xe9\x64\x4c\xd1\xfe\x0f\x1f\x40' > "$rt/x86-hook"
printf '\005\x50\x00\x00\x58\x00\x02\x1f\xd6' > "$rt/arm64-hook"
# A P-256 SEC1 point (the generator) and a DER signature shape, split by the first byte.
printf '\101\004\153\027\321\362\341\054\102\107\370\274\346\345\143\244\100\362\167\003\175\201\055\353\063\240\364\241\071\105\330\230\302\226\117\343\102\342\376\032\177\233\216\347\353\112\174\017\236\026\053\316\063\127\153\061\136\316\313\266\100\150\067\277\121\365\060\006\002\001\001\002\001\001' > "$corpus/platform_key/generator-der"
# jwe seeds: tokens npm jose sealed to the fuzz target's fixed keys.
python3 - "$here/../crates/trust/vectors/jwe-jose.json" "$corpus/jwe" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for name in ("ecdh_es_a256kw", "a256kw"):
    open(f"{sys.argv[2]}/{name}", "w").write(v[name])
PY
# managed_roots seeds: a split byte, the target's custom, then a CA certificate openssl makes
# (when it is installed; the fuzzer starts from nothing otherwise).
if command -v openssl >/dev/null; then
  custom='{"hosts":["**.example.org"]}'
  {
    printf "\\$(printf '%03o' ${#custom})"
    printf '%s' "$custom"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=seed \
      -days 1 -keyout /dev/null 2>/dev/null || true
  } > "$corpus/managed_roots/custom-and-pem"
fi
# httpsig seeds: a selector byte, then fields as medgate's SDK writes them, and the RFC 9421
# Appendix B examples when the vectors are present.
printf '\001%s\n%s' 'medgate=("@method" "@target-uri" "content-digest" "authorization");created=1800000000;nonce="n";keyid="k";alg="ecdsa-p256-sha256"' 'medgate=:AAAA:' > "$corpus/httpsig/sdk"
printf '\000%s' 'sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:AAAA:' > "$corpus/httpsig/digest"
if [ -d "$vectors/standards/rfc9421-http-message-signatures" ]; then
  python3 - "$vectors/standards/rfc9421-http-message-signatures/vectors.json" "$corpus/httpsig" <<'PY'
import json, sys
for case in json.load(open(sys.argv[1]))["cases"]:
    data = b"\x01" + case["signature_input_header"].encode() + b"\n" + case["signature_header"].encode()
    open(f"{sys.argv[2]}/{case['label']}", "wb").write(data)
PY
fi
# partner seeds: a selector byte (0 JWKS, 1 client assertion, 2 scope request), then the input.
printf '\000{"keys":[{"kty":"EC","crv":"P-384","kid":"k","x":"%s","y":"%s"},{"kty":"RSA","kid":"r","e":"AQAB","n":"AAAA"}]}' "$(head -c 48 /dev/zero | base64 -w0 | tr '+/' '-_' | tr -d '=')" "$(head -c 48 /dev/zero | base64 -w0 | tr '+/' '-_' | tr -d '=')" > "$corpus/partner/jwks"
printf '\001eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0.eyJpc3MiOiJwdG5fMDEyMzQ1Njc4OWFiY2RlZiIsInN1YiI6InB0bl8wMTIzNDU2Nzg5YWJjZGVmIiwiYXVkIjoiaHR0cHM6Ly9hdHRlc3QuZXhhbXBsZS92MS9vYXV0aC90b2tlbiIsImV4cCI6MTgwMDAwMDI0MCwianRpIjoiYSJ9.AAAA' > "$corpus/partner/assertion"
printf '\002system/Observation.read system/*.cruds system/Patient.rs patient/Observation.rs' > "$corpus/partner/scopes"
# pins seeds: pattern, pin, host, one a line (OkHttp's spellings).
printf '**.example.com\nsha256/XNJS+wzokyQ2+vjM0QQJgbie5K1rn+niorfnGqyyfNM=\napi.example.com' > "$corpus/pins/any-depth"
printf '*.example.com\nXNJS+wzokyQ2+vjM0QQJgbie5K1rn+niorfnGqyyfNM=\na.b.example.com' > "$corpus/pins/one-label"
printf '[::1]\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n::1' > "$corpus/pins/ipv6"
# tuf_metadata seeds: a role byte, then metadata medgate's repository code signs (the trust
# crate's example writes them).
tm=$corpus/tuf_metadata
for role in root timestamp snapshot targets; do
  case $role in root) b='\000' ;; timestamp) b='\002' ;; snapshot) b='\003' ;; targets) b='\004' ;; esac
  { printf "$b"; printf '{"signatures":[],"signed":{"_type":"%s","spec_version":"1.0.31","version":1,"expires":"2030-01-01T00:00:00Z","meta":{},"targets":{},"keys":{},"roles":{}}}' "$role"; } > "$tm/$role"
done
cp "$here"/../crates/store/testdata/audit-export.{jsonl,cef} "$corpus/audit_export/"
# admin_bodies seeds: each request body and query the admin API takes.
printf '{"app_id":"org.example.cgm","scopes":["entries:read","treatments:write"],"limited_scopes":["entries:read"],"reject_on":["hook","root"],"sdk_evidence":"limited","require_coverage":true}' > "$corpus/admin_bodies/app"
printf '{"version":"1.2.3","sdk_binary_sha256":"%s","version_code":42}' "$(printf 'ab%.0s' $(seq 32))" > "$corpus/admin_bodies/release"
printf '{"kind":"follower","name":"School nurse","scopes":["nightscout:read"],"expires_in_secs":86400}' > "$corpus/admin_bodies/credential"
printf '{"name":"Clinic","jwks_url":"https://ehr.example/jwks","scopes":["system/Observation.rs"],"ip_allow":["192.0.2.0/24"],"require_dpop":true}' > "$corpus/admin_bodies/partner"
printf '{"host":"**.example.org","spki_sha256":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}' > "$corpus/admin_bodies/pin"
printf 'from=1800000000&to=1800086400&step=3600' > "$corpus/admin_bodies/telemetry"
# console_input seeds: a cookie jar, an Origin, a Host and Sec-Fetch-Site, one per line.
printf '__Host-medgate-session=%s; theme=dark\nhttp://127.0.0.1:9090\n127.0.0.1:9090\nsame-origin' "$(printf 'A%.0s' $(seq 43))" > "$corpus/console_input/browser"
printf 'csrf=abc&name=alice&password=correct+horse%%20battery' > "$corpus/console_input/form"
echo "seeded $(find "$corpus" -type f | wc -l) corpus files"
