"""`drill`: delete ready pods while traffic flows and time the Deployment's self-healing.

Recovery means: the Deployment again has its desired number of ready pods, none of them a
pod we deleted (a deleted pod can still look ready to a stale status for a moment), and
the Deployment's own status agrees (readyReplicas >= spec.replicas).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from loadgen import http_load, kube
from loadgen.kube import KubeClient, KubeError

POLL = 0.5


def owning_deployment(client: KubeClient, namespace: str, pod: dict) -> str:
    rs = kube.owner(pod, "ReplicaSet")
    if not rs:
        raise KubeError(f"pod {kube.pod_name(pod)} is not owned by a ReplicaSet/Deployment")
    deployment = kube.owner(client.get_replicaset(namespace, rs), "Deployment")
    if not deployment:
        raise KubeError(f"ReplicaSet {rs} is not owned by a Deployment")
    return deployment


def _ready_replicas(dep: dict) -> tuple[int, int]:
    spec = int((dep.get("spec") or {}).get("replicas", 1))
    ready = int((dep.get("status") or {}).get("readyReplicas") or 0)
    return spec, ready


def drill(
    client: KubeClient,
    *,
    namespace: str,
    selector: str,
    kill: int,
    url: str | None,
    timeout: float,
    grace_seconds: int | None,
    concurrency: int = 4,
    interval: float = 0.02,
    settle: float = 1.0,
) -> dict[str, Any]:
    pods = client.list_pods(namespace, selector)
    ready = sorted((p for p in pods if kube.is_ready(p)), key=kube.pod_name)
    if not pods:
        raise KubeError(f"no pods match {selector!r} in namespace {namespace!r}")
    if len(ready) < kill:
        raise KubeError(f"only {len(ready)} ready pods; cannot delete {kill}")
    victims = ready[:kill]
    deployment = owning_deployment(client, namespace, victims[0])
    desired, ready_before = _ready_replicas(client.get_deployment(namespace, deployment))
    notes: list[str] = []
    if ready_before < desired:
        notes.append(f"the Deployment had only {ready_before}/{desired} ready before the drill")

    stop = threading.Event()
    traffic: dict[str, Any] = {}
    load_thread: threading.Thread | None = None
    if url:
        # Probe first: a wrong URL must fail the drill before any pod is deleted.
        try:
            http_load.reachable(url, min(5.0, timeout))
        except OSError as exc:
            raise KubeError(f"{url} is unreachable, no pod deleted: {exc}") from exc

        def run() -> None:
            traffic["result"] = http_load.run_load(
                url,
                requests=10**9,
                concurrency=concurrency,
                keepalive=False,
                timeout=2.0,
                deadline_s=timeout + settle + 30.0,
                stop=stop,
                interval=interval,
            )

        load_thread = threading.Thread(target=run, name="drill-traffic", daemon=True)
        load_thread.start()
        time.sleep(settle)  # traffic before the kill, so failures are attributable
    else:
        notes.append("no --url: no traffic sent by the drill, failed requests not measured")

    victim_names = [kube.pod_name(p) for p in victims]
    known = {kube.pod_name(p) for p in pods}
    timeline: list[dict[str, Any]] = []
    recovered_at: float | None = None
    replacements: list[str] = []
    try:
        t0 = time.monotonic()
        for name in victim_names:
            client.delete_pod(namespace, name, grace_seconds)
        timeline.append({"t": 0.0, "event": f"deleted {', '.join(victim_names)}"})
        client.extend(timeout + 30.0)  # the API budget covers the whole watch
        seen_new: set[str] = set()
        while time.monotonic() - t0 <= timeout:
            now_pods = client.list_pods(namespace, selector)
            fresh = [p for p in now_pods if kube.pod_name(p) not in known]
            for p in fresh:
                if kube.pod_name(p) not in seen_new:
                    seen_new.add(kube.pod_name(p))
                    timeline.append(
                        {
                            "t": round(time.monotonic() - t0, 2),
                            "event": f"replacement {kube.pod_name(p)} created",
                        }
                    )
            healthy = [
                p for p in now_pods if kube.is_ready(p) and kube.pod_name(p) not in victim_names
            ]
            _, dep_ready = _ready_replicas(client.get_deployment(namespace, deployment))
            if len(healthy) >= desired and dep_ready >= desired:
                recovered_at = time.monotonic() - t0
                replacements = sorted(
                    kube.pod_name(p) for p in healthy if kube.pod_name(p) in seen_new
                )
                timeline.append(
                    {"t": round(recovered_at, 2), "event": f"{len(healthy)}/{desired} ready again"}
                )
                break
            time.sleep(min(POLL, max(0.0, timeout - (time.monotonic() - t0))))
        if recovered_at is not None and url:
            time.sleep(settle)  # traffic after recovery: do the new pods serve?
    finally:
        stop.set()
        if load_thread is not None:
            load_thread.join(10.0)

    result = traffic.get("result")
    traffic_report = None
    if result is not None:
        s = result.summary()
        traffic_report = {
            "url": url,
            "total": s["total"],
            "failed": s["errors"],
            "failure_rate": round(s["errors"] / s["total"], 4) if s["total"] else None,
            "status_codes": s["status_codes"],
            "latency_ms": s["latency_ms"],
            "pods": dict(sorted(result.pod_requests.items())),
            "error_samples": s["error_samples"],
        }
    ok = recovered_at is not None
    reason = (
        f"{deployment} back to {desired}/{desired} ready pods {recovered_at:.1f}s after "
        f"deleting {kill}"
        if ok
        else f"{deployment} not back to {desired} ready pods within {timeout:g}s"
    )
    if traffic_report is not None:
        reason += f"; {traffic_report['failed']} of {traffic_report['total']} requests failed"
    return {
        "verdict": "recovered" if ok else "not-recovered",
        "reason": reason,
        "exit_code": 0 if ok else 1,
        "namespace": namespace,
        "deployment": deployment,
        "desired_replicas": desired,
        "killed": victim_names,
        "replacements": replacements,
        "recovery_seconds": round(recovered_at, 2) if ok else None,
        "timeout_seconds": timeout,
        "traffic": traffic_report,
        "timeline": timeline,
        "notes": notes,
    }
