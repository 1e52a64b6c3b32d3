"""End to end on loopback: real app server processes behind a real HAProxy (TCP mode), and
`python -m loadgen verify --url` run as the stack would run it, in a fresh process."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from lg_procs import RANDOM_WEIGHT, App, app_servers, free_port, haproxy, run_cli

from loadgen import prom

pytestmark = pytest.mark.slow
PODS = ("pod-a", "pod-b", "pod-c")


@pytest.fixture(scope="module")
def apps() -> Iterator[list[App]]:
    with app_servers(PODS) as started:
        yield started


def _served(apps: list[App]) -> dict[str, float]:
    out = {}
    for app in apps:
        with urllib.request.urlopen(app.backend["9090"] + "/metrics", timeout=5) as resp:
            out[app.name] = prom.served_total(resp.read().decode())
    return out


def _verify(url: str, *extra: str) -> tuple[int, dict, str]:
    proc = run_cli(["verify", "--url", url + "/article1", "--json", *extra])
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_even_roundrobin_is_balanced_and_counts_match_the_apps_metrics(apps: list[App]) -> None:
    before = _served(apps)
    with haproxy([(a.name, a.port, 1) for a in apps]) as url:
        code, rep, err = _verify(url, "--requests", "600", "--no-keepalive", "--expect-pods", "3")
    assert code == 0, err
    assert rep["verdict"] == "balanced"
    assert err.startswith("loadgen verify: balanced:") and err.count("\n") == 1
    counted = {p["name"]: p["requests"] for p in rep["pods"]}
    assert sum(counted.values()) == 600 and rep["errors"] == 0
    # X-Served-By counts and the apps' own counters agree (probe request included).
    after = _served(apps)
    delta = {a.name: after[a.name] - before[a.name] for a in apps}
    assert sum(delta.values()) == 601
    for name, n in counted.items():
        assert delta[name] - n in (0, 1)
    for key in ("p50", "p90", "p99"):
        assert rep["latency_ms"][key] is not None
    assert rep["distribution"]["unit"] == "request"
    assert rep["distribution"]["p_value"] > 0.5  # roundrobin is as even as it gets


def test_weights_3_1_1_are_imbalanced(apps: list[App]) -> None:
    weights = (3, 1, 1)
    with haproxy([(a.name, a.port, w) for a, w in zip(apps, weights, strict=True)]) as url:
        code, rep, err = _verify(url, "--requests", "600", "--no-keepalive", "--expect-pods", "3")
    assert code == 1, err
    assert rep["verdict"] == "imbalanced"
    shares = {p["name"]: p["share"] for p in rep["pods"]}
    assert shares["pod-a"] == pytest.approx(0.6, abs=0.02)
    assert rep["distribution"]["p_value"] < rep["distribution"]["alpha"]


def test_report_only_exits_zero_on_imbalance(apps: list[App]) -> None:
    weights = (3, 1, 1)
    with haproxy([(a.name, a.port, w) for a, w in zip(apps, weights, strict=True)]) as url:
        code, rep, err = _verify(url, "--requests", "300", "--report-only")
    assert code == 0, err
    assert rep["verdict"] == "imbalanced"


def test_absent_backend_with_expect_3_is_imbalanced(apps: list[App]) -> None:
    dead = free_port()  # nothing listens here: the third "pod" is absent
    servers = [(apps[0].name, apps[0].port, 1), (apps[1].name, apps[1].port, 1), ("gone", dead, 1)]
    with haproxy(servers, check=True) as url:
        code, rep, err = _verify(url, "--requests", "300", "--expect-pods", "3")
    assert code == 1, err
    assert "got no traffic" in rep["reason"]
    assert rep["errors"] == 0  # HAProxy routed around it: only the verdict notices


def test_random_keepalive_100_connections_is_not_flagged(apps: list[App]) -> None:
    with haproxy([(a.name, a.port, RANDOM_WEIGHT) for a in apps], balance="random(1)") as url:
        code, rep, err = _verify(
            url, "--requests", "500", "--concurrency", "100", "--keepalive", "--expect-pods", "3"
        )
    assert code == 0, err
    dist = rep["distribution"]
    assert dist["unit"] == "connection"
    assert dist["units_total"] == 100
    assert rep["load"]["connections"] == 100


def test_default_size_run_finishes_within_20s(apps: list[App]) -> None:
    with haproxy([(a.name, a.port, 1) for a in apps]) as url:
        start = time.monotonic()
        proc = run_cli(["verify", "--url", url + "/article1"])
        elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert "total: 1000 requests" in proc.stdout
    assert elapsed < 20, elapsed


def test_unreachable_url_exits_2_fast() -> None:
    start = time.monotonic()
    proc = run_cli(["verify", "--url", f"http://127.0.0.1:{free_port()}/article1"])
    assert proc.returncode == 2
    assert proc.stderr.startswith("loadgen verify: could not verify:")
    assert "unreachable" in proc.stderr and proc.stderr.count("\n") == 1
    assert time.monotonic() - start < 10


def test_silent_server_exits_2_within_the_timeout() -> None:
    """A listener that accepts and never answers: every bound must hold."""
    stop = threading.Event()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        port = listener.getsockname()[1]
        held: list[socket.socket] = []

        def accept_and_hold() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                    held.append(conn)
                except OSError:
                    continue

        t = threading.Thread(target=accept_and_hold, daemon=True)
        t.start()
        try:
            start = time.monotonic()
            proc = run_cli(
                ["verify", "--url", f"http://127.0.0.1:{port}/", "--timeout", "3"], timeout=30
            )
            elapsed = time.monotonic() - start
        finally:
            stop.set()
            t.join(2)
            for c in held:
                c.close()
    assert proc.returncode == 2, proc.stderr
    assert "timed out" in proc.stderr
    assert elapsed < 3 + 5  # the timeout plus interpreter start-up


def test_l7_balancing_on_keepalive_connections_switches_to_requests(apps: list[App]) -> None:
    """HTTP mode balances each request: responses on one connection come from several pods,
    so connections are not the balanced unit and the verdict tests requests."""
    with haproxy([(a.name, a.port, 1) for a in apps], mode="http") as url:
        code, rep, err = _verify(url, "--requests", "300", "--concurrency", "5", "--keepalive")
    assert code == 0, err
    assert rep["distribution"]["unit"] == "request"
    assert any("L7 balancing" in n for n in rep["notes"])


def test_too_many_errors_is_could_not_verify(apps: list[App]) -> None:
    servers = [(apps[0].name, apps[0].port, 1), ("dead", free_port(), 1)]
    with haproxy(servers, redispatch=False) as url:
        code, rep, err = _verify(url, "--requests", "200")
    assert code == 2, err
    assert rep["verdict"] == "unverifiable" and "too many errors" in rep["reason"]
    assert 50 <= rep["errors"] <= 150
