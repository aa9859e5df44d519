#!/usr/bin/env bash
# Real-browser tests of the browser sessions (docs/src/browser-sessions.md): Debian's chromium,
# driven through chromedriver (WebDriver, Python selenium), against the real binary, moto and
# the demo app (deploy/local/upstream.py).
#
#   tests/browser/run.sh                       # starts its own moto
#   MOTO_URL=http://127.0.0.1:PORT tests/browser/run.sh   # uses that moto (deploy/test.sh)
#
# Everything listens on free loopback ports: moto (unless MOTO_URL is set), one redis-server
# (no persistence), the demo app, and TWO sidecars sharing sessions and logouts through that
# Redis (sessions on, `session.refresh_margin = 3598s` so that a request 3 s after sign-in
# refreshes the access token: moto's tokens live 3600 s). A fresh pool per run
# (deploy/local/bootstrap.py, with a user of its own per scenario: a sign-out ends every
# session of its user); a fourth sidecar, D, on the same Redis, signs in to a second pool with
# MFA ON (bootstrap.py --mfa on). Then tests/browser/test_sessions.py runs the scenarios in headless
# Chromium with a fresh profile; everything is stopped on exit.
#
# Needs: /usr/bin/chromium and /usr/bin/chromedriver (deploy/system-packages.sh installs them),
# redis-server, the venv (deploy/venv.sh, run here). The sidecar is target/debug/cognito-sidecar,
# built when missing (before the time limit starts), else used as it is: after changing the Rust
# side, build it (deploy/test.sh's cargo test does). BROWSER_SIDECAR_BIN overrides it (not a
# SIDECAR_* name: the sidecar reads every SIDECAR_* variable as configuration).
# Scenarios (test_sessions.py; `tests/browser/run.sh NAME...` runs only those): sign in and land
# on the original page; a temporary password through the new-password page; a reload after the
# refresh margin refreshes once; sign-out ends the session on both sidecars; a cross-site form
# POST is refused; a return path to another site lands on /; a forgotten password; an
# authenticator app set up from the key the MFA_SETUP page shows (a fourth sidecar, D, on a pool
# of its own with MFA ON; a wrong code first); sign-in with an identity provider (a third
# sidecar, C, whose pool's domain is tests/oidc/'s OpenID provider; the same refresh margin),
# a reload that refreshes at the provider, and its sign-out through the provider's /logout; a cancel and a replayed callback; a forged state, and a callback whose
# flow-binding cookie is gone or another flow's, refused without a code exchange.
#
# Tunables (environment): BROWSER_TIMEOUT seconds for everything after the build (300),
# BROWSER_UPDATE_DOCS=1 also writes the screenshots to docs/src/images/ (sign-in.png, new-password.png,
# forgot-password.png, reset-password.png, mfa-setup.png, sign-in-providers.png),
# BROWSER_KEEP=1 keeps the work dir (logs, screenshots, a failed page's source) and prints it.
#
# Exit status: 0 when every scenario passed; 1 when one failed (the logs' last lines are
# printed); 124 when the time limit hit; 2 for a missing prerequisite.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

die() {
    echo "browser/run.sh: $*" >&2
    exit 2
}

if [[ -n "${SIDECAR_BIN+set}" ]]; then
    die "SIDECAR_BIN would reach the sidecar as configuration; use BROWSER_SIDECAR_BIN"
fi

# The whole run is bounded: once the binary exists, this script runs again under `timeout`
# (its TERM reaches this shell, whose trap stops everything).
if [[ -z "${_BROWSER_TIMED:-}" ]]; then
    for tool in /usr/bin/chromium /usr/bin/chromedriver; do
        [[ -x "$tool" ]] ||
            die "$tool is missing; run deploy/system-packages.sh (Debian's chromium, chromium-driver)"
    done
    command -v redis-server >/dev/null 2>&1 ||
        die "redis-server is missing; run deploy/system-packages.sh"
    BIN="${BROWSER_SIDECAR_BIN:-$REPO/target/debug/cognito-sidecar}"
    if [[ -z "${BROWSER_SIDECAR_BIN:-}" && ! -x "$BIN" ]]; then
        echo "browser/run.sh: building $BIN" >&2
        cargo build --locked --bin cognito-sidecar
    fi
    [[ -x "$BIN" ]] || die "no sidecar binary at $BIN"
    limit="${BROWSER_TIMEOUT:-300}"
    [[ "$limit" =~ ^[0-9]+$ ]] || die "BROWSER_TIMEOUT must be a whole number of seconds"
    started=$SECONDS
    # In the background, so that INT or TERM here reaches it (as TERM) at once.
    _BROWSER_TIMED=1 BROWSER_SIDECAR_BIN="$BIN" \
        timeout -k 15 "$limit" bash "${BASH_SOURCE[0]}" "$@" &
    timed=$!
    interrupted=0
    trap 'interrupted=1; kill -TERM "$timed" 2>/dev/null || true' INT TERM
    while :; do
        rc=0
        wait "$timed" || rc=$?
        kill -0 "$timed" 2>/dev/null || break # else a signal interrupted the wait
    done
    if ((interrupted)); then
        echo "browser/run.sh: interrupted" >&2
        rc=130
    elif ((rc == 124 || rc == 137)); then
        echo "browser/run.sh: the run hit the ${limit}s limit (BROWSER_TIMEOUT)" >&2
        rc=124
    fi
    echo "browser/run.sh: exit $rc after $((SECONDS - started)) s"
    exit "$rc"
fi

BIN="$BROWSER_SIDECAR_BIN"
bash "$REPO/deploy/venv.sh"
PY="$REPO/.venv/bin/python"

work="$(mktemp -d "${TMPDIR:-/tmp}/cognito-sidecar-browser.XXXXXX")"
moto_pid=""
redis_pid=""
upstream_pid=""
oidc_pid=""
sidecar_pids=()
test_pid=""
status=1

# Stops one process by pid: TERM, up to 5 s to exit, then KILL.
stop_pid() {
    local pid="$1" i
    [[ -n "$pid" ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
# The test runs in a process group of its own (setsid): chromedriver and every Chromium
# process are in it, and stop with it even when the test could not quit the browser.
stop_group() {
    local pgid="$1" i
    [[ -n "$pgid" ]] || return 0
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 -- "-$pgid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    wait "$pgid" 2>/dev/null || true
}
# shellcheck disable=SC2317,SC2329 # run by the EXIT trap
cleanup() {
    local pid f
    trap - EXIT INT TERM
    stop_group "$test_pid"
    for pid in "${sidecar_pids[@]}"; do stop_pid "$pid"; done
    stop_pid "$upstream_pid"
    stop_pid "$oidc_pid"
    stop_pid "$redis_pid"
    stop_pid "$moto_pid"
    if ((status != 0)); then
        for f in sidecar-a.log sidecar-b.log sidecar-c.log sidecar-d.log oidc.log upstream.log \
            redis.log moto.log chromedriver.log; do
            [[ -s "$work/$f" ]] || continue
            echo "---- last lines of $f (debug lines left out) ----" >&2
            grep -v '^[^ ]* *DEBUG ' "$work/$f" | tail -n 25 >&2 || true
        done
    fi
    if [[ "${BROWSER_KEEP:-0}" == 1 ]]; then
        echo "browser/run.sh: work dir kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit' INT
trap 'status=124; exit' TERM # what `timeout` sends

# Waits (bounded) until a URL answers 200; fails if the process died meanwhile.
wait_ready() {
    local url="$1" pid="$2" what="$3"
    "$PY" - "$url" "$pid" "$what" <<'PY'
import os, sys, time, urllib.request
url, pid, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                break
    except Exception:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(f"browser/run.sh: {what} exited during start-up")
    if time.monotonic() > deadline:
        sys.exit(f"browser/run.sh: {what} not ready at {url} within 30 s")
    time.sleep(0.2)
PY
}

# Twelve distinct free loopback ports, held together while chosen.
read -r p_moto p_redis p_upstream p_a p_b p_admin_a p_admin_b p_oidc p_c p_admin_c p_d p_admin_d \
    < <("$PY" - <<'PY'
import socket
socks = []
for _ in range(12):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
)

if [[ -z "${MOTO_URL:-}" ]]; then
    moto_ok=1
    bash "$REPO/deploy/local/moto.sh" "$p_moto" "$work/moto.pid" "$work/moto.log" || moto_ok=0
    moto_pid="$(cat "$work/moto.pid" 2>/dev/null || true)"
    ((moto_ok)) || exit
    MOTO_URL="http://127.0.0.1:$p_moto"
fi
case "$MOTO_URL" in
http://127.0.0.1:* | http://localhost:*) ;;
*) echo "browser/run.sh: MOTO_URL must be a loopback URL, got $MOTO_URL" >&2; exit ;;
esac
MOTO_URL="${MOTO_URL%/}"

redis-server --port "$p_redis" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --logfile "$work/redis.log" </dev/null &
redis_pid=$!

# A fresh pool per run, with a user per scenario besides the demo users.
password='Browser-Passw0rd!'
users=()
for u in refresh signout csrf return forgot; do users+=(--user "$u@example.com:$password"); done
"$PY" deploy/local/bootstrap.py --endpoint "$MOTO_URL" --pool-name "browser-$$-$RANDOM" \
    "${users[@]}" >"$work/pool.env"
set -a
# shellcheck disable=SC1091 # written just above
. "$work/pool.env"
set +a
: "${COGNITO_USER_POOL_ID:?bootstrap.py printed no pool id}" "${COGNITO_APP_CLIENT_ID:?}"

"$PY" deploy/local/upstream.py --port "$p_upstream" >"$work/upstream.log" 2>&1 &
upstream_pid=$!
wait_ready "http://127.0.0.1:$p_upstream/public/hello" "$upstream_pid" "the demo app" || exit

"$PY" - "$p_redis" <<'PY' || exit
import socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(16).startswith(b"+PONG"):
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("browser/run.sh: redis-server did not answer PING within 10 s")
    time.sleep(0.1)
PY

# start_sidecar NAME PORT ADMIN_PORT [POOL_ID CLIENT_ID]: the run's pool unless told another.
start_sidecar() {
    local name="$1" port="$2" admin="$3"
    local pool="${4:-$COGNITO_USER_POOL_ID}" client="${5:-$COGNITO_APP_CLIENT_ID}"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
        SIDECAR_COGNITO__USER_POOL_ID="$pool" SIDECAR_COGNITO__CLIENT_ID="$client" \
        SIDECAR_COGNITO__ENDPOINT_URL="$MOTO_URL" \
        SIDECAR_VERIFY__JWKS_URL="$MOTO_URL/$pool/.well-known/jwks.json" \
        SIDECAR_UPSTREAM__URL="http://127.0.0.1:$p_upstream" \
        SIDECAR_SERVER__LISTEN="127.0.0.1:$port" \
        SIDECAR_ADMIN__LISTEN="127.0.0.1:$admin" \
        SIDECAR_SESSION__ENABLED=true \
        SIDECAR_SESSION__REFRESH_MARGIN=3598s \
        SIDECAR_SHARED__BACKEND=redis \
        SIDECAR_SHARED__URL="redis://127.0.0.1:$p_redis" \
        SIDECAR_SHARED__REQUIRE_FOR_READY=true \
        SIDECAR_LOG__LEVEL=debug NO_COLOR=1 \
        "$BIN" --config proxy.toml </dev/null >"$work/sidecar-$name.log" 2>&1 &
    sidecar_pids+=($!)
    wait_ready "http://127.0.0.1:$port/readyz" "$!" "sidecar $name"
}
start_sidecar a "$p_a" "$p_admin_a" || exit
start_sidecar b "$p_b" "$p_admin_b" || exit

# MFA setup: MFA ON would change the other scenarios' sign-ins, so sidecar D has a pool of its
# own, where new@example.com (temporary password) must set up an authenticator app.
"$PY" deploy/local/bootstrap.py --endpoint "$MOTO_URL" --pool-name "browser-mfa-$$-$RANDOM" \
    --mfa on >"$work/mfa-pool.env"
mfa_pool="$(sed -n 's/^COGNITO_USER_POOL_ID=//p' "$work/mfa-pool.env")"
mfa_client="$(sed -n 's/^COGNITO_APP_CLIENT_ID=//p' "$work/mfa-pool.env")"
[[ -n "$mfa_pool" && -n "$mfa_client" ]] || { echo "browser/run.sh: no MFA pool" >&2; exit; }
start_sidecar d "$p_d" "$p_admin_d" "$mfa_pool" "$mfa_client" || exit

# Sign-in with identity providers: the OpenID provider of tests/oidc/ plays the pool's
# managed-login domain (its own pool, us-east-1_Federated, and app client); sidecar C trusts
# its issuer and offers Okta, Google and "another way".
fed_client=browserfed
fed_issuer="http://127.0.0.1:$p_oidc/us-east-1_Federated"
oidc_ok=1
OIDC_ISSUER="$fed_issuer" OIDC_CLIENT_ID="$fed_client" \
    OIDC_REDIRECT_URIS="http://127.0.0.1:$p_c/_auth/callback" \
    OIDC_LOGOUT_URIS="http://127.0.0.1:$p_c/_auth/sign-in" \
    bash "$REPO/tests/oidc/start.sh" "$p_oidc" "$work/oidc.pid" "$work/oidc.log" || oidc_ok=0
oidc_pid="$(cat "$work/oidc.pid" 2>/dev/null || true)"
((oidc_ok)) || exit
env -u COGNITO_APP_CLIENT_SECRET \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    SIDECAR_COGNITO__USER_POOL_ID=us-east-1_Federated \
    SIDECAR_COGNITO__CLIENT_ID="$fed_client" \
    SIDECAR_COGNITO__ENDPOINT_URL="$MOTO_URL" \
    SIDECAR_VERIFY__ISSUER="$fed_issuer" \
    SIDECAR_VERIFY__JWKS_URL="$fed_issuer/.well-known/jwks.json" \
    SIDECAR_UPSTREAM__URL="http://127.0.0.1:$p_upstream" \
    SIDECAR_SERVER__LISTEN="127.0.0.1:$p_c" \
    SIDECAR_ADMIN__LISTEN="127.0.0.1:$p_admin_c" \
    SIDECAR_SESSION__ENABLED=true \
    SIDECAR_SESSION__MANAGED_LOGIN__DOMAIN="http://127.0.0.1:$p_oidc" \
    SIDECAR_SESSION__MANAGED_LOGIN__CALLBACK_URL="http://127.0.0.1:$p_c/_auth/callback" \
    SIDECAR_SESSION__MANAGED_LOGIN__IDENTITY_PROVIDERS='["Okta","Google"]' \
    SIDECAR_SESSION__MANAGED_LOGIN__OTHER_WAYS=true \
    SIDECAR_SESSION__REFRESH_MARGIN=3598s \
    SIDECAR_LOG__LEVEL=debug NO_COLOR=1 \
    "$BIN" --config proxy.toml </dev/null >"$work/sidecar-c.log" 2>&1 &
sidecar_pids+=($!)
wait_ready "http://127.0.0.1:$p_c/readyz" "$!" "sidecar c" || exit
echo "browser/run.sh: sidecars at http://127.0.0.1:$p_a and :$p_b" \
    "(redis :$p_redis, pool $COGNITO_USER_POOL_ID)" >&2

shots="$work/screenshots"
mkdir -p "$shots"
export BROWSER_SIDECAR_A="http://127.0.0.1:$p_a" BROWSER_SIDECAR_B="http://127.0.0.1:$p_b"
export BROWSER_ADMIN_A="http://127.0.0.1:$p_admin_a" BROWSER_ADMIN_B="http://127.0.0.1:$p_admin_b"
export BROWSER_SIDECAR_C="http://127.0.0.1:$p_c" BROWSER_ADMIN_C="http://127.0.0.1:$p_admin_c"
export BROWSER_SIDECAR_D="http://127.0.0.1:$p_d" BROWSER_MFA_CLIENT="$mfa_client"
export BROWSER_OIDC="http://127.0.0.1:$p_oidc" BROWSER_FED_CLIENT="$fed_client"
export BROWSER_PASSWORD="$password" BROWSER_WORK="$work" BROWSER_SCREENSHOTS="$shots"
export BROWSER_UPSTREAM_LOG="$work/upstream.log"
# No proxy: the browser and the test talk to loopback only.
setsid env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
    NO_PROXY='*' "$PY" "$REPO/tests/browser/test_sessions.py" "$@" </dev/null &
test_pid=$!
test_status=0
wait "$test_pid" || test_status=$?
if ((test_status == 0)) && [[ "${BROWSER_UPDATE_DOCS:-0}" == 1 ]]; then
    mkdir -p "$REPO/docs/src/images"
    cp "$shots/sign-in.png" "$shots/new-password.png" "$shots/forgot-password.png" \
        "$shots/reset-password.png" "$shots/mfa-setup.png" "$shots/sign-in-providers.png" \
        "$REPO/docs/src/images/"
    echo "browser/run.sh: docs/src/images/sign-in.png, new-password.png, forgot-password.png," \
        "reset-password.png, mfa-setup.png and sign-in-providers.png updated" >&2
fi
status=$test_status
exit "$status"
