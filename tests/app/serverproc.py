"""Start and always stop the real production server (`python -m articles`) on loopback."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[2] / "app"
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path
    metrics_port: int = 0

    def get(
        self, path: str, timeout: float = 5.0, port: int = 0
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(HOST, port or self.port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def metrics(self, timeout: float = 5.0) -> str:
        """The pod's /metrics from its metrics port (what Prometheus and the pod proxy read)."""
        status, _, body = self.get("/metrics", timeout, port=self.metrics_port)
        assert status == 200, (status, body[:200])
        return body.decode()

    def logs(self) -> str:
        return self.stderr.read_text(errors="replace")[-4000:]


def _wait_healthy(server: Server, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"server exited early ({server.proc.returncode}):\n{server.logs()}")
        with contextlib.suppress(OSError):
            if server.get("/healthz", timeout=1.0)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"server not healthy within {deadline_s}s:\n{server.logs()}")


@contextlib.contextmanager
def run_server(tmp: Path, **env: str) -> Iterator[Server]:
    port, metrics_port = free_port(), free_port()
    while metrics_port == port:
        metrics_port = free_port()
    full_env = {
        **os.environ,
        "HOST": HOST,
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "POD_NAME": "itest-pod",
        "PYTHONPATH": os.pathsep.join([str(APP_DIR), str(HERE)]),
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    stdout, stderr = tmp / f"server-{port}.out", tmp / f"server-{port}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "articles"],
            cwd=APP_DIR,
            env=full_env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(proc, port, stdout, stderr, int(full_env["METRICS_PORT"]))
    try:
        _wait_healthy(server, 30.0)
        yield server
    finally:
        if proc.poll() is None:
            # Its own session: the group is the server and its workers, nothing else.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
