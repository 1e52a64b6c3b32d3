"""Views of concurrent requests sent to Redis together: one round trip for a batch of them.

Under load most of a view's cost was the round trip, not the work: the request's thread sends,
Redis wakes for one small script, the thread wakes again and takes the GIL back, once per view.
Here the threads of a worker process take turns as the one that sends: while a batch is out,
the views that arrive wait, and the first of them sends them all as the next batch (group
commit, as databases write their log). A lone request still goes at once, in its own batch.

Hand-written because no kept library does it for a threaded WSGI server: redis-py pipelines
are per caller, and auto-pipelining clients need an event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Waiter(Generic[Item, Result]):
    __slots__ = ("done", "item", "result", "wake")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.result: Result | None = None
        self.done = False  # True: result is set; False when woken: this waiter sends next
        # A plain lock, held until the waiter is woken: cheaper than an Event per request.
        self.wake = threading.Lock()
        self.wake.acquire()


class Batcher(Generic[Item, Result]):
    """submit(item) returns send()'s result for it, or None when no result came in time.

    send(items) gets at most max_batch items and returns one result per item, in order (None
    for an item it could not do, e.g. the store is unreachable); it must not raise and must
    return within its own bound, so that `wait_seconds` (a waiter's bound on its turn) holds.
    """

    def __init__(
        self,
        send: Callable[[Sequence[Item]], Sequence[Result | None]],
        *,
        max_batch: int,
        wait_seconds: float,
    ) -> None:
        self._send = send
        self._max = max_batch
        self._wait = wait_seconds
        self._lock = threading.Lock()
        self._queue: list[_Waiter[Item, Result]] = []
        self._sending = False  # a batch is out; the queue's first waiter sends the next one

    def submit(self, item: Item) -> Result | None:
        waiter: _Waiter[Item, Result] = _Waiter(item)
        with self._lock:
            self._queue.append(waiter)
            turn = not self._sending
            self._sending = True
        if not turn:
            if not waiter.wake.acquire(timeout=self._wait):
                return self._give_up(waiter)
            if waiter.done:
                return waiter.result
        self._send_batch()
        return waiter.result

    def _send_batch(self) -> None:
        with self._lock:
            batch = self._queue[: self._max]
            del self._queue[: self._max]
        results: Sequence[Result | None] = ()
        try:
            results = self._send([w.item for w in batch])
        finally:
            for i, w in enumerate(batch):
                w.result = results[i] if i < len(results) else None
                w.done = True
                w.wake.release()
            with self._lock:
                if self._queue:
                    self._queue[0].wake.release()  # its turn: it sends what has queued up
                else:
                    self._sending = False

    def _give_up(self, waiter: _Waiter[Item, Result]) -> Result | None:
        """No turn and no result within the bound (a send that overran its own bound)."""
        with self._lock:
            queued = waiter in self._queue
            if queued and not waiter.wake.acquire(blocking=False):
                self._queue.remove(waiter)  # never sent, and now it will not be
                return None
        # Queued: it was handed the turn just now, and must take it or nobody sends again.
        # Not queued: it is in a batch that is out, whose reply comes within the send's bound.
        if not queued and not waiter.wake.acquire(timeout=self._wait):
            return None
        if not waiter.done:
            self._send_batch()
        return waiter.result
