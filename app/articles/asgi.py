"""The production entry point (`articles.asgi:create_asgi_app`): the article pages on each
worker's event loop, everything else through the Flask app.

Why ASGI: with the shared store every article view waits for a Redis round trip. A threaded
WSGI server needs dozens of threads per worker to keep the cores busy meanwhile, and those
threads spent the time handing the GIL to each other (app/README.md has the figures). Here a
waiting view is a suspended coroutine. GET/HEAD of the pre-rendered pages (the index and the
article pages, the paths fastpath.py serves under WSGI) are answered by this layer, with the same
metrics, JSON log line, X-Served-By and drain header as ObservabilityMiddleware gives the rest;
every other request goes to the Flask app unchanged, run in a thread pool by a2wsgi.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware
from flask import Flask

from .config import Settings
from .fastpath import CachedPage
from .observability import Metrics, log_request
from .redis_async import AsyncRedisStore
from .store import AsyncStore, NonBlocking, Store
from .visits import AsyncArticlePages

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _latin1(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


class ArticlesASGI:
    def __init__(self, app: Flask, store: AsyncStore, threads: int) -> None:
        settings: Settings = app.config["SETTINGS"]
        self.flask = WSGIMiddleware(app, workers=threads)
        self.pages: dict[str, CachedPage] = app.extensions["articles.cached_pages"]
        self.metrics: Metrics = app.extensions["articles.metrics"]
        self.store = store
        self.articles = AsyncArticlePages(
            app.extensions["articles.pages"].articles,
            app.config["ARTICLES"],
            store,
            self.metrics,
            settings.pod_name,
        )
        self.pod = settings.pod_name
        self.drain = app.config["DRAIN_FLAG"]
        self.served_by = (b"x-served-by", settings.pod_name.encode("latin-1"))
        # The headers of the pages without a live part (the index) never change: encoded once.
        self.static_headers = {
            path: _latin1(p.headers) for path, p in self.pages.items() if p.article_id is None
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "GET" or method == "HEAD":
                page = self.pages.get(scope["path"])
                if page is not None:
                    await self._page(page, method, scope, send)
                    return
            await self.flask(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _page(self, page: CachedPage, method: str, scope: Scope, send: Send) -> None:
        start = time.perf_counter()
        status = 500  # what the server answers if this raises before the response starts
        self.metrics.in_flight.inc()
        try:
            if page.article_id is None:
                headers, body = list(self.static_headers[scope["path"]]), page.body[0]
            else:
                cookie = ""
                for name, value in scope["headers"]:
                    if name == b"cookie":
                        cookie = value.decode("latin-1")
                        break
                raw, body = await self.articles.respond(page.article_id, method, cookie)
                headers = _latin1(raw)
            headers.append(self.served_by)
            if self.drain.is_set():
                # As ObservabilityMiddleware: kept-alive clients reconnect to pods that stay.
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            status = 200
            await send({"type": "http.response.body", "body": body if method == "GET" else b""})
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            self.metrics.observe(page.route, method, status, elapsed)
            log_request(self.pod, method, scope["path"], status, elapsed * 1000)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.store.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.store.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def async_store(app: Flask) -> AsyncStore:
    """The asyncio counterpart of the Flask app's store: Redis over redis.asyncio with the same
    settings, or the same per-pod counters (which never wait). A factory may set its own in
    app.extensions["articles.async_store"] (the tests' deliberately wrong store does)."""
    if "articles.async_store" in app.extensions:
        return app.extensions["articles.async_store"]  # type: ignore[no-any-return]
    store: Store = app.extensions["articles.store"]
    if store.kind != "redis":
        return NonBlocking(store)
    settings: Settings = app.config["SETTINGS"]
    return AsyncRedisStore(settings.store_url, settings.store_password, settings.store_timeout_ms)


def load_factory(target: str) -> Callable[[], Flask]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def create_asgi_app() -> ArticlesASGI:
    # Overridable so the shutdown tests can wrap the app with a deliberately slow route.
    app = load_factory(os.environ.get("ARTICLES_WSGI_FACTORY", "articles:create_app"))()
    settings: Settings = app.config["SETTINGS"]
    return ArticlesASGI(app, async_store(app), settings.threads)
