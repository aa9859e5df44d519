#!/usr/bin/env bash
# Runs the sidecar locally against moto (the Cognito emulator) and a demo app, then prints
# curl commands to try. Ctrl-C stops everything.
#
#   deploy/local/run.sh
#
# Environment (all optional):
#   LOCAL_SIDECAR_PORT=8080  the sidecar, on 127.0.0.1
#   MOTO_PORT=5000           moto
#   UPSTREAM_PORT=3000       the demo app (deploy/local/upstream.py)
#   RUN_SECONDS=N            stop everything N seconds after the sidecar is ready
#   LOCAL_SIDECAR_BIN=PATH   run this binary instead of building target/debug/cognito-sidecar
#   SIDECAR_<SECTION>__<KEY> sidecar configuration, passed on (e.g. SIDECAR_LOG__LEVEL=debug);
#                            the sidecar reads every SIDECAR_* variable as configuration and
#                            refuses unknown keys, so this script's own names are not SIDECAR_*.
#
# Demo users: demo@example.com / Demo-Passw0rd! (group admin), new@example.com with the
# temporary password Temp-Passw0rd! (must choose a new one), and mfa@example.com /
# Mfa-Passw0rd! with TOTP MFA (its codes come from moto's fixed secret, asdfasdfasdf; the
# printed commands compute them). Logs of moto and the demo app go
# to tmp/local/ in the repo; the sidecar logs to this terminal.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO"

LOCAL_SIDECAR_PORT="${LOCAL_SIDECAR_PORT:-8080}"
MOTO_PORT="${MOTO_PORT:-5000}"
UPSTREAM_PORT="${UPSTREAM_PORT:-3000}"
RUN_SECONDS="${RUN_SECONDS:-}"
READY_TIMEOUT=30

say() { printf '\n==> %s\n' "$*" >&2; }
die() {
    printf 'run.sh: %s\n' "$*" >&2
    exit 1
}

command -v curl >/dev/null || die "curl is needed"
# The old names would reach the sidecar, which refuses them as unknown keys.
for old in SIDECAR_PORT SIDECAR_BIN; do
    if [[ -n "${!old+set}" ]]; then
        die "$old is now LOCAL_$old (the sidecar reads every SIDECAR_* variable as configuration); unset $old"
    fi
done
if [[ -n "$RUN_SECONDS" && ! "$RUN_SECONDS" =~ ^[0-9]+$ ]]; then
    die "RUN_SECONDS must be a whole number of seconds"
fi
for port in "$LOCAL_SIDECAR_PORT" "$MOTO_PORT" "$UPSTREAM_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "127.0.0.1:$port is already in use (set LOCAL_SIDECAR_PORT, MOTO_PORT or UPSTREAM_PORT)"
    fi
done

work="$REPO/tmp/local"
mkdir -p "$work"

moto_pid=""
upstream_pid=""
sidecar_pid=""
# Stops one process by pid: TERM, up to 5 s to exit, then KILL. (moto is not our child: moto.sh
# started it, so `wait` cannot be used for it.)
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
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_pid "$sidecar_pid"
    stop_pid "$upstream_pid"
    stop_pid "$moto_pid"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Python venv (.venv)"
bash "$REPO/deploy/venv.sh"

say "moto on 127.0.0.1:$MOTO_PORT (log: tmp/local/moto.log)"
# moto.sh writes the pid file before it waits, so cleanup can stop a moto that never answered.
bash "$REPO/deploy/local/moto.sh" "$MOTO_PORT" "$work/moto.pid" "$work/moto.log" ||
    { moto_pid="$(cat "$work/moto.pid" 2>/dev/null || true)"; exit 1; }
moto_pid="$(cat "$work/moto.pid")"

say "demo user pool"
"$REPO/.venv/bin/python" "$REPO/deploy/local/bootstrap.py" \
    --endpoint "http://127.0.0.1:$MOTO_PORT" >"$work/cognito.env"
set -a
# shellcheck source=/dev/null
source "$work/cognito.env"
set +a
POOL_ID="$COGNITO_USER_POOL_ID"

say "demo app on 127.0.0.1:$UPSTREAM_PORT (log: tmp/local/upstream.log)"
"$REPO/.venv/bin/python" "$REPO/deploy/local/upstream.py" --port "$UPSTREAM_PORT" \
    >"$work/upstream.log" 2>&1 &
upstream_pid=$!
deadline=$((SECONDS + 10))
until curl -fsS -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/public/hello" 2>/dev/null; do
    kill -0 "$upstream_pid" 2>/dev/null || die "the demo app exited; see tmp/local/upstream.log"
    ((SECONDS < deadline)) || die "the demo app did not answer within 10s; see tmp/local/upstream.log"
    sleep 0.2
done

if [[ -n "${LOCAL_SIDECAR_BIN:-}" ]]; then
    bin="$LOCAL_SIDECAR_BIN"
else
    say "cargo build --locked"
    cargo build --locked --bin cognito-sidecar
    bin="$REPO/target/debug/cognito-sidecar"
fi
[[ -x "$bin" ]] || die "no sidecar binary at $bin"

say "cognito-sidecar on 127.0.0.1:$LOCAL_SIDECAR_PORT"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
export SIDECAR_COGNITO__ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
export SIDECAR_VERIFY__JWKS_URL="http://127.0.0.1:$MOTO_PORT/$POOL_ID/.well-known/jwks.json"
export SIDECAR_UPSTREAM__URL="http://127.0.0.1:$UPSTREAM_PORT"
export SIDECAR_SERVER__LISTEN="127.0.0.1:$LOCAL_SIDECAR_PORT"
# Browser sessions on for the demo (a browser on 127.0.0.1 accepts the Secure cookie over http).
export SIDECAR_SESSION__ENABLED="${SIDECAR_SESSION__ENABLED:-true}"
"$bin" --config "$REPO/proxy.toml" &
sidecar_pid=$!

deadline=$((SECONDS + READY_TIMEOUT))
until [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LOCAL_SIDECAR_PORT/readyz" 2>/dev/null)" == 200 ]]; do
    kill -0 "$sidecar_pid" 2>/dev/null || die "the sidecar exited during start-up (its log is above)"
    ((SECONDS < deadline)) || die "the sidecar was not ready within ${READY_TIMEOUT}s (its log is above)"
    sleep 0.2
done

say "Ready: the sidecar is at http://127.0.0.1:$LOCAL_SIDECAR_PORT. Try, in another shell:"
{
    echo
    printf 'S=http://127.0.0.1:%s\n' "$LOCAL_SIDECAR_PORT"
    printf '# In a browser: http://127.0.0.1:%s/whoami sends you to the sign-in page\n' "$LOCAL_SIDECAR_PORT"
    printf '# (demo@example.com / Demo-Passw0rd!), then shows what the app received.\n\n'
    cat <<'EOF'
json() { python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1]) or "")' "$1"; }

# Log in as the demo user (group admin) and keep the tokens.
LOGIN=$(curl -s -X POST "$S/api/user/login" -H 'content-type: application/json' \
  -d '{"email":"demo@example.com","password":"Demo-Passw0rd!"}'); echo "$LOGIN"
TOKEN=$(echo "$LOGIN" | json access_token); REFRESH=$(echo "$LOGIN" | json refresh_token)

# Without a token: 401. With it: the app sees the X-Auth-* identity headers.
curl -i "$S/whoami"
curl -s "$S/whoami" -H "authorization: Bearer $TOKEN"

# A spoofed identity header is replaced by the real one.
curl -s "$S/whoami" -H "authorization: Bearer $TOKEN" -H 'x-auth-sub: somebody-else'

# /public/* needs no token; /admin/* needs group admin (the demo user has it).
curl -i "$S/public/hello"
curl -s "$S/admin/" -H "authorization: Bearer $TOKEN"

# Server-sent events stream through the proxy.
curl -N "$S/events" -H "authorization: Bearer $TOKEN"

# New access and id tokens from the refresh token.
curl -s -X POST "$S/api/user/refresh" -H 'content-type: application/json' \
  -d "{\"refresh_token\":\"$REFRESH\"}"

# Log out; the same token is then rejected (401).
curl -s -X POST "$S/api/user/logout" -H "authorization: Bearer $TOKEN"
curl -i "$S/whoami" -H "authorization: Bearer $TOKEN"

# new@example.com must choose a password: login answers a NEW_PASSWORD_REQUIRED challenge.
NEW=$(curl -s -X POST "$S/api/user/login" -H 'content-type: application/json' \
  -d '{"email":"new@example.com","password":"Temp-Passw0rd!"}'); echo "$NEW"
SESSION=$(echo "$NEW" | json session)
NEWTOKEN=$(curl -s -X POST "$S/api/user/new-password" -H 'content-type: application/json' \
  -d '{"email":"new@example.com","new_password":"New-Passw0rd!","session":"'"$SESSION"'"}' | json access_token)
curl -s "$S/whoami" -H "authorization: Bearer $NEWTOKEN"
# ... but new@example.com is not in group admin: 403.
curl -i "$S/admin/" -H "authorization: Bearer $NEWTOKEN"

# mfa@example.com has TOTP MFA: login answers SOFTWARE_TOKEN_MFA with a session, and
# /mfa takes the code an authenticator app would show. moto gives every user the TOTP secret
# asdfasdfasdf (scan `otpauth://totp/demo:mfa@example.com?secret=ASDFASDFASDF` into an app,
# or compute the code as below); a wrong code is 400 invalid_code.
totp() { python3 -c 'import base64,hmac,struct,sys,time; k=base64.b32decode(sys.argv[1].upper()+"="*(-len(sys.argv[1])%8)); h=hmac.new(k,struct.pack(">Q",int(time.time())//30),"sha1").digest(); o=h[-1]&15; print("%06d"%((struct.unpack(">I",h[o:o+4])[0]&0x7fffffff)%1000000))' "$1"; }
MFA=$(curl -s -X POST "$S/api/user/login" -H 'content-type: application/json' \
  -d '{"email":"mfa@example.com","password":"Mfa-Passw0rd!"}'); echo "$MFA"
MFASESSION=$(echo "$MFA" | json session)
curl -s -X POST "$S/api/user/mfa" -H 'content-type: application/json' \
  -d '{"email":"mfa@example.com","session":"'"$MFASESSION"'","challenge":"SOFTWARE_TOKEN_MFA","code":"'"$(totp asdfasdfasdf)"'"}'

# A forgotten password: the same answer for any email (moto sends nothing; it accepts any
# code that does not start with "moto-confirmation-code:").
curl -s -X POST "$S/api/user/forgot-password" -H 'content-type: application/json' -d '{"email":"demo@example.com"}'
curl -s -X POST "$S/api/user/forgot-password" -H 'content-type: application/json' -d '{"email":"nobody@example.com"}'
EOF
    echo
}
if [[ -n "$RUN_SECONDS" ]]; then
    say "Stopping in $RUN_SECONDS seconds (RUN_SECONDS)."
else
    say "Ctrl-C stops the sidecar, the demo app and moto."
fi

stopped_by_timer=""
if [[ -n "$RUN_SECONDS" ]]; then
    deadline=$((SECONDS + RUN_SECONDS))
    while kill -0 "$sidecar_pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$sidecar_pid" 2>/dev/null; then
        stopped_by_timer=1
        kill -TERM "$sidecar_pid"
    fi
fi

status=0
wait "$sidecar_pid" || status=$?
sidecar_pid=""
if [[ -n "$stopped_by_timer" ]] && ((status == 0 || status == 143)); then
    say "stopped after RUN_SECONDS=$RUN_SECONDS"
    exit 0
fi
if ((status != 0)); then
    die "the sidecar exited with status $status"
fi
