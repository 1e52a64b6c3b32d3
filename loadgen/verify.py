"""`verify`: send or read the load, count it per pod, and decide."""

from __future__ import annotations

import http.client
import time
from typing import Any

from loadgen import http_load, report
from loadgen.affinity import decide_sticky
from loadgen.verdict import Verdict, decide


def verify_url(
    url: str,
    *,
    requests: int,
    concurrency: int,
    keepalive: bool,
    expected_pods: int | None,
    alpha: float,
    timeout: float,
    request_timeout: float,
    max_error_rate: float,
    session_affinity: str = "None",
) -> dict[str, Any]:
    """Send the traffic ourselves and count responses per pod by X-Served-By."""
    started = time.monotonic()
    try:
        http_load.reachable(url, min(request_timeout, timeout / 3))
    except (OSError, http.client.HTTPException) as exc:
        return report.unverifiable("url", f"{url} is unreachable: {type(exc).__name__}: {exc}")
    remaining = timeout - (time.monotonic() - started)
    load = http_load.run_load(
        url,
        requests=requests,
        concurrency=concurrency,
        keepalive=keepalive,
        timeout=request_timeout,
        deadline_s=max(0.1, remaining),
    )
    summary = load.summary()
    extra = {"total": load.attempted, "errors": load.errors, "load": summary}
    notes: list[str] = []
    if load.deadline_hit:
        notes.append(
            f"the {timeout:g}s timeout ended the run after {load.attempted} of {requests} "
            "requests; the verdict uses what was sent"
        )
    if load.attempted == 0:
        return report.unverifiable("url", "no request could be sent", **extra, notes=notes)
    error_rate = load.errors / load.attempted
    if error_rate > max_error_rate:
        sample = load.error_samples[0] if load.error_samples else ""
        return report.unverifiable(
            "url",
            f"too many errors: {load.errors} of {load.attempted} requests failed "
            f"({error_rate:.1%} > {max_error_rate:.0%}); first: {sample}",
            **extra,
            notes=notes,
        )
    counted = {p: n for p, n in load.pod_requests.items() if p != http_load.NO_HEADER}
    unlabeled = load.pod_requests.get(http_load.NO_HEADER, 0)
    if unlabeled:
        notes.append(f"{unlabeled} responses had no X-Served-By header and are not counted")
    if not counted:
        return report.unverifiable(
            "url", "no response carried an X-Served-By header", **extra, notes=notes
        )
    if session_affinity == "ClientIP":
        # All our connections come from this one address: one client, so one pod.
        verdict = decide_sticky(
            counted,
            [("this client", float(sum(counted.values())))],
            alpha=alpha,
            expected_pods=expected_pods,
        )
        return _url_report(verdict, load, summary, notes)
    per_request = not keepalive
    if keepalive and load.mixed_connections:
        # Responses on one connection came from several pods: an L7 proxy is balancing
        # requests, so each request is the balanced unit.
        per_request = True
        notes.append(
            f"{load.mixed_connections} responses came from another pod than their "
            "connection's first one (L7 balancing): testing requests, not connections"
        )
    conns = {p: n for p, n in load.pod_connections.items() if p != http_load.NO_HEADER}
    verdict = decide(
        counted,
        keepalive=not per_request,
        alpha=alpha,
        expected_pods=expected_pods,
        connection_counts=None if per_request else conns,
    )
    return _url_report(verdict, load, summary, notes)


def _url_report(
    verdict: Verdict, load: http_load.LoadResult, summary: dict, notes: list[str]
) -> dict[str, Any]:
    return {
        "version": report.REPORT_VERSION,
        "mode": "url",
        "verdict": verdict.outcome,
        "reason": verdict.reason,
        "exit_code": verdict.exit_code,
        "total": load.attempted,
        "errors": load.errors,
        "pods": report.pod_rows(verdict),
        "distribution": report.distribution(verdict),
        "latency_ms": summary["latency_ms"],
        "load": summary,
        "notes": notes + verdict.notes,
    }
