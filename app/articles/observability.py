"""The app's metrics (prometheus-client, multiprocess across the server's workers) and its
JSON line per request. app.py applies both to every response, whatever the route.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

UNMATCHED = "<unmatched>"
# Methods outside this set share one label value so clients cannot blow up cardinality.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
OTHER_METHOD = "<other>"
MAX_LOGGED_PATH = 2048
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

# The store's figures, read at scrape time: article -> views, or None if unreachable.
StoredViews = Callable[[], dict[int, int] | None]


class StoreCollector:
    """Read at scrape time: is the state store reachable, and the counts it holds.

    articles_views_stored is the store's own number: with Redis the same on every pod (the
    consistency check compares it with fortio's count), without it this pod's counter.
    """

    def __init__(self, read: StoredViews, kind: str, pod: str) -> None:
        self.read = read
        self.kind = kind
        self.pod = pod

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        stored = self.read()
        up = GaugeMetricFamily(
            "articles_state_store_up",
            "1 when the state store answered this scrape, else 0.",
            labels=["pod", "store"],
        )
        up.add_metric([self.pod, self.kind], 0.0 if stored is None else 1.0)
        yield up
        views = GaugeMetricFamily(
            "articles_views_stored",
            "Views of each article as the state store holds them (shared store: all pods).",
            labels=["pod", "store", "article"],
        )
        for article_id, value in sorted((stored or {}).items()):
            views.add_metric([self.pod, self.kind, str(article_id)], float(value))
        yield views


class Metrics:
    """The app's metric families; one instance per app, in its own registry."""

    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "articles_http_requests_total",
            "HTTP requests answered, by pod, matched route, method and status.",
            ["pod", "route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "articles_http_request_duration_seconds",
            "Time from request start until the app returned its response.",
            ["pod", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "articles_http_requests_in_flight",
            "Requests being handled right now (summed over the pod's live workers).",
            ["pod"],
            multiprocess_mode="livesum",
            registry=self.registry,
        ).labels(pod)
        self.views = Counter(
            "articles_views_total",
            "Article views this pod tried to count: outcome recorded (the store confirmed it) "
            "or failed (the store was unreachable; the page was served without the count).",
            ["pod", "article", "outcome"],
            registry=self.registry,
        )
        # labels() takes a lock and builds a key every call; the label space is small.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}
        self._views: dict[tuple[int, str], Any] = {}

    def view(self, article_id: int, outcome: str) -> None:
        key = (article_id, outcome)
        counter = self._views.get(key)
        if counter is None:
            counter = self._views[key] = self.views.labels(self.pod, str(article_id), outcome)
        counter.inc()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(
                self.pod, route, method, str(status)
            )
        counter.inc()
        hist = self._histograms.get(route)
        if hist is None:
            hist = self._histograms[route] = self.duration.labels(self.pod, route)
        hist.observe(seconds)

    def exposition(self) -> bytes:
        """This process's figures (the server's metrics port merges every worker's files)."""
        return generate_latest(self.registry)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prune_dead_workers(path: str) -> None:
    """Forget the in-flight gauge of workers that died (the server has no exit hook).

    Counters and histograms of dead workers stay: they are part of the pod's totals.
    """
    for gauge_file in glob.glob(os.path.join(path, "gauge_livesum_*.db")):
        pid = gauge_file.rsplit("_", 1)[1].removesuffix(".db")
        if pid.isdigit() and not _alive(int(pid)):
            multiprocess.mark_process_dead(int(pid), path)


def write_line(line: bytes, fd: int = 1) -> None:
    # One write() per line: lines below PIPE_BUF from several workers never interleave.
    view = memoryview(line)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def log_request(pod: str, method: str, path: str, status: int, duration_ms: float) -> None:
    record = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "pod": pod,
        "method": method[:32],
        "path": path[:MAX_LOGGED_PATH],
        "status": status,
        "duration_ms": round(duration_ms, 3),
    }
    write_line(json.dumps(record, ensure_ascii=True).encode() + b"\n")
