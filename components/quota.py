"""NamespaceQuota: a ResourceQuota and a LimitRange in the stack's namespace.

Sized by components/sizing.py from the config (never typed in, so it cannot block the stack's
own work). The LimitRange gives a container that declares nothing the app's requests and limits
(without them a quota on limits rejects the pod outright) and caps any container at the largest
limits the stack itself uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pulumi
import pulumi_kubernetes as k8s
from kubernetes.utils.quantity import parse_quantity

from components import labels
from components.settings import Resources

TYPE_TOKEN = "selfheal-lb:quota:NamespaceQuota"
QUOTA_NAME = "selfheal-lb"


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


def quota_hard(need: NamespaceNeed) -> dict[str, str]:
    return {
        "pods": str(need.pods),
        "requests.cpu": cpu_text(need.requests_cpu),
        "requests.memory": memory_text(need.requests_memory),
        "limits.cpu": cpu_text(need.limits_cpu),
        "limits.memory": memory_text(need.limits_memory),
    }


def limit_range_limits(need: NamespaceNeed, container_default: Resources) -> list[dict]:
    """Defaults for a container that declares nothing, and a cap at the stack's largest limits."""
    every = [r for shape in need.shapes for r in shape.resources]
    max_cpu = max(parse_quantity(r.cpu_limit) for r in every)
    max_memory = max(parse_quantity(r.memory_limit) for r in every)
    return [
        {
            "type": "Container",
            "default": {
                "cpu": container_default.cpu_limit,
                "memory": container_default.memory_limit,
            },
            "default_request": {
                "cpu": container_default.cpu_request,
                "memory": container_default.memory_request,
            },
            "max": {"cpu": cpu_text(max_cpu), "memory": memory_text(max_memory)},
        }
    ]


@dataclass(frozen=True)
class QuotaPlan:
    """The quota a stack asks for: its size (sizing.namespace_need, checked by
    sizing.check_fits before any resource exists) and what a bare container gets."""

    need: NamespaceNeed
    container_default: Resources  # the app's requests and limits


@dataclass(frozen=True)
class NamespaceQuotaArgs:
    plan: QuotaPlan
    namespace: pulumi.Input[str]
    instance: str


class NamespaceQuota(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: NamespaceQuotaArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        self.need = args.plan.need
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
            spec={"limits": limit_range_limits(self.need, args.plan.container_default)},
            opts=child,
        )
        self.resource_quota = k8s.core.v1.ResourceQuota(
            f"{name}-resourcequota",
            metadata={"name": QUOTA_NAME, "namespace": args.namespace, "labels": object_labels},
            spec={"hard": self.hard},
            opts=child,
        )
        self.register_outputs({"hard": self.hard})
