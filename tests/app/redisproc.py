"""A real redis-server (Debian's package) on a free loopback port, owned by one test.

Never the system service: its own port, its own data directory, its own process group. The
append-only file (fsync every second) lets a killed server come back with every increment it
had acknowledged, as the Kubernetes component runs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HOST = "127.0.0.1"
PASSWORD = "test-only-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def redis_binary() -> str:
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(path, os.X_OK):
        pytest.skip("redis-server is not installed (scripts/install-tools.sh installs it)")
    return path


@dataclass
class RedisServer:
    port: int
    data_dir: Path
    password: str = PASSWORD
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.data_dir / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        args = [
            redis_binary(),
            "--port", str(self.port),
            "--bind", HOST,
            "--dir", str(self.data_dir),
            "--requirepass", self.password,
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.log),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.log.read_text()[-2000:]}")
            if self.ping():
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer within 15 s")

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis(host=HOST, port=self.port, password=self.password, socket_timeout=2.0)

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client().ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the append-only file holds survives."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[RedisServer]:
    data = tmp / f"redis-{os.getpid()}-{time.monotonic_ns()}"
    data.mkdir()
    server = RedisServer(free_port(), data)
    server.start()
    try:
        yield server
    finally:
        server.kill()
