#!/usr/bin/env bash
# Memory of idle keep-alive connections: starts the sidecar (release binary unless
# SIDECAR_BIN is set), opens N connections (default 10,000) that each send one request
# (`GET /healthz`, answered by the sidecar itself) and then stay open, and prints the
# sidecar's RSS before and after, per connection. TARGET=nginx or TARGET=haproxy measures
# those instead, serving the same request on the same number of connections, for comparison.
#
#   bash deploy/idle_memory.sh [N]
#
# Loopback only; needs N + 100 file descriptors for this shell (`ulimit -n`).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n=${1:-10000}
target=${TARGET:-sidecar}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < n + 100)); then
    echo "idle_memory: need $((n + 100)) file descriptors, have $(ulimit -n)" >&2
    exit 1
fi
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
pid=""
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
die() { echo "idle_memory: $*" >&2; [[ -f $work/out.log ]] && tail -5 "$work/out.log" >&2; exit 1; }

case $target in
sidecar)
    bin=${SIDECAR_BIN:-$REPO/target/release/cognito-sidecar}
    [[ -x $bin ]] || (cd "$REPO" && cargo build --release --locked)
    env -u SIDECAR_BIN ${EXTRA_ENV:-} AWS_REGION=us-east-1 COGNITO_USER_POOL_ID=us-east-1_Idle COGNITO_APP_CLIENT_ID=idle \
        SIDECAR_VERIFY__JWKS_URL=http://127.0.0.1:9/jwks SIDECAR_UPSTREAM__URL=http://127.0.0.1:9 \
        SIDECAR_SERVER__LISTEN="127.0.0.1:$port" SIDECAR_SERVER__MAX_CONNECTIONS=$((n + 100)) \
        SIDECAR_ADMIN__ENABLED=false SIDECAR_LOG__FORMAT=json \
        "$bin" --config "$REPO/proxy.toml" >"$work/out.log" 2>&1 &
    pid=$!
    ;;
nginx)
    cat >"$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections $((n + 100)); }
http { access_log off; keepalive_timeout 60s; keepalive_requests 1000000;
  server { listen 127.0.0.1:$port; location /healthz { return 200 '{"status":"ok"}'; } } }
CONF
    nginx -c "$work/nginx.conf" -p "$work" &
    pid=$!
    ;;
haproxy)
    # HAProxy reserves two descriptors a connection: fewer connections if the limit says so.
    cap=$((($(ulimit -n) - 300) / 2))
    ((n > cap)) && n=$cap
    cat >"$work/haproxy.cfg" <<CONF
global
  maxconn $((n + 100))
defaults
  mode http
  timeout client 60s
  timeout server 60s
  timeout connect 5s
  timeout http-keep-alive 60s
frontend f
  bind 127.0.0.1:$port
  http-request return status 200 content-type application/json string '{"status":"ok"}'
CONF
    haproxy -f "$work/haproxy.cfg" &
    pid=$!
    ;;
*)
    echo "idle_memory: TARGET is sidecar, nginx or haproxy" >&2
    exit 64
    ;;
esac

# The process whose memory counts: the server itself (nginx: its one worker).
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break
    sleep 0.1
done
kill -0 "$pid" 2>/dev/null || die "the server exited"
measured=$pid
if [[ $target == nginx ]]; then measured="$(pgrep -P "$pid" | head -1)"; fi
python3 - "$n" "$port" "$measured" "$target" <<'PY'
import asyncio, sys
n, port, pid, target = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

async def one(conns):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await w.drain()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await r.read(4096)
        if not chunk:
            raise RuntimeError("closed before answering")
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:40]
    conns.append((r, w))

async def main():
    await asyncio.sleep(0.5)
    before = rss_kib()
    conns, sem = [], asyncio.Semaphore(500)
    async def guarded():
        async with sem:
            await one(conns)
    await asyncio.gather(*(guarded() for _ in range(n)))
    # Idle, as browsers and load balancers leave them.
    await asyncio.sleep(2.0)
    after = rss_kib()
    # Still serving: one more request on a fresh connection.
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    await w.drain()
    ok = (await r.read(64)).startswith(b"HTTP/1.1 200")
    print(f"{target}: {len(conns)} idle keep-alive connections (one request each): "
          f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB, "
          f"{(after - before) / len(conns):.2f} KiB a connection; still serving: {ok}")

asyncio.run(main())
PY
