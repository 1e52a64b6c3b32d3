"""Three real app servers sharing one real redis-server behind a real HAProxy, and fortio.

The loopback stand-in for the stack with `stateStore: redis`: every process on 127.0.0.1, in
its own process group, stopped whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from redisproc import RedisServer
from serverproc import Server, free_port, run_server

ROOT = Path(__file__).resolve().parents[2]
FORTIO = ROOT / ".tools" / "bin" / "fortio"


def need_tools() -> None:
    if not FORTIO.is_file():
        pytest.skip("fortio is not built (make tools)")
    if not (shutil.which("haproxy") or os.access("/usr/sbin/haproxy", os.X_OK)):
        pytest.skip("haproxy is not installed (make tools)")


@contextlib.contextmanager
def pods(
    tmp: Path, redis: RedisServer | None, names: Sequence[str], **env: str
) -> Iterator[list[Server]]:
    """The real production server (`python -m articles`, 2 workers) once per pod name."""
    store = {} if redis is None else {"REDIS_URL": redis.url, "REDIS_PASSWORD": redis.password}
    with contextlib.ExitStack() as stack:
        servers = []
        for name in names:
            metrics = tmp / f"metrics-{name}"
            metrics.mkdir()
            servers.append(
                stack.enter_context(
                    run_server(
                        tmp,
                        POD_NAME=name,
                        WEB_CONCURRENCY="2",
                        DRAIN_SECONDS="0",
                        PROMETHEUS_MULTIPROC_DIR=str(metrics),
                        **store,
                        **env,
                    )
                )
            )
        yield servers


@contextlib.contextmanager
def haproxy(servers: Sequence[Server], tmp: Path) -> Iterator[str]:
    """HTTP mode, round robin per request (no stickiness), like kube-proxy without affinity
    but per request, so consecutive requests of one client land on different pods."""
    port = free_port()
    cfg = tmp / f"haproxy-{port}.cfg"
    lines = [
        "global", "  maxconn 2000",
        "defaults", "  mode http", "  timeout connect 2s", "  timeout client 30s",
        "  timeout server 30s", "  option http-server-close",
        "frontend fe", f"  bind 127.0.0.1:{port}", "  default_backend be",
        "backend be", "  balance roundrobin",
        *(f"  server s{i} 127.0.0.1:{s.port}" for i, s in enumerate(servers)),
    ]  # fmt: skip
    cfg.write_text("\n".join(lines) + "\n")
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("haproxy did not come up") from None
                time.sleep(0.05)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def fortio(url: str, *args: str, timeout: float = 90) -> subprocess.Popen[str]:
    """fortio load with the stack Job's flags (keep-alive, JSON on stdout), started now."""
    return subprocess.Popen(
        [str(FORTIO), "load", "-json", "-", "-quiet", "-timeout", "5s", *args, url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def metrics_texts(servers: Sequence[Server]) -> dict[str, str]:
    """Each pod's /metrics, as the verification reads it through the pod proxy."""
    out = {}
    for s in servers:
        _, headers, _ = s.get("/healthz")
        served_by = {k.lower(): v for k, v in headers.items()}["x-served-by"]
        out[served_by] = s.metrics()
    return out
