"""The app's pods and Service: replicas, resources, drain, exposure, policy, autoscaling."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from components.settings.schema import Reader, cpu_millis, memory_amount

ServiceType = Literal["LoadBalancer", "NodePort", "ClusterIP"]
SessionAffinity = Literal["None", "ClientIP"]


@dataclass(frozen=True)
class Resources:
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str


@dataclass(frozen=True)
class AppSettings:
    replicas: int
    workers: int  # production server worker processes per pod
    resources: Resources
    drain_seconds: int  # preStop sleep + app drain after SIGTERM
    termination_grace_seconds: int  # > drain_seconds
    service_type: ServiceType
    service_port: int
    session_affinity: SessionAffinity
    pdb_max_unavailable: int
    network_policy: bool
    ingress_cidrs: tuple[str, ...]
    # tolerationSeconds of the pods' NoExecute tolerations of a NotReady/unreachable node: how
    # long after a node loss is detected its pods are evicted and replaced elsewhere.
    node_loss_toleration_seconds: int
    # The cluster's pod ranges, carved out of ingress_cidrs (components/network.ip_blocks).
    pod_cidrs: tuple[str, ...] = ()
    # serviceAwaitLoadBalancer: False = Service annotated pulumi.com/skipAwait so `up` does not
    # block until a LoadBalancer IP exists (minikube without `minikube tunnel`).
    await_load_balancer: bool = False


@dataclass(frozen=True)
class AutoscalingSettings:
    enabled: bool  # effective only when metrics are available
    min_replicas: int
    max_replicas: int
    cpu_utilization: int  # percent of the CPU request


def parse_resources(r: Reader) -> Resources:
    values = {}
    for kind, parse, example in (
        ("Cpu", cpu_millis, "100m or 0.5"),
        ("Memory", memory_amount, "128Mi"),
    ):
        amounts = []
        for role in ("Request", "Limit"):
            name = f"app{kind}{role}"
            text = r.string(name).strip()
            amount = parse(text)
            if amount is None or amount <= 0:
                r.fail(name, text, f"must be a positive Kubernetes quantity, e.g. {example}")
            values[name] = text
            amounts.append(amount)
        if amounts[0] > amounts[1]:
            r.fail(
                f"app{kind}Request",
                values[f"app{kind}Request"],
                f"must not exceed app{kind}Limit ({values[f'app{kind}Limit']})",
            )
    return Resources(
        cpu_request=values["appCpuRequest"],
        cpu_limit=values["appCpuLimit"],
        memory_request=values["appMemoryRequest"],
        memory_limit=values["appMemoryLimit"],
    )


def parse_cidrs(r: Reader, name: str) -> tuple[str, ...]:
    cidrs = r.strings(name)
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            r.fail(name, list(cidrs), f"'{cidr}' is not a CIDR such as 10.0.0.0/8")
    return cidrs


def parse_app(r: Reader) -> AppSettings:
    replicas = r.integer("appReplicas", 1, 50)
    workers = r.integer("appWorkers", 1, 16)
    resources = parse_resources(r)
    drain = r.integer("drainSeconds", 0, 60)
    grace = r.integer("terminationGracePeriodSeconds", 1, 3600)
    if grace <= 2 * drain + 5:
        r.fail(
            "terminationGracePeriodSeconds",
            grace,
            f"must exceed 2*drainSeconds+5 = {2 * drain + 5} (preStop sleep + drain + exit)",
        )
    service_type = r.string("serviceType", choices=("LoadBalancer", "NodePort", "ClusterIP"))
    port = r.integer("servicePort", 1, 65535)
    await_lb = r.boolean("serviceAwaitLoadBalancer")
    affinity = r.string("sessionAffinity", choices=("None", "ClientIP"))
    pdb_high = max(1, replicas - 1)
    pdb = r.integer("pdbMaxUnavailable", 1, pdb_high, f" (below appReplicas={replicas})")
    node_loss = r.integer("nodeLossTolerationSeconds", 0, 3600)
    cidrs = parse_cidrs(r, "ingressAllowedCidrs")
    pod_cidrs = parse_cidrs(r, "clusterPodCidrs")
    return AppSettings(
        replicas=replicas,
        workers=workers,
        resources=resources,
        drain_seconds=drain,
        termination_grace_seconds=grace,
        service_type=service_type,  # type: ignore[arg-type]
        service_port=port,
        session_affinity=affinity,  # type: ignore[arg-type]
        pdb_max_unavailable=pdb,
        network_policy=r.boolean("networkPolicy"),
        ingress_cidrs=cidrs,
        node_loss_toleration_seconds=node_loss,
        pod_cidrs=pod_cidrs,
        await_load_balancer=await_lb,
    )


def parse_autoscaling(r: Reader, replicas: int) -> AutoscalingSettings:
    enabled = r.boolean("hpaEnabled")
    min_given = r.integer("hpaMinReplicas", 0, 50, " (0 = appReplicas)")
    minimum = min_given or replicas
    maximum = r.integer("hpaMaxReplicas", minimum, 50, f" (at least hpaMinReplicas={minimum})")
    return AutoscalingSettings(
        enabled=enabled,
        min_replicas=minimum,
        max_replicas=maximum,
        cpu_utilization=r.integer("hpaCpuUtilization", 1, 100),
    )
