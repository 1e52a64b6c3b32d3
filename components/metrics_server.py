"""MetricsServer: the upstream metrics-server chart, pinned and checksum-verified, in kube-system.

It serves the metrics API (metrics.k8s.io) that the HorizontalPodAutoscaler and the
verification's CPU/memory sampling read. The stack declares it only when components/
metrics_plan.py says so: one metrics-server per cluster, owned by the stack that installed it.

Why `helm.v3.Chart` with the local chart, not the v4 `Chart`:
- the chart is the verified archive from the cache, unpacked (components/chart_cache.py):
  nothing is downloaded on preview or up once it is there;
- v3 renders through the provider's `kubernetes:helm:template` invoke and registers every
  object from this program, so the per-object options (retain on delete) are plain
  `transformations`, and under the SDK's mocks the same objects appear (the invoke answered by
  the pinned helm, components/helm_template.py): `make render` writes, validates and scans
  them, and the tests check them. v4 registers its objects inside the provider, invisible to
  the mocks.

Its objects go through a provider of their own that may adopt existing objects
(`upsertExistingObjects`): only ever used when the metrics-server in the cluster is this
stack's own install, kept when the stack was destroyed, that its next `up` takes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_kubernetes.helm.v3 import Chart, LocalChartOpts

from components.metrics_api import (
    INSTALLED_LABEL,
    INSTALLED_VALUE,
    OWNER_NAMESPACE_ANNOTATION,
    OWNER_STACK_ANNOTATION,
)
from components.metrics_plan import CHART_NAME, CHART_VERSION
from components.settings import MetricsServerSettings

TYPE = "selfheal-lb:metrics_server:MetricsServer"
NAMESPACE = "kube-system"
RELEASE = "metrics-server"  # object names and the APIService stay those of the upstream chart
INSECURE_TLS_ARG = "--kubelet-insecure-tls"
# The chart sets requests only; the policy pack requires limits on every container. metrics-server
# for a handful of nodes uses a few tens of MiB, the upstream sizing guide asks 100m/200Mi.
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "200Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
# The chart runs as UID 1000 with no pod-level context; the same restricted settings as the
# app's pods instead, with a UID above 10000 that maps onto no host account (checkov
# CKV_K8S_40, CKV_K8S_29). metrics-server writes only its self-signed certs, to /tmp (emptyDir).
RUN_AS_ID = 10001
POD_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": RUN_AS_ID,
    "runAsGroup": RUN_AS_ID,
    "fsGroup": RUN_AS_ID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
# Helm merges maps: only the UID changes in the chart's container securityContext.
CONTAINER_SECURITY_CONTEXT = {"runAsUser": RUN_AS_ID, "runAsGroup": RUN_AS_ID}
# A per-object checkov skip, with its reason, on the one object it is about.
CHECKOV_SKIPS = {
    "checkov.io/skip1": (
        "CKV_K8S_38=metrics-server reads nodes and pods from the API server with its "
        "service account token, so the token must be mounted"
    ),
}


@dataclass(frozen=True)
class MetricsServerArgs:
    settings: MetricsServerSettings
    chart: Path  # the verified chart, unpacked (components/metrics_plan.chart_path())
    owner_stack: str  # "<project>/<stack>": written on the APIService
    owner_namespace: str  # that stack's app namespace
    kube_context: str = ""  # "" = the kubeconfig's current context
    # The stack provider's clusterIdentifier: a kubeContext change is an update of this
    # provider too, not a replacement of it and of the metrics-server under it.
    cluster_identifier: str = ""


def chart_values(args: MetricsServerArgs) -> dict[str, Any]:
    """The chart's values: `args` are appended to the container's default arguments."""
    return {
        "args": [INSECURE_TLS_ARG] if args.settings.kubelet_insecure_tls else [],
        "resources": RESOURCES,
        "podSecurityContext": POD_SECURITY_CONTEXT,
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "deploymentAnnotations": CHECKOV_SKIPS,
        "commonLabels": {INSTALLED_LABEL: INSTALLED_VALUE},
        "apiService": {
            "annotations": {
                OWNER_STACK_ANNOTATION: args.owner_stack,
                OWNER_NAMESPACE_ANNOTATION: args.owner_namespace,
            }
        },
    }


def _retain(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
    # Other stacks may use this metrics-server: `pulumi destroy` (or switching it off) leaves it.
    opts.retain_on_delete = True


class MetricsServer(pulumi.ComponentResource):
    chart: Chart

    def __init__(
        self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        provider = k8s.Provider(
            f"{name}-provider",
            context=args.kube_context or None,
            cluster_identifier=args.cluster_identifier or None,
            enable_server_side_apply=True,
            upsert_existing_objects=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.chart = Chart(
            RELEASE,
            LocalChartOpts(
                path=str(args.chart),
                namespace=NAMESPACE,
                values=chart_values(args),
                transformations=[_retain],
            ),
            opts=pulumi.ResourceOptions(parent=self, providers={"kubernetes": provider}),
        )
        self.register_outputs(
            {"chart": CHART_NAME, "chart_version": CHART_VERSION, "namespace": NAMESPACE}
        )

    def and_before(
        self, others: Sequence[pulumi.Resource]
    ) -> pulumi.Output[list[pulumi.Resource]]:
        """`others` and this metrics-server's objects, for a depends_on. The chart registers
        its objects only once it has rendered, so a depends_on on this component alone would
        miss them (it is expanded to the children registered so far)."""
        return self.chart.ready.apply(lambda objects: [*others, *objects])
