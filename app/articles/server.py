"""Production server: granian (Rust HTTP/1.1, the ASGI app of app.py in worker processes) with a
drain.

Chosen by measurement (app/README.md): gunicorn's pure-Python HTTP layer capped this app
near 3k req/s on 2 cores, granian serves it several times faster with a lower p99.

Shutdown sequence, all inside Kubernetes' default 30 s grace period:
1. SIGTERM: the main process sets the shared drain flag; /readyz answers 503 on every
   worker while all other routes keep serving, so the endpoint leaves the Service first.
2. After DRAIN_SECONDS it stops the workers: each closes its listener, finishes the
   requests in flight (killed only after GRACEFUL_TIMEOUT s) and the process exits.
SIGINT (Ctrl-C) skips the drain.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import MutableMapping
from typing import Any

from granian.constants import Interfaces, Loops
from granian.http import HTTP1Settings
from granian.server import MPServer

from .config import Settings
from .lifecycle import DRAIN
from .logs import server_log_config

# Imported for its side effect: the per-pod view counters' shared memory must exist in this
# process before granian forks the workers, as the drain flag does.
from .podcounter import POD_COUNTERS  # noqa: F401

log = logging.getLogger("articles.server")


def prepare_metrics_dir(env: MutableMapping[str, str]) -> tuple[str, bool]:
    """Point prometheus-client's multiprocess mode at a fresh directory under /tmp.

    Returns the directory and whether we created it (and so remove it at exit). Must run
    before prometheus_client is imported: it picks its value class at import time.
    """
    path = env.get("PROMETHEUS_MULTIPROC_DIR", "")
    if path:
        os.makedirs(path, exist_ok=True)
        # Files of a previous run (same pod, restarted container) would be added again.
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        return path, False
    path = tempfile.mkdtemp(prefix="articles-metrics-")
    env["PROMETHEUS_MULTIPROC_DIR"] = path
    return path, True


class DrainingServer(MPServer):  # type: ignore[misc]
    """granian's multi-process server whose SIGTERM first drains readiness."""

    drain_seconds: float = 5.0
    _draining = False

    def signal_handler_interrupt(self, signum: int | None = None, *args: Any) -> None:
        if signum != signal.SIGTERM or self.drain_seconds <= 0:
            super().signal_handler_interrupt(signum, *args)
            return
        if self._draining:
            return  # a repeated SIGTERM does not shorten the drain
        self._draining = True
        DRAIN.set()
        log.info("SIGTERM: readiness off, stopping in %.1fs", self.drain_seconds)
        timer = threading.Timer(self.drain_seconds, self._end_drain)
        timer.daemon = True
        timer.start()

    def _end_drain(self) -> None:
        log.info("drain over: closing listeners, finishing in-flight requests")
        super().signal_handler_interrupt()


def build_server(settings: Settings) -> DrainingServer:
    server = DrainingServer(
        "articles.app:served_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        websockets=False,
        # uvloop: its event loop served views with the store 5-10 % faster (app/README.md).
        loop=Loops.uvloop,
        workers=settings.workers,
        blocking_threads=1,  # granian's limit for ASGI; the app never blocks a thread
        backlog=2048,
        http1_settings=HTTP1Settings(keep_alive=True),
        log_access=False,  # the app writes its own JSON line per request
        log_dictconfig=server_log_config(),
        respawn_failed_workers=True,
        workers_kill_timeout=settings.graceful_timeout,
    )
    server.drain_seconds = float(settings.drain_seconds)
    return server


def main() -> None:
    settings = Settings.from_env()
    metrics_dir, owned = prepare_metrics_dir(os.environ)
    main_pid = os.getpid()
    from .metrics_port import start as start_metrics  # after the dir: prometheus_client reads it

    metrics = start_metrics(settings, metrics_dir)
    try:
        build_server(settings).serve()
    finally:
        # Forked workers may unwind through here too: only the main process cleans up.
        if os.getpid() == main_pid:
            if metrics is not None:
                metrics.server_close()
            if owned:
                shutil.rmtree(metrics_dir, ignore_errors=True)
