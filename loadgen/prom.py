"""Reading the app's Prometheus text: per-pod served-request counts.

Contract with app/: counter articles_http_requests_total{pod,route,method,status}; the
served count is the sum over every route except the probe and metrics routes, so that
kubelet probes and our own scrapes do not count as load.
"""

from __future__ import annotations

import re

COUNTER = "articles_http_requests_total"
EXCLUDED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?\s*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')


class MetricsFormatError(ValueError):
    """The text is not Prometheus exposition format we can read."""


def _unescape(value: str) -> str:
    return value.replace(r"\"", '"').replace(r"\n", "\n").replace("\\\\", "\\")


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if not m:
            raise MetricsFormatError(f"bad label set: {{{text}}}")
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return labels


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` in the exposition text."""
    out: list[tuple[dict[str, str], float]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or not line.startswith(name):
            continue
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        try:
            value = float(m.group(3))
        except ValueError as exc:
            raise MetricsFormatError(f"bad sample value in: {line}") from exc
        out.append((parse_labels(m.group(2) or ""), value))
    return out


def served_by_pod(text: str) -> dict[str, float]:
    """Served requests per `pod` label, probes and scrapes excluded."""
    totals: dict[str, float] = {}
    for labels, value in samples(text, COUNTER):
        if labels.get("route") in EXCLUDED_ROUTES:
            continue
        pod = labels.get("pod", "")
        totals[pod] = totals.get(pod, 0.0) + value
    return totals


def served_total(text: str) -> float:
    """Served requests in one pod's /metrics (every pod label summed)."""
    if COUNTER not in text:
        raise MetricsFormatError(f"no {COUNTER} in the metrics text")
    return sum(served_by_pod(text).values())
