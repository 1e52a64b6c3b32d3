"""`snapshot` and `verify --in-cluster`: per-pod served-request counters read through the
API server's pod proxy (no `minikube tunnel` needed) and fortio's result from its pod logs."""

from __future__ import annotations

import datetime as dt
import sys
import time
import uuid
from typing import Any

from loadgen import consistency, fortio, kube, membership, nodes, prom, report
from loadgen.affinity import decide_sticky
from loadgen.baseline import (
    SNAPSHOT_KIND,
    Counters,
    deltas,
    split_by_membership,
    unknown_counts,
)
from loadgen.kube import KubeClient, KubeError
from loadgen.resources import PodUsage, Sampler
from loadgen.verdict import Verdict, decide

# The app pods' metrics port (components/app.py METRICS_PORT): /metrics is not on the app port.
METRICS_PORT = "9090"
LOADGEN_APPEAR_SECONDS = 60.0  # how long a just-created Job may take to show its pods
IDLE_POLL_SECONDS = 3.0
# How long the baseline waits for every app pod to reach the shared store (pods that started
# before it was up retry once a second); then it goes on and the check says why.
STORE_WAIT_SECONDS = 60.0
STORE_POLL_SECONDS = 1.0


def read_counters(client: KubeClient, namespace: str, selector: str) -> Counters:
    """Served requests of every running app pod, from /metrics on its metrics port (pod proxy)."""
    out = Counters()
    for pod in client.list_pods(namespace, selector):
        name = kube.pod_name(pod)
        if kube.phase(pod) != "Running":
            out.not_running[name] = f"pod is {kube.phase(pod)}"
            continue
        out.uids[name] = str((pod.get("metadata") or {}).get("uid", ""))
        out.nodes[name] = kube.node_name(pod)
        out.ready[name] = kube.is_ready(pod)
        if kube.is_terminating(pod):
            out.terminating.add(name)
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
                out.ready_since[name] = str(cond["lastTransitionTime"])
        try:
            text = client.pod_proxy(namespace, name, METRICS_PORT, "/metrics")
            out.served[name] = prom.served_total(text)
            out.texts[name] = text
        except (KubeError, prom.MetricsFormatError) as exc:
            out.unreadable[name] = str(exc)
    return out


def pods_without_store(c: Counters) -> list[str]:
    """The pods whose /metrics do not show the shared store answering."""
    views = consistency.summarize(c.texts)["pods"]
    return sorted(n for n in c.served if not (views.get(n) or {}).get("up"))


def wait_for_store(
    client: KubeClient, namespace: str, selector: str, c: Counters
) -> tuple[Counters, dict[str, Any]]:
    """Reads the counters again until every pod reaches the store (bounded); the last read
    and what the wait saw."""
    started = time.monotonic()
    end = started + max(0.0, min(STORE_WAIT_SECONDS, client.remaining() - 5.0))
    missing = pods_without_store(c)
    while missing and time.monotonic() < end:
        time.sleep(STORE_POLL_SECONDS)
        c = read_counters(client, namespace, selector)
        missing = pods_without_store(c)
    waited = round(time.monotonic() - started, 1)
    if missing:
        print(
            f"loadgen snapshot: the shared store did not answer {', '.join(missing)} "
            f"within {waited:.0f} s",
            file=sys.stderr,
        )
    return c, {"seconds": waited, "pods_without_store": missing}


def snapshot(
    client: KubeClient,
    namespace: str,
    selector: str,
    expect_ready: int = 0,
    idle_wait: float = 0.0,
    expect_store: bool = False,
) -> dict[str, Any]:
    waited = (
        membership.wait_ready(client, namespace, selector, expect_ready) if expect_ready else None
    )
    c = read_counters(client, namespace, selector)
    store_wait: dict[str, Any] | None = None
    if expect_store:
        c, store_wait = wait_for_store(client, namespace, selector, c)
    sampler = Sampler(client, namespace, selector)
    if idle_wait > 0:
        sampler.window_after = dict(c.ready_since)  # idle = after start-up, not during it
    sampler.sample()  # the idle baseline beside the usage under load
    # metrics-server has no figure for a pod until it has scraped it once (15-30 s after the
    # pod starts, i.e. just after a rollout): wait for one, within idle_wait and the budget.
    end = time.monotonic() + max(0.0, min(idle_wait, client.remaining() - 2.0))
    while sampler.available and time.monotonic() < end:
        if all((sampler.pods.get(name) or PodUsage()).cpu_m for name in c.served):
            break
        time.sleep(max(0.0, min(IDLE_POLL_SECONDS, end - time.monotonic())))
        sampler.sample()
    if not c.served and not c.unreadable and not c.not_running:
        raise KubeError(f"no pods match {selector!r} in namespace {namespace!r}")
    if not c.served and not c.unreadable:
        raise KubeError(f"no pod matching {selector!r} in {namespace!r} is running")
    if not c.served:
        first = next(iter(c.unreadable.items()))
        raise KubeError(f"no pod's /metrics could be read ({first[0]}: {first[1]})")
    return {
        "kind": SNAPSHOT_KIND,
        "version": 1,
        "taken_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        # New on every run even when no counter moved: the stack stamps its fortio Job with a
        # digest of this document, so a snapshot that ran again always brings a new load.
        "run_id": uuid.uuid4().hex,
        "namespace": namespace,
        "selector": selector,
        "pods": {
            name: {
                "served": c.served[name],
                "uid": c.uids.get(name, ""),
                "ready": c.ready.get(name, False),
                "node": c.nodes.get(name, ""),
            }
            for name in sorted(c.served)
        },
        "unreadable": c.unreadable,
        "not_running": c.not_running,
        "ready_wait": waited,
        **({"store_wait": store_wait} if store_wait is not None else {}),
        "resources_idle": sampler.summary("idle, before the load"),
        "views": consistency.summarize(c.texts),
    }


def _wait_for_loadgen(
    client: KubeClient, namespace: str, selector: str, sampler: Sampler, reserve: float
) -> tuple[list[dict], bool]:
    """Wait (sampling resource use) until the load-generator pods have finished.
    Returns their pods and whether any sample was taken while they ran."""
    sampled_during = False
    started = time.monotonic()
    while True:
        pods = client.list_pods(namespace, selector)
        if not pods:
            # The stack does not wait for the Job (so that verify samples CPU during the
            # load): its pods may not exist yet for a moment.
            if time.monotonic() - started < LOADGEN_APPEAR_SECONDS and client.remaining() > reserve:
                time.sleep(1.0)
                continue
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
    session_affinity: str = "None",
) -> dict[str, Any]:
    mode = "in-cluster"
    # Usage under the load: only readings metrics-server takes from now on (the load starts
    # about when verify does); earlier ones are the idle baseline's business.
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sampler = Sampler(client, namespace, selector, since=started)
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
    clients: list[tuple[str, float]] = []
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
                # Each load-generator pod is one client IP (what ClientIP affinity keys on).
                clients.append((name, float(fortio.summarize(results[-1])["total"])))
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
        what = "no running pods match" if after.not_running else "no pods match"
        return report.unverifiable(
            mode, f"{what} {selector!r} in {namespace!r}", resources=resources
        )
    served, delta_notes = deltas(baseline, after)
    notes.extend(delta_notes)
    all_served = float(sum(served.values()))
    by_node = nodes.served_by_node(served, nodes.pod_nodes(after, baseline))
    served, left_out, membership_notes = split_by_membership(served, baseline, after)
    notes.extend(membership_notes)
    kept = float(sum(served.values())) / all_served if all_served > 0 else 1.0
    gone = set((baseline or {}).get("pods") or {}) - set(after.served) - set(after.unreadable)
    left = len(gone) + sum(1 for n in left_out if n in after.terminating)
    if expected_pods is not None and left:
        # Pods that left during the run are reported; the test covers the ones that stayed.
        expected_pods = max(1, expected_pods - left)
    extra: dict[str, Any] = {"fortio": fortio_summary, "resources": resources, **by_node}
    total = fortio_summary["total"] if fortio_summary else int(sum(served.values()))
    errors = fortio_summary["errors"] if fortio_summary else None
    extra.update(total=total, errors=errors)
    unknown = unknown_counts(baseline, after)
    if unknown:
        return report.unverifiable(
            mode,
            "cannot tell whether the load reached every pod: " + "; ".join(unknown),
            **extra,
            notes=notes,
            unreadable_pods=[u.split(":")[0] for u in unknown],
        )
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
        counted = all_served
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
    if session_affinity == "ClientIP":
        if not clients:
            return report.unverifiable(
                mode,
                "sessionAffinity ClientIP needs each client's total: pass --loadgen-selector "
                "(fortio's results per load-generator pod)",
                **extra,
                notes=notes,
            )
        verdict = decide_sticky(
            served, clients, alpha=alpha, expected_pods=expected_pods, errors=errors or 0
        )
        return _in_cluster_report(verdict, after, resources, extra, notes, baseline)
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
        if fortio_summary and fortio_summary["units"] > 0:
            # min(sockets, threads) per run (docs/verification.md, "The verdict"): reconnects add
            # sockets that carry few requests; counting them as full units understates the variance.
            units = fortio_summary["units"]
            if fortio_summary["connections"] != units:
                notes.append(
                    f"fortio used {fortio_summary['connections']} sockets on "
                    f"{fortio_summary['threads']} threads: testing {units} units, "
                    "min(sockets, threads) per load-generator pod"
                )
            if connections and connections != units:
                notes.append(
                    f"testing {units} units from fortio's result (--connections said {connections})"
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
    if units and kept < 1.0:
        units = max(1, round(units * kept))  # the share of the connections the kept pods took
    verdict = decide(
        served, keepalive=keepalive, alpha=alpha, expected_pods=expected_pods, connections=units
    )
    return _in_cluster_report(verdict, after, resources, extra, notes, baseline)


def _in_cluster_report(
    verdict: Verdict,
    after: Counters,
    resources: dict[str, Any],
    extra: dict[str, Any],
    notes: list[str],
    baseline: dict | None,
) -> dict[str, Any]:
    pods = report.pod_rows(verdict, resources.get("pods") or {})
    idle = ((baseline or {}).get("resources_idle") or {}).get("pods") or {}
    node_of = nodes.pod_nodes(after, baseline)
    for row in pods:
        row["node"] = node_of.get(row["name"])  # None: not scheduled, or a missing pod
        row["ready"] = after.ready.get(row["name"])
        row["resources_idle"] = idle.get(row["name"])
    now = set(after.served) | set(after.unreadable) | set(after.not_running)
    extra = {**extra, "pods_changed": membership.changes(baseline, now)}
    changed = extra["pods_changed"]
    if changed["joined"] or changed["left"]:
        joined = ", ".join(changed["joined"]) or "none"
        left = ", ".join(changed["left"]) or "none"
        notes = [*notes, f"pods changed during the run: joined {joined}; left {left}"]
    return {
        "version": report.REPORT_VERSION,
        "mode": "in-cluster",
        "verdict": verdict.outcome,
        "reason": verdict.reason,
        "exit_code": verdict.exit_code,
        "pods": pods,
        "distribution": report.distribution(verdict),
        **extra,
        "notes": notes + verdict.notes,
        "baseline_taken_at": (baseline or {}).get("taken_at"),
        "consistency": consistency.check(
            (baseline or {}).get("views"), consistency.summarize(after.texts), extra.get("fortio")
        ),
    }
