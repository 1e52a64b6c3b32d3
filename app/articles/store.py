"""Where view counters and sessions live: Redis when configured, else this pod's memory.

With Redis every pod adds to the same counter with INCR (atomic in the server, so no
read-modify-write can lose a view) and a visitor's session ("recently read") is a Redis list
keyed by the session id in their cookie, so whichever pod answers the next request sees it.
Every call is bounded by the configured timeout and never retried inside a request; after a
failure the store is skipped for RETRY_AFTER_SECONDS so pages stay fast while it is down.
A view that could not be confirmed is reported as failed (metrics), never silently dropped.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .podcounter import PodCounters

VIEWS_KEY = "articles:views:{}"
SESSION_KEY = "articles:session:{}"
RECENT = 5  # articles a session remembers
SESSION_TTL_SECONDS = 1800  # idle time after which a session is forgotten
RETRY_AFTER_SECONDS = 1.0
# A view: INCR of the article's counter (atomic, no read-modify-write) and the visitor's
# "recently read" list moved to the front, trimmed and its idle timer reset. A script runs
# atomically in the server and costs one command, where MULTI/EXEC of six costs the client
# several times the parsing (measured: 47 against 82 us per view with hiredis). A session id
# from a cookie is used only if that session exists (KEYS[2]); otherwise the fresh id the app
# drew (KEYS[3]) is, so the server never adopts an id a client chose (session fixation).
RECORD_VIEW = """
local views = redis.call('INCR', KEYS[1])
local session, renewed = KEYS[2], 0
if ARGV[4] == '1' and redis.call('EXISTS', session) == 0 then
  session, renewed = KEYS[3], 1
end
redis.call('LREM', session, 0, ARGV[1])
redis.call('LPUSH', session, ARGV[1])
redis.call('LTRIM', session, 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', session, ARGV[3])
return {views, redis.call('LRANGE', session, 0, -1), renewed}
"""
# token_urlsafe(18): 24 characters of [A-Za-z0-9_-]; anything else in a cookie is ignored.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{24}$")


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


def valid_session_id(value: str | None) -> str | None:
    return value if value and SESSION_ID.match(value) else None


@dataclass(frozen=True)
class Visit:
    views: int | None  # the article's count (after this view); None = store unreachable
    recent: tuple[int, ...] | None  # the session's articles, newest first; None = unavailable
    new_session: str | None  # a session id to hand out in a cookie
    recorded: bool  # this view was counted and the store confirmed it


UNAVAILABLE = Visit(None, None, None, False)


class Store(Protocol):
    kind: str  # "redis" or "pod" (the metrics' store label)
    shared: bool  # one counter for every pod
    sessions: bool  # keeps server-side sessions

    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit: ...

    def stored_views(self) -> dict[int, int] | None: ...


class RedisStore:
    kind = "redis"
    shared = True
    sessions = True

    def __init__(
        self, url: str, password: str, timeout_ms: int, article_ids: Iterable[int]
    ) -> None:
        timeout = timeout_ms / 1000
        self.article_ids = tuple(sorted(article_ids))
        self._options = {
            "url": url,
            "password": password or None,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            # redis-py retries 3 times by default: that would multiply the bound per request.
            "retry": Retry(NoBackoff(), 0),
            "client_name": "articles",
            # One connection per thread, held: no pool to lock and check (the pool's get and
            # release, with their fork checks, cost as much as the rest of the request).
            "single_connection_client": True,
        }
        self._local = threading.local()
        self._down_until = 0.0
        self._lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        """This thread's client (connects on first use, reconnects after an error)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = redis.Redis.from_url(**self._options)
            # EVALSHA of a script the client loads once (again after a Redis restart).
            self._local.record = client.register_script(RECORD_VIEW)
        return client

    def _script(self) -> Any:
        self.client  # noqa: B018 (makes this thread's client and its script)
        return self._local.record

    def _drop_closed_connection(self) -> None:
        """The held connection, if the server closed it (Redis restarted, idle timeout), is
        dropped before use, so the view goes out on a new one instead of failing. The same
        poll redis-py's pool makes when it hands out a connection; sending first and retrying
        after an error could count one view twice."""
        conn = self.client.connection
        if conn is None or getattr(conn, "_sock", None) is None:
            return  # not connected yet: the command connects
        try:
            if conn.can_read(timeout=0):
                conn.disconnect()  # unread data on an idle connection: never reuse it
        except (redis.ConnectionError, OSError):
            conn.disconnect()

    def _usable(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + RETRY_AFTER_SECONDS

    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        if not self._usable():
            return UNAVAILABLE
        new = None
        key = VIEWS_KEY.format(article_id)
        skey = SESSION_KEY.format(session_id) if session_id is not None else None
        try:
            self._drop_closed_connection()
            if count:
                # One round trip, applied atomically by the server: the count and the session.
                fresh = new_session_id()
                fresh_key = SESSION_KEY.format(fresh)
                reply = self._script()(
                    keys=[key, skey or fresh_key, fresh_key],
                    args=[article_id, RECENT, SESSION_TTL_SECONDS, "1" if skey else "0"],
                )
                views, recent = reply[0], reply[1]
                if skey is None or reply[2]:
                    new = fresh
            else:
                pipe = self.client.pipeline(transaction=False)
                pipe.get(key)
                if skey is not None:
                    pipe.lrange(skey, 0, RECENT - 1)
                views, *rest = pipe.execute()
                recent = rest[0] if rest else None
        except (redis.RedisError, OSError):
            self._failed()
            return UNAVAILABLE
        articles = tuple(int(x) for x in recent) if recent is not None else None
        return Visit(int(views or 0), articles, new, count)

    def stored_views(self) -> dict[int, int] | None:
        if not self._usable():
            return None
        try:
            self._drop_closed_connection()
            values = self.client.mget([VIEWS_KEY.format(a) for a in self.article_ids])
        except (redis.RedisError, OSError):
            self._failed()
            return None
        return {a: int(v or 0) for a, v in zip(self.article_ids, values, strict=True)}


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
