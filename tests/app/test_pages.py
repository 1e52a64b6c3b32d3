"""Routes, pages and error handling, calling the app in-process as the server does."""

from __future__ import annotations

import re

import pytest
from appsettings import make_settings
from articles.content import load_articles

ARTICLES = load_articles()


def test_at_least_three_articles_with_real_text() -> None:
    assert len(ARTICLES) >= 3
    for article in ARTICLES.values():
        assert article.title and article.summary
        assert sum(len(p.split()) for p in article.paragraphs) > 100


def test_index_lists_every_article_and_the_pod(client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.content_type == "text/html; charset=utf-8"
    html = response.text
    for article in ARTICLES.values():
        assert f'href="/article/{article.id}"' in html
    assert "pod-under-test" in html and "node-a" in html


@pytest.mark.parametrize("article_id", sorted(ARTICLES))
def test_article_page_and_legacy_path_are_the_same(client, article_id: int) -> None:
    new = client.get(f"/article/{article_id}")
    legacy = client.get(f"/article{article_id}")
    assert new.status_code == legacy.status_code == 200
    # Same page, same counter: the legacy path's view is the next one of the same article.
    count = re.compile(rb"<strong>(\d+)</strong>")
    first, second = int(count.findall(new.data)[0]), int(count.findall(legacy.data)[0])
    assert second == first + 1
    assert count.sub(b"", new.data) == count.sub(b"", legacy.data)
    html = new.text
    article = ARTICLES[article_id]
    assert article.paragraphs[0][:40].replace("'", "&#39;") in html
    assert "pod-under-test" in html


@pytest.mark.parametrize(
    "path",
    [
        "/article/999",
        "/article999",
        "/article/0",
        "/article/-1",
        "/article/abc",
        "/article/",
        "/article",
        "/article/1.5",
        "/article/1/extra",
        "/nope",
        "/article/" + "9" * 60,
    ],
)
def test_unknown_or_malformed_ids_get_the_404_page(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "404" in response.text
    assert response.headers["X-Served-By"] == "pod-under-test"


def test_head_works_without_body(client) -> None:
    get = client.get("/article/1")
    head = client.head("/article/1")
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Length"] == str(len(get.data))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_with_allow(client, method: str) -> None:
    response = client.open("/article/1", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert response.headers["X-Served-By"] == "pod-under-test"
    assert "405 · Method Not Allowed" in response.text


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        # As the Flask app answered (werkzeug's router): recorded from it before the rewrite.
        ("OPTIONS", "/article/1", 200),
        ("OPTIONS", "/healthz", 200),
        ("OPTIONS", "/article/99", 200),
        ("OPTIONS", "/nope", 404),
        ("POST", "/nope", 404),
        ("POST", "/article/99", 405),
        ("BREW", "/readyz", 405),
        ("GET", "/article/01", 200),
        ("GET", "/article01", 200),
        ("GET", "//article/1", 200),
        ("GET", "/article/1/", 404),
        ("GET", "/healthz/", 404),
        ("HEAD", "/article/99", 404),
        ("GET", "/article/" + "1" * 5000, 404),
    ],
)
def test_methods_and_near_miss_paths_answer_as_before(
    client, method: str, path: str, status: int
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == status
    assert ("Allow" in response.headers) == (
        status == 405 or (method == "OPTIONS" and status == 200)
    )
    assert response.headers["X-Served-By"] == "pod-under-test"
    if method == "OPTIONS" and status == 200:
        assert response.data == b"" and response.headers["Content-Length"] == "0"


@pytest.mark.parametrize(
    "path", ["/", "/article/1", "/article2", "/healthz", "/readyz", "/metrics", "/missing"]
)
def test_every_response_says_which_pod(client, path: str) -> None:
    assert client.get(path).headers["X-Served-By"] == "pod-under-test"


def test_healthz_and_readyz(client, drain) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    drain.set()
    assert client.get("/readyz").status_code == 503
    # Draining only fails readiness: liveness and pages keep working.
    assert client.get("/healthz").status_code == 200
    assert client.get("/article/1").status_code == 200


def test_draining_asks_clients_to_reconnect(client, drain) -> None:
    assert "Connection" not in client.get("/article/1").headers
    drain.set()
    for path in ("/article/1", "/", "/nope", "/readyz"):
        assert client.get(path).headers["Connection"] == "close"


def test_pod_name_falls_back_to_hostname() -> None:
    import socket

    from articles.config import Settings

    assert Settings.from_env({}).pod_name == socket.gethostname()
    assert Settings.from_env({"POD_NAME": "web-1"}).pod_name == "web-1"


@pytest.mark.parametrize(
    "env",
    [{"PORT": "http"}, {"PORT": "0"}, {"WEB_CONCURRENCY": "-1"}, {"DRAIN_SECONDS": "99"}],
)
def test_bad_settings_are_rejected_clearly(env: dict[str, str]) -> None:
    from articles.config import Settings

    with pytest.raises(ValueError, match=next(iter(env))):
        Settings.from_env(env)


def test_defaults() -> None:
    from articles.config import Settings

    s = Settings.from_env({})
    assert (s.port, s.workers, s.drain_seconds) == (8080, 2, 5)
    assert s.drain_seconds + s.graceful_timeout < 30


def test_metrics_are_not_an_app_route(client) -> None:
    """/metrics has a port of its own (articles/metrics_port.py), never the public one."""
    response = client.get("/metrics")
    assert response.status_code == 404
    assert b"articles_http_requests_total" not in response.data


class BrokenStore:
    """A store with a bug (not an outage, which the Redis store reports as unavailable)."""

    kind, shared, sessions = "redis", True, True

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> None:
        raise RuntimeError("a bug in the store")

    async def stored_views(self) -> None:
        return None

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def test_an_unexpected_error_is_a_500_page_logged_and_counted(caplog, capfd) -> None:
    from articles import create_app
    from articles.lifecycle import DrainFlag
    from asgiclient import Client

    with Client(create_app(make_settings(), store=BrokenStore(), drain=DrainFlag())) as c:
        capfd.readouterr()
        response = c.get("/article/1")
        assert c.get("/").status_code == 200, "the next request is served as usual"
        metrics = c.metrics()
    assert response.status_code == 500
    assert "500 · Internal Server Error" in response.text
    assert response.headers["X-Served-By"] == "pod-under-test"
    assert "a bug in the store" in caplog.text and "GET /article/1" in caplog.text
    assert '"status": 500' in capfd.readouterr().out
    assert 'route="/article/<int:article_id>",status="500"} 1.0' in metrics
