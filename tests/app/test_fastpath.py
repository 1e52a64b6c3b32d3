"""The cached-page fast path must answer exactly as Flask's own dispatch would."""

from __future__ import annotations

import pytest
from appsettings import make_settings
from articles import create_app
from articles.fastpath import FastPages
from articles.observability import ObservabilityMiddleware
from articles.store import Visit


class FixedStore:
    """Answers every visit alike, so two requests can be compared byte for byte."""

    kind = "redis"
    shared = True
    sessions = True

    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        return Visit(41, (2, article_id), "A" * 24 if session_id is None else None, count)

    def stored_views(self) -> dict[int, int] | None:
        return {1: 41}


@pytest.fixture
def fixed_app(drain):  # type: ignore[no-untyped-def]
    settings = make_settings()
    return create_app(
        {"SETTINGS": settings, "DRAIN_FLAG": drain, "TESTING": True, "STORE": FixedStore()}
    )


def _fast_layer(app) -> FastPages:  # type: ignore[no-untyped-def]
    outer = app.wsgi_app
    assert isinstance(outer, ObservabilityMiddleware)
    assert isinstance(outer.app, FastPages)
    return outer.app


@pytest.mark.parametrize("path", ["/", "/article/1", "/article/2", "/article3", "/article1"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_path_matches_flask(fixed_app, path: str, method: str) -> None:
    fast = _fast_layer(fixed_app)
    assert path in fast.pages, "the page should be served from the cache"
    cached = fixed_app.test_client().open(path, method=method)
    pages, fast.pages = fast.pages, {}
    try:
        flask = fixed_app.test_client().open(path, method=method)
    finally:
        fast.pages = pages
    assert cached.status_code == flask.status_code == 200
    assert cached.data == flask.data
    for header in ("Content-Type", "Content-Length", "X-Served-By", "Cache-Control", "Set-Cookie"):
        assert cached.headers.get(header) == flask.headers.get(header)
    if path != "/":
        assert b"<strong>41</strong>" in cached.data or method == "HEAD"


def test_fast_path_records_the_flask_rule(app) -> None:
    fast = _fast_layer(app)
    assert fast.pages["/article/2"].route == "/article/<int:article_id>"
    assert fast.pages["/article2"].route == "/article<int:article_id>"
    assert fast.pages["/"].route == "/"
    assert "/article/99" not in fast.pages
