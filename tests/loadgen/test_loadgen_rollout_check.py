"""`rollout-check`'s load and its failure report, against real app processes on loopback: a
backend that goes away mid-run is reported request by request (time, reason, the pod before
it), and the exit code follows --max-failures. The Deployment-watching half runs against
the real cluster (cluster/e2e/rollout.py)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from lg_procs import ROOT, app_servers, free_port, stop

from loadgen import http_load
from loadgen.rollout import endpoint_states, rollout_done
from loadgen.steady import reason_of

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loadgen", "rollout-check", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_steady_load_without_failures_exits_0() -> None:
    with app_servers(["r-a"]) as apps:
        proc = cli("--url", apps[0].url + "/article1", "--duration", "2", "--settle", "0")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "loadgen rollout-check: ok: steady load: 0 of" in err
    assert "served by: r-a" in out


def test_a_backend_going_away_is_reported_by_time_and_reason() -> None:
    """The app is stopped 1.5 s into a 4 s run: every later request is refused, and the
    report says when, why, and which pod the same client reached before."""
    with app_servers(["r-gone"]) as apps:
        proc = cli(
            "--url", apps[0].url + "/article1", "--duration", "4", "--settle", "0",
            "--clients", "2", "--json",
        )  # fmt: skip
        time.sleep(1.5)
        killed_after = time.monotonic()
        stop(apps[0].proc)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    rep = json.loads(out)
    tr = rep["traffic"]
    assert rep["verdict"] == "failures"
    assert tr["failed"] > 0 and tr["total"] > tr["failed"]
    assert set(tr["by_reason"]) <= {"refused", "reset"} and tr["by_reason"].get("refused")
    first = tr["failures"][0]
    # The failures start after the stop (the CLI's own start-up makes its clock later).
    assert 0.5 < first["t"] < 4 and first["previous_pod"] == "r-gone" and first["pod"] is None
    assert time.monotonic() - killed_after < 30
    assert sum(s.get("refused", 0) for s in tr["seconds_with_failures"]) == tr["by_reason"].get(
        "refused"
    )
    assert err.startswith("loadgen rollout-check: failures: steady load: ")
    assert f"{tr['by_reason']['refused']} refused" in err


def test_max_failures_tolerates_a_known_count() -> None:
    port = free_port()
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(64)
    stopping = threading.Event()

    def answer_then_close() -> None:
        # Answers the probe once, then resets every connection (SO_LINGER 0).
        first = True
        server.settimeout(0.2)
        while not stopping.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            if first:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                first = False
            else:
                conn.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
            conn.close()

    t = threading.Thread(target=answer_then_close, daemon=True)
    t.start()
    try:
        proc = cli(
            "--url", f"http://127.0.0.1:{port}/", "--duration", "1", "--settle", "0",
            "--clients", "1", "--max-failures", "1000000", "--json",
        )  # fmt: skip
        out, err = proc.communicate(timeout=30)
    finally:
        stopping.set()
        t.join(2)
        server.close()
    assert proc.returncode == 0, err
    rep = json.loads(out)
    assert rep["traffic"]["failed"] > 0 and "reset" in rep["traffic"]["by_reason"]


def test_restart_without_namespace_is_one_line_error() -> None:
    proc = cli("--url", "http://127.0.0.1:9/", "--restart")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.strip() == "loadgen rollout-check: error: --restart needs --namespace"


def test_reasons() -> None:
    def o(status: int | None = None, exc: BaseException | None = None) -> http_load.Outcome:
        return http_load.Outcome(0.0, 0.0, 0, None, status, exc)

    assert reason_of(o(200)) is None
    assert reason_of(o(503)) == "http-503"
    assert reason_of(o(exc=ConnectionRefusedError(111, "x"))) == "refused"
    assert reason_of(o(exc=ConnectionResetError(104, "x"))) == "reset"
    assert reason_of(o(exc=TimeoutError("timed out"))) == "timeout"


def test_rollout_done_and_endpoint_states() -> None:
    dep = {
        "metadata": {"generation": 4},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 4, "updatedReplicas": 3, "replicas": 4,
                   "availableReplicas": 3},
    }  # fmt: skip
    assert not rollout_done(dep)  # an old pod is still counted
    dep["status"]["replicas"] = 3
    assert rollout_done(dep)
    dep["metadata"]["generation"] = 5
    assert not rollout_done(dep)  # the controller has not seen the change yet
    slices = [
        {"endpoints": [
            {"addresses": ["10.244.0.5"], "conditions": {"ready": True}},
            {"addresses": ["10.244.0.6"],
             "conditions": {"ready": False, "serving": True, "terminating": True}},
            {"addresses": ["10.244.0.7"], "conditions": {"ready": False}},
        ]}
    ]  # fmt: skip
    assert endpoint_states(slices) == {
        "10.244.0.5": "ready",
        "10.244.0.6": "serving-terminating",
        "10.244.0.7": "not-ready",
    }
