"""The load generator of `verify --url` and `drill --url`: stdlib http.client on threads.

Each worker owns one connection at a time. The pod that answers a connection's first
request is that connection's pod, which lets the verdict count connections exactly, the
unit a TCP load balancer (kube-proxy, HAProxy in TCP mode) actually balances.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

SERVED_BY = "X-Served-By"
NO_HEADER = "<no X-Served-By>"


class UrlError(ValueError):
    """The URL cannot be used (scheme, host)."""


@dataclass
class Target:
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UrlError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.scheme, parts.hostname, port, path)

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout)


@dataclass
class LoadResult:
    url: str
    keepalive: bool
    concurrency: int
    requested: int
    attempted: int = 0
    ok: int = 0
    errors: int = 0
    status: Counter = field(default_factory=Counter)
    pod_requests: Counter = field(default_factory=Counter)
    pod_connections: Counter = field(default_factory=Counter)
    mixed_connections: int = 0  # connections whose responses came from several pods (L7)
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    deadline_hit: bool = False

    def summary(self) -> dict:
        return {
            "url": self.url,
            "keepalive": self.keepalive,
            "concurrency": self.concurrency,
            "requested": self.requested,
            "total": self.attempted,
            "ok": self.ok,
            "errors": self.errors,
            "status_codes": {str(k): v for k, v in sorted(self.status.items(), key=str)},
            "connections": sum(self.pod_connections.values()),
            "qps": round(self.attempted / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "duration_s": round(self.elapsed, 3),
            "latency_ms": latency_summary(self.latencies),
            "deadline_hit": self.deadline_hit,
            "error_samples": self.error_samples,
        }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), round(pct / 100.0 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    values = sorted(latencies)
    out: dict[str, float | None] = {}
    for name, pct in (("p50", 50), ("p90", 90), ("p99", 99)):
        v = percentile(values, pct)
        out[name] = round(v * 1000, 3) if v is not None else None
    return out


@dataclass(frozen=True)
class Outcome:
    """One request as an observer sees it (rollout-check: each failure with its time)."""

    ended: float  # time.monotonic() when it ended
    latency: float  # seconds
    worker: int
    pod: str | None  # X-Served-By, None when no response came
    status: int | None
    exc: BaseException | None  # the connection error, None when a response came


Observer = Callable[[Outcome], None]


class _Shared:
    """Counters the workers update under one lock (cheap next to a network round trip)."""

    def __init__(self, result: LoadResult, observe: Observer | None = None) -> None:
        self.result = result
        self.lock = threading.Lock()
        self.observe = observe

    def record(
        self,
        *,
        pod: str | None,
        status: int | None,
        latency: float,
        new_conn_pod: str | None,
        mixed: bool,
        error: str | None,
        outcome: Outcome | None = None,
    ) -> None:
        r = self.result
        with self.lock:
            if self.observe is not None and outcome is not None:
                self.observe(outcome)
            r.attempted += 1
            if status is not None:
                r.status[status] += 1
            if pod is not None:
                r.pod_requests[pod] += 1
            if new_conn_pod is not None:
                r.pod_connections[new_conn_pod] += 1
            if mixed:
                r.mixed_connections += 1
            if error is None:
                r.ok += 1
                r.latencies.append(latency)
            else:
                r.errors += 1
                if len(r.error_samples) < 5:
                    r.error_samples.append(error)


def _worker(
    target: Target,
    count: int,
    keepalive: bool,
    timeout: float,
    deadline: float,
    shared: _Shared,
    stop: threading.Event,
    interval: float,
    index: int = 0,
) -> None:
    conn: http.client.HTTPConnection | None = None
    conn_pod: str | None = None
    headers = {"Connection": "keep-alive" if keepalive else "close", "User-Agent": "loadgen"}
    try:
        for _ in range(count):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop.is_set():
                with shared.lock:
                    shared.result.deadline_hit = shared.result.deadline_hit or remaining <= 0
                return
            if conn is None:
                conn = target.connect(min(timeout, remaining))
                conn_pod = None
            else:
                conn.timeout = min(timeout, remaining)
                if conn.sock is not None:
                    conn.sock.settimeout(conn.timeout)
            start = time.perf_counter()
            pod: str | None = None
            status: int | None = None
            new_conn_pod: str | None = None
            mixed = False
            error: str | None = None
            failure: BaseException | None = None
            try:
                conn.request("GET", target.path, headers=headers)
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                pod = resp.getheader(SERVED_BY) or NO_HEADER
                if conn_pod is None:
                    conn_pod = new_conn_pod = pod
                elif pod != conn_pod:
                    mixed = True
                if not 200 <= status < 300:
                    error = f"HTTP {status} from {pod}"
                if not keepalive or resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
                failure = exc
                if conn is not None:
                    conn.close()
                conn = None
            latency = time.perf_counter() - start
            outcome = None
            if shared.observe is not None:
                outcome = Outcome(time.monotonic(), latency, index, pod, status, failure)
            if interval > 0:
                stop.wait(interval)  # paced traffic (drill): also wakes at once on stop
            shared.record(
                pod=pod,
                status=status,
                latency=latency,
                new_conn_pod=new_conn_pod,
                mixed=mixed,
                error=error,
                outcome=outcome,
            )
    finally:
        if conn is not None:
            conn.close()


def run_load(
    url: str,
    *,
    requests: int,
    concurrency: int,
    keepalive: bool,
    timeout: float,
    deadline_s: float,
    stop: threading.Event | None = None,
    interval: float = 0.0,
    observe: Observer | None = None,
) -> LoadResult:
    """Send `requests` GETs over `concurrency` workers; never runs past deadline_s seconds.

    stop ends the run early (the drill stops its background traffic this way); interval
    paces each worker (seconds between its requests); observe is called with every request's
    Outcome (under the counters' lock, so keep it short)."""
    target = Target.parse(url)
    concurrency = max(1, min(concurrency, requests))
    result = LoadResult(url=url, keepalive=keepalive, concurrency=concurrency, requested=requests)
    shared = _Shared(result, observe)
    stop = stop or threading.Event()
    deadline = time.monotonic() + deadline_s
    base, extra = divmod(requests, concurrency)
    threads = [
        threading.Thread(
            target=_worker,
            args=(
                target,
                base + (1 if i < extra else 0),
                keepalive,
                timeout,
                deadline,
                shared,
                stop,
                interval,
                i,
            ),
            name=f"loadgen-{i}",
            daemon=True,
        )
        for i in range(concurrency)
    ]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        # Workers check the deadline before each request and sockets time out by then too.
        t.join(max(0.0, deadline - time.monotonic()) + timeout + 1.0)
    stop.set()  # a straggler past its join budget must not keep sending
    result.elapsed = time.monotonic() - start
    return result


def probe(url: str, timeout: float) -> tuple[int, str]:
    """One GET to fail fast on an unreachable URL; returns (status, served-by)."""
    target = Target.parse(url)
    conn = target.connect(timeout)
    try:
        conn.request("GET", target.path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader(SERVED_BY) or NO_HEADER
    finally:
        conn.close()


def reachable(url: str, timeout: float, attempts: int = 3) -> None:
    """Fail fast on a wrong URL, but not on one bad backend behind a good one: raises the
    last error only when every attempt failed (each on a fresh connection)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            probe(url, timeout)
            return
        except (OSError, http.client.HTTPException) as exc:
            last = exc
    assert last is not None
    raise last
