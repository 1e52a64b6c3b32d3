"""Production server: gunicorn (gthread workers) with a readiness drain on SIGTERM.

Shutdown sequence, all inside Kubernetes' default 30 s grace period:
1. SIGTERM: the master sets the shared drain flag; /readyz answers 503 on every worker
   while all other routes keep serving, so the endpoint leaves the Service first.
2. After DRAIN_SECONDS the master does gunicorn's graceful stop: listeners close, workers
   finish their in-flight requests (at most GRACEFUL_TIMEOUT s) and the process exits.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from .config import Settings
from .lifecycle import DRAIN


def prepare_metrics_dir(env: dict[str, str] | os._Environ[str]) -> tuple[str, bool]:
    """Point prometheus-client's multiprocess mode at a fresh directory under /tmp.

    Returns the directory and whether we created it (and so should remove it at exit).
    Must run before prometheus_client is imported: it picks its value class at import.
    """
    path = env.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path:
        os.makedirs(path, exist_ok=True)
        # Files left by a previous run (same pod, restarted container) would be re-added.
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return path, False
    path = tempfile.mkdtemp(prefix="articles-metrics-")
    env["PROMETHEUS_MULTIPROC_DIR"] = path
    return path, True


class DrainingArbiter(Arbiter):
    """gunicorn's master, but SIGTERM first drains readiness for drain_seconds."""

    drain_seconds: float = 5.0
    _drain_deadline: float | None = None

    def handle_term(self) -> None:
        if self._drain_deadline is None:
            DRAIN.set()
            self._drain_deadline = time.monotonic() + self.drain_seconds
            self.log.info("SIGTERM: readiness off, closing listeners in %.1fs", self.drain_seconds)
        # A second SIGTERM does not shorten the drain; SIGINT/SIGQUIT still stop at once.

    def wait_for_signals(self, timeout: float = 1.0) -> list[int]:
        if self._drain_deadline is not None:
            timeout = max(0.0, min(timeout, self._drain_deadline - time.monotonic()))
        return super().wait_for_signals(timeout=timeout)

    def manage_workers(self) -> None:
        if self._drain_deadline is not None and time.monotonic() >= self._drain_deadline:
            self.log.info("drain over: closing listeners, finishing in-flight requests")
            raise StopIteration  # run() turns this into halt(): gunicorn's graceful stop
        super().manage_workers()


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    # Drop the dead worker's in-flight gauge; its counters stay in the pod's totals.
    multiprocess.mark_process_dead(worker.pid)


class ArticlesServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        s = self.settings
        options: dict[str, Any] = {
            "bind": [f"{s.host}:{s.port}"],
            "workers": s.workers,
            "worker_class": "gthread",
            "threads": s.threads,
            "keepalive": 5,
            "graceful_timeout": s.graceful_timeout,
            "timeout": 30,
            "backlog": 2048,
            "accesslog": None,  # the app writes its own JSON line per request
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "articles",
            "control_socket_disable": True,  # no unix socket on a read-only filesystem
            "worker_tmp_dir": tempfile.gettempdir(),
            "child_exit": _child_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from . import create_app

        return create_app({"SETTINGS": self.settings})

    def run(self) -> None:
        arbiter = DrainingArbiter(self)
        arbiter.drain_seconds = float(self.settings.drain_seconds)
        arbiter.run()


def main() -> None:
    settings = Settings.from_env()
    metrics_dir, owned = prepare_metrics_dir(os.environ)
    master_pid = os.getpid()
    try:
        ArticlesServer(settings).run()
    finally:
        # Forked workers unwind through here too (gunicorn exits them with sys.exit).
        if owned and os.getpid() == master_pid:
            shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
