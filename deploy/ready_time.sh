#!/usr/bin/env bash
# Start-up to ready: starts the sidecar (release binary unless SIDECAR_BIN is set) RUNS times
# (default 5) with its JWKS served on loopback, and prints how long each start took until
# `GET /readyz` answered 200 (polled every 2 ms), measured from the spawn.
#
#   bash deploy/ready_time.sh
#
# Loopback only; each start is bounded (5 s).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin=${SIDECAR_BIN:-$REPO/target/release/cognito-sidecar}
[[ -x $bin ]] || (cd "$REPO" && cargo build --release --locked)
exec python3 - "$bin" "${RUNS:-5}" "$REPO/proxy.toml" <<'PY'
import http.server, json, os, socket, subprocess, sys, threading, time, urllib.request
binary, runs, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]

# A JWKS with one fresh RSA key (the sidecar only needs to load it to be ready).
import base64, tempfile
with tempfile.TemporaryDirectory() as d:
    subprocess.run(["openssl", "genrsa", "-out", f"{d}/k.pem", "2048"], check=True,
                   capture_output=True)
    modulus = subprocess.run(["openssl", "rsa", "-in", f"{d}/k.pem", "-noout", "-modulus"],
                             check=True, capture_output=True, text=True).stdout
n = bytes.fromhex(modulus.strip().split("=", 1)[1])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
JWKS = json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
                             "n": b64(n), "e": "AQAB"}]}).encode()

class Jwks(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(JWKS)))
        self.end_headers()
        self.wfile.write(JWKS)
    def log_message(self, *a):
        pass

jwks = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
threading.Thread(target=jwks.serve_forever, daemon=True).start()

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

env = {k: v for k, v in os.environ.items()
       if not k.startswith(("SIDECAR_", "COGNITO_", "AWS_"))}
times = []
for i in range(runs):
    port = free_port()
    env.update({
        "AWS_REGION": "us-east-1", "COGNITO_USER_POOL_ID": "us-east-1_Ready",
        "COGNITO_APP_CLIENT_ID": "ready",
        "SIDECAR_VERIFY__JWKS_URL": f"http://127.0.0.1:{jwks.server_port}/jwks.json",
        "SIDECAR_UPSTREAM__URL": "http://127.0.0.1:9", "SIDECAR_ADMIN__ENABLED": "false",
        "SIDECAR_SERVER__LISTEN": f"127.0.0.1:{port}",
        "SIDECAR_COGNITO__ENDPOINT_URL": "http://127.0.0.1:9",
    })
    start = time.monotonic()
    p = subprocess.Popen([binary, "--config", config], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = None
    try:
        while time.monotonic() - start < 5:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        ready = time.monotonic() - start
                        break
            except Exception:
                pass
            time.sleep(0.002)
    finally:
        p.terminate()
        p.wait(timeout=10)
    if ready is None:
        sys.exit(f"start {i + 1}: not ready within 5 s")
    times.append(ready * 1000)
    print(f"start {i + 1}: ready after {ready * 1000:.1f} ms")
print(f"ready after {min(times):.1f}..{max(times):.1f} ms over {runs} starts")
PY
