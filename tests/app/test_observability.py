"""Metrics labels and the JSON access log, in-process (single-process metrics mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

from articles.observability import prune_dead_workers
from prometheus_client.parser import text_string_to_metric_families


def _samples(client, name: str) -> dict[tuple, float]:
    text = client.metrics()
    out: dict[tuple, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _key(**labels: str) -> tuple:
    return tuple(sorted(labels.items()))


def test_counter_labels_use_the_matched_rule(client) -> None:
    for _ in range(3):
        client.get("/article/1")
    client.get("/article2")
    client.get("/article/77")
    client.get("/totally/unknown/path")
    client.open("/article/1", method="POST")
    client.open("/", method="BREW")
    client.get("/healthz")
    client.get("/readyz")
    counts = _samples(client, "articles_http_requests_total")
    pod = "pod-under-test"
    assert counts[_key(pod=pod, route="/article/<int:article_id>", method="GET", status="200")] == 3
    assert counts[_key(pod=pod, route="/article<int:article_id>", method="GET", status="200")] == 1
    assert counts[_key(pod=pod, route="/article/<int:article_id>", method="GET", status="404")] == 1
    assert counts[_key(pod=pod, route="<unmatched>", method="GET", status="404")] == 1
    assert counts[_key(pod=pod, route="<unmatched>", method="POST", status="405")] == 1
    assert counts[_key(pod=pod, route="<unmatched>", method="<other>", status="405")] == 1
    assert counts[_key(pod=pod, route="/healthz", method="GET", status="200")] == 1
    assert counts[_key(pod=pod, route="/readyz", method="GET", status="200")] == 1
    # The raw path never becomes a label value.
    assert not any("totally" in str(k) for k in counts)


def test_histogram_and_in_flight_gauge(client) -> None:
    client.get("/article/3")
    hist = _samples(client, "articles_http_request_duration_seconds_count")
    assert hist[_key(pod="pod-under-test", route="/article/<int:article_id>")] == 1
    # The scrape is no app request (metrics port): nothing is in flight between requests.
    assert _samples(client, "articles_http_requests_in_flight") == {_key(pod="pod-under-test"): 0.0}


def test_one_json_line_per_request(client, capfd) -> None:
    capfd.readouterr()
    client.get("/article/2?utm=x")
    client.get("/nope")
    lines = [line for line in capfd.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"ts", "pod", "method", "path", "status", "duration_ms"}
    assert first["pod"] == "pod-under-test"
    assert (first["method"], first["path"], first["status"]) == ("GET", "/article/2", 200)
    assert second["status"] == 404
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert 0 <= first["duration_ms"] < 5000


def test_dead_workers_in_flight_gauge_is_pruned(tmp_path) -> None:
    # A finished process's pid is free (not reused this quickly in practice).
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f"gauge_livesum_{dead}.db"
    live = tmp_path / f"gauge_livesum_{os.getpid()}.db"
    counter = tmp_path / f"counter_{dead}.db"
    for f in (stale, live, counter):
        f.write_bytes(b"")
    prune_dead_workers(str(tmp_path))
    assert not stale.exists()
    assert live.exists() and counter.exists()
