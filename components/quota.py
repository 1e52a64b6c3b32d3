"""NamespaceQuota: a ResourceQuota and a LimitRange in the stack's namespace, sized from config.

The walkthrough's closing note on resources: no pod may take more than its share, and the
namespace as a whole stays within a known budget. The quota is computed, never typed in, so it
can not block the stack's own work. What it must hold at the worst moment:

- app pods: the most the Deployment can run (hpaMaxReplicas when the HPA manages it, else
  appReplicas), plus the rollout's surge pod, plus every pod that is still terminating. A pod
  counts against a quota until it is gone (the quota evaluator stops charging a terminating pod
  only after twice its grace period), and the Deployment replaces pods without waiting for the
  old ones to finish: a rollout can have every old pod terminating while its replacement runs,
  and a drill adds the pods it deleted (quotaDrillPods). So 2 x max + surge + drill.
- fortio pods: a Job's pods, and those of a Job being replaced (delete-before-replace lets the
  old run's pods terminate while the new run starts); a continuous Deployment's pods, the same
  again terminating, and its default 25 % surge.
- any other pod a component adds (the optional Redis): `extra_pods`.

The LimitRange gives a container that declares nothing the app's requests and limits (without
them a quota on limits rejects the pod outright) and caps any container at the largest limits the
stack itself uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pulumi
import pulumi_kubernetes as k8s
from kubernetes.utils.quantity import parse_quantity

from components import labels
from components.app import ROLLOUT_MAX_SURGE
from components.loadgen import RESOURCES as FORTIO_RESOURCES
from components.settings import ConfigError, Resources, Settings

TYPE_TOKEN = "selfheal-lb:quota:NamespaceQuota"
QUOTA_NAME = "selfheal-lb"
# A continuous fortio Deployment keeps Kubernetes' default RollingUpdate strategy (25 % surge).
DEFAULT_SURGE_FRACTION = Decimal("0.25")


@dataclass(frozen=True)
class PodShape:
    """A kind of pod the namespace runs: how many may count at once, and one pod's resources.

    `resources` is one entry per container; requests/limits are Kubernetes quantities.
    """

    name: str
    count: int
    resources: tuple[Resources, ...]
    why: str = ""  # how count was reached, for the refusal message

    def total(self, field: str) -> Decimal:
        return self.count * sum(
            (parse_quantity(getattr(r, field)) for r in self.resources), Decimal(0)
        )


@dataclass(frozen=True)
class NamespaceNeed:
    """What the namespace must hold at the worst moment, and the pods it came from."""

    pods: int
    requests_cpu: Decimal  # cores
    requests_memory: Decimal  # bytes
    limits_cpu: Decimal
    limits_memory: Decimal
    shapes: tuple[PodShape, ...]


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


def cpu_text(cores: Decimal) -> str:
    """Cores as the shortest exact Kubernetes quantity: 3, 2500m."""
    millis = cores * 1000
    if millis == millis.to_integral_value() and millis % 1000 == 0:
        return str(int(millis / 1000))
    return f"{int(millis.to_integral_value(rounding='ROUND_CEILING'))}m"


def memory_text(size: Decimal) -> str:
    """Bytes as a binary-suffixed quantity when exact (3Gi, 640Mi), else bytes."""
    for suffix, factor in (("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if size % factor == 0:
            return f"{int(size / factor)}{suffix}"
    return str(int(size.to_integral_value(rounding="ROUND_CEILING")))


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


def quota_hard(need: NamespaceNeed) -> dict[str, str]:
    return {
        "pods": str(need.pods),
        "requests.cpu": cpu_text(need.requests_cpu),
        "requests.memory": memory_text(need.requests_memory),
        "limits.cpu": cpu_text(need.limits_cpu),
        "limits.memory": memory_text(need.limits_memory),
    }


def limit_range_limits(s: Settings, need: NamespaceNeed) -> list[dict]:
    """Defaults for a container that declares nothing, and a cap at the stack's largest limits."""
    every = [r for shape in need.shapes for r in shape.resources]
    max_cpu = max(parse_quantity(r.cpu_limit) for r in every)
    max_memory = max(parse_quantity(r.memory_limit) for r in every)
    app = s.app.resources
    return [
        {
            "type": "Container",
            "default": {"cpu": app.cpu_limit, "memory": app.memory_limit},
            "default_request": {"cpu": app.cpu_request, "memory": app.memory_request},
            "max": {"cpu": cpu_text(max_cpu), "memory": memory_text(max_memory)},
        }
    ]


@dataclass(frozen=True)
class NamespaceQuotaArgs:
    settings: Settings
    # namespace_need(settings, extra_pods), checked by check_fits() before any resource exists.
    # extra_pods is the hook for pods other components add (the optional Redis).
    need: NamespaceNeed
    namespace: pulumi.Input[str]
    instance: str


class NamespaceQuota(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: NamespaceQuotaArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.need = args.need
        self.hard = quota_hard(self.need)
        object_labels = {
            labels.PART_OF_KEY: labels.PART_OF,
            labels.INSTANCE_KEY: args.instance,
            labels.MANAGED_BY_KEY: "pulumi",
        }
        child = pulumi.ResourceOptions(parent=self)
        self.limit_range = k8s.core.v1.LimitRange(
            f"{name}-limitrange",
            metadata={"name": QUOTA_NAME, "namespace": args.namespace, "labels": object_labels},
            spec={"limits": limit_range_limits(args.settings, self.need)},
            opts=child,
        )
        self.resource_quota = k8s.core.v1.ResourceQuota(
            f"{name}-resourcequota",
            metadata={"name": QUOTA_NAME, "namespace": args.namespace, "labels": object_labels},
            spec={"hard": self.hard},
            opts=child,
        )
        self.register_outputs({"hard": self.hard})
