"""The shared store for threads (the Flask app: /metrics, and the article view when the app is
served as WSGI, as in the tests' client): Redis through redis-py, one client per thread.

The production server answers article pages on its event loop instead (redis_async.py, which
batches the views of concurrent requests); this one sends each view on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import redis

from .store import (
    RECORD_VIEWS,
    UNAVAILABLE,
    VIEWS_KEY,
    RedisStoreBase,
    Visit,
    counted,
    head_visit,
    parse_replies,
    pending_view,
    read_commands,
    script_call,
)


class RedisStore(RedisStoreBase):
    def __init__(
        self, url: str, password: str, timeout_ms: int, article_ids: Iterable[int]
    ) -> None:
        super().__init__(url, password, timeout_ms)
        self.article_ids = tuple(sorted(article_ids))  # the counters /metrics reads
        self._local = threading.local()
        # EVALSHA of RECORD_VIEWS (loaded again after a Redis restart); each call goes out on
        # the calling thread's client. Registered on a pooled client: it connects only when used
        # (never: calls pass their own), while a single-connection client connects as it is made.
        pooled = redis.Redis.from_url(**{**self._options, "single_connection_client": False})
        self._record_views = pooled.register_script(RECORD_VIEWS)

    @property
    def client(self) -> redis.Redis:
        """This thread's client (connects on first use, reconnects after an error)."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = redis.Redis.from_url(**self._options)
        return client

    @staticmethod
    def _drop_closed_connection(client: redis.Redis) -> None:
        """The held connection, if the server closed it (Redis restarted, idle timeout), is
        dropped before use, so the view goes out on a new one instead of failing. The same
        poll redis-py's pool makes when it hands out a connection; sending first and retrying
        after an error could count one view twice."""
        conn = client.connection
        if conn is None or getattr(conn, "_sock", None) is None:
            return  # not connected yet: the command connects
        try:
            if conn.can_read(timeout=0):
                conn.disconnect()  # unread data on an idle connection: never reuse it
        except (redis.ConnectionError, OSError):
            conn.disconnect()

    def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        if not self._outage.usable():
            return UNAVAILABLE
        view = pending_view(article_id, session_id, self._session_ids.new() if count else "")
        try:
            client = self.client
            self._drop_closed_connection(client)
            if count:
                keys, args = script_call([view])
                replies = self._record_views(keys=keys, args=args, client=client)
                return counted(parse_replies([view], replies)[0], view)
            return head_visit(read_commands(client.pipeline(transaction=False), view).execute())
        except (redis.RedisError, OSError) as err:
            self._outage.failed(err)
            return UNAVAILABLE

    def stored_views(self) -> dict[int, int] | None:
        if not self._outage.usable():
            return None
        try:
            self._drop_closed_connection(self.client)
            values = self.client.mget([VIEWS_KEY.format(a) for a in self.article_ids])
        except (redis.RedisError, OSError) as err:
            self._outage.failed(err)
            return None
        return {a: int(v or 0) for a, v in zip(self.article_ids, values, strict=True)}
