#!/usr/bin/env bash
# Load-test the sidecar against the shared anchors (nginx, HAProxy plain and with JWT, Caddy)
# in one interleaved run of the benchmark harness (/work/shared/bench, see its README.md).
#
#   deploy/bench.sh                          # build, then the full run (DURATION=10 ROUNDS=3)
#   DURATION=5 ROUNDS=2 deploy/bench.sh      # shorter; every harness knob passes through
#   CACHE=off deploy/bench.sh                # verified-token cache off: RSA verify per request
#   SHARED=redis deploy/bench.sh             # the fleet backend: a redis-server of its own
#   SESSIONS=1 deploy/bench.sh               # bearer vs browser-session cookie on one sidecar
#   POOLS=2 SIDECAR_BIN=/b BASELINE_BIN=/b deploy/bench.sh
#                                            # two trusted pools vs one: the A/B's new side
#                                            # (only) has a second [[verify.pools]] entry
#
# SESSIONS=1 (implies SHARED=redis) does not run the harness's comparison: it starts the
# harness's servers (`run.sh serve`: the nginx upstream, the sidecar pinned like every proxy),
# stores 1,000 sessions in Redis in the documented format (cognito-sidecar:session:<sha256 of
# the id>, holding one harness token each), then runs wrk exactly as the harness does (same
# pinning, connections, duration, warm-up), rounds alternating between the harness's tokens as
# `Authorization: Bearer` (wrk_tokens.lua) and the sessions' cookies (deploy/wrk_cookies.lua),
# and prints both medians and their ratio.
#   deploy/bench.sh --no-access-log          # log.access = false (default: ON, as deployed)
#   LOG_FORMAT=text deploy/bench.sh          # text log lines (default: json, as the image ships)
#   TARGETS="haproxy-plain haproxy" deploy/bench.sh   # fewer anchors
#   CHECK=1 deploy/bench.sh                  # the forward-auth check instead of the gated path
#   BASELINE_BIN=/path deploy/bench.sh       # A/B: this build vs another binary, interleaved
#                                            # rounds in one harness session (+ HAProxy plain)
#   FLOOR=1 deploy/bench.sh                  # A/B against the floor: this build vs the bare
#                                            # hyper proxy of the same commit (built here;
#                                            # BASELINE_BIN=/path: a bare proxy built before)
#   BARE=1 deploy/bench.sh                   # the floor: a bare hyper pass-through proxy
#                                            # (benches/bare_proxy.rs) instead of the sidecar
#   SERVE=1 deploy/bench.sh                  # no load: the harness's servers and this sidecar,
#                                            # pinned as in a run, for SERVE_SECONDS (600), to
#                                            # profile or load by hand (prints the commands)
#
# Steps:
#  1. builds the release binary: `bash deploy/build-release.sh` (cargo build --release --locked)
#     if that script exists, else `cargo build --release --locked`. SIDECAR_BIN=/path skips
#     the build and benchmarks that binary instead.
#  2. `$BENCH_DIR/run.sh setup` when the harness's tools, venv or tokens are missing
#     (BENCH_DIR defaults to <repo>/../shared/bench).
#  3. runs the harness with EXTRA_NAME=sidecar (sidecar-nocache with CACHE=off, "-nolog"
#     appended without the access log), EXTRA_TARGET=http://127.0.0.1:18090, EXTRA_STRICT=1
#     (a sidecar failing any of the harness's JWT accept/reject checks aborts the run) and
#     EXTRA_CMD = this script's `__sidecar` mode. run.sh starts that pinned to SERVER_CPU with
#     the harness's BENCH_* variables exported; it writes $BENCH_RUN_DIR/sidecar.toml from them
#     and execs the binary (same pid, so run.sh stops it by pid):
#       server.listen      = $BENCH_EXTRA_LISTEN      upstream.url     = $BENCH_UPSTREAM
#       verify.jwks_url    = $BENCH_JWKS_URL          verify.issuer    = $BENCH_ISS
#       verify.client_ids  = [$BENCH_CLIENT_ID]       cognito.*        = pool, client, region
#       identity.headers   = X-User-Sub <- sub, X-User-Name <- username
#       identity.strip_prefixes = ["x-user-"]         admin.listen     = a free loopback port
#       verify.cache_max_entries = 100000 (0 with CACHE=off)
#       [shared] backend = "redis", url = a redis-server this script starts on a free loopback
#                port and stops at the end (SHARED=redis; "-redis" appended to the name)
#     Every SIDECAR_*, COGNITO_* and AWS_REGION variable is removed from the sidecar's
#     environment first, so nothing from the caller's shell overrides the file.
#     With CHECK=1 the sidecar also serves the forward-auth check on its main listener
#       ([forward_auth] enabled, envoy convention, path /_auth/check, so `GET /_auth/check/`
#       asks about `GET /` without an extra header; server.trusted_proxies = ["127.0.0.1/32"],
#       wrk). The harness runs in `serve` mode (its strict checks on the gated path first), and
#       this script drives the one sidecar process with the harness's own wrk script, tokens
#       and pinning: ROUNDS interleaved rounds of DURATION s on the gated path `/`, the check
#       `/_auth/check/` and the harness's nginx, then prints medians. (Not the harness's bench
#       mode: its extra target must pass the "upstream saw X-User-Sub" checks, which a check
#       that proxies nothing cannot, and its non-strict mode stops the run at the first failed
#       check.)
#  4. prints where the summary is and copies sidecar.toml next to it.
#
# Environment: CACHE=on|off, SHARED=memory|redis, CHECK=0|1, POOLS=1|2, ACCESS_LOG=1|0 (same as --no-access-log), LOG_FORMAT=text|json,
# EXTRA_TARGET (default http://127.0.0.1:18090), SIDECAR_BIN, BENCH_DIR, and the harness's
# own knobs (DURATION ROUNDS WARMUP CONNS THREADS TARGETS SERVER_CPU LOAD_CPU QUIET_WAIT ...).
# All traffic stays on 127.0.0.1; every load run is bounded by DURATION (wrk under timeout).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$REPO/deploy/bench.sh"

log() { printf '[deploy/bench] %s\n' "$*" >&2; }
die() { printf '[deploy/bench] ERROR: %s\n' "$*" >&2; exit 1; }

# A TOML basic string.
toml_str() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

# ------------------------------------------------------------------ __sidecar (EXTRA_CMD)
# Run by the harness (bash -c "exec $EXTRA_CMD"), pinned to SERVER_CPU, with BENCH_* set.
if [[ ${1:-} == __sidecar ]]; then
    for v in BENCH_EXTRA_LISTEN BENCH_UPSTREAM BENCH_JWKS_URL BENCH_ISS BENCH_CLIENT_ID \
             BENCH_POOL_ID BENCH_REGION CS_BENCH_BIN CS_BENCH_CONFIG CS_BENCH_ADMIN_LISTEN; do
        [[ -n ${!v:-} ]] || die "__sidecar: $v is not set (run deploy/bench.sh, not this mode)"
    done
    cache_entries=${CS_BENCH_CACHE_ENTRIES:-100000}
    access=${CS_BENCH_ACCESS_LOG:-true}
    format=${CS_BENCH_LOG_FORMAT:-text}
    trusted=""
    [[ ${CS_BENCH_CHECK:-0} == 1 ]] && trusted='trusted_proxies = ["127.0.0.1/32"]'
    cat >"$CS_BENCH_CONFIG" <<EOF
# Written by deploy/bench.sh for the benchmark harness; regenerated on every start.
[server]
listen = $(toml_str "$BENCH_EXTRA_LISTEN")
shutdown_grace = "2s"
$trusted

[cognito]
region = $(toml_str "$BENCH_REGION")
user_pool_id = $(toml_str "$BENCH_POOL_ID")
client_id = $(toml_str "$BENCH_CLIENT_ID")

[verify]
issuer = $(toml_str "$BENCH_ISS")
jwks_url = $(toml_str "$BENCH_JWKS_URL")
client_ids = [$(toml_str "$BENCH_CLIENT_ID")]
token_use = ["access"]
cache_max_entries = $cache_entries

[upstream]
url = $(toml_str "$BENCH_UPSTREAM")

[identity]
strip_prefixes = ["x-user-"]

[[identity.headers]]
name = "X-User-Sub"
claims = ["sub"]

[[identity.headers]]
name = "X-User-Name"
claims = ["username"]

[admin]
listen = $(toml_str "$CS_BENCH_ADMIN_LISTEN")

[log]
format = $(toml_str "$format")
level = "info"
access = $access
EOF
    if [[ ${CS_BENCH_SESSIONS:-0} == 1 ]]; then
        printf '\n[session]\nenabled = true\n' >>"$CS_BENCH_CONFIG"
    fi
    if [[ ${CS_BENCH_POOLS:-1} == 2 ]]; then
        # A second pool (its own issuer and app client; the harness's JWKS, so /readyz waits
        # for both): the harness's tokens still come from the first.
        printf '\n[[verify.pools]]\nname = "second"\nuser_pool_id = "%s_SecondPool1"\nclient_ids = ["second-pool-client"]\njwks_url = %s\n' \
            "$BENCH_REGION" "$(toml_str "$BENCH_JWKS_URL")" >>"$CS_BENCH_CONFIG"
    fi
    if [[ ${CS_BENCH_CHECK:-0} == 1 ]]; then
        # The check at /_auth/check/<original path> (envoy convention), trusting wrk.
        printf '\n[forward_auth]\nenabled = true\nconvention = "envoy"\npath = "/_auth/check"\n' \
            >>"$CS_BENCH_CONFIG"
    fi
    if [[ -n ${CS_BENCH_SHARED_URL:-} ]]; then
        printf '\n[shared]\nbackend = "redis"\nurl = %s\n' "$(toml_str "$CS_BENCH_SHARED_URL")" \
            >>"$CS_BENCH_CONFIG"
    fi
    # Nothing from the caller's environment may override the file.
    while IFS= read -r v; do
        unset "$v"
    done < <(compgen -e | grep -E '^(SIDECAR_|COGNITO_)' || true)
    unset AWS_REGION
    exec "$CS_BENCH_BIN" --config "$CS_BENCH_CONFIG" run
fi

# ------------------------------------------------------------------ options
access_log=${ACCESS_LOG:-1}
while (($#)); do
    case $1 in
        --no-access-log) access_log=0 ;;
        --access-log) access_log=1 ;;
        -h | --help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
case ${CACHE:-on} in
    on) cache_entries=100000 name=sidecar ;;
    off) cache_entries=0 name=sidecar-nocache ;;
    *) die "CACHE must be on or off (got '${CACHE}')" ;;
esac
case $access_log in
    1 | true | on) access=true ;;
    0 | false | off) access=false name="$name-nolog" ;;
    *) die "ACCESS_LOG must be 1 or 0 (got '$access_log')" ;;
esac
sessions=${SESSIONS:-0}
pools=${POOLS:-1}
[[ $pools == 1 || $pools == 2 ]] || die "POOLS must be 1 or 2 (got '$pools')"
[[ $pools == 1 || -n ${BASELINE_BIN:-} ]] || die "POOLS=2 is an A/B mode: set BASELINE_BIN (the same binary for two pools vs one)"
[[ $sessions == 1 ]] && SHARED=redis
case ${SHARED:-memory} in
    memory) shared_url="" ;;
    redis)
        command -v redis-server >/dev/null 2>&1 || bash "$REPO/deploy/system-packages.sh"
        redis_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
        redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
            >/dev/null 2>&1 &
        redis_pid=$!
        trap 'kill "$redis_pid" 2>/dev/null || true' EXIT
        for _ in $(seq 100); do
            (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
            sleep 0.05
        done
        shared_url="redis://127.0.0.1:$redis_port"
        name="$name-redis"
        ;;
    *) die "SHARED must be memory or redis (got '${SHARED}')" ;;
esac
check=${CHECK:-0}
default_target=http://127.0.0.1:18090
case $check in
    0) ;;
    1) ;;
    *) die "CHECK must be 0 or 1 (got '$check')" ;;
esac
log_format=${LOG_FORMAT:-json}
[[ $log_format == text || $log_format == json ]] || die "LOG_FORMAT must be text or json"

BENCH_DIR="${BENCH_DIR:-$REPO/../shared/bench}"
[[ -x $BENCH_DIR/run.sh ]] || die "no harness at $BENCH_DIR/run.sh (set BENCH_DIR)"
BENCH_DIR="$(cd "$BENCH_DIR" && pwd)"

# The floor: benches/bare_proxy.rs (hyper server + hyper-util's pooled client, the sidecar's
# runtime and allocator, nothing else), built from this checkout; prints its path.
build_floor() {
    log "building: cargo build --profile bench --bench bare_proxy"
    local bare
    bare="$(cd "$REPO" && cargo build --profile bench --bench bare_proxy --locked --message-format=json |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bare_proxy" and m.get("executable"):
        print(m["executable"])')"
    [[ -x $bare ]] || die "bare_proxy did not build"
    printf '%s\n' "$bare"
}

floor=0
if [[ ${FLOOR:-0} == 1 ]]; then
    # The A/B against the floor (below): the baseline is the bare proxy of this same commit,
    # or BASELINE_BIN if set (a bare proxy built before: it does not link the sidecar's code).
    [[ -n ${BASELINE_BIN:-} ]] || BASELINE_BIN="$(build_floor)"
    floor=1
fi

if [[ ${BARE:-0} == 1 ]]; then
    # The floor as the harness's extra target, with only the harness's plain 200 check (it
    # verifies nothing).
    bare="$(build_floor)"
    EXTRA_NAME=bare-hyper EXTRA_TARGET="${EXTRA_TARGET:-http://127.0.0.1:18090}" \
        EXTRA_CMD="$(printf '%q' "$bare")" EXTRA_CHECK=none EXTRA_STRICT=0 \
        "$BENCH_DIR/run.sh"
    exit
fi

# ------------------------------------------------------------------ 1. build
if [[ -n ${SIDECAR_BIN:-} ]]; then
    bin=$SIDECAR_BIN
    log "using SIDECAR_BIN=$bin (no build)"
elif [[ -f $REPO/deploy/build-release.sh ]]; then
    log "building: bash deploy/build-release.sh"
    bin="$(cd "$REPO" && bash deploy/build-release.sh)"
else
    log "building: cargo build --release --locked"
    (cd "$REPO" && cargo build --release --locked >&2)
    target_dir="$(cd "$REPO" && cargo metadata --format-version 1 --no-deps --locked \
        | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
    bin="${target_dir:-$REPO/target}/release/cognito-sidecar"
fi
[[ -x $bin ]] || die "no executable sidecar at '$bin'"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

# ------------------------------------------------------------------ 2. harness setup
keys="${BENCH_KEYS_DIR:-/tmp/bench-keys}"
need_setup=0
for t in wrk nginx haproxy curl taskset ss; do
    command -v "$t" >/dev/null 2>&1 || need_setup=1
done
[[ -s $keys/claims.env && -s $keys/tokens_valid.txt ]] || need_setup=1
[[ -x ${BENCH_VENV:-/tmp/bench-venv}/bin/python ]] || need_setup=1
if ((need_setup)); then
    log "harness setup: $BENCH_DIR/run.sh setup"
    "$BENCH_DIR/run.sh" setup >&2
fi

# ------------------------------------------------------------------ 3. the run
run_dir="${BENCH_RUN_DIR:-/tmp/bench-run}"
results="${BENCH_RESULTS_DIR:-/tmp/bench-results}"
mkdir -p "$run_dir" "$results"
run_dir="$(cd "$run_dir" && pwd)"
results="$(cd "$results" && pwd)"
config="$run_dir/sidecar.toml"
# The default admin port (9901) may be taken by another sidecar: pick a free loopback one.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
admin_port="$(free_port)"
target="${EXTRA_TARGET:-$default_target}"
rev="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev+dirty"
[[ -n ${SIDECAR_BIN:-} ]] && rev="not built here; tree at $rev"

if [[ $access == true ]]; then
    access_note="access log ON ($log_format, one line per request to $run_dir/$name.out, as deployed)"
else
    access_note="access log OFF (--no-access-log / ACCESS_LOG=0)"
fi
if ((cache_entries)); then
    cache_note="verified-token cache ON ($cache_entries entries: the 1000 harness tokens are verified once, then served from the cache)"
else
    cache_note="verified-token cache OFF (every request pays the RS256 verify)"
fi
log "sidecar $bin (git $rev) as '$name' on $target"
log "  $cache_note"
log "  $access_note; admin (metrics) on 127.0.0.1:$admin_port"
if [[ -n $shared_url ]]; then log "  fleet backend: redis at $shared_url"; fi

# The harness with this sidecar as its extra target, strict: `run_harness NAME [MODE]`
# (MODE: the harness's run.sh mode; the caller may prefix TARGETS, SERVE_SECONDS, ...).
run_harness() {
    EXTRA_NAME="$1" \
    EXTRA_TARGET="$target" \
    EXTRA_STRICT=1 \
    EXTRA_CHECK=auth \
    EXTRA_CMD="bash $(printf '%q' "$SELF") __sidecar" \
    CS_BENCH_BIN="$bin" \
    CS_BENCH_CONFIG="$config" \
    CS_BENCH_ADMIN_LISTEN="127.0.0.1:$admin_port" \
    CS_BENCH_CACHE_ENTRIES="$cache_entries" \
    CS_BENCH_ACCESS_LOG="$access" \
    CS_BENCH_LOG_FORMAT="$log_format" \
    CS_BENCH_SHARED_URL="$shared_url" \
    CS_BENCH_SESSIONS="$sessions" \
    CS_BENCH_POOLS="$pools" \
    CS_BENCH_CHECK="$check" \
        "$BENCH_DIR/run.sh" "${@:2}"
}

# The harness's servers (`run.sh serve`: its nginx upstream, HAProxy plain, this sidecar pinned
# like every proxy, strict checks first) in the background until killed: `serve_harness NAME
# LOG` sets serve_pid and returns once they are up.
serve_harness() {
    TARGETS="haproxy-plain" SERVE_SECONDS=3600 run_harness "$1" serve >"$2" 2>&1 &
    serve_pid=$!
    for _ in $(seq 600); do
        grep -q "servers up for" "$2" 2>/dev/null && return 0
        kill -0 "$serve_pid" 2>/dev/null || { cat "$2" >&2; die "the harness did not start"; }
        sleep 0.2
    done
    die "the harness did not start in 120 s (see $2)"
}

# Stops what serve_harness started: run.sh itself (a child of the backgrounded function), whose
# exit stops its servers, then the function.
stop_serve() {
    [[ -n ${serve_pid:-} ]] || return 0
    pkill -TERM -P "$serve_pid" 2>/dev/null || true
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    serve_pid=""
}

if [[ ${SERVE:-0} == 1 ]]; then
    # ---------------------------------------------------------------- serve, for profiling
    serve_pid=""
    trap stop_serve EXIT
    # A signal ends the script through `exit`, so the EXIT trap stops what it started.
    trap 'exit 143' TERM INT HUP
    serve_harness "$name" "$run_dir/serve.log"
    log "serving for ${SERVE_SECONDS:-600} s (Ctrl-C stops): sidecar $target, HAProxy plain" \
        "http://127.0.0.1:${HAPROXY_PLAIN_PORT:-18084}, nginx upstream" \
        "http://127.0.0.1:${UP_PORT:-18080}; tokens: $keys/tokens_valid.txt;" \
        "load like the harness: taskset -c ${LOAD_CPU:-0} wrk -t1 -c32 -d8s -s $BENCH_DIR/wrk_tokens.lua URL/ -- $keys/tokens_valid.txt"
    # In the background, so a TERM or Ctrl-C runs the EXIT trap now, not after the sleep.
    sleep "${SERVE_SECONDS:-600}" &
    wait $! || true
    exit 0
fi

if [[ -n ${BASELINE_BIN:-} ]]; then
    # ---------------------------------------------------------------- A/B: this build vs another
    [[ -x $BASELINE_BIN ]] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
    duration=${DURATION:-8} rounds=${ROUNDS:-5} warmup=${WARMUP:-3}
    conns=${CONNS:-32} threads=${THREADS:-1} load_cpu=${LOAD_CPU:-0} server_cpu=${SERVER_CPU:-1}
    serve_pid="" base_pid=""
    trap 'kill "$base_pid" 2>/dev/null; stop_serve' EXIT
    serve_harness "$name" "$run_dir/ab-serve.log"
    # The baseline: the same configuration on the next port, pinned like the sidecar.
    base_port=$((${target##*:} + 1))
    base_target="http://127.0.0.1:$base_port"
    # shellcheck disable=SC1091
    source "$keys/claims.env"
    if ((floor)); then
        # The bare proxy reads only these two variables and forwards everything, /readyz too.
        env BENCH_EXTRA_LISTEN="127.0.0.1:$base_port" BENCH_UPSTREAM="http://127.0.0.1:${UP_PORT:-18080}" \
            taskset -c "$server_cpu" "$BASELINE_BIN" >"$run_dir/baseline.out" 2>&1 &
    else
    env BENCH_EXTRA_LISTEN="127.0.0.1:$base_port" BENCH_UPSTREAM="http://127.0.0.1:${UP_PORT:-18080}" \
        BENCH_JWKS_URL="http://127.0.0.1:${UP_PORT:-18080}/.well-known/jwks.json" \
        BENCH_ISS="$BENCH_ISS" BENCH_CLIENT_ID="$BENCH_CLIENT_ID" BENCH_POOL_ID="$BENCH_POOL_ID" \
        BENCH_REGION="$BENCH_REGION" CS_BENCH_BIN="$BASELINE_BIN" CS_BENCH_CONFIG="$run_dir/baseline.toml" \
        CS_BENCH_ADMIN_LISTEN="127.0.0.1:$(free_port)" CS_BENCH_CACHE_ENTRIES="$cache_entries" \
        CS_BENCH_ACCESS_LOG="$access" CS_BENCH_LOG_FORMAT="$log_format" \
        taskset -c "$server_cpu" bash "$SELF" __sidecar >"$run_dir/baseline.out" 2>&1 &
    fi
    base_pid=$!
    for _ in $(seq 100); do
        if ((floor)); then
            [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base_target/")" != 000 ]] && break
        else
            [[ "$(curl -s -o /dev/null -w '%{http_code}' "$base_target/readyz")" == 200 ]] && break
        fi
        sleep 0.1
    done
    token="$(head -1 "$keys/tokens_valid.txt")"
    for t in "$target" "$base_target"; do
        code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$t/")"
        [[ $code == 200 ]] || die "$t did not pass a valid token (HTTP $code)"
    done
    plain="http://127.0.0.1:${HAPROXY_PLAIN_PORT:-18084}"
    run_wrk() { # url seconds -> RESULT line
        timeout -k 5 $(($2 + 20)) taskset -c "$load_cpu" \
            wrk -t"$threads" -c"$conns" -d"$2"s --timeout 5s --latency \
            -s "$BENCH_DIR/wrk_tokens.lua" "$1/" -- "$keys/tokens_valid.txt" 2>&1 | grep '^RESULT' || true
    }
    log "warm-up (${warmup}s each)"
    for t in "$target" "$base_target" "$plain"; do run_wrk "$t" "$warmup" >/dev/null; done
    out_file="$results/ab-$(date +%Y%m%d-%H%M%S).txt"
    for ((r = 1; r <= rounds; r++)); do
        order=(new baseline haproxy-plain)
        ((r % 2 == 0)) && order=(baseline new haproxy-plain)
        for what in "${order[@]}"; do
            case $what in
            new) url=$target ;;
            baseline) url=$base_target ;;
            haproxy-plain) url=$plain ;;
            esac
            line="$(run_wrk "$url" "$duration")"
            [[ -n $line ]] || die "wrk produced no result for $what"
            echo "round $r $what $line" | tee -a "$out_file" >&2
        done
    done
    python3 - "$out_file" <<'PY'
import re, statistics, sys
rows = {"new": [], "baseline": [], "haproxy-plain": []}
for line in open(sys.argv[1]):
    m = re.match(r"round (\d+) ([\w-]+) RESULT .*rps=([\d.]+) p50_us=(\d+) p90_us=\d+ p99_us=(\d+)", line)
    if m:
        rows[m.group(2)].append((int(m.group(1)), float(m.group(3)), int(m.group(4)), int(m.group(5))))
for what, rs in rows.items():
    print(f"{what:14} req/s median {statistics.median(r[1] for r in rs):>9,.0f}  "
          f"p50 {statistics.median(r[2] for r in rs) / 1000:.3f} ms  p99 {statistics.median(r[3] for r in rs) / 1000:.3f} ms  rounds {len(rs)}")
per = lambda a, b: statistics.median(x[1] / y[1] for x, y in zip(rows[a], rows[b]))
print(f"new / baseline = {per('new', 'baseline'):.3f} (median of per-round ratios)")
print(f"new / haproxy-plain = {per('new', 'haproxy-plain'):.3f}, baseline / haproxy-plain = {per('baseline', 'haproxy-plain'):.3f}")
PY
    if ((floor)); then
        echo "new: $bin; baseline: the bare-hyper floor $BASELINE_BIN (FLOOR=1); rounds: $out_file"
    else
        echo "new: $bin$( ((pools == 2)) && echo ' (two pools)'); baseline: $BASELINE_BIN (one pool); rounds: $out_file"
    fi
    trap - EXIT
    kill "$base_pid" 2>/dev/null || true
    stop_serve
    exit 0
fi

if [[ $sessions == 1 ]]; then
    # ---------------------------------------------------------------- bearer vs cookie
    duration=${DURATION:-10} rounds=${ROUNDS:-3} warmup=${WARMUP:-3}
    conns=${CONNS:-32} threads=${THREADS:-1} load_cpu=${LOAD_CPU:-0}
    serve_pid=""
    trap 'stop_serve; kill "$redis_pid" 2>/dev/null || true' EXIT
    serve_harness "$name-sessions" "$run_dir/sessions-serve.log"
    cookies="$run_dir/cookies.txt"
    python3 - "$keys/tokens_valid.txt" "$cookies" <<'PY' | redis-cli -p "${shared_url##*:}" >/dev/null
import base64, hashlib, json, os, sys, time
tokens = [t.strip() for t in open(sys.argv[1]) if t.strip()]
with open(sys.argv[2], "w") as out:
    for token in tokens:
        raw = os.urandom(32)
        out.write(base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "\n")
        key = "cognito-sidecar:session:" + hashlib.sha256(raw).hexdigest()
        data = json.dumps({"access": token, "created": int(time.time())})
        print("SET", key, json.dumps(data), "EX", 3600)
PY
    probe="$(head -1 "$cookies")"
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: __Host-sidecar-session=$probe" "$target/")"
    [[ $code == 200 ]] || die "a seeded session was not accepted (HTTP $code)"
    run_wrk() { # script file seconds -> RESULT line
        timeout -k 5 $(($3 + 20)) taskset -c "$load_cpu" \
            wrk -t"$threads" -c"$conns" -d"$3"s --timeout 5s --latency \
            -s "$1" "$target/" -- "$2" 2>&1 | grep '^RESULT' || true
    }
    log "warm-up (${warmup}s each)"
    run_wrk "$BENCH_DIR/wrk_tokens.lua" "$keys/tokens_valid.txt" "$warmup" >/dev/null
    run_wrk "$REPO/deploy/wrk_cookies.lua" "$cookies" "$warmup" >/dev/null
    out_file="$results/sessions-$(date +%Y%m%d-%H%M%S).txt"
    for ((r = 1; r <= rounds; r++)); do
        order=(bearer cookie)
        ((r % 2 == 0)) && order=(cookie bearer)
        for what in "${order[@]}"; do
            if [[ $what == bearer ]]; then
                line="$(run_wrk "$BENCH_DIR/wrk_tokens.lua" "$keys/tokens_valid.txt" "$duration")"
            else
                line="$(run_wrk "$REPO/deploy/wrk_cookies.lua" "$cookies" "$duration")"
            fi
            echo "round $r $what $line" | tee -a "$out_file"
        done
    done
    python3 - "$out_file" <<'PY'
import re, statistics, sys
rows = {"bearer": [], "cookie": []}
for line in open(sys.argv[1]):
    m = re.match(r"round \d+ (\w+) RESULT .*rps=([\d.]+) p50_us=(\d+) p90_us=\d+ p99_us=(\d+).*err_connect=(\d+) err_read=(\d+) err_write=(\d+) err_status=(\d+) err_timeout=(\d+)", line)
    if m:
        rows[m.group(1)].append((float(m.group(2)), int(m.group(3)), int(m.group(4)), sum(map(int, m.group(5, 6, 7, 8, 9)))))
for what, rs in rows.items():
    if not rs:
        sys.exit(f"no results for {what}")
    print(f"{what:7} req/s median {statistics.median(r[0] for r in rs):>9,.0f}  "
          f"p50 {statistics.median(r[1] for r in rs) / 1000:.3f} ms  p99 {statistics.median(r[2] for r in rs) / 1000:.3f} ms  "
          f"errors {sum(r[3] for r in rs)}  rounds {len(rs)}")
b = statistics.median(r[0] for r in rows["bearer"])
c = statistics.median(r[0] for r in rows["cookie"])
print(f"cookie / bearer = {c / b:.3f}")
PY
    echo "rounds: $out_file"
    trap - EXIT
    stop_serve
    kill "$redis_pid" 2>/dev/null || true
    exit 0
fi

if [[ $check == 1 ]]; then
    # The harness serves (after its strict checks on the gated path); wrk is driven from here.
    serve_log="$run_dir/check-serve.log"
    wrk_script="$BENCH_DIR/wrk_tokens.lua"
    duration=${DURATION:-10}
    rounds=${ROUNDS:-3}
    SERVE_SECONDS=$(( (duration + 2) * rounds * 3 + 120 )) \
    TARGETS="${TARGETS:-nginx}" \
        run_harness "$name" serve >"$serve_log" 2>&1 &
    harness=$!
    trap 'st=$?; kill -TERM "$harness" 2>/dev/null || true; wait "$harness" 2>/dev/null || true; [[ -z ${redis_pid:-} ]] || kill "$redis_pid" 2>/dev/null || true; exit "$st"' EXIT
    for _ in $(seq 600); do
        grep -q 'servers up for' "$serve_log" && break
        kill -0 "$harness" 2>/dev/null || { cat "$serve_log" >&2; die "the harness stopped before serving"; }
        sleep 0.5
    done
    grep -q 'servers up for' "$serve_log" || { cat "$serve_log" >&2; die "the harness did not start serving"; }
    base="${target%/}"
    nginx_url="http://127.0.0.1:${NGINX_PORT:-18081}/"
    names=(gated check nginx)
    urls=("$base/" "$base/_auth/check/" "$nginx_url")
    # The check answers 200 for the harness's tokens, 401 without: the same as the gated path.
    for u in "${urls[@]:0:2}"; do
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $(head -1 "$keys/tokens_valid.txt")" "$u")"
        [[ $code == 200 ]] || die "$u with a valid token answered $code"
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$u")"
        [[ $code == 401 ]] || die "$u without a token answered $code"
    done
    out="$results/$(date +%Y%m%d-%H%M%S)-check"
    mkdir -p "$out"
    : >"$out/raw.txt"
    run_wrk() {  # name url seconds log
        timeout -k 5 $(($3 + 20)) taskset -c "${LOAD_CPU:-0}" \
            wrk -t"${THREADS:-1}" -c"${CONNS:-32}" -d"$3"s --timeout 5s --latency \
            -s "$wrk_script" "$2" -- "$keys/tokens_valid.txt" >"$4" 2>&1 || die "wrk failed on $1"
    }
    for i in 0 1 2; do run_wrk "${names[$i]}" "${urls[$i]}" "${WARMUP:-3}" "$out/warmup-${names[$i]}.log"; done
    for ((r = 0; r < rounds; r++)); do
        for ((k = 0; k < 3; k++)); do
            i=$(( (k + r) % 3 ))
            run_wrk "${names[$i]}" "${urls[$i]}" "$duration" "$out/r$r-${names[$i]}.log"
            line="$(grep '^RESULT' "$out/r$r-${names[$i]}.log" || true)"
            [[ -n $line ]] || die "no RESULT from wrk on ${names[$i]}"
            echo "$r ${names[$i]} $line" >>"$out/raw.txt"
        done
    done
    python3 - "$out/raw.txt" >"$out/summary.txt" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r, name, rest = line.split(" ", 2)
    kv = dict(re.findall(r"(\w+)=([\d.]+)", rest))
    rows.setdefault(name, []).append((int(r), kv))
by_round = {}
for name, rs in rows.items():
    for r, kv in rs:
        by_round.setdefault(r, {})[name] = float(kv["rps"])
print(f"{'target':8} {'req/s med':>10} {'min..max':>17} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'x gated':>8} {'x nginx':>8}")
for name in ("gated", "check", "nginx"):
    rs = rows.get(name, [])
    rps = [float(kv["rps"]) for _, kv in rs]
    p50 = statistics.median(int(kv["p50_us"]) for _, kv in rs) / 1000
    p99 = statistics.median(int(kv["p99_us"]) for _, kv in rs) / 1000
    errs = sum(int(kv[k]) for _, kv in rs for k in kv if k.startswith("err_"))
    xg = statistics.median(by_round[r][name] / by_round[r]["gated"] for r in by_round)
    xn = statistics.median(by_round[r][name] / by_round[r]["nginx"] for r in by_round)
    print(f"{name:8} {statistics.median(rps):>10,.0f} {min(rps):>8,.0f}..{max(rps):<8,.0f} {p50:>7.3f} {p99:>7.3f} {errs:>6} {xg:>8.3f} {xn:>8.3f}")
PY
    cp "$config" "$out/sidecar.toml" 2>/dev/null || true
    echo
    echo "forward-auth check vs the gated path, one sidecar process ($name, git $rev), wrk -t${THREADS:-1} -c${CONNS:-32} on cpu ${LOAD_CPU:-0}, $rounds rounds of ${duration}s:"
    cat "$out/summary.txt"
    echo "sidecar: $cache_note"
    echo "sidecar: $access_note"
    echo "gated: GET $base/ (proxied to the harness's upstream); check: GET $base/_auth/check/ (envoy convention, asks about GET /); nginx: the harness's plain proxy"
    echo "summary: $out/summary.txt (wrk logs: $out/r*-*.log)"
    exit 0
fi

before="$(find "$results" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)"
status=0
run_harness "$name" || status=$?

# ------------------------------------------------------------------ 4. where it is
out=""
while IFS= read -r d; do
    grep -qxF "$d" <<<"$before" || out="$results/$d"
done < <(find "$results" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort)
if [[ -n $out && -f $out/summary.txt ]]; then
    cp "$config" "$out/sidecar.toml" 2>/dev/null || true
    {
        echo "sidecar: $bin (git $rev) as '$name' on $target"
        echo "sidecar: $cache_note"
        echo "sidecar: $access_note"
    } >"$out/sidecar.txt"
    echo
    echo "sidecar: $cache_note"
    echo "sidecar: $access_note"
    echo "summary: $out/summary.txt   (raw: $out/raw.csv, wrk logs: $out/r*-*.log, config: $out/sidecar.toml)"
else
    log "no summary written (harness exit status $status); logs in $run_dir"
    ((status)) || status=1
fi
exit "$status"
