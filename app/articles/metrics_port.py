"""/metrics on a port of its own (METRICS_PORT), served by the server's main process.

Why not on the app port: that port is behind the LoadBalancer, so anyone who can reach the
service would read every pod's counters, latency histograms and store figures. The metrics port
is in no Service; Prometheus and the verification (through the API server's pod proxy) reach it
by pod IP, and the stack's NetworkPolicy admits only them.

The main process answers from the workers' multiprocess files (every worker's totals, dead
workers' counters included) plus the store's figures, read at scrape time through the same
store class the workers use, on an event loop of its own. It imports prometheus_client only
once the server has set PROMETHEUS_MULTIPROC_DIR (server.py).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from .config import Settings

if TYPE_CHECKING:
    from .store import Store

METRICS_PATH = "/metrics"


class _WorkerFiles:
    """The workers' metric files, with the in-flight gauge of dead workers dropped first."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Any]:
        from prometheus_client import multiprocess

        from .observability import prune_dead_workers

        prune_dead_workers(self.path)
        return multiprocess.MultiProcessCollector(None, path=self.path).collect()


class _StoreReader:
    """The store's figures from a scrape's thread: its calls run on a loop thread of their own,
    bounded by the store's timeout (the Redis client stays connected between scrapes)."""

    def __init__(self, store: Store, bound_seconds: float) -> None:
        self.store = store
        self.bound = bound_seconds
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="metrics-store", daemon=True).start()

    def __call__(self) -> dict[int, int] | None:
        future = asyncio.run_coroutine_threadsafe(self.store.stored_views(), self.loop)
        try:
            return future.result(timeout=self.bound)
        except TimeoutError:
            future.cancel()
            return None


def _only_metrics_path(app: Callable[..., Any]) -> Callable[..., Any]:
    """404 for every path but /metrics: the port answers one question."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found\n"]
        return app(environ, start_response)

    return wsgi


def start(settings: Settings, multiproc_dir: str) -> WSGIServer | None:
    """Serve /metrics on settings.metrics_port (0 = not at all) in a daemon thread."""
    if settings.metrics_port == 0:
        return None
    from wsgiref.simple_server import make_server

    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    from .app import make_store
    from .content import load_articles
    from .observability import StoreCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_WorkerFiles(multiproc_dir))  # type: ignore[arg-type]
    # The main process's own store client (Redis: connects on the first scrape, bounded by
    # REDIS_TIMEOUT_MS); the per-pod counters are shared memory made before the fork.
    store = make_store(settings, load_articles())
    read = _StoreReader(store, 2 * settings.store_timeout_ms / 1000 + 0.5)
    registry.register(StoreCollector(read, store.kind, settings.pod_name))  # type: ignore[arg-type]
    try:
        httpd = make_server(
            settings.host,
            settings.metrics_port,
            _only_metrics_path(make_wsgi_app(registry)),
            ThreadingWSGIServer,
            handler_class=_SilentHandler,
        )
    except OSError as exc:  # one line, not a traceback: the port is taken or not allowed
        raise SystemExit(
            f"articles: cannot serve /metrics on {settings.host}:{settings.metrics_port}: "
            f"{exc.strerror or exc}"
        ) from None
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd
