"""The stack's shape on loopback: 3 real app servers (2 workers each) behind HAProxy, one real
redis-server, real fortio load. Views counted exactly, sessions shared, Redis killed and
restarted under load without a 5xx or an unreported view."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from articles.redis_store import RECORD_VIEWS, RETRY_AFTER_SECONDS
from redisproc import redis_server
from stackprocs import fortio, haproxy, metrics_texts, need_tools, pods

from loadgen import consistency
from loadgen import fortio as fortio_result

pytestmark = pytest.mark.slow
RECORD_VIEWS_SHA = hashlib.sha1(RECORD_VIEWS.encode()).hexdigest()
PODS = ("pod-a", "pod-b", "pod-c")


def _summary(proc) -> dict:  # type: ignore[no-untyped-def]
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    return fortio_result.summarize(fortio_result.extract_result(out))


def test_views_exact_under_fortio_load_and_sessions_shared(tmp_path: Path) -> None:
    need_tools()
    with (
        redis_server(tmp_path) as redis,
        pods(tmp_path, redis, PODS) as servers,
        haproxy(servers, tmp_path) as url,
    ):
        before = consistency.summarize(metrics_texts(servers))
        # The walkthrough's shape scaled to two cores: 3 x 1000 requests become one fortio
        # with 30 connections and 3000 requests.
        result = _summary(fortio(url + "/article1", "-c", "30", "-n", "3000", "-qps", "0"))
        after = consistency.summarize(metrics_texts(servers))
        assert result["ret_codes"] == {"200": 3000}
        report = consistency.check(before, after, result)
        assert report["verdict"] == "consistent", report
        assert report["stored_increase"] == report["recorded"] == 3000
        assert all(n > 0 for n in report["recorded_by_pod"].values()), report
        assert int(redis.client().get("articles:views:1")) == 3000

        # One visitor, one cookie, three requests: round robin puts each on another pod.
        host = urlsplit(url)
        cookie, served_by, page = "", [], ""
        for article in (1, 2, 3):
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=5)
            conn.request("GET", f"/article/{article}", headers={"Cookie": cookie} if cookie else {})
            resp = conn.getresponse()
            page = resp.read().decode()
            served_by.append(resp.getheader("X-Served-By"))
            cookie = cookie or resp.getheader("Set-Cookie").split(";")[0]
            conn.close()
        assert len(set(served_by)) == 3, served_by
        recent = re.search(r'class="recent">(.*?)</p>', page).group(1)
        assert "Spreading the load" in recent and "Self-healing" in recent, recent


def test_each_worker_connects_to_redis_at_startup_before_any_view(tmp_path: Path) -> None:
    """The first views come under load: each worker has its connections and the script before
    it serves one (a CI e2e run lost 500 views, none sent to Redis: likely a first connect
    under load that overran its bound, or the views queued behind it expiring)."""
    with redis_server(tmp_path) as redis, pods(tmp_path, redis, PODS[:1]):
        admin, clients = redis.client(), []
        deadline = time.monotonic() + 10  # the second worker may still be starting
        while time.monotonic() < deadline:
            clients = [c for c in admin.client_list() if c["name"] == "articles"]
            if len(clients) >= 4:
                break
            time.sleep(0.1)
        # Two workers, each with a connection for its views and one for HEAD's reads.
        assert len(clients) == 4, clients
        assert admin.script_exists(RECORD_VIEWS_SHA) == [True]
        assert admin.get("articles:views:1") is None  # nothing was counted to get there


def test_every_page_under_concurrent_load_shows_its_own_count(tmp_path: Path) -> None:
    """Views of concurrent requests go to Redis in batches: still, across the three pods, the
    pages show each count from 1 to N exactly once, and every new visitor gets a session of
    their own holding just the article they read."""
    need_tools()
    total, threads = 600, 30
    with (
        redis_server(tmp_path) as redis,
        pods(tmp_path, redis, PODS) as servers,
        haproxy(servers, tmp_path) as url,
    ):
        host = urlsplit(url)
        views = re.compile(r'class="views">Views: <strong>(\d+)</strong>')

        def visit(_: int) -> tuple[int, str, str]:
            conn = http.client.HTTPConnection(host.hostname, host.port, timeout=10)
            conn.request("GET", "/article/3")
            resp = conn.getresponse()
            page = resp.read().decode()
            conn.close()
            assert resp.status == 200, page[:200]
            m = views.search(page)
            assert m, page[:400]
            cookie = resp.getheader("Set-Cookie") or ""
            return int(m.group(1)), cookie, resp.getheader("X-Served-By")

        with ThreadPoolExecutor(threads) as pool:
            seen = list(pool.map(visit, range(total), timeout=120))
        assert sorted(count for count, _, _ in seen) == list(range(1, total + 1))
        sessions = {cookie.split(";")[0] for _, cookie, _ in seen}
        assert len(sessions) == total and all(s.startswith("sid=") for s in sessions)
        assert {pod for _, _, pod in seen} == set(PODS)
        client = redis.client()
        assert int(client.get("articles:views:3")) == total
        for sid in list(sessions)[:20]:
            assert client.lrange(f"articles:session:{sid[4:]}", 0, -1) == [b"3"]


def test_the_check_catches_lost_updates_of_read_modify_write(tmp_path: Path) -> None:
    need_tools()
    with (
        redis_server(tmp_path) as redis,
        pods(tmp_path, redis, PODS, ARTICLES_APP_FACTORY="racyapp:create_app") as servers,
        haproxy(servers, tmp_path) as url,
    ):
        before = consistency.summarize(metrics_texts(servers))
        result = _summary(fortio(url + "/article/1", "-c", "30", "-n", "1500", "-qps", "0"))
        report = consistency.check(before, consistency.summarize(metrics_texts(servers)), result)
        assert result["ret_codes"] == {"200": 1500}
        assert report["verdict"] == "inconsistent", report
        assert report["stored_increase"] < 1500 == report["recorded"], report
        assert "the shared counter rose by" in report["reason"]


def test_redis_killed_and_restarted_mid_load(tmp_path: Path) -> None:
    need_tools()
    with (
        redis_server(tmp_path) as redis,
        pods(tmp_path, redis, PODS) as servers,
        haproxy(servers, tmp_path) as url,
    ):
        before = consistency.summarize(metrics_texts(servers))
        # -n, not -t: with a duration fortio drops the requests in flight when time is up.
        load = fortio(url + "/article/2", "-c", "12", "-n", "4800", "-qps", "600")
        time.sleep(2.5)
        redis.kill()
        time.sleep(2.0)
        down = consistency.summarize(metrics_texts(servers))
        redis.start()  # same port, same append-only file
        time.sleep(RETRY_AFTER_SECONDS + 0.5)
        back = consistency.summarize(metrics_texts(servers))
        result = _summary(load)
        after = consistency.summarize(metrics_texts(servers))

    assert set(result["ret_codes"]) == {"200"}, f"no 5xx, no errors: {result['ret_codes']}"
    successes = result["ret_codes"]["200"]
    report = consistency.check(before, after, result)
    assert report["verdict"] == "inconsistent" and "could not be counted" in report["reason"]
    # Every page served is accounted for: either recorded by the store or reported failed.
    assert report["recorded"] + report["failed"] == successes, report
    assert report["failed"] > 0
    # Nothing the store acknowledged was lost by the kill (append-only file), and at most the
    # replies cut off by the kill were applied without being confirmed.
    stored = report["stored_increase"]
    assert report["recorded"] <= stored <= report["recorded"] + 12, report
    # It recovered by itself: views recorded again after Redis returned.
    recorded = [sum(p["recorded"] for p in d["pods"].values()) for d in (down, back, after)]
    assert recorded[2] > recorded[1] >= recorded[0], recorded
    assert all(p["up"] for p in after["pods"].values())
    assert not any(p["up"] for p in down["pods"].values())
    print(json.dumps({"fortio": result["ret_codes"], "report": report}))
