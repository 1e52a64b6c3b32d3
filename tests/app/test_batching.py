"""The Redis store's batching of concurrent views (articles/batching.py), with real threads:
each view sent once or reported as not done, a lone view not delayed, no thread stuck."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from articles.batching import Batcher


class Recorder:
    """A send() that takes `seconds`, records what it sent, and answers item * 10."""

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(items))
        time.sleep(self.seconds() if callable(self.seconds) else self.seconds)
        return [] if self.fail else [i * 10 for i in items]

    @property
    def sent(self) -> Counter[int]:
        return Counter(i for batch in self.batches for i in batch)


def submit_all(batcher: Batcher[int, int], items: Sequence[int], threads: int) -> dict[int, int]:
    with ThreadPoolExecutor(threads) as pool:
        return dict(zip(items, pool.map(batcher.submit, items), strict=True))


def test_a_lone_view_goes_at_once_in_its_own_batch():
    send = Recorder()
    batcher = Batcher(send, max_batch=64, wait_seconds=1.0)
    t0 = time.monotonic()
    assert batcher.submit(7) == 70
    assert time.monotonic() - t0 < 0.05
    assert batcher.submit(8) == 80
    assert send.batches == [[7], [8]]


def test_concurrent_views_share_round_trips_and_each_gets_its_own_answer():
    send = Recorder(seconds=0.01)  # a round trip long enough for others to queue behind it
    batcher = Batcher(send, max_batch=64, wait_seconds=1.0)
    items = list(range(400))
    results = submit_all(batcher, items, threads=16)
    assert results == {i: i * 10 for i in items}
    assert send.sent == Counter(items)  # every view sent exactly once
    # 16 threads: after the first few, each batch carries the views that queued meanwhile.
    assert len(send.batches) < len(items) / 4, len(send.batches)
    assert max(len(b) for b in send.batches) <= 16


def test_the_batch_size_is_capped():
    send = Recorder(seconds=0.01)
    batcher = Batcher(send, max_batch=3, wait_seconds=1.0)
    results = submit_all(batcher, list(range(60)), threads=12)
    assert all(results[i] == i * 10 for i in range(60))
    assert max(len(b) for b in send.batches) == 3
    assert send.sent == Counter(range(60))


def test_a_failed_send_leaves_every_view_of_it_unanswered_and_the_next_ones_go_out():
    send = Recorder(seconds=0.005, fail=True)
    batcher = Batcher(send, max_batch=64, wait_seconds=1.0)
    assert set(submit_all(batcher, list(range(50)), threads=8).values()) == {None}
    send.fail = False
    assert batcher.submit(99) == 990


def test_views_that_wait_past_the_bound_are_not_sent_later():
    """A send overrunning its bound: the views queued behind it give up (None) and are never
    sent afterwards, so a view reported as not counted is not counted behind its back."""
    send = Recorder(seconds=0.4)
    batcher = Batcher(send, max_batch=64, wait_seconds=0.1)
    started = time.monotonic()
    results = submit_all(batcher, list(range(8)), threads=8)
    elapsed = time.monotonic() - started
    answered = {i for i, r in results.items() if r is not None}
    assert answered, results  # the first one sent its own batch
    given_up = set(results) - answered
    assert given_up, results
    time.sleep(0.5)  # anything that would still go out, would have by now
    assert set(send.sent) == answered, (send.batches, results)
    assert elapsed < 1.5
    assert batcher.submit(42) == 420  # and the turn was not lost


def test_a_storm_around_the_bound_loses_no_turn_and_sends_nothing_twice():
    """Sends of random length around the waiters' bound, many threads: whatever returned an
    answer was sent exactly once, nothing was sent twice, no thread hung, and afterwards a view
    still goes out (the turn to send was never dropped)."""
    rng = random.Random(20261127)
    lock = threading.Lock()

    def duration() -> float:
        with lock:
            return rng.choice([0.0, 0.001, 0.02, 0.06, 0.09])

    send = Recorder(seconds=duration)
    batcher = Batcher(send, max_batch=5, wait_seconds=0.05)
    items = list(range(600))
    started = time.monotonic()
    results = submit_all(batcher, items, threads=24)
    assert time.monotonic() - started < 60
    time.sleep(0.2)
    sent = send.sent
    assert max(sent.values()) == 1, "a view was sent twice"
    for item, result in results.items():
        if result is not None:
            assert result == item * 10 and sent[item] == 1
    answered = sum(r is not None for r in results.values())
    assert answered > len(items) / 4, answered
    assert batcher.submit(1000) == 10000


_IDS: list = []  # the SessionIds a forked child inherits (a thread-local cannot be pickled)


def test_session_ids_are_token_urlsafe_shaped_unique_and_differ_after_a_fork():
    import multiprocessing

    from articles.store import SessionIds, valid_session_id

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
