"""Which app pods take part: wait until the expected number are Ready before the baseline, and
say which pods came or went between the baseline and the check.

With the HPA on, `spec.replicas` belongs to the HPA, so after an `appReplicas` change Pulumi
does not wait for the new pods; a baseline taken then would miss pods that start serving
during the load (or count pods that are leaving). Only cluster reads through the kube layer.
"""

from __future__ import annotations

import time
from typing import Any

from loadgen import kube
from loadgen.kube import KubeClient, KubeError

POLL_SECONDS = 1.0
FINISHED_PHASES = ("Succeeded", "Failed")


def _why_not_ready(pod: dict) -> str:
    status = pod.get("status") or {}
    if kube.is_terminating(pod):
        return "terminating"
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") != "True":
            return c.get("reason") or f"phase {kube.phase(pod)}"
    return f"phase {kube.phase(pod)}"


def wait_ready(
    client: KubeClient, namespace: str, selector: str, expected: int, reserve: float = 2.0
) -> dict[str, Any]:
    """Poll until at least `expected` pods are Ready and none is starting or terminating,
    within the client's time budget less `reserve`. Returns what was seen; raises KubeError
    with one line naming the pods that are not Ready on timeout."""
    started = time.monotonic()
    polls = 0
    while True:
        pods = client.list_pods(namespace, selector)
        polls += 1
        ready = sorted(kube.pod_name(p) for p in pods if kube.is_ready(p))
        # Settled: enough Ready pods and none starting or leaving (a rollout in progress has
        # both, and its pods would join or leave during the load). Finished pods (evicted,
        # Failed) never become Ready and are ignored.
        unsettled = [
            p for p in pods if not kube.is_ready(p) and kube.phase(p) not in FINISHED_PHASES
        ]
        if len(ready) >= expected and not unsettled:
            return {
                "expected": expected,
                "ready": ready,
                "waited_s": round(time.monotonic() - started, 1),
            }
        left = client.remaining() - reserve
        if left <= 0:
            waiting = [f"{kube.pod_name(p)} ({_why_not_ready(p)})" for p in unsettled]
            if len(ready) >= expected:
                raise KubeError(
                    f"{len(ready)} pods Ready but others still starting or leaving after "
                    f"{time.monotonic() - started:.0f}s (a rollout in progress?): "
                    + ", ".join(waiting)
                )
            raise KubeError(
                f"only {len(ready)} of {expected} expected pods Ready after "
                f"{time.monotonic() - started:.0f}s"
                + (f": not ready: {', '.join(waiting)}" if waiting else ": no more pods exist")
            )
        time.sleep(min(POLL_SECONDS, left))


def changes(baseline: dict | None, now_pods: set[str]) -> dict[str, list[str]]:
    """Pods that joined or left between the baseline and now."""
    if baseline is None:
        return {"joined": [], "left": []}
    before = set(baseline.get("pods") or {}) | set(baseline.get("unreadable") or {})
    return {"joined": sorted(now_pods - before), "left": sorted(before - now_pods)}
