#!/usr/bin/env bash
# Start the Cognito stand-in OpenID provider in the background.
#
#   tests/oidc/start.sh PORT PIDFILE LOGFILE
#
# The provider is configured from the environment (OIDC_CLIENT_ID,
# OIDC_REDIRECT_URIS, ... see provider.mjs); OIDC_PORT is set to PORT.
# Installs the pinned npm dependencies first when node_modules is missing or
# older than package-lock.json. Waits until the JWKS answers 200, then exits 0
# leaving the provider running (stop it with: kill "$(cat PIDFILE)").
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 PORT PIDFILE LOGFILE" >&2
  exit 2
fi
port=$1
pidfile=$2
logfile=$3

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stamp="$here/node_modules/.npm-ci.stamp"

if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ] || [ "$here/package.json" -nt "$stamp" ]; then
  echo "start.sh: installing npm dependencies (npm ci)" >&2
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
  touch "$stamp"
fi

mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
: >"$logfile"

OIDC_PORT="$port" nohup node "$here/provider.mjs" >>"$logfile" 2>&1 </dev/null &
pid=$!
echo "$pid" >"$pidfile"

url="http://127.0.0.1:$port/.well-known/jwks.json"
probe() {
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
  else
    python3 - "$1" <<'PY' 2>/dev/null || true
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except Exception as e:
    print(getattr(e, "code", 0))
PY
  fi
}
deadline=$((SECONDS + 15))
while :; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "start.sh: provider (pid $pid) exited; last log lines:" >&2
    tail -n 30 "$logfile" >&2 || true
    rm -f "$pidfile"
    exit 1
  fi
  code=$(probe "$url")
  if [ "$code" = "200" ]; then
    echo "start.sh: provider up on http://127.0.0.1:$port (pid $pid)" >&2
    exit 0
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "start.sh: provider did not answer $url within 15 s; last log lines:" >&2
    tail -n 30 "$logfile" >&2 || true
    kill "$pid" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
  fi
  sleep 0.2
done
