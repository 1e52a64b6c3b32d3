"""`snapshot` and `verify --in-cluster`: per-pod served-request counters read through the
API server's pod proxy (no `minikube tunnel` needed) and fortio's result from its pod logs."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import consistency, fortio, kube, prom, report
from loadgen.kube import KubeClient, KubeError
from loadgen.resources import Sampler
from loadgen.verdict import decide

SNAPSHOT_KIND = "loadgen-snapshot"
APP_PORT = "8080"


@dataclass
class Counters:
    served: dict[str, float] = field(default_factory=dict)
    uids: dict[str, str] = field(default_factory=dict)
    ready: dict[str, bool] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)  # each pod's /metrics, for consistency


def read_counters(client: KubeClient, namespace: str, selector: str) -> Counters:
    """Served requests of every running app pod, from its /metrics via the pod proxy."""
    out = Counters()
    for pod in client.list_pods(namespace, selector):
        name = kube.pod_name(pod)
        if kube.phase(pod) != "Running":
            out.unreadable[name] = f"pod is {kube.phase(pod)}"
            continue
        out.uids[name] = str((pod.get("metadata") or {}).get("uid", ""))
        out.ready[name] = kube.is_ready(pod)
        try:
            text = client.pod_proxy(namespace, name, APP_PORT, "/metrics")
            out.served[name] = prom.served_total(text)
            out.texts[name] = text
        except (KubeError, prom.MetricsFormatError) as exc:
            out.unreadable[name] = str(exc)
    return out


def snapshot(client: KubeClient, namespace: str, selector: str) -> dict[str, Any]:
    c = read_counters(client, namespace, selector)
    if not c.served and not c.unreadable:
        raise KubeError(f"no pods match {selector!r} in namespace {namespace!r}")
    if not c.served:
        first = next(iter(c.unreadable.items()))
        raise KubeError(f"no pod's /metrics could be read ({first[0]}: {first[1]})")
    return {
        "kind": SNAPSHOT_KIND,
        "version": 1,
        "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "namespace": namespace,
        "selector": selector,
        "pods": {
            name: {
                "served": c.served[name],
                "uid": c.uids.get(name, ""),
                "ready": c.ready.get(name, False),
            }
            for name in sorted(c.served)
        },
        "unreadable": c.unreadable,
        "views": consistency.summarize(c.texts),
    }


def load_baseline(source: str) -> dict[str, Any]:
    """A snapshot document from a file, or from stdin when source is '-'."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise ValueError(f"cannot read baseline {source}: {exc.strerror}") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"baseline {source} is not JSON (expected `loadgen snapshot` output)"
        ) from exc
    if not isinstance(doc, dict) or doc.get("kind") != SNAPSHOT_KIND:
        raise ValueError(f"baseline {source} is not a `loadgen snapshot` document")
    return doc


def deltas(baseline: dict | None, after: Counters) -> tuple[dict[str, float], list[str]]:
    """Requests served since the baseline, per pod, with notes on what could not be known."""
    notes: list[str] = []
    before = (baseline or {}).get("pods") or {}
    out: dict[str, float] = {}
    for name, value in after.served.items():
        prev = before.get(name)
        if prev is None:
            if baseline is not None and value == 0:
                # Joined after the baseline (e.g. scaled up after the load) and served
                # nothing: not a pod the load could have reached.
                notes.append(f"{name} is new since the baseline and served nothing: not counted")
                continue
            if baseline is not None:
                notes.append(f"{name} is new since the baseline: counted from zero")
            out[name] = value
        elif prev.get("uid") and after.uids.get(name) and prev["uid"] != after.uids[name]:
            notes.append(f"{name} was replaced since the baseline: counted from zero")
            out[name] = value
        elif value < float(prev.get("served", 0)):
            notes.append(f"{name}'s counter went down (container restart): counted from zero")
            out[name] = value
        else:
            out[name] = value - float(prev.get("served", 0))
    gone = sorted(set(before) - set(after.served) - set(after.unreadable))
    if gone:
        notes.append(f"pods gone since the baseline, their requests are unknown: {', '.join(gone)}")
    for name, why in sorted(after.unreadable.items()):
        notes.append(f"{name}: counters not readable ({why})")
    if baseline is None:
        notes.append("no --baseline: counters count from the pods' start")
    return out, notes


def _wait_for_loadgen(
    client: KubeClient, namespace: str, selector: str, sampler: Sampler, reserve: float
) -> tuple[list[dict], bool]:
    """Wait (sampling resource use) until the load-generator pods have finished.
    Returns their pods and whether any sample was taken while they ran."""
    sampled_during = False
    while True:
        pods = client.list_pods(namespace, selector)
        if not pods:
            raise KubeError(f"no load-generator pods match {selector!r} in {namespace!r}")
        running = [p for p in pods if kube.phase(p) in ("Pending", "Running")]
        if not running:
            return pods, sampled_during
        if client.remaining() <= reserve:
            raise KubeError(
                f"load generator still running ({', '.join(map(kube.pod_name, running))}) "
                f"with {reserve:.0f}s of the timeout left"
            )
        if any(kube.phase(p) == "Running" for p in running):
            sampler.sample()
            sampled_during = sampled_during or sampler.available is True
        time.sleep(max(0.0, min(2.0, client.remaining() - reserve)))


def verify_in_cluster(
    client: KubeClient,
    *,
    namespace: str,
    selector: str,
    loadgen_selector: str,
    baseline: dict | None,
    window: float,
    keepalive: bool | None,
    connections: int | None,
    expected_pods: int | None,
    alpha: float,
    max_error_rate: float,
) -> dict[str, Any]:
    mode = "in-cluster"
    sampler = Sampler(client, namespace, selector)
    notes: list[str] = []
    reserve = max(5.0, 0.2 * client.total_timeout)
    when = "current usage; no load was observed running"
    if baseline is None and window > 0:
        baseline = snapshot(client, namespace, selector)
        end = time.monotonic() + min(window, max(0.0, client.remaining() - reserve))
        while time.monotonic() < end:
            sampler.sample()
            time.sleep(max(0.0, min(2.0, end - time.monotonic())))
        when = f"sampled during the {window:g}s observation window"
    fortio_summary: dict | None = None
    if loadgen_selector:
        lg_pods, during = _wait_for_loadgen(client, namespace, loadgen_selector, sampler, reserve)
        when = (
            "sampled while the load generator ran"
            if during
            else "the load had finished before verify ran: usage just after the load, not under it"
        )
        results = []
        for pod in lg_pods:
            name = kube.pod_name(pod)
            try:
                results.append(fortio.extract_result(client.pod_log(namespace, name)))
            except (KubeError, fortio.FortioParseError) as exc:
                notes.append(f"load-generator pod {name}: no fortio result ({exc})")
            if kube.phase(pod) == "Failed":
                notes.append(f"load-generator pod {name} failed")
        if results:
            fortio_summary = fortio.merge(results)
    sampler.sample()
    resources = sampler.summary(when)

    after = read_counters(client, namespace, selector)
    if not after.served and not after.unreadable:
        return report.unverifiable(
            mode, f"no pods match {selector!r} in {namespace!r}", resources=resources
        )
    served, delta_notes = deltas(baseline, after)
    notes.extend(delta_notes)
    extra: dict[str, Any] = {"fortio": fortio_summary, "resources": resources}
    total = fortio_summary["total"] if fortio_summary else int(sum(served.values()))
    errors = fortio_summary["errors"] if fortio_summary else None
    extra.update(total=total, errors=errors)
    if fortio_summary:
        extra["latency_ms"] = fortio_summary["latency_ms"]
        if total and errors / total > max_error_rate:
            return report.unverifiable(
                mode,
                f"too many errors: fortio saw {errors} of {total} requests fail "
                f"({errors / total:.1%} > {max_error_rate:.0%}), "
                f"codes {fortio_summary['ret_codes']}",
                **extra,
                notes=notes,
            )
        counted = sum(served.values())
        if total and abs(counted - total) > 0.05 * total:
            notes.append(
                f"the pods counted {counted:.0f} requests, fortio sent {total}: other traffic "
                "or lost counters make the split approximate"
            )
    if not served:
        first = next(iter(after.unreadable.items()))
        return report.unverifiable(
            mode, f"no pod's counters could be read ({first[0]}: {first[1]})", **extra, notes=notes
        )
    if keepalive is None:
        if fortio_summary is None:
            return report.unverifiable(
                mode,
                "pass --keepalive or --no-keepalive (no fortio result to tell)",
                **extra,
                notes=notes,
            )
        keepalive = fortio_summary["keepalive"]
    units = None
    if keepalive:
        if fortio_summary and fortio_summary["connections"] > 0:
            units = fortio_summary["connections"]
            if connections and connections != units:
                notes.append(
                    f"fortio used {units} sockets (--connections said {connections}): "
                    "testing with fortio's count"
                )
        elif connections:
            units = connections
        else:
            return report.unverifiable(
                mode,
                "keep-alive load needs the number of connections: pass --connections "
                "(fortio -c times load-generator pods)",
                **extra,
                notes=notes,
            )
    verdict = decide(
        served, keepalive=keepalive, alpha=alpha, expected_pods=expected_pods, connections=units
    )
    pods = report.pod_rows(verdict, resources.get("pods") or {})
    for row in pods:
        row["ready"] = after.ready.get(row["name"])
    return {
        "version": report.REPORT_VERSION,
        "mode": mode,
        "verdict": verdict.outcome,
        "reason": verdict.reason,
        "exit_code": verdict.exit_code,
        "pods": pods,
        "distribution": report.distribution(verdict),
        **extra,
        "notes": notes + verdict.notes,
        "baseline_taken_at": (baseline or {}).get("taken_at"),
        "consistency": consistency.check(
            (baseline or {}).get("views"), consistency.summarize(after.texts), fortio_summary
        ),
    }
