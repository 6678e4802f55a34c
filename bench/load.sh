#!/usr/bin/env bash
# Load benchmark: the same upstream behind (1) nginx proxy_pass, (2) a bare hyper pass-through
# proxy, (3) the medgate gateway with every check (token, DPoP proof with ath, replay cache,
# route, scopes); then the gateway's two other proof modes against the bare proxy on the same
# requests: (4) `session-mac` (a session-key HMAC instead of the proof) on GET /api/v1/entries,
# (5) `dpop+signature` (a proof and an RFC 9421 signature over a 2 KiB body's digest) on POST
# /api/v1/treatments. One run, side by side; compare the ratios.
#
#   bench/load.sh [SECONDS] [CONNECTIONS]      (defaults: 10 s, 16 connections)
#
# The proxy under test is pinned to CPU 0; wrk and the upstream share CPU 1. Installs wrk and
# nginx from Debian if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=${2:-16}
path=/api/v1/status

for tool in wrk nginx; do
  command -v $tool >/dev/null || command -v /usr/sbin/$tool >/dev/null || {
    echo "==> apt-get install -y wrk nginx"; apt-get install -y -qq wrk nginx >/dev/null; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

echo "==> cargo build --release -p medgate -p medgate-loadbench"
cargo build --release --locked -q -p medgate -p medgate-loadbench
target=${CARGO_TARGET_DIR:-target}/release

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Only once they have exited: a node still writing its data directory would make rm fail.
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

upstream=127.0.0.1:18080 bare=127.0.0.1:18081 nginx_at=127.0.0.1:18082
server=127.0.0.1:18700 gateway=127.0.0.1:18701 admin=127.0.0.1:18702

taskset -c 1 "$target/medgate-loadbench" upstream --listen $upstream >/dev/null & pids+=($!)
taskset -c 0 "$target/medgate-loadbench" bare-proxy --listen $bare --upstream http://$upstream >/dev/null & pids+=($!)
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream backend { server $upstream; keepalive 64; }
  server {
    listen $nginx_at;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
taskset -c 0 "$nginx_bin" -c "$work/nginx.conf" -p "$work" & pids+=($!)
cat > "$work/medgate.toml" <<CONF
[server]
listen = "$server"
data_dir = "$work/data"
client_rate_limit = { per_second = 0, burst = 0 }
[admin]
listen = "$admin"
[gateway]
listen = "$gateway"
upstream = "http://$upstream"
rate_limit = { per_second = 0, burst = 0 }
address_rate_limit = { per_second = 0, burst = 0 }
replay_share = 1000000
[[gateway.routes]]
path = "$path"
methods = ["GET"]
scopes = ["entries:read"]
[[gateway.routes]]
path = "/api/v1/entries"
methods = ["GET"]
scopes = ["entries:read"]
proof = "session-mac"
[[gateway.routes]]
path = "/api/v1/treatments"
methods = ["POST"]
scopes = ["treatments:write"]
proof = "dpop+signature"
CONF
MEDGATE_LOG=warn taskset -c 0 "$target/medgate" --config "$work/medgate.toml" serve >/dev/null & pids+=($!)

for port in 18080 18081 18082 18700 18701 18702; do
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

run() { # name url [proofs-file|-] [post2k]
  taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" -s bench/wrk.lua "$2" ${3:+-- "$3"} ${4:-} | tail -n 1 > "$work/$1.json"
}
prepare() { # path count mode
  "$target/medgate-loadbench" prepare --server "http://$server" --admin "http://$admin" --gateway "http://$gateway" \
    --token-file "$work/data/admin.token" --path "$1" --count "$2" --mode "$3" --out "$work/$3.proofs"
}

echo "==> wrk -t1 -c$connections -d${seconds}s, GET $path"
run nginx "http://$nginx_at$path"
run bare "http://$bare$path"
# Proofs are made right before each gateway run so every one is inside its 60 s window.
prepare "$path" $((seconds * 40000)) dpop
run gateway "http://$gateway$path" "$work/dpop.proofs"
echo "==> the same for GET /api/v1/entries (session-mac) and POST /api/v1/treatments with 2 KiB (dpop+signature)"
run bare_entries "http://$bare/api/v1/entries"
prepare /api/v1/entries $((seconds * 60000)) session
run gateway_session "http://$gateway/api/v1/entries" "$work/session.proofs"
run bare_post "http://$bare/api/v1/treatments" - post2k
prepare /api/v1/treatments $((seconds * 12000)) signed
run gateway_signed "http://$gateway/api/v1/treatments" "$work/signed.proofs" post2k

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
names = ["nginx", "bare", "gateway", "bare_entries", "gateway_session", "bare_post", "gateway_signed"]
rows = {name: json.load(open(f"{work}/{name}.json")) for name in names}
labels = {
    "nginx": ("nginx proxy_pass, GET", "bare"),
    "bare": ("bare hyper proxy, GET", "bare"),
    "gateway": ("gateway dpop, GET", "bare"),
    "bare_entries": ("bare hyper, GET entries", "bare_entries"),
    "gateway_session": ("gateway session-mac", "bare_entries"),
    "bare_post": ("bare hyper, POST 2 KiB", "bare_post"),
    "gateway_signed": ("gateway dpop+signature", "bare_post"),
}
print(f"{'proxy':<26}{'req/s':>9}{'p50 µs':>9}{'p99 µs':>9}{'non-2xx':>9}{'vs bare':>9}")
for name, r in rows.items():
    label, base = labels[name]
    print(f"{label:<26}{r['rps']:>9.0f}{r['p50_us']:>9}{r['p99_us']:>9}{r['non2xx']:>9}{r['rps']/rows[base]['rps']:>9.2f}")
for name in ["gateway", "gateway_session", "gateway_signed"]:
    g = rows[name]
    if g["non2xx"] or g["errors"]:
        sys.exit(f"{name}: the gateway refused or failed {g['non2xx'] + g['errors']} requests: the figures are not valid")
for name, base in [("gateway", "bare"), ("gateway_session", "bare_entries"), ("gateway_signed", "bare_post")]:
    print(f"{name}: gateway CPU per request over bare proxy ≈ {1e6/rows[name]['rps'] - 1e6/rows[base]['rps']:.0f} µs (one core)")
PY
