"""Where view counters and sessions live: Redis when configured, else this pod's memory.

With Redis every pod adds to the same counter with INCR (atomic in the server, so no
read-modify-write can lose a view) and a visitor's session ("recently read") is a Redis list
keyed by the session id in their cookie, so whichever pod answers the next request sees it.
Every call is bounded by the configured timeout and never retried inside a request; after a
failure the store is skipped for RETRY_AFTER_SECONDS so pages stay fast while it is down.
A view that could not be confirmed is reported as failed (metrics), never silently dropped.
On the server's event loop the views of a worker's concurrent requests go out together, one
script call per round trip (redis_async.py); the Flask app's threads send a view per call
(redis_store.py).
"""

from __future__ import annotations

import base64
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from redis.backoff import NoBackoff
from redis.retry import Retry

from .podcounter import PodCounters

VIEWS_KEY = "articles:views:{}"
SESSION_KEY = "articles:session:{}"
RECENT = 5  # articles a session remembers
SESSION_TTL_SECONDS = 1800  # idle time after which a session is forgotten
RETRY_AFTER_SECONDS = 1.0
log = logging.getLogger("articles.store")
MAX_BATCH = 64  # views per script call (redis_async.py)
# A batch of views in one script, which Redis runs atomically as one command (MULTI/EXEC of
# six commands per view cost the client several times the parsing: 47 against 82 us per view).
# Per view i (from 0): KEYS[3i+1] its article's counter, KEYS[3i+2] the session its cookie named
# (or the fresh one), KEYS[3i+3] a fresh session the app drew; ARGV[2i+3] the article,
# ARGV[2i+4] '1' if the cookie named a session. Counters: one INCRBY per counter for the whole
# batch (atomic, no read-modify-write), the batch's views of it numbered consecutively in
# batch order. Sessions: the cookie's one, if it exists, has the article moved to the front of
# its "recently read" list, trimmed, its idle timer reset, and is returned; otherwise the fresh
# one is made holding just this article (so the server never adopts an id a client chose:
# session fixation), and only the count is returned, as the app knows the rest.
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
# 18 random bytes in URL-safe base64: 24 characters of [A-Za-z0-9_-]; anything else in a cookie
# is ignored.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{24}$")


class SessionIds:
    """Fresh session ids: 18 bytes of os.urandom each, shown as 24 URL-safe characters (what
    secrets.token_urlsafe(18) gives), read 256 ids at a time per thread. Each os.urandom call
    lets go of the GIL, and under many threads taking it back cost more than the rest of the
    view; the bytes are the same kernel CSPRNG's, so the ids are as unguessable. The buffer is
    per process (refilled after a fork), so two workers never hand out the same ids."""

    SIZE = 18
    PER_READ = 256

    def __init__(self) -> None:
        self._local = threading.local()

    def new(self) -> str:
        local, pid = self._local, os.getpid()
        pos = getattr(local, "pos", 0)
        if getattr(local, "pid", None) != pid or pos >= len(local.buffer):
            local.buffer, local.pid, pos = os.urandom(self.SIZE * self.PER_READ), pid, 0
        local.pos = pos + self.SIZE
        return base64.urlsafe_b64encode(local.buffer[pos : pos + self.SIZE]).decode()


def valid_session_id(value: str | None) -> str | None:
    return value if value and SESSION_ID.match(value) else None


class PendingView(NamedTuple):
    article_id: int
    views_key: str
    session_key: str | None  # the cookie's session, if it named one
    fresh_session: str  # the id to use if it did not, or if that session is gone


# (the article's count after this view, the session's articles newest first, whether the
# fresh session was made for it: a new visitor, or the cookie's session had expired)
ViewReply = tuple[int, tuple[int, ...], bool]


@dataclass(frozen=True)
class Visit:
    views: int | None  # the article's count (after this view); None = store unreachable
    recent: tuple[int, ...] | None  # the session's articles, newest first; None = unavailable
    new_session: str | None  # a session id to hand out in a cookie
    recorded: bool  # this view was counted and the store confirmed it


UNAVAILABLE = Visit(None, None, None, False)


class StoreTraits(Protocol):
    kind: str  # "redis" or "pod" (the metrics' store label)
    shared: bool  # one counter for every pod
    sessions: bool  # keeps server-side sessions


class Store(StoreTraits, Protocol):
    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit: ...

    def stored_views(self) -> dict[int, int] | None: ...


class AsyncStore(StoreTraits, Protocol):
    """A store for the asyncio path (asgi.py)."""

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit: ...

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


def redis_options(url: str, password: str, timeout: float) -> dict[str, Any]:
    """Client options of both Redis stores (this one and redis_async.py)."""
    return {
        "url": url,
        "password": password or None,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # redis-py retries 3 times by default: that would multiply the bound per request.
        "retry": Retry(NoBackoff(), 0),
        "client_name": "articles",
        # One connection per client, held: no pool to lock and check (the pool's get and
        # release, with their fork checks, cost as much as the rest of the request).
        "single_connection_client": True,
    }


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


def pending_view(article_id: int, session_id: str | None, fresh_session: str) -> PendingView:
    skey = SESSION_KEY.format(session_id) if session_id is not None else None
    return PendingView(article_id, VIEWS_KEY.format(article_id), skey, fresh_session)


def counted(reply: ViewReply | None, view: PendingView) -> Visit:
    """The visit of a view sent in a batch (None: it was not done)."""
    if reply is None:
        return UNAVAILABLE
    views, recent, fresh_used = reply
    return Visit(views, recent, view.fresh_session if fresh_used else None, True)


def head_visit(replies: Sequence[Any]) -> Visit:
    """The visit a HEAD shows, from the replies of read_commands' pipeline."""
    views, *rest = replies
    recent = tuple(int(x) for x in rest[0]) if rest else None
    return Visit(int(views or 0), recent, None, False)


def read_commands(pipe: Any, view: PendingView) -> Any:
    """Queue a HEAD's reads (the count, the session's articles) on a pipeline, sync or async."""
    pipe.get(view.views_key)
    if view.session_key is not None:
        pipe.lrange(view.session_key, 0, RECENT - 1)
    return pipe


class Outage:
    """After a failure the store is skipped for RETRY_AFTER_SECONDS; one log line per outage."""

    def __init__(self) -> None:
        self._down_until = 0.0
        self._lock = threading.Lock()

    def usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def failed(self, err: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
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


class RedisStoreBase:
    """What both Redis stores share (redis_store.py in threads, redis_async.py on the event
    loop): their traits, client options, the outage rule and the fresh session ids."""

    kind = "redis"
    shared = True
    sessions = True

    def __init__(self, url: str, password: str, timeout_ms: int) -> None:
        self.timeout = timeout_ms / 1000
        self._options = redis_options(url, password, self.timeout)
        self._outage = Outage()
        self._session_ids = SessionIds()


class PodStore:
    """No shared store: counters per pod (shared by its workers), no sessions."""

    kind = "pod"
    shared = False
    sessions = False

    def __init__(self, counters: PodCounters, article_ids: Iterable[int]) -> None:
        ids = sorted(article_ids)
        if len(ids) > counters.slots:
            raise ValueError(f"{len(ids)} articles: the per-pod counters hold {counters.slots}")
        self.counters = counters
        self.slots = {article_id: slot for slot, article_id in enumerate(ids)}

    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        slot = self.slots[article_id]
        views = self.counters.incr(slot) if count else self.counters.get(slot)
        return Visit(views, None, None, count)

    def stored_views(self) -> dict[int, int] | None:
        return {a: self.counters.get(slot) for a, slot in self.slots.items()}


class NonBlocking:
    """A store whose calls never wait (the per-pod counters), for the asyncio path."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.kind, self.shared, self.sessions = store.kind, store.shared, store.sessions

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        return self.store.visit(article_id, session_id, count=count)

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
