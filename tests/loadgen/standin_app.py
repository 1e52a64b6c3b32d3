"""Fallback for checkouts without app/articles: a minimal real HTTP server with the app's
contract (X-Served-By, /healthz, Prometheus /metrics). Not used when the real app exists."""

from __future__ import annotations

import http.server
import os
import threading
from collections import Counter

POD = os.environ.get("POD_NAME", "standin")
COUNTS: Counter = Counter()
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        route = self.path.split("?")[0]
        if route == "/metrics":
            with LOCK:
                body = "".join(
                    f'articles_http_requests_total{{method="GET",pod="{POD}",route="{r}",'
                    f'status="200"}} {n}.0\n'
                    for r, n in COUNTS.items()
                ).encode()
        else:
            body = b"ok\n"
        with LOCK:
            COUNTS[route] += 1
        self.send_response(200)
        self.send_header("X-Served-By", POD)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    host = os.environ.get("HOST", "127.0.0.1")
    metrics_port = int(os.environ.get("METRICS_PORT", "0"))
    if metrics_port:  # the app serves /metrics on a port of its own too
        metrics = http.server.ThreadingHTTPServer((host, metrics_port), Handler)
        threading.Thread(target=metrics.serve_forever, daemon=True).start()
    addr = (host, int(os.environ.get("PORT", "8080")))
    http.server.ThreadingHTTPServer(addr, Handler).serve_forever()
