"""The cached-page fast path must answer exactly as Flask's own dispatch would."""

from __future__ import annotations

import pytest
from articles.fastpath import FastPages
from articles.observability import ObservabilityMiddleware


def _fast_layer(app) -> FastPages:  # type: ignore[no-untyped-def]
    outer = app.wsgi_app
    assert isinstance(outer, ObservabilityMiddleware)
    assert isinstance(outer.app, FastPages)
    return outer.app


@pytest.mark.parametrize("path", ["/", "/article/1", "/article/2", "/article3", "/article1"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_path_matches_flask(app, client, path: str, method: str) -> None:
    fast = _fast_layer(app)
    assert path in fast.pages, "the page should be served from the cache"
    cached = client.open(path, method=method)
    pages, fast.pages = fast.pages, {}
    try:
        flask = client.open(path, method=method)
    finally:
        fast.pages = pages
    assert cached.status_code == flask.status_code == 200
    assert cached.data == flask.data
    for header in ("Content-Type", "Content-Length", "X-Served-By"):
        assert cached.headers[header] == flask.headers[header]


def test_fast_path_records_the_flask_rule(app) -> None:
    fast = _fast_layer(app)
    assert fast.pages["/article/2"].route == "/article/<int:article_id>"
    assert fast.pages["/article2"].route == "/article<int:article_id>"
    assert fast.pages["/"].route == "/"
    assert "/article/99" not in fast.pages
