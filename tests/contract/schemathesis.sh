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
# It runs twice, once per `api.compatibility` mode: `none` (the sidecar's statuses) and `seed`
# (the Django endpoints' statuses, whose document folds 401/403/413/415 of login,
# new-password, refresh and logout into 400 and adds django-ninja's 422). Each run creates a
# fresh pool in moto (deploy/local/bootstrap.py), starts the sidecar in that mode on a free
# loopback port (upstream: a closed loopback port; admin listener: another free port; rate limits
# raised so the generated requests reach Cognito instead of all answering 429), waits for
# /readyz, checks that the served document is the mode's and validates it with
# openapi-spec-validator, then runs schemathesis with all checks, a fixed seed, one worker, a
# bounded number of examples per operation and a time limit. The seed run's configuration is
# tests/contract/schemathesis.toml followed by tests/contract/schemathesis-seed.toml. Every
# request goes to 127.0.0.1 only: schemathesis to the sidecar, the sidecar to moto.
#
# Tunables (environment): CONTRACT_MAX_EXAMPLES (50), CONTRACT_SEED (20240611),
# CONTRACT_TIMEOUT seconds for each schemathesis run (300), CONTRACT_KEEP=1 keeps the work dir
# (per mode: sidecar log, served document, schemathesis reports) and prints its path.
#
# The run covers the document's examples (the demo users sign in: tokens, and the
# NEW_PASSWORD_REQUIRED challenge), the coverage and fuzzing phases, and the stateful phase
# along the document's links (login -> refresh, login -> new-password, login -> mfa,
# login -> mfa/setup -> mfa/verify). Operations secured by
# `bearer` get a real access token (tests/contract/schemathesis.toml).
#
# Exit status: 0 when schemathesis found nothing in either run, non-zero otherwise (124: a time
# limit hit). Each run ends with `schemathesis (MODE): N passed, M failed`, and the last line is
# `schemathesis: N passed, M failed` over both, counting the JUnit test cases: one per
# operation plus one for the stateful phase, per run.
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
sidecar_log=""
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
    if ((status != 0)) && [[ -n "$sidecar_log" && -s "$sidecar_log" ]]; then
        echo "---- last lines of the sidecar log (debug lines left out) ----" >&2
        grep -v '^[^ ]* *DEBUG ' "$sidecar_log" | tail -n 40 >&2 || true
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

# One run per `api.compatibility` mode, each against a sidecar of its own with a fresh pool
# (moto keeps earlier pools, and the users' state, password changed or signed out, must not
# leak from one run into the next), serving the document of its mode.
# run_mode MODE CONFIG_FILE [SCHEMATHESIS ARGS...]: sets st_status, and adds the run's JUnit
# totals to the counts.
passed_total=0
failed_total=0
skipped_total=0
run_mode() {
    local mode="$1" config="$2" port admin_port closed_port base spec_url started summary
    shift 2
    local dir="$work/$mode"
    mkdir -p "$dir"
    echo "==== api.compatibility = \"$mode\" ===="
    "$PY" deploy/local/bootstrap.py --endpoint "$MOTO_URL" \
        --pool-name "contract-$mode-$$-$RANDOM" >"$dir/pool.env"
    set -a
    # shellcheck disable=SC1091 # written just above
    . "$dir/pool.env"
    set +a
    : "${COGNITO_USER_POOL_ID:?bootstrap.py printed no pool id}" "${COGNITO_APP_CLIENT_ID:?}"

    port="$(free_port)"
    admin_port="$(free_port)"
    while [[ "$admin_port" == "$port" ]]; do admin_port="$(free_port)"; done
    closed_port="$(free_port)" # nothing listens there: the gate's upstream is never reached here
    base="http://127.0.0.1:$port"
    sidecar_log="$dir/sidecar.log"

    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
        SIDECAR_API__COMPATIBILITY="$mode" \
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
        "$BIN" --config proxy.toml </dev/null >"$sidecar_log" 2>&1 &
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
    # The served document is the mode's: login answers 401 by default, 422 in seed mode.
    "$PY" - "$spec_url" "$dir/openapi.json" "$mode" <<'PY' || exit
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    body = r.read()
open(sys.argv[2], "wb").write(body)
statuses = set(json.loads(body)["paths"]["/api/user/login"]["post"]["responses"])
want = {"none": ({"401"}, {"422"}), "seed": ({"422"}, {"401"})}[sys.argv[3]]
if not (want[0] <= statuses and not want[1] & statuses):
    sys.exit(f"schemathesis.sh: login's statuses {sorted(statuses)} are not {sys.argv[3]} mode's")
PY
    echo "---- openapi-spec-validator (the served document) ----"
    "$REPO/.venv/bin/openapi-spec-validator" "$dir/openapi.json" || exit

    echo "---- schemathesis $("$REPO/.venv/bin/schemathesis" --version | sed 's/.* //') ----"
    local cmd=(
        "$REPO/.venv/bin/schemathesis" --config-file "$config"
        run "$spec_url"
        --max-examples "$MAX_EXAMPLES"
        --seed "$SEED"
        --workers 1
        --generation-database none
        --request-timeout 10
        --no-color
        --report junit
        --report-junit-path "$dir/junit.xml"
        "$@"
    )
    printf '%q ' timeout "$TIME_LIMIT" "${cmd[@]}"
    echo
    started=$SECONDS
    st_status=0
    # No proxy: every request of the run goes straight to the sidecar on loopback. Run from
    # the mode's dir, where hypothesis leaves its .hypothesis directory.
    (
        cd "$dir"
        exec env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
            NO_PROXY='*' timeout "$TIME_LIMIT" "${cmd[@]}"
    ) || st_status=$?
    echo "schemathesis.sh: schemathesis ($mode) exited $st_status after $((SECONDS - started)) s"
    if ((st_status == 124)); then
        echo "schemathesis.sh: the run hit the ${TIME_LIMIT}s limit" >&2
    fi
    stop_sidecar
    if ((st_status != 0)) && [[ -s "$sidecar_log" ]]; then
        echo "---- last lines of the $mode sidecar's log (debug lines left out) ----" >&2
        grep -v '^[^ ]* *DEBUG ' "$sidecar_log" | tail -n 40 >&2 || true
    fi
    sidecar_log=""

    # Totals from the JUnit report (one testcase per operation, one for the stateful phase).
    summary="$("$PY" - "$dir/junit.xml" <<'PY' || true
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
print(passed, failed, skipped)
PY
)"
    # No report (killed by the time limit, or schemathesis could not start): count it failed.
    [[ -n "$summary" ]] || summary="0 1 0"
    local p f k
    read -r p f k <<<"$summary"
    echo "schemathesis ($mode): $p passed, $f failed$( ((k)) && echo ", $k skipped")"
    passed_total=$((passed_total + p))
    failed_total=$((failed_total + f))
    skipped_total=$((skipped_total + k))
    if ((st_status == 0 && f > 0)); then
        st_status=1
    fi
}

# Stops the mode's sidecar (SIGTERM, then SIGKILL after 5 s).
stop_sidecar() {
    local i
    if [[ -n "$sidecar_pid" ]] && kill -TERM "$sidecar_pid" 2>/dev/null; then
        for ((i = 0; i < 50; i++)); do
            kill -0 "$sidecar_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$sidecar_pid" 2>/dev/null || true
        wait "$sidecar_pid" 2>/dev/null || true
    fi
    sidecar_pid=""
}

# The default statuses, then the seed's (its configuration adds the answers a schema-valid
# request gets in seed mode: tests/contract/schemathesis-seed.toml).
cat "$REPO/tests/contract/schemathesis.toml" "$REPO/tests/contract/schemathesis-seed.toml" \
    >"$work/schemathesis-seed.toml"
run_mode none "$REPO/tests/contract/schemathesis.toml"
first=$st_status
run_mode seed "$work/schemathesis-seed.toml" --exclude-checks ignored_auth,missing_required_header
status=$first
((status != 0)) || status=$st_status
echo "schemathesis: $passed_total passed, $failed_total failed$( ((skipped_total)) && echo ", $skipped_total skipped")"
exit "$status"
