"""Real processes for the loopback tests: app servers, HAProxy, fortio.

Everything binds 127.0.0.1 on a free port, runs in its own process group and is stopped
(SIGTERM, then SIGKILL of that group) by the context managers, whatever the test did.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_DIR = ROOT / "app"
REAL_APP = (APP_DIR / "articles" / "__main__.py").is_file()
STANDIN = Path(__file__).with_name("standin_app.py")
FORTIO = ROOT / ".tools" / "bin" / "fortio"
# HAProxy's `balance random` draws a point on a consistent-hash ring whose resolution grows
# with the weights: at weight 1 three servers got about 34/28/38%, at 256 about 35/33/32%
# (6,000 requests each). Equal high weights make "random" close to uniform random.
RANDOM_WEIGHT = 256


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                resp.read()
                return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout}s: {last}")


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM our child's process group, SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # gunicorn workers share the group; make sure none outlives its master.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@dataclass
class App:
    name: str
    port: int
    proc: subprocess.Popen
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def backend(self) -> dict[str, str]:
        """The pod's container ports as the fake API server's pod proxy maps them."""
        return {"8080": self.url, "9090": f"http://127.0.0.1:{self.metrics_port}"}


def _app_command() -> tuple[list[str], Path]:
    if REAL_APP:
        return [sys.executable, "-m", "articles"], APP_DIR
    return [sys.executable, str(STANDIN)], STANDIN.parent


@contextlib.contextmanager
def app_servers(names: Sequence[str]) -> Iterator[list[App]]:
    """The real article app (python -m articles), one process per pod name."""
    apps: list[App] = []
    cmd, cwd = _app_command()
    tmp = tempfile.TemporaryDirectory(prefix="lg-apps-")
    try:
        for name in names:
            port, metrics_port = free_port(), free_port()
            env = dict(os.environ)
            env.update(
                HOST="127.0.0.1",
                PORT=str(port),
                METRICS_PORT=str(metrics_port),
                POD_NAME=name,
                WEB_CONCURRENCY="1",
                THREADS="16",
                DRAIN_SECONDS="0",
                GRACEFUL_TIMEOUT="2",
            )
            # Each "pod" gets its own metrics directory, as each container has its own /tmp.
            metrics_dir = Path(tmp.name) / name
            metrics_dir.mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
            proc = subprocess.Popen(
                cmd,
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            apps.append(App(name, port, proc, metrics_port))
        for app in apps:
            wait_http(app.url + "/healthz", proc=app.proc)
        yield apps
    finally:
        for app in apps:
            stop(app.proc)
        tmp.cleanup()


def haproxy_config(
    port: int,
    servers: Sequence[tuple[str, int, int]],
    balance: str = "roundrobin",
    check: bool = False,
    redispatch: bool = True,
    mode: str = "tcp",
) -> str:
    """HAProxy (TCP mode unless told): one frontend on loopback, servers as (name, port,
    weight)."""
    check_opt = " check inter 100ms fall 1 rise 1" if check else ""
    lines = [
        "global",
        "  maxconn 4000",
        "defaults",
        f"  mode {mode}",
        "  timeout connect 2s",
        "  timeout client 30s",
        "  timeout server 30s",
        *(["  retries 2", "  option redispatch 1"] if redispatch else ["  retries 0"]),
        "frontend fe",
        f"  bind 127.0.0.1:{port}",
        "  default_backend be",
        "backend be",
        f"  balance {balance}",
    ]
    lines += [f"  server {n} 127.0.0.1:{p} weight {w}{check_opt}" for n, p, w in servers]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def haproxy(
    servers: Sequence[tuple[str, int, int]],
    balance: str = "roundrobin",
    check: bool = False,
    redispatch: bool = True,
    mode: str = "tcp",
) -> Iterator[str]:
    """Start HAProxy in the foreground (-db) with a config written for this test; yields
    its base URL."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lg-haproxy-") as tmp:
        cfg = Path(tmp) / "haproxy.cfg"
        cfg.write_text(haproxy_config(port, servers, balance, check, redispatch, mode))
        proc = subprocess.Popen(
            [binary, "-db", "-f", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            wait_port(port)
            if check:
                time.sleep(0.5)  # let the health checks mark absent servers down
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)
            if proc.stderr is not None:
                proc.stderr.close()


def run_cli(
    args: Sequence[str],
    timeout: float = 60.0,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m loadgen ...` exactly as the stack runs it (a fresh process)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "loadgen", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run_fortio(
    url: str, *, connections: int = 30, requests: int = 600
) -> subprocess.CompletedProcess[str]:
    """The real fortio binary, flags as the stack's Job passes them; stdout and stderr merged,
    as they are in a pod's log."""
    return subprocess.run(
        [
            str(FORTIO),
            "load",
            "-json",
            "-",
            "-quiet",
            "-c",
            str(connections),
            "-n",
            str(requests),
            "-qps",
            "0",
            "-timeout",
            "5s",
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
    )
