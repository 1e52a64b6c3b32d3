"""Where view counters and sessions live: Redis when configured (redis_store.py), else this
pod's shared memory (PodStore). Both are awaited on the worker's event loop.

A view that could not be confirmed is reported as failed (metrics), never silently dropped.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from .podcounter import PodCounters

RECENT = 5  # articles a session remembers
SESSION_TTL_SECONDS = 1800  # idle time after which a session is forgotten
# 18 random bytes in URL-safe base64: 24 characters of [A-Za-z0-9_-]; anything else in a cookie
# is ignored.
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{24}$")


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

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit: ...

    async def stored_views(self) -> dict[int, int] | None: ...

    async def open(self) -> None: ...

    async def aclose(self) -> None: ...


def valid_session_id(value: str | None) -> str | None:
    return value if value and SESSION_ID.match(value) else None


class SessionIds:
    """Fresh session ids: 18 bytes of os.urandom each, shown as 24 URL-safe characters (what
    secrets.token_urlsafe(18) gives), read 256 ids at a time: one os.urandom call per id cost
    more than the rest of the view. The bytes are the same kernel CSPRNG's, so the ids are as
    unguessable. The buffer is per process (refilled after a fork), so two workers never hand
    out the same ids."""

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


class PodStore:
    """No shared store: counters per pod (shared by its workers), no sessions. Never waits."""

    kind = "pod"
    shared = False
    sessions = False

    def __init__(self, counters: PodCounters, article_ids: Iterable[int]) -> None:
        ids = sorted(article_ids)
        if len(ids) > counters.slots:
            raise ValueError(f"{len(ids)} articles: the per-pod counters hold {counters.slots}")
        self.counters = counters
        self.slots = {article_id: slot for slot, article_id in enumerate(ids)}

    async def visit(self, article_id: int, session_id: str | None, *, count: bool) -> Visit:
        slot = self.slots[article_id]
        views = self.counters.incr(slot) if count else self.counters.get(slot)
        return Visit(views, None, None, count)

    async def stored_views(self) -> dict[int, int] | None:
        return {a: self.counters.get(slot) for a, slot in self.slots.items()}

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
