"""The Grafana dashboard of the article service, built with grafana-foundation-sdk.

What a person watching the stack wants to see live: how the load is split over the pods,
latency from the app's histogram, errors, CPU and memory per pod, restarts and ready replicas
(the self-healing). One source for the panels: `PANELS` below; `dashboard_json()` turns them
into the dashboard (the ConfigMap's content, `make render`'s build/dashboards/ file), and the
tests run every expression of that JSON against a real Prometheus.

Metric sources, as a kube-prometheus-stack installation provides them:
- articles_* : the app's own /metrics (app/README.md), scraped via the PodMonitor or the
  annotations (components/monitoring.py); Prometheus adds the `namespace` and `pod` labels.
- container_cpu_usage_seconds_total, container_memory_working_set_bytes: the kubelet's
  cAdvisor endpoint (labels namespace, pod, container).
- kube_pod_container_status_restarts_total, kube_deployment_status_replicas_ready,
  kube_deployment_spec_replicas: kube-state-metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders.common import VizLegendOptions, VizTooltipOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, QueryVariable
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    LegendDisplayMode,
    LegendPlacement,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos, VariableOption

from components import labels
from components.app import CONTAINER_NAME

UID = "selfheal-lb-articles"
TITLE = "selfheal-lb: articles"
FILE_NAME = f"{UID}.json"  # the ConfigMap key and the file `make render` writes
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace="$namespace"'
# Traffic the load sends, not the kubelet's probes or Prometheus' own scrapes.
TRAFFIC = f'{NS}, route!~"/healthz|/readyz|/metrics"'
RATE = "[$__rate_interval]"


def _per_pod_rate(selector: str) -> str:
    return f"sum by (pod) (rate(articles_http_requests_total{{{selector}}}{RATE}))"


def _errors(status_regex: str) -> str:
    # `or 0 * …`: every serving pod gets a series, 0 while it answers no such status (a flat
    # line says "no errors"; a missing one would say "no data").
    matching = _per_pod_rate(f'{NS}, status=~"{status_regex}"')
    return f"{matching} or (0 * {_per_pod_rate(NS)})"


def _latency(quantile: str) -> str:
    return (
        f"histogram_quantile({quantile}, sum by (pod, le) "
        f"(rate(articles_http_request_duration_seconds_bucket{{{TRAFFIC}}}{RATE})))"
    )


APP = f'{NS}, container="{CONTAINER_NAME}"'
DEPLOYMENT = f'{NS}, deployment="{labels.APP_NAME}"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec(
        "Requests per second by pod",
        "reqps",
        (Query(_per_pod_rate(TRAFFIC), "{{pod}}"),),
        "The load split at a glance: one line per pod, probes and scrapes left out.",
    ),
    PanelSpec(
        "Share of requests by pod",
        "percentunit",
        (
            Query(
                f"{_per_pod_rate(TRAFFIC)} / scalar(sum(rate("
                f"articles_http_requests_total{{{TRAFFIC}}}{RATE})))",
                "{{pod}}",
            ),
        ),
        "Each pod's part of all requests; equal lines are an even spread.",
    ),
    PanelSpec(
        "Latency p50 and p99 by pod",
        "s",
        (Query(_latency("0.5"), "{{pod}} p50"), Query(_latency("0.99"), "{{pod}} p99")),
        "From the app's request-duration histogram (bucket resolution).",
    ),
    PanelSpec(
        "Errors per second by pod",
        "reqps",
        (Query(_errors("5.."), "{{pod}} 5xx"), Query(_errors("4.."), "{{pod}} 4xx")),
        "Answers with a 5xx (server) or 4xx (client) status.",
    ),
    PanelSpec(
        "CPU by pod",
        "short",
        (
            Query(
                f"sum by (pod) (rate(container_cpu_usage_seconds_total{{{APP}}}{RATE}))",
                "{{pod}}",
            ),
        ),
        "Cores used by the app container (kubelet/cAdvisor); compare with appCpuLimit.",
    ),
    PanelSpec(
        "Memory by pod",
        "bytes",
        (Query(f"sum by (pod) (container_memory_working_set_bytes{{{APP}}})", "{{pod}}"),),
        "Working set of the app container (kubelet/cAdvisor); compare with appMemoryLimit.",
    ),
    PanelSpec(
        "Restarts by pod",
        "short",
        (Query(f"sum by (pod) (kube_pod_container_status_restarts_total{{{APP}}})", "{{pod}}"),),
        "Container restarts (kube-state-metrics): a step is a crash the kubelet healed.",
    ),
    PanelSpec(
        "Ready replicas",
        "short",
        (
            Query(f"sum(kube_deployment_status_replicas_ready{{{DEPLOYMENT}}})", "ready"),
            Query(f"sum(kube_deployment_spec_replicas{{{DEPLOYMENT}}})", "desired"),
        ),
        "Ready pods against the desired count (kube-state-metrics): a dip and its recovery is "
        "the self-healing.",
    ),
)

PANEL_WIDTH, PANEL_HEIGHT = 12, 8  # two panels per row on Grafana's 24-column grid


def build(namespace: str) -> Dashboard:
    """The dashboard, its namespace variable preset to the stack's namespace."""
    dashboard = (
        Dashboard(TITLE)
        .uid(UID)
        .tags(["selfheal-lb", "generated"])
        .description("Load spread, latency, errors, resources and self-healing of the articles app")
        .refresh("10s")
        .time("now-30m", "now")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query("label_values(articles_http_requests_total, namespace)")
            .current(VariableOption(selected=True, text=namespace, value=namespace))
        )
    )
    for index, spec in enumerate(PANELS):
        panel = (
            Timeseries()
            .title(spec.title)
            .description(spec.description)
            .unit(spec.unit)
            .min(0)
            .datasource(DATASOURCE)
            .legend(
                VizLegendOptions()
                .show_legend(True)
                .display_mode(LegendDisplayMode.TABLE)
                .placement(LegendPlacement.BOTTOM)
                .calcs(["lastNotNull", "max"])
            )
            .tooltip(VizTooltipOptions().mode(TooltipDisplayMode.MULTI))
            .grid_pos(
                GridPos(
                    h=PANEL_HEIGHT,
                    w=PANEL_WIDTH,
                    x=(index % 2) * PANEL_WIDTH,
                    y=(index // 2) * PANEL_HEIGHT,
                )
            )
        )
        for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
            panel = panel.with_target(
                Dataquery().expr(query.expr).legend_format(query.legend).ref_id(ref)
            )
        dashboard = dashboard.with_panel(panel)
    return dashboard


def dashboard_json(namespace: str) -> str:
    """The dashboard as Grafana imports it: stable key order, so a re-render diffs cleanly."""
    return JSONEncoder(sort_keys=True, indent=2).encode(build(namespace).build()) + "\n"


def expressions(document: str) -> list[tuple[str, str, str]]:
    """(panel title, legend, PromQL) of every query in a dashboard JSON document."""
    doc = json.loads(document)
    return [
        (panel["title"], target["legendFormat"], target["expr"])
        for panel in doc["panels"]
        for target in panel.get("targets", [])
    ]
