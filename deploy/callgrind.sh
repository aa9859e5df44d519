#!/usr/bin/env bash
# Instructions per cached request, counted by callgrind: repeatable for the same binary and
# inputs whatever else the machine is doing, so a change of 1-2% that this VM's wall-clock
# rounds cannot resolve shows here (docs/src/performance.md, "Per-request instructions").
#
#   deploy/callgrind.sh                               # cargo build --profile profiling, then count
#   SIDECAR_BIN=/path deploy/callgrind.sh             # count that binary
#   SIDECAR_BIN=/a BASELINE_BIN=/b deploy/callgrind.sh   # both, and their ratio
#   FLOOR=1 deploy/callgrind.sh                       # and the bare-hyper floor
#                                                     # (benches/bare_proxy.rs, profiling build)
#
# For each binary, two runs under `valgrind --tool=callgrind`, pinned to one CPU (as in the
# harness, so the runtime is current-thread), the shipped defaults (cache on, JSON access log
# at info, identity headers) with the benchmark harness's pool, key and tokens
# (../shared/bench: BENCH_KEYS_DIR, made by `run.sh setup` when missing), a Python upstream
# on loopback that also serves the JWKS, and one keep-alive client:
#   cold:  N requests, each with another token (each verified once);
#   full:  the same N, then M requests cycling through them (served from the cache).
# Per cached request = (full - cold) / M: start-up, the JWKS fetch and the N verifications
# cancel out. Every request must answer 200 (the client stops at the first that does not).
# N=1000 M=2000 by default. Output: the totals, the per-request figure, and the callgrind files
# (callgrind_annotate --inclusive=yes <file> for the functions) under $OUT (/tmp/callgrind).
# Everything stays on 127.0.0.1; each run is bounded (READY_WAIT, and a timeout per run).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${BENCH_DIR:=$REPO/../shared/bench}"
: "${BENCH_KEYS_DIR:=/tmp/bench-keys}"
: "${N:=1000}"
: "${M:=2000}"
: "${CPU:=1}"
: "${OUT:=/tmp/callgrind}"
: "${RUN_TIMEOUT:=900}"

log() { printf '[deploy/callgrind] %s\n' "$*" >&2; }
die() { printf '[deploy/callgrind] ERROR: %s\n' "$*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is not installed (Debian: apt-get install valgrind)"
if [[ ! -s $BENCH_KEYS_DIR/tokens_valid.txt ]]; then
    log "no harness tokens in $BENCH_KEYS_DIR: $BENCH_DIR/run.sh setup"
    BENCH_KEYS_DIR="$BENCH_KEYS_DIR" bash "$BENCH_DIR/run.sh" setup >&2
fi
# shellcheck disable=SC1091
source "$BENCH_KEYS_DIR/claims.env"
(($(wc -l <"$BENCH_KEYS_DIR/tokens_valid.txt") >= N)) || die "fewer than N=$N tokens in $BENCH_KEYS_DIR"

if [[ -z ${SIDECAR_BIN:-} ]]; then
    (cd "$REPO" && cargo build --profile profiling --locked --bin cognito-sidecar >&2)
    SIDECAR_BIN="$REPO/target/profiling/cognito-sidecar"
fi

mkdir -p "$OUT"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The upstream: HTTP/1.1 keep-alive, the JWKS at /.well-known/jwks.json, `ok` for the rest.
up_port=$(free_port)
python3 - "$up_port" "$BENCH_KEYS_DIR/jwks.json" >"$OUT/upstream.log" 2>&1 <<'EOF' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, jwks = int(sys.argv[1]), open(sys.argv[2], "rb").read()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = jwks if self.path == "/.well-known/jwks.json" else b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "application/json" if body is jwks else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
EOF
up_pid=$!
sc_pid=
cleanup() {
    [[ -n $sc_pid ]] && kill "$sc_pid" 2>/dev/null
    kill "$up_pid" 2>/dev/null
    wait 2>/dev/null || true
}
trap cleanup EXIT

# Runs `bin` (`kind`: sidecar or floor) under callgrind for `count` requests; prints the
# instruction total.
count() {
    local bin=$1 name=$2 count=$3 kind=$4 port config file args
    port=$(free_port)
    config="$OUT/$name.toml"
    file="$OUT/$name.callgrind"
    cat >"$config" <<EOF
# Written by deploy/callgrind.sh.
[server]
listen = "127.0.0.1:$port"
shutdown_grace = "1s"

[cognito]
region = "$BENCH_REGION"
user_pool_id = "$BENCH_POOL_ID"
client_id = "$BENCH_CLIENT_ID"

[verify]
issuer = "$BENCH_ISS"
jwks_url = "http://127.0.0.1:$up_port/.well-known/jwks.json"
client_ids = ["$BENCH_CLIENT_ID"]
token_use = ["access"]

[upstream]
url = "http://127.0.0.1:$up_port"

[identity]
strip_prefixes = ["x-user-"]

[[identity.headers]]
name = "X-User-Sub"
claims = ["sub"]

[[identity.headers]]
name = "X-User-Name"
claims = ["username"]

[log]
format = "json"
level = "info"
access = true
EOF
    rm -f "$file"
    args=(--config "$config" run)
    [[ $kind == floor ]] && args=()
    # Nothing from the caller's shell overrides the file (SIDECAR_BIN itself is a SIDECAR_*
    # variable, which the loader would read as the key `bin`).
    local unset=() v
    for v in $(compgen -e); do
        case $v in SIDECAR_* | COGNITO_* | AWS_REGION) unset+=(-u "$v") ;; esac
    done
    env "${unset[@]}" BENCH_EXTRA_LISTEN="127.0.0.1:$port" BENCH_UPSTREAM="http://127.0.0.1:$up_port" \
        taskset -c "$CPU" valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$bin" "${args[@]}" >"$OUT/$name.out" 2>&1 &
    sc_pid=$!
    timeout "$RUN_TIMEOUT" python3 - "$port" "$BENCH_KEYS_DIR/tokens_valid.txt" "$N" "$count" "$sc_pid" <<'EOF' >&2 ||
import http.client, os, sys, time
port, path, n, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pid = int(sys.argv[5])
tokens = [l.strip() for l in open(path) if l.strip()][:n]
deadline = time.time() + 120
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/readyz")
        r = c.getresponse(); r.read()
        if r.status == 200:
            break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit("not ready within 120 s")
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit("the sidecar exited")
    time.sleep(0.5)
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for i in range(count):
    c.request("GET", "/", headers={"Authorization": "Bearer " + tokens[i % n]})
    r = c.getresponse(); r.read()
    if r.status != 200:
        sys.exit(f"request {i}: {r.status}")
EOF
        die "$name: the client failed (see $OUT/$name.out)"
    kill -TERM "$sc_pid"
    wait "$sc_pid" || true
    sc_pid=
    [[ -s $file ]] || die "$name: no callgrind output (see $OUT/$name.out)"
    sed -n 's/^totals: *\([0-9]*\).*/\1/p; s/^summary: *\([0-9]*\).*/\1/p' "$file" | head -1
}

measure() {
    local bin=$1 name=$2 kind=${3:-sidecar} cold full
    cold=$(count "$bin" "$name-cold" "$N" "$kind")
    full=$(count "$bin" "$name-full" $((N + M)) "$kind")
    per=$(((full - cold) / M))
    printf '%-9s cold %14d  full %14d  per cached request %8d instructions  (%s)\n' \
        "$name" "$cold" "$full" "$per" "$bin" | tee -a "$OUT/result.txt"
}

: >"$OUT/result.txt"
measure "$SIDECAR_BIN" new
if [[ -n ${BASELINE_BIN:-} ]]; then
    new_per=$per
    measure "$BASELINE_BIN" baseline
    python3 -c "import sys; print(f'new / baseline = {int(sys.argv[1])/int(sys.argv[2]):.3f}')" \
        "$new_per" "$per" | tee -a "$OUT/result.txt"
fi
if [[ ${FLOOR:-0} == 1 ]]; then
    new_per=$per
    floor_bin="$(cd "$REPO" && cargo build --profile profiling --bench bare_proxy --locked --message-format=json |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bare_proxy" and m.get("executable"):
        print(m["executable"])')"
    [[ -x $floor_bin ]] || die "bare_proxy did not build"
    measure "$floor_bin" floor floor
    python3 -c "import sys; n, f = map(int, sys.argv[1:]); print(f'new - floor = {n - f} instructions; floor / new = {f/n:.3f}')" \
        "$new_per" "$per" | tee -a "$OUT/result.txt"
fi
log "callgrind files in $OUT (callgrind_annotate --inclusive=yes $OUT/new-full.callgrind)"
