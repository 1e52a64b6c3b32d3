"""MetricsServer: the upstream metrics-server Helm chart, pinned, in kube-system.

It serves the metrics API (metrics.k8s.io) that the HorizontalPodAutoscaler and the
verification's CPU/memory sampling read. The v4 Chart renders the chart inside the provider
and registers every object as its own resource, so `pulumi preview` lists each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_kubernetes.helm.v4 import Chart, RepositoryOptsArgs

from components.settings import MetricsServerSettings

TYPE = "selfheal-lb:metrics_server:MetricsServer"
CHART = "metrics-server"
CHART_REPOSITORY = "https://kubernetes-sigs.github.io/metrics-server/"
CHART_VERSION = "3.13.0"  # metrics-server 0.8.0
NAMESPACE = "kube-system"
RELEASE = "metrics-server"  # object names and the APIService stay those of the upstream chart
INSECURE_TLS_ARG = "--kubelet-insecure-tls"
# The chart sets requests only; the policy pack requires limits on every container. metrics-server
# for a handful of nodes uses a few tens of MiB, the upstream sizing guide asks 100m/200Mi.
RESOURCES = {
    "requests": {"cpu": "100m", "memory": "200Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}


@dataclass(frozen=True)
class MetricsServerArgs:
    settings: MetricsServerSettings


def chart_values(settings: MetricsServerSettings) -> dict[str, Any]:
    """The chart's values: `args` are appended to the container's default arguments."""
    return {
        "args": [INSECURE_TLS_ARG] if settings.kubelet_insecure_tls else [],
        "resources": RESOURCES,
    }


class MetricsServer(pulumi.ComponentResource):
    chart: Chart

    def __init__(
        self, name: str, args: MetricsServerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE, name, None, opts)
        self.chart = Chart(
            name,
            chart=CHART,
            version=CHART_VERSION,
            repository_opts=RepositoryOptsArgs(repo=CHART_REPOSITORY),
            name=RELEASE,
            namespace=NAMESPACE,
            values=chart_values(args.settings),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"chart_version": CHART_VERSION, "namespace": NAMESPACE})
