#!/usr/bin/env bash
# Starts moto (the Cognito emulator) in the background on 127.0.0.1 and waits until it answers.
#
#   deploy/local/moto.sh PORT PIDFILE [LOGFILE]
#
# Writes moto's pid to PIDFILE (the caller stops it with `kill "$(cat PIDFILE)"`) and its output
# to LOGFILE (default: PIDFILE with .pid replaced by .log). Exits non-zero, with the end of the
# log, if the port is taken or moto does not answer within MOTO_START_TIMEOUT seconds (30).
# moto checks TOTP codes (SOFTWARE_TOKEN_MFA, VerifySoftwareToken) against its one fixed
# secret, `asdfasdfasdf`, unless MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP=false is set: so a
# wrong code is refused, as by Cognito (tests/mfa.rs computes real codes).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [[ $# -lt 2 ]]; then
    echo "usage: $0 PORT PIDFILE [LOGFILE]" >&2
    exit 2
fi
port="$1"
pidfile="$2"
logfile="${3:-${pidfile%.pid}.log}"
[[ "$logfile" != "$pidfile" ]] || logfile="$pidfile.log"
timeout="${MOTO_START_TIMEOUT:-30}"
url="http://127.0.0.1:$port/moto-api/"

if [[ ! "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "moto.sh: bad port: $port" >&2
    exit 2
fi

bash "$REPO/deploy/venv.sh"
python="$REPO/.venv/bin/python"

# Something already listening there would answer the readiness probe in moto's place.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "moto.sh: 127.0.0.1:$port is already in use; pick another port" >&2
    exit 1
fi

mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP="${MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP:-true}" \
    "$REPO/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"

fail() {
    echo "moto.sh: $1" >&2
    echo "---- last lines of $logfile ----" >&2
    tail -n 20 "$logfile" >&2 || true
    kill "$pid" 2>/dev/null || true
    exit 1
}

deadline=$((SECONDS + timeout))
until "$python" - "$url" <<'PY' 2>/dev/null; do
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2).read()
PY
    kill -0 "$pid" 2>/dev/null || fail "moto_server (pid $pid) exited during start-up"
    ((SECONDS < deadline)) || fail "moto did not answer $url within ${timeout}s"
    sleep 0.2
done
kill -0 "$pid" 2>/dev/null || fail "moto_server (pid $pid) exited during start-up"
echo "moto.sh: moto is up at http://127.0.0.1:$port (pid $pid, log $logfile)" >&2
