"""Monitoring: how a cluster's Prometheus finds the app pods, and the Grafana dashboard.

The walkthrough's closing note: watch usage with Prometheus and Grafana to tune scaling. The
app serves /metrics on its metrics port (9090, in no Service, never the LoadBalancer's); this
component makes it scraped the way the cluster is monitored:

- podMonitor / serviceMonitor: the Prometheus Operator's CRDs (kube-prometheus-stack). A
  PodMonitor is the default: it scrapes every running pod, a draining one included, whereas a
  ServiceMonitor follows the Service's endpoints, which drop a pod the moment it stops being
  ready - exactly when a person watching the self-healing wants to see it.
- annotations: `prometheus.io/scrape|port|path` on the pod template, the convention of the
  Prometheus community chart's `kubernetes-pods` job (set on the app by __main__).

Plus a NetworkPolicy rule that lets Prometheus' namespace reach the metrics port (the app's own
policy admits only fortio and `ingressAllowedCidrs`), and the dashboard as a ConfigMap with the
Grafana sidecar's label. The verification never reads Prometheus: it counts on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import dashboard, labels
from components.app import METRICS_PORT, METRICS_PORT_NAME
from components.settings import MonitoringSettings

TYPE_TOKEN = "selfheal-lb:monitoring:Monitoring"
METRICS_PATH = "/metrics"
SCRAPE_INTERVAL = "15s"
OPERATOR_API = "monitoring.coreos.com/v1"
# The label kube-prometheus-stack's Grafana sidecar watches by default (sidecar.dashboards.label
# and labelValue), and the annotation its folderAnnotation option reads.
DASHBOARD_LABEL = ("grafana_dashboard", "1")
FOLDER_ANNOTATION = ("grafana_folder", "selfheal-lb")
DASHBOARD_CONFIGMAP = "selfheal-lb-dashboard"
# serviceMonitor mode: a headless Service of the metrics port alone (the LoadBalancer Service
# never carries it), told apart from the app's Service by this label.
METRICS_SERVICE = "articles-metrics"
METRICS_SERVICE_LABEL = ("selfheal-lb/metrics", "true")


def scrape_annotations(mode: str) -> dict[str, str]:
    """Pod annotations for the annotations mode; none otherwise."""
    if mode != "annotations":
        return {}
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(METRICS_PORT),
        "prometheus.io/path": METRICS_PATH,
    }


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringSettings
    mode: str  # resolved: podMonitor, serviceMonitor, annotations (operator_probe for auto)
    namespace: pulumi.Input[str]  # the stack's Namespace (an Output: objects wait for it)
    namespace_name: str  # the same name as plain text (the dashboard's preset namespace)
    instance: str
    app_selector: Mapping[str, str]  # the app pods' (and the Service's) selector labels
    network_policy: bool  # the stack creates NetworkPolicies (networkPolicy)


class Monitoring(pulumi.ComponentResource):
    monitor: k8s.apiextensions.CustomResource | None
    network_policy: k8s.networking.v1.NetworkPolicy | None
    dashboard: k8s.core.v1.ConfigMap | None

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(TYPE_TOKEN, name, None, opts)
        s = args.settings
        if args.mode not in ("podMonitor", "serviceMonitor", "annotations"):
            raise ValueError(f"monitoring mode {args.mode!r} is not resolved")
        object_labels = labels.object_labels(labels.APP_NAME, args.instance, "monitoring")
        child = pulumi.ResourceOptions(parent=self)
        self.monitor = None
        self.network_policy = None
        self.dashboard = None
        self.metrics_service: k8s.core.v1.Service | None = None

        if args.mode in ("podMonitor", "serviceMonitor"):
            self.monitor = self._monitor(name, args, {**object_labels, **dict(s.monitor_labels)})

        if args.network_policy and s.prometheus_namespace:
            self.network_policy = k8s.networking.v1.NetworkPolicy(
                f"{name}-allow-prometheus",
                metadata={
                    "name": f"{labels.APP_NAME}-prometheus",
                    "namespace": args.namespace,
                    "labels": object_labels,
                },
                spec={
                    "pod_selector": {"match_labels": dict(args.app_selector)},
                    "policy_types": ["Ingress"],
                    "ingress": [
                        {
                            "from": [
                                {
                                    "namespace_selector": {
                                        "match_labels": {
                                            "kubernetes.io/metadata.name": s.prometheus_namespace
                                        }
                                    }
                                }
                            ],
                            "ports": [{"protocol": "TCP", "port": METRICS_PORT}],
                        }
                    ],
                },
                opts=child,
            )

        if s.dashboard:
            same = s.dashboard_namespace == args.namespace_name
            self.dashboard = k8s.core.v1.ConfigMap(
                f"{name}-dashboard",
                metadata={
                    "name": DASHBOARD_CONFIGMAP,
                    "namespace": args.namespace if same else s.dashboard_namespace,
                    "labels": {**object_labels, DASHBOARD_LABEL[0]: DASHBOARD_LABEL[1]},
                    "annotations": {FOLDER_ANNOTATION[0]: FOLDER_ANNOTATION[1]},
                },
                data={dashboard.FILE_NAME: dashboard.dashboard_json(args.namespace_name)},
                opts=child,
            )

        self.register_outputs(
            {
                "mode": args.mode,
                "dashboardConfigMap": DASHBOARD_CONFIGMAP if self.dashboard else "",
            }
        )

    def _metrics_service(self, name: str, args: MonitoringArgs) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            f"{name}-metrics-service",
            metadata={
                "name": METRICS_SERVICE,
                "namespace": args.namespace,
                "labels": {
                    **labels.object_labels(labels.APP_NAME, args.instance, "monitoring"),
                    METRICS_SERVICE_LABEL[0]: METRICS_SERVICE_LABEL[1],
                },
            },
            spec={
                "type": "ClusterIP",
                "cluster_ip": "None",  # headless: endpoints only, no virtual IP to reach
                "selector": dict(args.app_selector),
                # A ServiceMonitor lists every pod, not only ready ones (as a PodMonitor would).
                "publish_not_ready_addresses": True,
                "ports": [
                    {
                        "name": METRICS_PORT_NAME,
                        "protocol": "TCP",
                        "port": METRICS_PORT,
                        "target_port": METRICS_PORT_NAME,
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )

    def _monitor(
        self, name: str, args: MonitoringArgs, monitor_labels: dict[str, str]
    ) -> k8s.apiextensions.CustomResource:
        endpoint = {"port": METRICS_PORT_NAME, "path": METRICS_PATH, "interval": SCRAPE_INTERVAL}
        selector = {"matchLabels": dict(args.app_selector)}
        if args.mode == "podMonitor":
            kind, spec = "PodMonitor", {"selector": selector, "podMetricsEndpoints": [endpoint]}
        else:
            self.metrics_service = self._metrics_service(name, args)
            selector = {"matchLabels": {**args.app_selector, METRICS_SERVICE_LABEL[0]: "true"}}
            kind, spec = "ServiceMonitor", {"selector": selector, "endpoints": [endpoint]}
        return k8s.apiextensions.CustomResource(
            f"{name}-{kind.lower()}",
            api_version=OPERATOR_API,
            kind=kind,
            metadata={
                "name": labels.APP_NAME,
                "namespace": args.namespace,
                "labels": monitor_labels,
            },
            spec=spec,
            opts=pulumi.ResourceOptions(parent=self),
        )
