"""What the stack's namespace must hold at its worst moment: the quota's size, decided from the
config before any resource exists, and the one-line refusal of a config that cannot fit.

The walkthrough's closing note on resources: no pod may take more than its share, and the
namespace as a whole stays within a known budget. The quota is computed, never typed in, so it
can not block the stack's own work. What it must hold at the worst moment:

- app pods: the most the Deployment can run (hpaMaxReplicas when the HPA manages it, else
  appReplicas), plus the rollout's surge pod, plus every pod that is still terminating. A pod
  counts against a quota until it is gone (the quota evaluator stops charging a terminating pod
  only after twice its grace period), and the Deployment replaces pods without waiting for the
  old ones to finish: a rollout can have every old pod terminating while its replacement runs,
  and a drill adds the pods it deleted (quotaDrillPods). So 2 x max + surge + drill.
- fortio pods: a Job's pods, and those of the Job it replaces (created first, the new Job's
  pods start while the old run's still count); a continuous Deployment's pods, the same
  again terminating, and its default 25 % surge.
- any other pod a component adds (the optional Redis): `extra_pods`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from kubernetes.utils.quantity import parse_quantity

from components.app import ROLLOUT_MAX_SURGE
from components.loadgen import RESOURCES as FORTIO_RESOURCES
from components.quota import NamespaceNeed, PodShape, cpu_text, memory_text
from components.settings import ConfigError, Resources, Settings

# A continuous fortio Deployment keeps Kubernetes' default RollingUpdate strategy (25 % surge).
DEFAULT_SURGE_FRACTION = Decimal("0.25")


def app_max_replicas(s: Settings, metrics_available: bool = True) -> int:
    """The most pods the Deployment runs: the HPA's maximum when the HPA exists.

    The HPA exists when it is enabled and the metrics API is served (components/metrics_plan.py
    decides that from the cluster; without the answer, assume it is: the larger quota).
    """
    hpa = s.autoscaling.enabled and metrics_available
    return max(s.app.replicas, s.autoscaling.max_replicas) if hpa else s.app.replicas


def app_shape(s: Settings, metrics_available: bool = True) -> PodShape:
    top = app_max_replicas(s, metrics_available)
    drill = min(s.quota.drill_pods, top)  # a drill deletes ready pods only
    count = 2 * top + ROLLOUT_MAX_SURGE + drill
    why = f"2 x {top} + {ROLLOUT_MAX_SURGE} surge + {drill} drill"
    return PodShape("app", count, (s.app.resources,), why)


def fortio_resources() -> Resources:
    return Resources(
        cpu_request=FORTIO_RESOURCES["requests"]["cpu"],
        cpu_limit=FORTIO_RESOURCES["limits"]["cpu"],
        memory_request=FORTIO_RESOURCES["requests"]["memory"],
        memory_limit=FORTIO_RESOURCES["limits"]["memory"],
    )


def fortio_shape(s: Settings) -> PodShape | None:
    load = s.load
    if load.mode == "off":
        return None
    if load.mode == "job":
        return PodShape("fortio", 2 * load.pods, (fortio_resources(),), f"2 x {load.pods}")
    surge = math.ceil(load.pods * DEFAULT_SURGE_FRACTION)
    why = f"2 x {load.pods} + {surge} surge"
    return PodShape("fortio", 2 * load.pods + surge, (fortio_resources(),), why)


def single_pod_shape(name: str, cpu: str, memory: str) -> PodShape:
    """A one-replica workload whose requests equal its limits (e.g. the optional Redis).

    Two may count at once: when its pod is deleted or evicted, the ReplicaSet starts the
    replacement while the old pod is still terminating (Recreate only orders rollouts).
    """
    return PodShape(name, 2, (Resources(cpu, cpu, memory, memory),), "1 + 1 replacing")


def namespace_need(
    s: Settings, extra_pods: Sequence[PodShape] = (), *, metrics_available: bool = True
) -> NamespaceNeed:
    shapes = [app_shape(s, metrics_available)]
    fortio = fortio_shape(s)
    if fortio is not None:
        shapes.append(fortio)
    shapes += list(extra_pods)

    def total(field: str) -> Decimal:
        return sum((shape.total(field) for shape in shapes), Decimal(0))

    return NamespaceNeed(
        pods=sum(shape.count for shape in shapes),
        requests_cpu=total("cpu_request"),
        requests_memory=total("memory_request"),
        limits_cpu=total("cpu_limit"),
        limits_memory=total("memory_limit"),
        shapes=tuple(shapes),
    )


def _breakdown(need: NamespaceNeed, field: str, show) -> str:
    parts = []
    for shape in need.shapes:
        per_pod = sum((parse_quantity(getattr(r, field)) for r in shape.resources), Decimal(0))
        parts.append(f"{shape.name} {shape.count} pods ({shape.why}) x {show(per_pod)}")
    return " + ".join(parts)


def check_fits(s: Settings, need: NamespaceNeed) -> None:
    """Refuse, in one line saying by how much, a config whose worst moment exceeds a ceiling."""
    prefix = f"{s.project}:"
    for key, ceiling_text, needed, field, show, fixes in (
        (
            "quotaMaxCpu", s.quota.max_cpu, need.limits_cpu, "cpu_limit", cpu_text,
            "hpaMaxReplicas, appCpuLimit, loadgenPods or quotaDrillPods",
        ),
        (
            "quotaMaxMemory", s.quota.max_memory, need.limits_memory, "memory_limit", memory_text,
            "hpaMaxReplicas, appMemoryLimit, loadgenPods or quotaDrillPods",
        ),
    ):  # fmt: skip
        if not ceiling_text:
            continue
        ceiling = parse_quantity(ceiling_text)
        if needed > ceiling:
            raise ConfigError(
                f"config '{prefix}{key}' is '{ceiling_text}': the stack needs {show(needed)} of "
                f"limits at its worst moment ({_breakdown(need, field, show)}), "
                f"{show(needed - ceiling)} more; raise {key} or lower {fixes}"
            )
