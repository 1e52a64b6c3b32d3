"""A fake Kubernetes API server on loopback that answers one thing: GET of the APIService
v1beta1.metrics.k8s.io (as the real one does: 200 with the object, 404, 403), plus a kubeconfig
pointing at it. The probe (components/metrics_api.py) talks to it through the official client."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import yaml

PATH = "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.metrics.k8s.io"


def apiservice(
    *,
    available: bool = True,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    reason: str = "Passed",
    message: str = "all checks passed",
) -> dict[str, Any]:
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {
            "name": "v1beta1.metrics.k8s.io",
            "labels": labels or {},
            "annotations": annotations or {},
        },
        "spec": {
            "group": "metrics.k8s.io",
            "version": "v1beta1",
            "service": {"namespace": "kube-system", "name": "metrics-server", "port": 443},
        },
        "status": {
            "conditions": [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": reason,
                    "message": message,
                }
            ]
        },
    }


class FakeApiServer:
    def __init__(self) -> None:
        self.status = 404
        self.body: dict[str, Any] | None = None
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                status = outer.status if self.path.split("?")[0] == PATH else 404
                if status == 200:
                    payload = outer.body or {}
                else:
                    payload = {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": {404: "NotFound", 403: "Forbidden"}.get(status, "Error"),
                        "code": status,
                    }
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def serve(self, body: dict[str, Any]) -> None:
        self.status, self.body = 200, body

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def write_kubeconfig(path: Path, server: str, context: str = "fake") -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": server}}],
                "users": [{"name": "fake", "user": {"token": "test-token"}}],
                "contexts": [{"name": context, "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": context,
            }
        )
    )
    return path
