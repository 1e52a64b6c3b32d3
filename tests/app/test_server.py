"""The real production server process (`python -m articles`) on loopback."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from serverproc import HOST, Server, run_server

pytestmark = pytest.mark.slow

PAGES = ["/", "/article/1", "/article2", "/article/3"]
PROBE_ROUTES = {"/healthz", "/readyz", "/metrics"}


def _app_request_total(server: Server) -> float:
    """What the loadgen verifier sums: every route except the probes and /metrics."""
    total = 0.0
    for family in text_string_to_metric_families(server.metrics()):
        for s in family.samples:
            if s.name == "articles_http_requests_total" and s.labels["route"] not in PROBE_ROUTES:
                assert s.labels["pod"] == "itest-pod"
                total += s.value
    return total


def test_100_concurrent_clients_get_no_errors(tmp_path: Path) -> None:
    clients, per_client = 100, 20
    with run_server(tmp_path, WEB_CONCURRENCY="2") as server:
        start = threading.Barrier(clients, timeout=30)

        def client(i: int) -> list[str]:
            errors: list[str] = []
            conn = http.client.HTTPConnection(HOST, server.port, timeout=20)
            start.wait()
            try:
                for n in range(per_client):
                    path = PAGES[(i + n) % len(PAGES)]
                    try:
                        conn.request("GET", path)
                        resp = conn.getresponse()
                        body = resp.read()
                    except (OSError, http.client.HTTPException) as e:
                        errors.append(f"{path}: {e!r}")
                        conn.close()
                        continue
                    if resp.status != 200 or resp.getheader("X-Served-By") != "itest-pod":
                        errors.append(f"{path}: {resp.status} {resp.getheader('X-Served-By')}")
                    elif b"itest-pod" not in body:
                        errors.append(f"{path}: page does not show the pod")
            finally:
                conn.close()
            return errors

        with ThreadPoolExecutor(max_workers=clients) as pool:
            results = list(pool.map(client, range(clients), timeout=120))
        errors = [e for r in results for e in r]
        assert errors == [], errors[:10]
        assert _app_request_total(server) == clients * per_client

    # One JSON line per request on stdout, nothing else there.
    lines = server.stdout.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    page_records = [r for r in records if r["path"] in PAGES]
    assert len(page_records) == clients * per_client
    assert {r["status"] for r in page_records} == {200}
    assert all(r["pod"] == "itest-pod" and r["method"] == "GET" for r in page_records)


def test_metrics_are_correct_across_workers_and_wiped_on_start(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    env = {
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "DRAIN_SECONDS": "0",
    }
    sent = 0
    with run_server(tmp_path, **env) as server:
        # A new connection per request, from several threads, so both workers answer; in rounds
        # until both have (bounded: a busy machine may start the second worker late).
        def one(i: int) -> int:
            return server.get(PAGES[i % len(PAGES)])[0]

        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(10):
                assert set(pool.map(one, range(sent, sent + 240), timeout=60)) == {200}
                sent += 240
                if len(list(metrics_dir.glob("counter_*.db"))) >= 2:
                    break
        workers_with_counts = list(metrics_dir.glob("counter_*.db"))
        assert len(workers_with_counts) >= 2, f"only one worker served {sent} requests"
        # Each scrape may land on either worker; every one must see the pod's total.
        for _ in range(8):
            assert _app_request_total(server) == sent
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=20) == 0

    # Same directory, new server: the previous run's figures are gone.
    with run_server(tmp_path, **env) as server:
        for i in range(7):
            assert server.get(PAGES[i % len(PAGES)])[0] == 200
        assert _app_request_total(server) == 7


def test_sigterm_drains_then_finishes_in_flight_requests(tmp_path: Path) -> None:
    """kube-proxy's view: readiness fails first, clients move away, in-flight work ends."""
    drain_s = 2.0
    env = {
        "WEB_CONCURRENCY": "2",
        "DRAIN_SECONDS": str(int(drain_s)),
        "ARTICLES_APP_FACTORY": "slowapp:create_app",
    }
    with run_server(tmp_path, **env) as server:
        stop_new = threading.Event()  # set once /readyz says 503: stop sending new requests
        lock = threading.Lock()
        started = completed = 0
        served_while_draining = told_to_reconnect = 0
        failures: list[str] = []
        t_term = t_unready = t_refused = 0.0

        def load_client(i: int) -> None:
            nonlocal started, completed, served_while_draining, told_to_reconnect
            conn = http.client.HTTPConnection(HOST, server.port, timeout=20)
            try:
                for n in range(100_000):  # bounded; stops at readiness or deadline
                    if stop_new.is_set() or time.monotonic() > deadline:
                        return
                    with lock:
                        started += 1
                    try:
                        conn.request("GET", PAGES[(i + n) % len(PAGES)])
                        resp = conn.getresponse()
                        resp.read()
                        ok = resp.status == 200
                        if resp.getheader("Connection") == "close":
                            with lock:
                                told_to_reconnect += 1
                    except (OSError, http.client.HTTPException) as e:
                        ok = False
                        resp = None
                        with lock:
                            failures.append(repr(e))
                    with lock:
                        if ok:
                            completed += 1
                            if t_term:
                                served_while_draining += 1
                        elif resp is not None:
                            failures.append(f"status {resp.status}")
            finally:
                conn.close()

        def readiness_watcher() -> None:
            nonlocal t_unready, t_refused
            while time.monotonic() < deadline:
                try:
                    status = server.get("/readyz", timeout=2)[0]
                except ConnectionRefusedError:
                    t_refused = time.monotonic()
                    stop_new.set()
                    return
                except (OSError, http.client.HTTPException):
                    # A probe caught by the close itself (accepted, then reset): the
                    # kubelet's probe would just fail; only refusal marks the close.
                    time.sleep(0.05)
                    continue
                if status == 503 and not t_unready:
                    t_unready = time.monotonic()
                    stop_new.set()
                time.sleep(0.05)

        slow_results: list[tuple[int, float]] = []

        def slow_request() -> None:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=20)
            try:
                conn.request("GET", "/slow?ms=2500")
                resp = conn.getresponse()
                body = resp.read()
                with lock:
                    slow_results.append(
                        (resp.status if body == b"slow\n" else -1, time.monotonic())
                    )
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    failures.append(f"slow: {e!r}")
            finally:
                conn.close()

        deadline = time.monotonic() + 40
        loaders = [threading.Thread(target=load_client, args=(i,)) for i in range(40)]
        for t in loaders:
            t.start()
        time.sleep(1.0)  # under load
        t_term = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        watcher = threading.Thread(target=readiness_watcher)
        watcher.start()
        # Requests that arrive late in the drain and are still running when it ends.
        time.sleep(drain_s - 1.0)
        slow = [threading.Thread(target=slow_request) for _ in range(4)]
        for t in slow:
            t.start()
        for t in [*loaders, watcher, *slow]:
            t.join(timeout=45)
        exit_code = server.proc.wait(timeout=30)
        t_exit = time.monotonic()

    assert failures == [], failures[:10]
    assert started == completed and completed > 100
    assert t_unready and t_unready - t_term < 1.0, "readiness must fail promptly on SIGTERM"
    assert served_while_draining > 0, "pages must keep being served during the drain"
    # Answers during the drain close kept-alive connections (clients reconnect elsewhere).
    assert 0 < told_to_reconnect <= served_while_draining
    assert t_refused - t_term >= drain_s - 0.1, "listener closed before the drain ended"
    timeline = {
        "unready": t_unready - t_term,
        "refused": t_refused - t_term,
        "slow_done": [round(done - t_term, 3) for _, done in slow_results],
    }
    assert len(slow_results) == 4 and all(status == 200 for status, _ in slow_results), timeline
    # They were in flight when the listener closed, and still completed.
    assert all(done > t_refused for _, done in slow_results), timeline
    assert exit_code == 0
    assert t_exit - t_term < 30, "must exit inside the default termination grace period"
    assert "drain over" in server.stderr.read_text()
    assert not os.path.exists(f"/proc/{server.proc.pid}")


def test_metrics_are_served_on_their_own_port_only(tmp_path: Path) -> None:
    """The app port is what the LoadBalancer exposes: it answers 404 for /metrics, while the
    metrics port (in no Service) serves the pod's figures and nothing else."""
    with run_server(tmp_path, WEB_CONCURRENCY="2", DRAIN_SECONDS="0") as server:
        assert server.get("/article/1")[0] == 200
        status, _, body = server.get("/metrics")
        assert status == 404
        assert b"articles_http_requests_total" not in body
        text = server.metrics()
        assert 'route="/article/<int:article_id>"' in text
        assert 'articles_state_store_up{pod="itest-pod",store="pod"} 1.0' in text
        assert server.get("/", port=server.metrics_port)[0] == 404
        assert server.get("/article/1", port=server.metrics_port)[0] == 404


def test_a_metrics_port_equal_to_the_app_port_is_refused_in_one_line() -> None:
    from articles.config import Settings

    with pytest.raises(ValueError, match=r"^METRICS_PORT must differ from PORT \(8080\)$"):
        Settings.from_env({"PORT": "8080", "METRICS_PORT": "8080"})


def test_a_taken_metrics_port_stops_the_server_with_one_line(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys

    from serverproc import APP_DIR, free_port

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        env = {
            **os.environ,
            "HOST": HOST,
            "PORT": str(free_port()),
            "METRICS_PORT": str(taken.getsockname()[1]),
            "PYTHONPATH": str(APP_DIR),
        }
        proc = subprocess.run(
            [sys.executable, "-m", "articles"],
            cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("articles: cannot serve /metrics on "), lines
