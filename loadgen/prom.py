"""Reading the app's Prometheus text: per-pod served-request counts.

Contract with app/: counter articles_http_requests_total{pod,route,method,status}; the
served count is the sum over every route except the probe and metrics routes, so that
kubelet probes and our own scrapes do not count as load. The text is parsed by
`prometheus_client.parser` (the library the app exposes its metrics with).
"""

from __future__ import annotations

COUNTER = "articles_http_requests_total"
EXCLUDED_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


class MetricsFormatError(ValueError):
    """The text is not Prometheus exposition format we can read."""


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample of metric `name` in the exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: list[tuple[dict[str, str], float]] = []
    try:
        for family in text_string_to_metric_families(text):
            out.extend((dict(s.labels), float(s.value)) for s in family.samples if s.name == name)
    except ValueError as exc:
        raise MetricsFormatError(f"not Prometheus text: {exc}".splitlines()[0]) from exc
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
