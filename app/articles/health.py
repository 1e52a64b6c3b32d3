"""Probes for the kubelet. /metrics is not here: it has a port of its own (metrics_port.py)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

bp = Blueprint("health", __name__)

TEXT = "text/plain; charset=utf-8"


@bp.get("/healthz")
def healthz() -> Response:
    # Liveness: answering at all is the signal; no dependencies to check.
    return Response(b"ok\n", content_type=TEXT)


@bp.get("/readyz")
def readyz() -> Response:
    if current_app.config["DRAIN_FLAG"].is_set():
        return Response(b"draining\n", status=503, content_type=TEXT)
    return Response(b"ready\n", content_type=TEXT)

