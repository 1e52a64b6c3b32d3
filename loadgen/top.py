"""`top`: per-pod CPU and memory from the metrics API, like `kubectl top pods`."""

from __future__ import annotations

import time
from typing import Any

from loadgen import kube
from loadgen.kube import KubeClient, KubeError
from loadgen.resources import Sampler


def top(
    client: KubeClient, namespace: str, selector: str, samples: int, interval: float
) -> dict[str, Any]:
    pods = client.list_pods(namespace, selector)
    if not pods:
        raise KubeError(f"no pods match {selector!r} in namespace {namespace!r}")
    sampler = Sampler(client, namespace, selector)
    for i in range(samples):
        if not sampler.sample():
            break
        if i + 1 < samples:
            time.sleep(max(0.0, min(interval, client.remaining() - 1.0)))
    res = sampler.summary(f"{samples} poll(s) {interval:g}s apart" if samples > 1 else "now")
    rows = []
    for pod in pods:
        name = kube.pod_name(pod)
        rows.append(
            {
                "name": name,
                "ready": kube.is_ready(pod),
                "phase": kube.phase(pod),
                "resources": (res.get("pods") or {}).get(name),
            }
        )
    return {
        "namespace": namespace,
        "selector": selector,
        "available": res["available"],
        "note": res["note"],
        "pods": rows,
    }


def render(rep: dict[str, Any]) -> str:
    with_idle = any("resources_idle" in row for row in rep["pods"])
    header = f"{'pod':<44} {'ready':<6} {'cpu peak/mean m':>16} {'mem peak/mean MiB':>18}"
    lines = [header + (f" {'idle cpu m':>10} {'idle MiB':>9}" if with_idle else "")]

    def f(v: Any) -> str:
        return "-" if v is None else str(v)

    for row in rep["pods"]:
        r = row.get("resources") or {}
        cpu = f"{f(r.get('cpu_peak_m'))}/{f(r.get('cpu_mean_m'))}"
        mem = f"{f(r.get('memory_peak_mib'))}/{f(r.get('memory_mean_mib'))}"
        line = f"{row['name']:<44} {('yes' if row['ready'] else 'no'):<6} {cpu:>16} {mem:>18}"
        if with_idle:
            idle = row.get("resources_idle") or {}
            line += f" {f(idle.get('cpu_mean_m')):>10} {f(idle.get('memory_mean_mib')):>9}"
        lines.append(line)
    lines.append(f"resources: {rep['note']}")
    return "\n".join(lines)
