"""The shared store on a worker's event loop (asgi.py): the same script, keys and failure rules
as redis_store.py, over redis.asyncio.

A view waits for Redis without holding a thread. The views of concurrent requests still go out
together: requests that arrive while a batch is out queue, and the sender task takes all of them
as its next batch (group commit). A lone request goes at the loop's next turn, in its own batch.
Hand-written because redis-py has no auto-pipelining; its pipelines are per caller.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aredis

from .store import (
    MAX_BATCH,
    RECORD_VIEWS,
    RETRY_AFTER_SECONDS,
    UNAVAILABLE,
    PendingView,
    RedisStoreBase,
    ViewReply,
    Visit,
    counted,
    head_visit,
    log,
    parse_replies,
    pending_view,
    read_commands,
    script_call,
)

_ERRORS = (redis.RedisError, OSError, asyncio.TimeoutError)


class _Queued:
    __slots__ = ("deadline", "reply", "view")

    def __init__(self, view: PendingView, reply: asyncio.Future[ViewReply | None], deadline: float):
        self.view = view
        self.reply = reply
        self.deadline = deadline


class AsyncRedisStore(RedisStoreBase):
    def __init__(self, url: str, password: str, timeout_ms: int) -> None:
        super().__init__(url, password, timeout_ms)
        # A send is bounded by connecting plus one reply, so a view waits at most for the batch
        # that is out and then its own; one still queued at its deadline is never sent.
        self.wait_seconds = 4 * self.timeout + 0.1
        self._queue: deque[_Queued] = deque()
        self._sender: asyncio.Task[None] | None = None
        self._expired_logged_at = -RETRY_AFTER_SECONDS
        # Made by open() at worker startup (or on first use), inside the worker's loop: one for
        # the batches, one for HEAD's reads.
        self._views_client: aredis.Redis | None = None
        self._record_views: Any = None  # its EVALSHA of RECORD_VIEWS
        self._reads_client: aredis.Redis | None = None

    def _client(self) -> aredis.Redis:
        return aredis.Redis.from_url(**self._options)

    def _views(self) -> aredis.Redis:
        if self._views_client is None:
            self._views_client = self._client()
            self._record_views = self._views_client.register_script(RECORD_VIEWS)
        return self._views_client

    def _reads(self) -> aredis.Redis:
        if self._reads_client is None:
            self._reads_client = self._client()
        return self._reads_client

    async def open(self) -> None:
        """At worker startup, before any request: connect both clients and load the script.
        Otherwise the first views, which come under load, spend their bound on DNS, the
        connection, AUTH and the script's first call, and the views queued behind them expire
        or an overrun starts an outage (a CI e2e run once lost 500 views, none sent to Redis).
        Redis down now is an outage like any later one: pages are served, views resume."""
        try:
            views = await self._views().initialize()
            await views.script_load(RECORD_VIEWS)
            await self._reads().pipeline(transaction=False).ping().execute()  # HEAD's pooled one
        except _ERRORS as err:
            self._outage.failed(err)

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        if not self._outage.usable():
            return UNAVAILABLE
        view = pending_view(article_id, session_id, self._session_ids.new() if count else "")
        if not count:
            return await self._read(view)
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[ViewReply | None] = loop.create_future()
        self._queue.append(_Queued(view, reply, loop.time() + self.wait_seconds))
        if self._sender is None:
            self._sender = loop.create_task(self._send_queued())
        return counted(await reply, view)

    async def _read(self, view: PendingView) -> Visit:
        """HEAD: the count and the session, nothing written."""
        try:
            # A pipeline takes a pooled connection, which the pool checks before handing out.
            pipe = read_commands(self._reads().pipeline(transaction=False), view)
            return head_visit(await pipe.execute())
        except _ERRORS as err:
            self._outage.failed(err)
            return UNAVAILABLE

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

    async def aclose(self) -> None:
        for client in (self._views_client, self._reads_client):
            if client is not None:
                await client.aclose()


def _resolve(queued: _Queued, reply: ViewReply | None) -> None:
    if not queued.reply.done():  # its request may be gone (cancelled)
        queued.reply.set_result(reply)


async def _drop_closed_connection(client: aredis.Redis) -> None:
    """As redis_store.py does: a held connection the server closed (Redis restarted) is dropped
    before use, so the batch goes out on a new one instead of failing; sending first and
    retrying after an error could count a view twice."""
    conn = client.connection
    if conn is None or not conn.is_connected:
        return
    try:
        if await conn.can_read():
            await conn.disconnect()
    except _ERRORS:
        await conn.disconnect()
