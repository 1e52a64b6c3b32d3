"""A steady load of fresh connections that remembers every failure: when, why, and which pods
answered the same client just before and just after it.

One request per connection (Connection: close), the way a browser behind a NAT or a
fresh-connection client meets a rollout: each request is a new pick by the load balancer, so
an address that refuses or resets shows up at once. The sending is http_load's; this module
only watches its Outcomes.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loadgen import http_load

MAX_LISTED = 500  # failures listed one by one; all are counted
# A fresh connection whose first SYN is lost answers after the 1 s SYN retransmission: a
# request that took this long succeeded only at the second try of its connection.
SLOW_SECONDS = 0.9


def reason_of(outcome: http_load.Outcome) -> str | None:
    """None for a 2xx; else refused, reset, timeout, http-<status>, or the error's type."""
    if outcome.exc is None:
        status = outcome.status or 0
        return None if 200 <= status < 300 else f"http-{status}"
    exc = outcome.exc
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    # RemoteDisconnected: the connection closed before a response (a ConnectionResetError too).
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if isinstance(exc, http.client.HTTPException):
        return "bad-response"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{type(exc).__name__}({exc.errno})"
    return type(exc).__name__


@dataclass
class Recorder:
    """http_load's observer: counts per second and per pod, lists failures (bounded)."""

    t0: float = field(default_factory=time.monotonic)
    total: int = 0
    failed: int = 0
    by_reason: Counter = field(default_factory=Counter)
    per_second: dict[int, Counter] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    slow: int = 0
    slow_samples: list[dict[str, Any]] = field(default_factory=list)
    max_latency: float = 0.0
    _last_pod: dict[int, str] = field(default_factory=dict)
    _awaiting_next: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def offset(self, monotonic: float) -> float:
        return round(monotonic - self.t0, 3)

    def __call__(self, o: http_load.Outcome) -> None:
        t = self.offset(o.ended)
        reason = reason_of(o)
        second = self.per_second.setdefault(int(t), Counter())
        second["requests"] += 1
        self.total += 1
        if o.pod is not None:
            pod = self.pods.setdefault(o.pod, {"served": 0, "first_s": t, "last_s": t})
            pod["served"] += 1
            pod["last_s"] = t
        if reason is None:
            self.max_latency = max(self.max_latency, o.latency)
            if o.latency >= SLOW_SECONDS:
                self.slow += 1
                second["slow"] += 1
                if len(self.slow_samples) < 20:
                    self.slow_samples.append(
                        {"t": t, "seconds": round(o.latency, 3), "pod": o.pod, "client": o.worker}
                    )
            self._last_pod[o.worker] = o.pod or http_load.NO_HEADER
            for failure in self._awaiting_next.pop(o.worker, []):
                failure["next_pod"] = o.pod
            return
        self.failed += 1
        self.by_reason[reason] += 1
        second[reason] += 1
        if len(self.failures) < MAX_LISTED:
            failure = {
                "t": t,
                "started_t": self.offset(o.ended - o.latency),
                "reason": reason,
                "client": o.worker,
                "pod": o.pod,  # an HTTP error names its pod; a connection error has none
                "previous_pod": self._last_pod.get(o.worker),
                "next_pod": None,
                "detail": f"{type(o.exc).__name__}: {o.exc}" if o.exc else f"HTTP {o.status}",
            }
            self.failures.append(failure)
            self._awaiting_next.setdefault(o.worker, []).append(failure)

    def summary(self) -> dict[str, Any]:
        seconds = [
            {"second": s, **dict(c)}
            for s, c in sorted(self.per_second.items())
            if set(c) - {"requests", "slow"}
        ]
        return {
            "total": self.total,
            "failed": self.failed,
            "failure_rate": round(self.failed / self.total, 5) if self.total else None,
            "by_reason": dict(self.by_reason.most_common()),
            # Answered, but only after >= SLOW_SECONDS: a lost SYN, or a saturated node.
            "slow": self.slow,
            "slow_samples": self.slow_samples,
            "max_latency_s": round(self.max_latency, 3),
            "seconds_with_failures": seconds,
            "pods": dict(sorted(self.pods.items())),
            "failures": self.failures,
            "failures_listed": len(self.failures),
        }


class SteadyLoad:
    """The load in a background thread: start(), then stop() returns the LoadResult."""

    def __init__(
        self,
        url: str,
        *,
        clients: int,
        request_timeout: float,
        max_seconds: float,
        interval: float = 0.0,
        recorder: Recorder | None = None,
    ) -> None:
        http_load.Target.parse(url)  # a bad URL fails here, before anything starts
        self.url, self.clients = url, clients
        self.request_timeout, self.max_seconds, self.interval = (
            request_timeout,
            max_seconds,
            interval,
        )
        self.recorder = recorder or Recorder()
        self._stop = threading.Event()
        self._result: http_load.LoadResult | None = None
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def _run(self) -> None:
        self._result = http_load.run_load(
            self.url,
            requests=10**9,
            concurrency=self.clients,
            keepalive=False,
            timeout=self.request_timeout,
            deadline_s=self.max_seconds,
            stop=self._stop,
            interval=self.interval,
            observe=self.recorder,
        )

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> http_load.LoadResult | None:
        self._stop.set()
        self._thread.join(self.request_timeout + 5.0)
        return self._result
