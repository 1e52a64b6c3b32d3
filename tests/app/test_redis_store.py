"""The Redis store (articles/redis_store.py, on the worker's event loop), against a
real redis-server: concurrent views numbered once each in few script calls, a lone view not
held back, a view never sent after its bound, Redis down and back, session ids."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from aio import run
from articles.redis_store import RETRY_AFTER_SECONDS, RedisStore
from articles.store import SessionIds, Visit, valid_session_id
from redisproc import RedisServer, redis_server

pytestmark = pytest.mark.slow  # starts redis-server


@pytest.fixture
def redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    with redis_server(tmp_path) as server:
        yield server


def _store(server: RedisServer, timeout_ms: int = 250) -> RedisStore:
    return RedisStore(server.url, server.password, timeout_ms, [1, 2, 3])


def _stat(server: RedisServer, command: str, field: str = "calls") -> int:
    return int(server.client().info("commandstats").get(f"cmdstat_{command}", {}).get(field, 0))


def _script_calls(server: RedisServer) -> int:
    return _stat(server, "evalsha") + _stat(server, "eval")


async def _visits(store: RedisStore, n: int, article: int = 1) -> list[Visit]:
    try:
        return list(
            await asyncio.gather(*(store.visit(article, None, count=True) for _ in range(n)))
        )
    finally:
        await store.aclose()


def test_concurrent_views_are_numbered_once_each_in_a_few_script_calls(redis) -> None:
    visits = run(_visits(_store(redis), 300))
    assert all(v.recorded for v in visits)
    assert sorted(v.views for v in visits) == list(range(1, 301))  # no count lost or repeated
    assert int(redis.client().get("articles:views:1")) == 300
    # Each new visitor got a session of its own, made in Redis holding just this article.
    sessions = {v.new_session for v in visits}
    assert len(sessions) == 300 and all(valid_session_id(s) for s in sessions)
    sample = sorted(sessions)[:5]
    assert all(redis.client().lrange(f"articles:session:{s}", 0, -1) == [b"1"] for s in sample)
    # They went out together: 300 views at once, at most 64 per call (MAX_BATCH).
    assert 5 <= _script_calls(redis) <= 10


def test_a_lone_view_is_not_held_back(redis) -> None:
    async def one() -> tuple[Visit, float]:
        store = _store(redis)
        await store.visit(2, None, count=True)  # connects and loads the script
        start = time.perf_counter()
        visit = await store.visit(2, None, count=True)
        elapsed = time.perf_counter() - start
        await store.aclose()
        return visit, elapsed

    visit, elapsed = run(one())
    assert visit.recorded and visit.views == 2
    # No timer to fill a batch: one loopback round trip, far below the store's wait bound.
    assert elapsed < 0.1


def test_a_session_is_read_back_and_head_counts_nothing(redis) -> None:
    async def session() -> tuple[Visit, Visit, Visit]:
        store = _store(redis)
        first = await store.visit(1, None, count=True)
        second = await store.visit(2, first.new_session, count=True)
        head = await store.visit(3, first.new_session, count=False)
        await store.aclose()
        return first, second, head

    first, second, head = run(session())
    assert first.new_session and second.new_session is None  # the cookie's session was kept
    assert second.recent == (2, 1)
    assert head == Visit(0, (2, 1), None, False)
    assert redis.client().get("articles:views:3") is None


def test_open_connects_and_loads_the_script_before_the_first_view(redis) -> None:
    """Worker startup opens the store (app.py's lifespan): the first views, which arrive
    under load, make no connection of their own and need no second round trip for the script."""

    async def scenario() -> tuple[int, int, list[Visit]]:
        store, admin = _store(redis), redis.client()
        await store.open()
        opened = admin.info("stats")["total_connections_received"]
        visits = list(await asyncio.gather(*(store.visit(1, None, count=True) for _ in range(10))))
        visits.append(await store.visit(1, visits[0].new_session, count=False))  # HEAD
        used = admin.info("stats")["total_connections_received"]
        await store.aclose()
        return opened, used, visits

    opened, used, visits = run(scenario())
    assert all(v.recorded for v in visits[:10]) and visits[10].recent == (1,)
    assert used == opened  # the views and HEAD's read went out on the connections open() made
    # The script was loaded: no call was refused with NOSCRIPT and sent again.
    assert _stat(redis, "evalsha") >= 1 and _stat(redis, "evalsha", "failed_calls") == 0


def test_open_with_redis_down_returns_within_the_bound_and_views_resume(redis) -> None:
    async def scenario() -> tuple[float, Visit, Visit]:
        store = _store(redis, timeout_ms=100)
        redis.kill()
        start = time.perf_counter()
        await store.open()
        elapsed = time.perf_counter() - start
        down = await store.visit(1, None, count=True)
        redis.start()
        await asyncio.sleep(RETRY_AFTER_SECONDS + 0.1)
        back = await store.visit(1, None, count=True)
        await store.aclose()
        return elapsed, down, back

    elapsed, down, back = run(scenario())
    assert elapsed < 0.5 and not down.recorded
    assert back.recorded and back.views == 1


class SlowFirstSend(RedisStore):
    """The first batch's send overruns the waiters' bound (as a send stuck in the kernel would)."""

    overrun = 0.0

    async def _send(self, views: Sequence) -> list:  # type: ignore[override]
        if self.overrun:
            delay, self.overrun = self.overrun, 0.0
            await asyncio.sleep(delay)
        return await super()._send(views)


def test_a_view_queued_past_its_bound_is_never_sent(redis, caplog) -> None:
    async def storm() -> tuple[list[Visit], float, float]:
        store = SlowFirstSend(redis.url, redis.password, 250, [1, 2, 3])  # wait bound 1.1 s
        store.overrun = 1.5
        start = time.perf_counter()
        first = asyncio.ensure_future(store.visit(1, None, count=True))
        await asyncio.sleep(0)  # the first batch is out
        queued = await asyncio.gather(*(store.visit(1, None, count=True) for _ in range(20)))
        elapsed = time.perf_counter() - start
        await first
        await store.aclose()
        return [first.result(), *queued], elapsed, store.wait_seconds

    visits, elapsed, bound = run(storm())
    assert visits[0].recorded and visits[0].views == 1
    assert not any(v.recorded for v in visits[1:])  # reported as not counted ...
    time.sleep(0.2)
    assert int(redis.client().get("articles:views:1")) == 1  # ... and never sent later
    assert bound < elapsed < 1.5 + 2 * bound
    # Nothing failed, so the log says why 20 views count as failed (once, not per view).
    expired = [r.getMessage() for r in caplog.records if "waited longer" in r.getMessage()]
    assert len(expired) == 1 and expired[0].startswith("20 views waited longer than 1.10 s")


def test_redis_down_then_back_reports_failed_views_and_recovers(redis, caplog) -> None:
    async def scenario() -> tuple[Visit, float, Visit, Visit]:
        store = _store(redis, timeout_ms=100)
        before = await store.visit(1, None, count=True)
        redis.kill()
        start = time.perf_counter()
        down = await store.visit(1, None, count=True)
        elapsed = time.perf_counter() - start
        redis.start()  # the append-only file brings back the count
        await asyncio.sleep(RETRY_AFTER_SECONDS + 0.1)
        back = await store.visit(1, None, count=True)
        await store.aclose()
        return before, elapsed, down, back

    before, elapsed, down, back = run(scenario())
    assert before.views == 1
    assert down == Visit(None, None, None, False) and elapsed < 0.5
    assert back.recorded and back.views == 2  # the failed view was not counted later
    assert any("redis unreachable" in r.getMessage() for r in caplog.records)


def test_a_restarted_redis_costs_no_view(redis) -> None:
    """The held connection died with the old server: it is replaced before the next batch,
    so no view fails (and none is sent twice)."""

    async def scenario() -> list[Visit]:
        store = _store(redis)
        visits = [await store.visit(1, None, count=True)]
        redis.kill()
        redis.start()
        visits += await asyncio.gather(*(store.visit(1, None, count=True) for _ in range(5)))
        await store.aclose()
        return visits

    visits = run(scenario())
    assert all(v.recorded for v in visits), visits
    assert sorted(v.views for v in visits) == [1, 2, 3, 4, 5, 6]


def test_a_restarted_redis_costs_no_read(redis) -> None:
    """HEAD and the metrics port's figures read on a held connection too: after a restart
    they are answered, not reported unavailable (nor do they start an outage)."""

    async def scenario() -> tuple[Visit, Visit, dict[int, int] | None]:
        store = _store(redis)
        await store.open()
        first = await store.visit(2, None, count=True)
        redis.kill()
        redis.start()
        await asyncio.sleep(0.1)  # a worker's loop keeps turning meanwhile: it sees the close
        head = await store.visit(2, first.new_session, count=False)
        stored = await store.stored_views()
        await store.aclose()
        return first, head, stored

    _first, head, stored = run(scenario())
    assert head == Visit(1, (2,), None, False)
    assert stored == {1: 0, 2: 1, 3: 0}


_IDS: list = []  # the SessionIds a forked child inherits (a thread-local cannot be pickled)


def test_session_ids_are_token_urlsafe_shaped_unique_and_differ_after_a_fork() -> None:
    ids = SessionIds()
    first = [ids.new() for _ in range(3000)]  # more than one read of the buffer
    assert all(valid_session_id(i) == i for i in first)
    assert len(set(first)) == len(first)
    # A forked worker must not hand out the ids its parent's buffer still holds.
    _IDS[:] = [ids]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(_ids_in_child)
    parent_next = [ids.new() for _ in range(50)]
    assert len(child) == 50 and not set(child) & set(parent_next)


def _ids_in_child() -> list[str]:
    return [_IDS[0].new() for _ in range(50)]
