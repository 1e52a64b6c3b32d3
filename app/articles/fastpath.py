"""Serve the pre-rendered pages straight from a dict, in front of Flask's dispatch.

The pages are static per process (an article page but for its small live part, see
visits.py), so for GET/HEAD on their exact paths the full Flask request cycle (contexts,
routing, Response objects) is pure overhead. This layer answers those with bytes and headers
built once from Flask's own url_map and rendered pages (article pages through the same
ArticlePages the Flask view uses); any other method, path or error case falls through to
Flask unchanged. The metrics' route label is still the Flask rule string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Flask

from .observability import ROUTE_KEY, StartResponse, WSGIApp
from .pages import HTML, PageCache
from .visits import ArticlePages

# Endpoint -> how to list the paths it serves from the cache.
_ARTICLE_ENDPOINTS = ("views.article", "views.legacy_article")


class CachedPage:
    __slots__ = ("article_id", "body", "headers", "route")

    def __init__(self, route: str, body: bytes = b"", article_id: int | None = None) -> None:
        self.route = route
        self.body = [body]
        self.headers = [("Content-Type", HTML), ("Content-Length", str(len(body)))]
        self.article_id = article_id  # set: an article page, answered by ArticlePages


def cached_pages(app: Flask, pages: PageCache) -> dict[str, CachedPage]:
    out: dict[str, CachedPage] = {}
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "views.index":
            out[adapter.build(rule.endpoint)] = CachedPage(rule.rule, pages.index)
        elif rule.endpoint in _ARTICLE_ENDPOINTS:
            for article_id in pages.articles:
                path = adapter.build(rule.endpoint, {"article_id": article_id})
                out[path] = CachedPage(rule.rule, article_id=article_id)
    return out


class FastPages:
    def __init__(self, app: WSGIApp, pages: dict[str, CachedPage], articles: ArticlePages) -> None:
        self.app = app
        self.pages = pages
        self.articles = articles

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "GET" or method == "HEAD":
            page = self.pages.get(environ.get("PATH_INFO", ""))
            if page is not None:
                environ[ROUTE_KEY] = page.route
                if page.article_id is not None:
                    headers, body = self.articles.respond(page.article_id, environ)
                    start_response("200 OK", headers)
                    return [body] if method == "GET" else []
                start_response("200 OK", list(page.headers))
                return page.body if method == "GET" else []
        return self.app(environ, start_response)
