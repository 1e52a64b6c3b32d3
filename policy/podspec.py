"""Find the pod spec and containers inside a Kubernetes resource as Pulumi sends it.

The engine hands a policy the resource's inputs after the provider's Check: camelCase
Kubernetes field names (`spec.template.spec.containers[].securityContext`), numbers as
floats, and during preview a proxy that raises `UnknownValueError` when a value is not
known yet. The proxies are `Mapping`/`Sequence`, not dict/list, so every type test here
uses the abstract types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Where each workload kind keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# Pods whose containers are expected to exit: probes mean nothing for them (see rules.py).
RUN_TO_COMPLETION_KINDS = frozenset({"Job", "CronJob"})


def kubernetes_kind(resource_type: str) -> str | None:
    """'kubernetes:apps/v1:Deployment' -> 'Deployment'; None for other providers.

    Patch resources (DeploymentPatch, …) are partial by design and not checked.
    """
    parts = resource_type.split(":")
    if len(parts) != 3 or parts[0] != "kubernetes":
        return None
    return parts[2]


def is_mapping(value: Any) -> bool:
    return isinstance(value, Mapping)


def is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def dig(value: Any, *path: str) -> Any:
    """value[p0][p1]… or None as soon as a step is missing or not a mapping."""
    for key in path:
        if not is_mapping(value) or key not in value:
            return None
        value = value[key]
    return value


@dataclass(frozen=True)
class Container:
    name: str
    list_name: str  # initContainers / containers / ephemeralContainers
    spec: Mapping[str, Any]

    @property
    def label(self) -> str:
        prefix = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}
        return f"{prefix.get(self.list_name, 'container')} '{self.name}'"


@dataclass(frozen=True)
class PodSpec:
    kind: str
    spec: Mapping[str, Any]

    @property
    def runs_to_completion(self) -> bool:
        """Job/CronJob pods, and bare pods whose restartPolicy lets them finish."""
        if self.kind in RUN_TO_COMPLETION_KINDS:
            return True
        return self.spec.get("restartPolicy") in ("Never", "OnFailure")

    def containers(self, *lists: str) -> list[Container]:
        out: list[Container] = []
        for list_name in lists or CONTAINER_LISTS:
            items = self.spec.get(list_name)
            if not is_list(items):
                continue
            for item in items:
                if is_mapping(item):
                    out.append(Container(str(item.get("name", "?")), list_name, item))
        return out


def pod_spec_of(resource_type: str, props: Mapping[str, Any]) -> PodSpec | None:
    """The pod spec a workload resource declares, or None for anything else."""
    kind = kubernetes_kind(resource_type)
    if kind not in POD_SPEC_PATHS:
        return None
    spec = dig(props, *POD_SPEC_PATHS[kind])
    if not is_mapping(spec):
        return None
    return PodSpec(kind, spec)


def pod_labels(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    """The labels a workload puts on its pods ({} when none)."""
    kind = kubernetes_kind(resource_type)
    path = POD_SPEC_PATHS.get(kind or "")
    if not path:
        return {}
    labels = dig(props, "metadata", "labels") if kind == "Pod" else dig(
        props, *path[:-1], "metadata", "labels"
    )
    return labels if is_mapping(labels) else {}
