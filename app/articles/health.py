"""Probes and metrics for the kubelet and Prometheus."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

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


@bp.get("/metrics")
def metrics() -> Response:
    body = current_app.extensions["articles.metrics"].exposition()
    return Response(body, content_type=CONTENT_TYPE_LATEST)
