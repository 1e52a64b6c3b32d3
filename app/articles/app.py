"""The article service as one ASGI app: every route, its page, headers, metrics and log line.

One serving path on each worker's event loop (server.py runs it under granian): a page that
waits on Redis is a suspended coroutine, not a held thread (app/README.md has the figures that
chose this over Flask in threads). Routing is a dict of the exact paths plus one pattern for
unknown article ids, answering as the Flask app did: `/article/<id>` and the original site's
`/article<id>`, 404 page for unknown paths and ids, 405 with Allow for other methods,
OPTIONS answered, `//` merged.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, NamedTuple

from .config import Settings
from .content import Article, load_articles
from .lifecycle import DRAIN, DrainFlag
from .observability import KNOWN_METHODS, OTHER_METHOD, UNMATCHED, Metrics, log_request
from .pages import Pages
from .podcounter import POD_COUNTERS
from .store import PodStore, Store
from .visits import HTML_BYTES, ArticlePages

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# The metrics' route label of each route: the rule string (not the raw path) keeps it bounded.
INDEX_RULE, ARTICLE_RULE, LEGACY_RULE = "/", "/article/<int:article_id>", "/article<int:article_id>"
_ARTICLE_PATH = re.compile(r"/article(/?)([0-9]+)")
_SLASHES = re.compile(r"/{2,}")
MAX_ID_DIGITS = 18  # longer ids are no article (and int() refuses over 4300 digits)
TEXT = b"text/plain; charset=utf-8"
log = logging.getLogger("articles.app")


class Route(NamedTuple):
    rule: str  # the metrics' route label
    kind: str  # index, article, healthz or readyz
    article_id: int = 0


def _static(body: bytes, content_type: bytes = HTML_BYTES, *extra: tuple[bytes, bytes]) -> Headers:
    """Content-Type, any extra header, Content-Length: the order Flask gave them in."""
    return [(b"content-type", content_type), *extra, (b"content-length", str(len(body)).encode())]


def make_store(settings: Settings, article_ids: Mapping[int, Any]) -> Store:
    """Redis when REDIS_URL is set (no connection yet: the app starts while Redis is down)."""
    if settings.store_url:
        from .redis_store import RedisStore

        return RedisStore(
            settings.store_url, settings.store_password, settings.store_timeout_ms, article_ids
        )
    return PodStore(POD_COUNTERS, article_ids)


class ArticlesApp:
    ALLOW = (b"allow", b"GET, HEAD, OPTIONS")

    def __init__(
        self, settings: Settings, articles: Mapping[int, Article], store: Store, drain: DrainFlag
    ) -> None:
        self.settings = settings
        self.store = store
        self.drain = drain
        self.pod = settings.pod_name
        self.pages = Pages.render(settings, articles)
        self.metrics = Metrics(settings.pod_name)
        self.articles = ArticlePages(
            self.pages.articles, articles, store, self.metrics, settings.pod_name
        )
        self.served_by = (b"x-served-by", settings.pod_name.encode("latin-1"))
        self.routes: dict[str, Route] = {
            "/": Route(INDEX_RULE, "index"),
            "/healthz": Route("/healthz", "healthz"),
            "/readyz": Route("/readyz", "readyz"),
        }
        for aid in articles:
            self.routes[f"/article/{aid}"] = Route(ARTICLE_RULE, "article", aid)
            self.routes[f"/article{aid}"] = Route(LEGACY_RULE, "article", aid)
        self.index_headers = _static(self.pages.index)
        self.not_found_headers = _static(self.pages.not_found)
        self.not_allowed_headers = _static(self.pages.not_allowed, HTML_BYTES, self.ALLOW)

    def match(self, path: str) -> Route | None:
        route = self.routes.get(path)
        if route is not None:
            return route
        if "//" in path:  # merged, as werkzeug's router did
            return self.match(_SLASHES.sub("/", path))
        m = _ARTICLE_PATH.fullmatch(path)
        if m is None:
            return None
        digits = m.group(2)
        article_id = int(digits) if len(digits) <= MAX_ID_DIGITS else -1
        return Route(ARTICLE_RULE if m.group(1) else LEGACY_RULE, "article", article_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def http(self, scope: Scope, send: Send) -> None:
        start = time.perf_counter()
        method, path = scope["method"], scope["path"]
        route = self.match(path)
        # Flask's label: the rule only where the method was allowed (a 405 matched no rule).
        label = route.rule if route and method in ("GET", "HEAD", "OPTIONS") else UNMATCHED
        status = 500
        self.metrics.in_flight.inc()
        try:
            try:
                status, headers, body = await self.answer(route, method, scope)
            except Exception:
                log.exception("unhandled error on %s %s", method, path[:200])
                body = self.pages.server_error
                status, headers = 500, _static(body)
            headers.append(self.served_by)
            if self.drain.is_set():
                # Kept-alive clients (kube-proxy keeps their connections on this pod) are
                # told to reconnect, so they land on a pod that is not going away.
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        finally:
            self.metrics.in_flight.dec()
            elapsed = time.perf_counter() - start
            self.metrics.observe(
                label, method if method in KNOWN_METHODS else OTHER_METHOD, status, elapsed
            )
            log_request(self.pod, method, path, status, elapsed * 1000)

    async def answer(
        self, route: Route | None, method: str, scope: Scope
    ) -> tuple[int, Headers, bytes]:
        if route is None:
            return 404, list(self.not_found_headers), self.pages.not_found
        if method != "GET" and method != "HEAD":
            if method == "OPTIONS":
                return 200, _static(b"", HTML_BYTES, self.ALLOW), b""
            return 405, list(self.not_allowed_headers), self.pages.not_allowed
        if route.kind == "article":
            if route.article_id not in self.pages.articles:
                return 404, list(self.not_found_headers), self.pages.not_found
            cookie = ""
            for name, value in scope["headers"]:
                if name == b"cookie":
                    cookie = value.decode("latin-1")
                    break
            headers, body = await self.articles.respond(route.article_id, method, cookie)
            return 200, headers, body
        if route.kind == "index":
            return 200, list(self.index_headers), self.pages.index
        if route.kind == "readyz" and self.drain.is_set():
            return 503, _static(b"draining\n", TEXT), b"draining\n"
        body = b"ok\n" if route.kind == "healthz" else b"ready\n"
        return 200, _static(body, TEXT), body

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Each worker opens the store before its first request and closes it at the end."""
        for _ in range(2):  # startup, then shutdown
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.store.open()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.store.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    articles: Mapping[int, Article] | None = None,
    drain: DrainFlag = DRAIN,
) -> ArticlesApp:
    """The app factory: settings from the environment unless given; tests pass their own."""
    settings = settings or Settings.from_env()
    articles = articles if articles is not None else load_articles()
    return ArticlesApp(settings, articles, store or make_store(settings, articles), drain)


def served_app() -> Callable[..., Awaitable[None]]:
    """What each server worker runs: ARTICLES_APP_FACTORY (default articles:create_app) called
    with no arguments. Overridable so the tests can wrap the app with a deliberately slow route
    or a deliberately wrong store."""
    module, _, name = os.environ.get("ARTICLES_APP_FACTORY", "articles:create_app").partition(":")
    return getattr(importlib.import_module(module), name)()  # type: ignore[no-any-return]
