"""The production server's ASGI layer (articles/asgi.py): the pages it answers itself are the
ones Flask would give, everything else reaches Flask, and both carry the same observability."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aio import run
from appsettings import make_settings
from articles import create_app
from articles.asgi import ArticlesASGI, async_store
from articles.store import NonBlocking
from test_fastpath import FixedStore


class Answer:
    def __init__(self, messages: list[dict[str, Any]]) -> None:
        start = messages[0]
        assert start["type"] == "http.response.start"
        self.status: int = start["status"]
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        self.body = b"".join(m.get("body", b"") for m in messages[1:])


def call(app: ArticlesASGI, method: str, path: str, cookie: str = "") -> Answer:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost")] + ([(b"cookie", cookie.encode())] if cookie else []),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    run(app(scope, receive, send))
    return Answer(messages)


@pytest.fixture
def fixed(drain):  # type: ignore[no-untyped-def]
    flask = create_app(
        {"SETTINGS": make_settings(), "DRAIN_FLAG": drain, "TESTING": True, "STORE": FixedStore()}
    )
    flask.extensions["articles.async_store"] = NonBlocking(FixedStore())
    return flask, ArticlesASGI(flask, async_store(flask), threads=2)


@pytest.mark.parametrize("path", ["/", "/article/1", "/article/2", "/article3", "/article1"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("session", ["", "B" * 24])
def test_the_pages_it_answers_are_flasks(fixed, path: str, method: str, session: str) -> None:
    flask, asgi = fixed
    assert path in asgi.pages, "answered on the event loop, not in Flask's threads"
    ours = call(asgi, method, path, f"theme=dark; sid={session}" if session else "")
    client = flask.test_client()
    if session:
        client.set_cookie("sid", session)
    theirs = client.open(path, method=method)
    assert ours.status == theirs.status_code == 200
    assert ours.body == theirs.data
    for name in ("Content-Type", "Content-Length", "X-Served-By", "Cache-Control", "Set-Cookie"):
        assert ours.headers.get(name.lower()) == theirs.headers.get(name), name
    if path != "/" and method == "GET":
        assert b"<strong>41</strong>" in ours.body


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/healthz", 200), ("GET", "/article/99", 404), ("POST", "/article/1", 405)],
)
def test_everything_else_reaches_flask(fixed, method: str, path: str, status: int) -> None:
    flask, asgi = fixed
    assert path not in asgi.pages or method not in ("GET", "HEAD")
    ours = call(asgi, method, path)
    theirs = flask.test_client().open(path, method=method)
    assert ours.status == theirs.status_code == status
    assert ours.body == theirs.data
    assert ours.headers["x-served-by"] == "pod-under-test"


def test_while_draining_both_paths_tell_clients_to_reconnect(fixed, drain) -> None:
    _, asgi = fixed
    assert "connection" not in call(asgi, "GET", "/article/1").headers
    drain.set()
    assert call(asgi, "GET", "/article/1").headers["connection"] == "close"
    assert call(asgi, "GET", "/healthz").headers["connection"] == "close"
    assert call(asgi, "GET", "/readyz").status == 503


def test_its_pages_are_counted_and_logged_like_flasks(fixed, capfd) -> None:
    _, asgi = fixed
    capfd.readouterr()
    call(asgi, "GET", "/article2")
    call(asgi, "HEAD", "/article/3")
    lines = [json.loads(line) for line in capfd.readouterr().out.splitlines()]
    assert [(r["method"], r["path"], r["status"], r["pod"]) for r in lines] == [
        ("GET", "/article2", 200, "pod-under-test"),
        ("HEAD", "/article/3", 200, "pod-under-test"),
    ]
    metrics = asgi.metrics.exposition().decode()
    assert (
        'articles_http_requests_total{method="GET",pod="pod-under-test",'
        'route="/article<int:article_id>",status="200"} 1.0'
    ) in metrics
    views = 'articles_views_total{article="2",outcome="recorded",pod="pod-under-test"} 1.0'
    assert views in metrics
    assert 'article="3",outcome' not in metrics  # HEAD counts no view


def test_lifespan_opens_the_store_before_serving_and_closes_it(fixed) -> None:
    _, asgi = fixed
    events: list[str] = []

    async def open_() -> None:
        events.append("store opened")

    async def aclose() -> None:
        events.append("store closed")

    asgi.store.open, asgi.store.aclose = open_, aclose  # type: ignore[method-assign]
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0)

    async def send(message: dict[str, Any]) -> None:
        events.append(message["type"])

    run(asgi({"type": "lifespan"}, receive, send))
    assert events == [
        "store opened",
        "lifespan.startup.complete",
        "store closed",
        "lifespan.shutdown.complete",
    ]


def test_metrics_are_not_served_on_the_app_port(fixed) -> None:
    _, asgi = fixed
    call(asgi, "GET", "/article2")
    answer = call(asgi, "GET", "/metrics")
    assert answer.status == 404
    assert b"articles_" not in answer.body
