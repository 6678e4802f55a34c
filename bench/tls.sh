#!/usr/bin/env bash
# TLS on the gateway: the same gateway, with every check, over plain HTTP and over TLS
# (rustls, a self-signed ECDSA P-256 certificate), each with keep-alive, and over TLS with a
# new connection for every request (a full TLS 1.3 handshake each: wrk does not resume
# sessions). One run, side by side; compare the ratios.
#
#   bench/tls.sh [SECONDS] [CONNECTIONS]      (defaults: 10 s, 16 connections)
#
# Both nodes are pinned to CPU 0; wrk and the upstream share CPU 1. Installs wrk from Debian
# if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
path=/api/v1/status

command -v wrk >/dev/null || { echo "==> apt-get install -y wrk"; apt-get install -y -qq wrk >/dev/null; }

echo "==> cargo build --release -p medgate -p medgate-loadbench"
cargo build --release --locked -q -p medgate -p medgate-loadbench
target=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

upstream=127.0.0.1:18090
"$target/medgate" tls self-signed --host 127.0.0.1 --out "$work/tls" >/dev/null
taskset -c 1 "$target/medgate-loadbench" upstream --listen $upstream >/dev/null & pids+=($!)

node() { # name server-port tls?
  local name=$1 port=$2 tls=$3
  mkdir -p "$work/$name"
  {
    printf '[server]\nlisten = "127.0.0.1:%s"\ndata_dir = "%s"\nclient_rate_limit = { per_second = 0, burst = 0 }\n' \
      "$port" "$work/$name/data"
    printf '[admin]\nlisten = "127.0.0.1:%s"\n' $((port + 2))
    printf '[gateway]\nlisten = "127.0.0.1:%s"\nupstream = "http://%s"\nrate_limit = { per_second = 0, burst = 0 }\naddress_rate_limit = { per_second = 0, burst = 0 }\nreplay_share = 1000000\n' \
      $((port + 1)) "$upstream"
    if [ "$tls" = tls ]; then
      printf '[gateway.tls]\ncert = "%s"\nkey = "%s"\n' "$work/tls/cert.pem" "$work/tls/key.pem"
    fi
    printf '[[gateway.routes]]\npath = "%s"\nmethods = ["GET"]\nscopes = ["entries:read"]\n' "$path"
  } > "$work/$name/medgate.toml"
  MEDGATE_LOG=warn taskset -c 0 "$target/medgate" --config "$work/$name/medgate.toml" serve >/dev/null & pids+=($!)
}
node plain 18710 plain
node tls 18720 tls

for port in 18090 18710 18711 18712 18720 18721 18722; do
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

prepare() { # name server-port scheme
  "$target/medgate-loadbench" prepare --server "http://127.0.0.1:$2" --admin "http://127.0.0.1:$(($2 + 2))" \
    --gateway "$3://127.0.0.1:$(($2 + 1))" --token-file "$work/$1/data/admin.token" --path "$path" \
    --count $((seconds * 40000)) --out "$work/$1.proofs"
}
run() { # label url proofs [close]
  taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s bench/wrk.lua "$2" -- "$3" ${4:-} | tail -n 1 > "$work/$1.json"
}

echo "==> wrk -t1 -c$connections -d${seconds}s, GET $path with a token and a fresh proof each"
# Proofs are made right before each run so every one is inside its 60 s window.
prepare plain 18710 http
run plain "http://127.0.0.1:18711$path" "$work/plain.proofs"
prepare tls 18720 https
run tls "https://127.0.0.1:18721$path" "$work/tls.proofs"
prepare tls 18720 https
run handshake "https://127.0.0.1:18721$path" "$work/tls.proofs" close

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
rows = {name: json.load(open(f"{work}/{name}.json")) for name in ["plain", "tls", "handshake"]}
labels = {"plain": "gateway, plain HTTP", "tls": "gateway, TLS keep-alive",
          "handshake": "gateway, TLS handshake each"}
base = rows["plain"]["rps"]
print(f"{'':<30}{'req/s':>9}{'p50 µs':>9}{'p99 µs':>9}{'non-2xx':>9}{'errors':>8}{'vs plain':>10}")
for name, r in rows.items():
    print(f"{labels[name]:<30}{r['rps']:>9.0f}{r['p50_us']:>9}{r['p99_us']:>9}{r['non2xx']:>9}{r['errors']:>8}{r['rps']/base:>10.2f}")
bad = [name for name, r in rows.items() if r["non2xx"] or r["errors"]]
if bad:
    sys.exit(f"refused or failed requests in {bad}: the figures are not valid")
for name in ["tls", "handshake"]:
    print(f"{labels[name]}: ≈ {1e6/rows[name]['rps'] - 1e6/base:.0f} µs of gateway CPU per request over plain (one core)")
PY
