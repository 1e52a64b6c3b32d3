"""The shared store: Redis through redis.asyncio, on the worker's event loop.

Every pod adds to the same counter (INCRBY, atomic in the server: no read-modify-write can lose
a view) and a visitor's session ("recently read") is a Redis list keyed by the id in their
cookie, so whichever pod answers the next request sees it. A view waits for Redis without
holding a thread, and the views of concurrent requests go out together: requests that arrive
while a batch is out queue, and the sender task takes them all as its next batch (group
commit); a lone request goes at the loop's next turn. Hand-written because redis-py has no
auto-pipelining. Every call is bounded by the timeout and never retried inside a request;
after a failure Redis is skipped for RETRY_AFTER_SECONDS so pages stay fast while it is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import redis
import redis.asyncio as aredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .store import RECENT, SESSION_TTL_SECONDS, UNAVAILABLE, SessionIds, Visit

VIEWS_KEY = "articles:views:{}"
SESSION_KEY = "articles:session:{}"
RETRY_AFTER_SECONDS = 1.0
MAX_BATCH = 64  # views per script call
log = logging.getLogger("articles.store")
_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)

# A batch of views in one script, which Redis runs atomically as one command (MULTI/EXEC of
# six commands per view cost the client several times the parsing: 47 against 82 us per view).
# Per view i (from 0): KEYS[3i+1] its article's counter, KEYS[3i+2] the session its cookie named
# (or the fresh one), KEYS[3i+3] a fresh session the app drew; ARGV[2i+3] the article,
# ARGV[2i+4] '1' if the cookie named a session. Counters: one INCRBY per counter for the whole
# batch, the batch's views of it numbered consecutively in batch order. Sessions: the cookie's
# one, if it exists, has the article moved to the front of its list, trimmed, its idle timer
# reset, and is returned; otherwise the fresh one is made holding just this article (so the
# server never adopts an id a client chose: session fixation), and only the count is returned.
RECORD_VIEWS = """
local recent, ttl, n = tonumber(ARGV[1]), ARGV[2], #KEYS / 3
local counters, added = {}, {}
for i = 0, n - 1 do
  local key = KEYS[3 * i + 1]
  if added[key] == nil then
    counters[#counters + 1], added[key] = key, 0
  end
  added[key] = added[key] + 1
end
local last = {}
for _, key in ipairs(counters) do
  last[key] = redis.call('INCRBY', key, added[key]) - added[key]
end
local out = {}
for i = 0, n - 1 do
  local key, article, session = KEYS[3 * i + 1], ARGV[2 * i + 3], KEYS[3 * i + 2]
  last[key] = last[key] + 1
  if ARGV[2 * i + 4] == '1' and redis.call('EXISTS', session) == 1 then
    redis.call('LREM', session, 0, article)
    redis.call('LPUSH', session, article)
    redis.call('LTRIM', session, 0, recent - 1)
    redis.call('EXPIRE', session, ttl)
    out[i + 1] = {last[key], redis.call('LRANGE', session, 0, -1)}
  else
    redis.call('LPUSH', KEYS[3 * i + 3], article)
    redis.call('EXPIRE', KEYS[3 * i + 3], ttl)
    out[i + 1] = {last[key]}
  end
end
return out
"""


class PendingView(NamedTuple):
    article_id: int
    views_key: str
    session_key: str | None  # the cookie's session, if it named one
    fresh_session: str  # the id to use if it did not, or if that session is gone


# (the article's count after this view, the session's articles newest first, whether the
# fresh session was made for it: a new visitor, or the cookie's session had expired)
ViewReply = tuple[int, tuple[int, ...], bool]


def script_call(views: Sequence[PendingView]) -> tuple[list[str], list[Any]]:
    """RECORD_VIEWS' keys and arguments for a batch of views."""
    keys: list[str] = []
    args: list[Any] = [RECENT, SESSION_TTL_SECONDS]
    for v in views:
        fresh_key = SESSION_KEY.format(v.fresh_session)
        keys += [v.views_key, v.session_key or fresh_key, fresh_key]
        args += [v.article_id, "1" if v.session_key else "0"]
    return keys, args


def parse_replies(views: Sequence[PendingView], replies: Sequence[Any]) -> list[ViewReply]:
    return [
        (int(reply[0]), tuple(int(x) for x in reply[1]), False)
        if len(reply) == 2
        else (int(reply[0]), (v.article_id,), True)  # the fresh session: just this article
        for v, reply in zip(views, replies, strict=True)
    ]


class Outage:
    """After a failure Redis is skipped for RETRY_AFTER_SECONDS; one log line per outage."""

    def __init__(self) -> None:
        self._down_until = 0.0

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, err: BaseException) -> None:
        now = time.monotonic()
        was_up = now >= self._down_until + RETRY_AFTER_SECONDS
        self._down_until = now + RETRY_AFTER_SECONDS
        if was_up:  # once per outage, not once per request: the log stays readable
            log.warning(
                "redis unreachable (%s: %s): pages are served without views and sessions, "
                "retrying every %.0f s",
                type(err).__name__,
                err,
                RETRY_AFTER_SECONDS,
            )


class _Queued:
    __slots__ = ("deadline", "reply", "view")

    def __init__(self, view: PendingView, reply: asyncio.Future[ViewReply | None], deadline: float):
        self.view = view
        self.reply = reply
        self.deadline = deadline


class RedisStore:
    kind = "redis"
    shared = True
    sessions = True

    def __init__(
        self, url: str, password: str, timeout_ms: int, article_ids: Iterable[int]
    ) -> None:
        self.timeout = timeout_ms / 1000
        self.article_ids = tuple(sorted(article_ids))  # the counters /metrics reads
        self._options = {
            "url": url,
            "password": password or None,
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            # redis-py retries 3 times by default: that would multiply the bound per request.
            "retry": Retry(NoBackoff(), 0),
            "client_name": "articles",
            # One held connection per client: no pool to lock and check per call.
            "single_connection_client": True,
        }
        self._outage = Outage()
        self._session_ids = SessionIds()
        # A send is bounded by connecting plus one reply, so a view waits at most for the batch
        # that is out and then its own; one still queued at its deadline is never sent.
        self.wait_seconds = 4 * self.timeout + 0.1
        self._queue: deque[_Queued] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._expired_logged_at = -RETRY_AFTER_SECONDS
        # Made on the loop that uses them (open() at worker startup, or first use): one
        # client for the batches of views, one for the reads (HEAD, /metrics).
        self._views_client: aredis.Redis | None = None
        self._record_views: Any = None  # its EVALSHA of RECORD_VIEWS
        self._reads_client: aredis.Redis | None = None

    def _views(self) -> aredis.Redis:
        if self._views_client is None:
            self._views_client = aredis.Redis.from_url(**self._options)
            self._record_views = self._views_client.register_script(RECORD_VIEWS)
        return self._views_client

    def _reads(self) -> aredis.Redis:
        if self._reads_client is None:
            self._reads_client = aredis.Redis.from_url(**self._options)
        return self._reads_client

    async def open(self) -> None:
        """At worker startup, before any request: connect both clients and load the script.
        Otherwise the first views, which come under load, spend their bound on DNS, the
        connection, AUTH and the script's first call, and the views queued behind them expire
        (a CI e2e run once lost 500 views, none sent to Redis). Redis down now is an outage
        like any later one: pages are served, views resume."""
        try:
            views = await self._views().initialize()
            await views.script_load(RECORD_VIEWS)
            await (await self._reads().initialize()).ping()
        except _ERRORS as err:
            self._outage.failed(err)

    async def aclose(self) -> None:
        for client in (self._views_client, self._reads_client):
            if client is not None:
                await client.aclose()

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        if not self._outage.usable():
            return UNAVAILABLE
        skey = SESSION_KEY.format(session_id) if session_id is not None else None
        fresh = self._session_ids.new() if count else ""
        view = PendingView(article_id, VIEWS_KEY.format(article_id), skey, fresh)
        if not count:
            return await self._read(view)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[ViewReply | None] = loop.create_future()
        self._queue.append(_Queued(view, reply, loop.time() + self.wait_seconds))
        if self._sender is None:
            self._sender = loop.create_task(self._send_queued())
        result = await reply
        if result is None:
            return UNAVAILABLE
        views, recent, fresh_used = result
        return Visit(views, recent, fresh if fresh_used else None, True)

    async def _read(self, view: PendingView) -> Visit:
        """HEAD: the count and the session, nothing written."""
        try:
            reads = self._reads()
            await _drop_closed_connection(reads)
            views = await reads.get(view.views_key)
            recent = None
            if view.session_key is not None:
                recent = tuple(int(x) for x in await reads.lrange(view.session_key, 0, RECENT - 1))
        except _ERRORS as err:
            self._outage.failed(err)
            return UNAVAILABLE
        return Visit(int(views or 0), recent, None, False)

    async def stored_views(self) -> dict[int, int] | None:
        """Every article's counter (/metrics' articles_views_stored); None when unreachable."""
        if not self._outage.usable():
            return None
        try:
            reads = self._reads()
            await _drop_closed_connection(reads)
            values = await reads.mget([VIEWS_KEY.format(a) for a in self.article_ids])
        except _ERRORS as err:
            self._outage.failed(err)
            return None
        return {a: int(v or 0) for a, v in zip(self.article_ids, values, strict=True)}

    async def _send_queued(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, now, expired = [], loop.time(), 0
                while self._queue and len(batch) < MAX_BATCH:
                    queued = self._queue.popleft()
                    if queued.deadline < now:
                        _resolve(queued, None)  # waited past its bound: never sent
                        expired += 1
                    else:
                        batch.append(queued)
                if expired:
                    self._log_expired(expired, now)
                if not batch:
                    continue
                replies = await self._send([q.view for q in batch])
                for i, queued in enumerate(batch):
                    _resolve(queued, replies[i] if i < len(replies) else None)
        finally:
            self._sender = None
            # Only when the task is cancelled (the worker stops): nobody waits forever.
            for queued in self._queue:
                _resolve(queued, None)
            self._queue.clear()

    def _log_expired(self, n: int, now: float) -> None:
        """Such views count as failed like those of an outage, but nothing failed: without
        this line (at most one a second) the failed count would have no explanation."""
        if now - self._expired_logged_at >= RETRY_AFTER_SECONDS:
            self._expired_logged_at = now
            log.warning(
                "%d views waited longer than %.2f s for Redis and were not counted "
                "(Redis or this worker too slow; later ones in the next second not logged)",
                n,
                self.wait_seconds,
            )

    async def _send(self, views: Sequence[PendingView]) -> list[ViewReply]:
        """One script call for the batch; [] (every view unavailable) when Redis fails."""
        if not self._outage.usable():
            return []  # it failed moments ago: the queued views do not wait for it again
        keys, args = script_call(views)
        try:
            await _drop_closed_connection(self._views())
            replies = await self._record_views(keys=keys, args=args)
        except _ERRORS as err:
            self._outage.failed(err)
            return []
        return parse_replies(views, replies)


def _resolve(queued: _Queued, reply: ViewReply | None) -> None:
    if not queued.reply.done():  # its request may be gone (cancelled)
        queued.reply.set_result(reply)


async def _drop_closed_connection(client: aredis.Redis) -> None:
    """A held connection the server closed (Redis restarted, idle timeout) is dropped before
    use, so the call goes out on a new one instead of failing; sending first and retrying
    after an error could count a view twice."""
    conn = client.connection
    if conn is None or not conn.is_connected:
        return
    try:
        if await conn.can_read():
            await conn.disconnect()
    except _ERRORS:
        await conn.disconnect()
