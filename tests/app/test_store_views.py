"""Views and sessions through the app (in-process) with a real redis-server, and without.

Two app instances stand for two pods: they share nothing but the Redis server.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from appsettings import make_settings
from articles import create_app
from articles.podcounter import PodCounters
from articles.redis_store import RETRY_AFTER_SECONDS
from articles.store import PodStore
from asgiclient import Client
from redisproc import RedisServer, redis_server

pytestmark = pytest.mark.slow  # starts redis-server

VIEWS = re.compile(r'class="views">(.*?)</p>')
RECENT = re.compile(r'class="recent">(.*?)</p>')


def _views(page: str) -> str:
    m = VIEWS.search(page)
    assert m, page
    return re.sub(r"<[^>]+>", "", m.group(1))


def _recent(page: str) -> str:
    m = RECENT.search(page)
    assert m, page
    return m.group(1)


def _sample(metrics: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


Pod = Callable[..., Client]


@pytest.fixture
def pod() -> Iterator[Pod]:
    """An app instance standing for a pod (closed at the end), with Redis if given."""
    made: list[Client] = []

    def make(name: str, server: RedisServer | None = None, **env: str) -> Client:
        settings = {"POD_NAME": name, **env}
        if server is not None:
            settings.update(REDIS_URL=server.url, REDIS_PASSWORD=server.password)
        made.append(Client(create_app(make_settings(**settings))))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    with redis_server(tmp_path) as server:
        yield server


def test_without_a_store_the_page_says_the_count_is_per_pod() -> None:
    counters = PodCounters(slots=8)
    settings = make_settings(POD_NAME="lonely-pod")
    # A fresh counter block so earlier tests in this process do not show up in the count.
    app = create_app(settings, store=PodStore(counters, [1, 2, 3]))
    c = Client(app)
    first = c.get("/article/1")
    second = c.get("/article1")  # the legacy path is the same article
    assert first.status_code == second.status_code == 200
    assert _views(first.text).startswith("Views on this pod: 1 ")
    assert _views(second.text).startswith("Views on this pod: 2 ")
    assert "lonely-pod" in _views(second.text)
    assert "sessions need the shared store" in _recent(second.text)
    assert "Set-Cookie" not in second.headers
    assert c.head("/article/1").status_code == 200
    assert counters.get(0) == 2, "HEAD must not count a view"
    c.close()


def test_views_are_shared_and_sessions_follow_the_visitor_across_pods(redis, pod: Pod) -> None:  # type: ignore[no-untyped-def]
    pod_a, pod_b = pod("pod-a", redis), pod("pod-b", redis)
    first = pod_a.get("/article/1")
    assert first.status_code == 200
    assert _views(first.text).startswith("Views: 1 ")
    cookie = first.headers["Set-Cookie"]
    assert re.match(r"sid=[A-Za-z0-9_-]{24}; Path=/; Max-Age=1800; HttpOnly; SameSite=Lax$", cookie)
    assert first.headers["Cache-Control"] == "no-store"
    # Each client keeps its visitor's cookie; carry it to the other pod.
    sid = cookie.split(";")[0].split("=", 1)[1]
    pod_b.cookie = sid
    second = pod_b.get("/article/2")
    assert second.headers["X-Served-By"] == "pod-b"
    assert _views(second.text).startswith("Views: 1 "), "article 2's own counter"
    assert "Self-healing" in _recent(second.text), "pod-b sees what pod-a recorded"
    assert "Set-Cookie" not in second.headers, "a known session keeps its id"
    third = pod_a.get("/article/1")  # the same visitor (pod-a's client kept the cookie)
    assert _views(third.text).startswith("Views: 2 "), "both pods add to one counter"
    assert "Spreading the load" in _recent(third.text) and "Self-healing" not in _recent(third.text)
    assert redis.client().get("articles:views:1") == b"2"
    assert [int(x) for x in redis.client().lrange(f"articles:session:{sid}", 0, -1)] == [1, 2]


def test_a_forged_cookie_is_not_used_as_a_session_key(redis, pod: Pod) -> None:  # type: ignore[no-untyped-def]
    c = pod("pod-a", redis)
    c.cookie = "../../etc:passwd*"
    page = c.get("/article/1")
    assert page.status_code == 200
    assert "Set-Cookie" in page.headers, "replaced by a fresh session id"
    assert not redis.client().keys("articles:session:..*")


def test_an_unknown_session_id_is_replaced_not_adopted(redis, pod: Pod) -> None:  # type: ignore[no-untyped-def]
    """Session fixation: a well-formed id nobody was given must not become a session."""
    c = pod("pod-a", redis)
    chosen = "A" * 24
    c.cookie = chosen
    page = c.get("/article/2")
    assert page.status_code == 200
    issued = page.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert issued != chosen
    assert redis.client().exists(f"articles:session:{chosen}") == 0
    assert [int(x) for x in redis.client().lrange(f"articles:session:{issued}", 0, -1)] == [2]
    again = c.get("/article/1")  # the client now sends the issued id: it is kept
    assert "Set-Cookie" not in again.headers
    assert "Spreading the load" in _recent(again.text)


def test_head_neither_counts_nor_opens_a_session(redis, pod: Pod) -> None:  # type: ignore[no-untyped-def]
    c = pod("pod-a", redis)
    assert c.head("/article/3").status_code == 200
    assert redis.client().get("articles:views:3") is None
    assert not redis.client().keys("articles:session:*")


def test_store_down_pages_still_served_and_failures_reported_then_recovery(  # type: ignore[no-untyped-def]
    redis, caplog, pod: Pod
) -> None:
    c = pod("pod-a", redis)
    assert c.get("/article/1").status_code == 200
    redis.kill()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="articles.store"):
        down = [c.get("/article/1") for _ in range(5)]
    assert time.monotonic() - started < 2.0, "the store's timeout bounds each request"
    # One line for the outage, saying why, not one per request.
    warnings = [r.getMessage() for r in caplog.records if r.name == "articles.store"]
    assert len(warnings) == 1 and warnings[0].startswith("redis unreachable ("), warnings
    assert [r.status_code for r in down] == [200] * 5
    assert all(_views(r.text).startswith("Views: unavailable") for r in down)
    assert c.get("/readyz").status_code == 200, "articles are the core service: still ready"
    metrics = c.metrics()
    assert _sample(metrics, "articles_views_total", outcome="failed") == 5
    assert _sample(metrics, "articles_views_total", outcome="recorded") == 1
    assert _sample(metrics, "articles_state_store_up") == 0
    redis.start()  # same port, same append-only file
    time.sleep(RETRY_AFTER_SECONDS + 0.1)
    back = c.get("/article/1")
    assert _views(back.text).startswith("Views: 2 "), "the acknowledged view survived the kill"
    metrics = c.metrics()
    assert _sample(metrics, "articles_state_store_up") == 1
    assert _sample(metrics, "articles_views_stored", article="1") == 2


def test_a_redis_restart_between_requests_costs_no_view(redis, pod: Pod) -> None:  # type: ignore[no-untyped-def]
    """The app holds its connection: one the restarted server closed is replaced before use."""
    c = pod("pod-a", redis)
    assert _views(c.get("/article/3").text).startswith("Views: 1 ")
    redis.kill()
    redis.start()  # nobody asked while it was down
    page = c.get("/article/3")
    assert _views(page.text).startswith("Views: 2 "), "counted on a new connection"
    assert _sample(c.metrics(), "articles_views_total", outcome="failed") == 0


def test_wrong_password_is_an_unavailable_store_not_an_error(redis, pod: Pod) -> None:  # type: ignore[no-untyped-def]
    c = pod("pod-a", None, REDIS_URL=redis.url, REDIS_PASSWORD="wrong")
    page = c.get("/article/2")
    assert page.status_code == 200
    assert _views(page.text).startswith("Views: unavailable")


def test_store_settings_from_mounted_secret_files(tmp_path: Path) -> None:
    (tmp_path / "url").write_text("redis://redis.ns.svc.cluster.local:6379/0\n")
    (tmp_path / "password").write_text("s3cret\n")
    s = make_settings(REDIS_URL_FILE=tmp_path / "url", REDIS_PASSWORD_FILE=tmp_path / "password")
    assert s.store_url == "redis://redis.ns.svc.cluster.local:6379/0"
    assert s.store_password == "s3cret"
    assert "s3cret" not in repr(s)
    with pytest.raises(ValueError, match="REDIS_URL must start with redis://"):
        make_settings(REDIS_URL="http://redis:6379")
    with pytest.raises(ValueError, match=r"REDIS_PASSWORD_FILE .* cannot be read"):
        make_settings(REDIS_PASSWORD_FILE=tmp_path / "missing")
