#!/usr/bin/env python3
"""A demo upstream app for the sidecar (standard library only).

    python3 deploy/local/upstream.py [--port 3000] [--quiet]

Binds 127.0.0.1 only. Speaks HTTP/1.1 with keep-alive (idle connections are closed after
--idle-timeout seconds, longer than the sidecar's default upstream.pool_idle_timeout of 4s).

  GET /public/hello   200 text/plain "hello from the public page"
  GET /events         200 text/event-stream: 3 events, one every 0.2 s, then the stream ends
  anything else       200 application/json, any method:
                        {"method", "path" (the request target as received, query included),
                         "identity" {x-auth-* header: value}, "headers" {all headers},
                         "body_bytes" (request body length read)}
Header names in "identity" and "headers" are lower-cased; repeated headers are joined with ", ".
Prints "upstream listening on http://127.0.0.1:PORT" once bound (useful with --port 0).
"""

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_BODY = 64 * 1024 * 1024


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-upstream/1"
    quiet = False

    # Every method (GET, POST, PATCH, OPTIONS, ...) goes to one handler.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.quiet:
            super().log_message(format, *args)

    def read_body(self) -> int:
        """Reads and discards the request body; returns its length."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    raise ConnectionError("body ended early")
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the empty line.
                    while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                self.discard(size)
                self.rfile.readline(8)  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        self.discard(length)
        return length

    def discard(self, n: int) -> None:
        while n > 0:
            chunk = self.rfile.read(min(n, 65536))
            if not chunk:
                raise ConnectionError("body ended early")
            n -= len(chunk)

    def raw_target(self) -> str:
        """The request target exactly as received (http.server rewrites a leading "//")."""
        words = self.requestline.split()
        return words[1] if len(words) == 3 else self.path

    def send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self) -> None:
        try:
            body_bytes = self.read_body()
        except (ValueError, ConnectionError):
            self.close_connection = True
            self.send(400, "text/plain; charset=utf-8", b"bad request body\n")
            return
        path = urlsplit(self.raw_target()).path
        if self.command in ("GET", "HEAD") and path == "/public/hello":
            self.send(200, "text/plain; charset=utf-8", b"hello from the public page\n")
        elif self.command == "GET" and path == "/events":
            self.stream_events()
        else:
            self.echo(body_bytes)

    def echo(self, body_bytes: int) -> None:
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        doc = {
            "method": self.command,
            "path": self.raw_target(),
            "identity": {k: v for k, v in headers.items() if k.startswith("x-auth-")},
            "headers": headers,
            "body_bytes": body_bytes,
        }
        body = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        self.send(200, "application/json", body)

    def stream_events(self) -> None:
        """Three server-sent events, 0.2 s apart, as chunked HTTP/1.1."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(1, 4):
            if i > 1:
                time.sleep(0.2)
            event = f"id: {i}\nevent: tick\ndata: {json.dumps({'n': i, 'time': time.time()})}\n\n"
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description="demo upstream app for cognito-sidecar")
    parser.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    parser.add_argument("--idle-timeout", type=float, default=30.0, help="keep-alive, seconds")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = parser.parse_args()

    Handler.quiet = args.quiet
    Handler.timeout = args.idle_timeout
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"upstream listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
