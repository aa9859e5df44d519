#!/usr/bin/env bash
# Contract test: the running sidecar against its own OpenAPI document (src/openapi.json), with
# schemathesis (property-based: generated valid and invalid requests, every check).
#
#   MOTO_URL=http://127.0.0.1:PORT tests/contract/schemathesis.sh
#
# Needs: MOTO_URL (a running moto, as deploy/test.sh exports it), the debug binary at
# target/debug/cognito-sidecar (deploy/test.sh's `cargo test` builds it; override with
# CONTRACT_SIDECAR_BIN, not a SIDECAR_* name: the sidecar inherits this environment and reads
# every SIDECAR_* variable as configuration) and the venv (deploy/venv.sh, run here too).
#
# It creates a fresh pool in moto (deploy/local/bootstrap.py), starts the sidecar on a free
# loopback port (upstream: a closed loopback port; admin listener: another free port; rate limits
# raised so the generated requests reach Cognito instead of all answering 429), waits for
# /readyz, validates the served document with openapi-spec-validator, then runs schemathesis
# with all checks, a fixed seed, one worker, a bounded number of examples per operation and an
# overall time limit. Every request goes to 127.0.0.1 only: schemathesis to the sidecar, the
# sidecar to moto.
#
# Tunables (environment): CONTRACT_MAX_EXAMPLES (50), CONTRACT_SEED (20240611),
# CONTRACT_TIMEOUT seconds for the schemathesis run (300), CONTRACT_KEEP=1 keeps the work dir
# (sidecar log, schemathesis reports) and prints its path.
#
# The run covers the document's examples (the demo users sign in: tokens, and the
# NEW_PASSWORD_REQUIRED challenge), the coverage and fuzzing phases, and the stateful phase
# along the document's links (login -> refresh, login -> new-password, login -> mfa,
# login -> mfa/setup -> mfa/verify). Operations secured by
# `bearer` get a real access token (tests/contract/schemathesis.toml).
#
# Exit status: 0 when schemathesis found nothing, non-zero otherwise (124: the time limit hit).
# The last line is `schemathesis: N passed, M failed`, counting the JUnit test cases: one per
# operation plus one for the stateful phase.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

if [[ -z "${MOTO_URL:-}" ]]; then
    echo "schemathesis.sh: MOTO_URL is not set; start moto (deploy/local/moto.sh PORT PIDFILE)" \
        "and export MOTO_URL=http://127.0.0.1:PORT, or run deploy/test.sh" >&2
    exit 2
fi
case "$MOTO_URL" in
http://127.0.0.1:* | http://localhost:* | "http://[::1]:"*) ;;
*)
    echo "schemathesis.sh: MOTO_URL must be a loopback URL, got $MOTO_URL" >&2
    exit 2
    ;;
esac
MOTO_URL="${MOTO_URL%/}"
if [[ -n "${SIDECAR_BIN+set}" ]]; then
    echo "schemathesis.sh: SIDECAR_BIN is now CONTRACT_SIDECAR_BIN (the sidecar would read it" \
        "as configuration and refuse it); unset SIDECAR_BIN" >&2
    exit 2
fi
BIN="${CONTRACT_SIDECAR_BIN:-$REPO/target/debug/cognito-sidecar}"
if [[ ! -x "$BIN" ]]; then
    echo "schemathesis.sh: $BIN not found; run \`cargo build\` (or cargo test) first" >&2
    exit 2
fi
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-50}"
SEED="${CONTRACT_SEED:-20240611}"
TIME_LIMIT="${CONTRACT_TIMEOUT:-300}"

bash "$REPO/deploy/venv.sh"
PY="$REPO/.venv/bin/python"

work="$(mktemp -d "${TMPDIR:-/tmp}/cognito-sidecar-contract.XXXXXX")"
sidecar_pid=""
status=1
# shellcheck disable=SC2317,SC2329 # run by the EXIT trap
cleanup() {
    local i
    trap - EXIT INT TERM
    if [[ -n "$sidecar_pid" ]] && kill -TERM "$sidecar_pid" 2>/dev/null; then
        for ((i = 0; i < 50; i++)); do
            kill -0 "$sidecar_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$sidecar_pid" 2>/dev/null || true
        wait "$sidecar_pid" 2>/dev/null || true
    fi
    if ((status != 0)) && [[ -s "$work/sidecar.log" ]]; then
        echo "---- last lines of the sidecar log (debug lines left out) ----" >&2
        grep -v '^[^ ]* *DEBUG ' "$work/sidecar.log" | tail -n 40 >&2 || true
    fi
    if [[ "${CONTRACT_KEEP:-0}" == 1 ]]; then
        echo "schemathesis.sh: work dir kept: $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'status=130; exit' INT
trap 'status=143; exit' TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A fresh pool per run: moto keeps earlier pools, and the users' state (password changed,
# signed out) must not leak from one run into the next.
"$PY" deploy/local/bootstrap.py --endpoint "$MOTO_URL" \
    --pool-name "contract-$$-$RANDOM" >"$work/pool.env"
set -a
# shellcheck disable=SC1091 # written just above
. "$work/pool.env"
set +a
: "${COGNITO_USER_POOL_ID:?bootstrap.py printed no pool id}" "${COGNITO_APP_CLIENT_ID:?}"

port="$(free_port)"
admin_port="$(free_port)"
while [[ "$admin_port" == "$port" ]]; do admin_port="$(free_port)"; done
closed_port="$(free_port)" # nothing listens there: the gate's upstream is never reached here
base="http://127.0.0.1:$port"

AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    SIDECAR_COGNITO__ENDPOINT_URL="$MOTO_URL" \
    SIDECAR_VERIFY__JWKS_URL="$MOTO_URL/$COGNITO_USER_POOL_ID/.well-known/jwks.json" \
    SIDECAR_UPSTREAM__URL="http://127.0.0.1:$closed_port" \
    SIDECAR_SERVER__LISTEN="127.0.0.1:$port" \
    SIDECAR_ADMIN__LISTEN="127.0.0.1:$admin_port" \
    SIDECAR_LOG__LEVEL=debug NO_COLOR=1 \
    SIDECAR_RATE_LIMIT__ADDRESS_PER_MINUTE=1000000 \
    SIDECAR_RATE_LIMIT__ADDRESS_BURST=1000000 \
    SIDECAR_RATE_LIMIT__USERNAME_PER_MINUTE=1000000 \
    SIDECAR_RATE_LIMIT__USERNAME_BURST=1000000 \
    SIDECAR_RATE_LIMIT__RECOVERY_USERNAME_PER_HOUR=1000000 \
    SIDECAR_RATE_LIMIT__RECOVERY_USERNAME_BURST=1000000 \
    SIDECAR_RATE_LIMIT__RECOVERY_ADDRESS_PER_HOUR=1000000 \
    SIDECAR_RATE_LIMIT__RECOVERY_ADDRESS_BURST=1000000 \
    "$BIN" --config proxy.toml </dev/null >"$work/sidecar.log" 2>&1 &
sidecar_pid=$!

# Ready = the pool's signing keys are loaded (30 s at most).
"$PY" - "$base/readyz" "$sidecar_pid" <<'PY' || exit
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
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
        sys.exit("schemathesis.sh: the sidecar exited during start-up")
    if time.monotonic() > deadline:
        sys.exit(f"schemathesis.sh: {url} not ready within 30 s")
    time.sleep(0.2)
PY
echo "schemathesis.sh: sidecar ready at $base (pool $COGNITO_USER_POOL_ID)" >&2

spec_url="$base/api/user/openapi.json"
"$PY" - "$spec_url" "$work/openapi.json" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    open(sys.argv[2], "wb").write(r.read())
PY
echo "---- openapi-spec-validator (the served document) ----"
"$REPO/.venv/bin/openapi-spec-validator" "$work/openapi.json" || exit

echo "---- schemathesis $("$REPO/.venv/bin/schemathesis" --version | sed 's/.* //') ----"
cmd=(
    "$REPO/.venv/bin/schemathesis" --config-file "$REPO/tests/contract/schemathesis.toml"
    run "$spec_url"
    --checks all
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --workers 1
    --generation-database none
    --request-timeout 10
    --no-color
    --report junit
    --report-junit-path "$work/junit.xml"
)
printf '%q ' timeout "$TIME_LIMIT" "${cmd[@]}"
echo
started=$SECONDS
st_status=0
# No proxy: every request of the run goes straight to the sidecar on loopback. Run from the
# work dir, where hypothesis leaves its .hypothesis directory.
(
    cd "$work"
    exec env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
        NO_PROXY='*' timeout "$TIME_LIMIT" "${cmd[@]}"
) || st_status=$?
echo "schemathesis.sh: schemathesis exited $st_status after $((SECONDS - started)) s"
if ((st_status == 124)); then
    echo "schemathesis.sh: the run hit the ${TIME_LIMIT}s limit" >&2
fi

# Totals from the JUnit report (one testcase per operation, one for the stateful phase).
summary="$("$PY" - "$work/junit.xml" <<'PY' || true
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    sys.exit(1)
passed = failed = skipped = 0
for case in root.iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        failed += 1
    elif case.find("skipped") is not None:
        skipped += 1
    else:
        passed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
PY
)"
if [[ -z "$summary" ]]; then
    # No report (killed by the time limit, or schemathesis could not start): count it failed.
    summary="0 passed, 1 failed"
fi
status=$st_status
if ((status == 0)) && [[ "$summary" != *" 0 failed"* ]]; then
    status=1
fi
echo "schemathesis: $summary"
exit "$status"
