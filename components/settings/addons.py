"""What the stack adds around the app: metrics-server, monitoring, the quota, the shared store."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from components.settings.schema import DNS_LABEL, Reader, check_image_ref, cpu_millis, memory_amount

MetricsServerMode = Literal["auto", "true", "false"]
# "auto" is resolved by components/operator_probe.py before any resource is registered.
MonitoringMode = Literal["auto", "podMonitor", "serviceMonitor", "annotations", "off"]
MONITORING_MODES = ("auto", "podMonitor", "serviceMonitor", "annotations", "off")
StateStoreKind = Literal["none", "redis"]
# Kubernetes label key (optional DNS prefix + name) and value.
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class MetricsServerSettings:
    # auto: install the chart only when the cluster serves no metrics.k8s.io (or this stack
    # installed it); true: install it (error if another one serves the API); false: never.
    # components/metrics_plan.py decides with what the cluster answers.
    mode: MetricsServerMode
    kubelet_insecure_tls: bool
    # metricsServerDecision: what `auto` decided on an earlier run (install | cluster), kept
    # whatever the probe answers now; "" = decide from the probe.
    decision: str = ""


@dataclass(frozen=True)
class MonitoringSettings:
    mode: MonitoringMode  # may still be "auto": the program asks the cluster (operator_probe)
    monitor_labels: tuple[tuple[str, str], ...]  # extra labels on the PodMonitor/ServiceMonitor
    prometheus_namespace: str  # "" = no NetworkPolicy rule for Prometheus
    dashboard: bool  # ship the Grafana dashboard ConfigMap (when mode is not off)
    dashboard_namespace: str  # resolved: config value or the stack's namespace
    # monitoringDecision: what `auto` decided on an earlier run (podMonitor | annotations),
    # kept whatever the probe answers now; "" = decide from the probe.
    decision: str = ""


@dataclass(frozen=True)
class QuotaSettings:
    enabled: bool  # ResourceQuota + LimitRange in the stack's namespace
    max_cpu: str  # "" = no ceiling; else the most CPU (limits) the namespace may be granted
    max_memory: str  # "" = no ceiling; same for memory
    drill_pods: int  # pods a drill may delete at once (make drill LG_KILL)


@dataclass(frozen=True)
class StateStoreSettings:
    kind: StateStoreKind  # "none": counters per pod, no sessions; "redis": one shared store
    image: str  # pinned Redis image (official, a mirror's copy or built from components/redis/)
    cpu: str  # request = limit (Guaranteed QoS: the store is the last pod to be evicted)
    memory: str  # request = limit; Redis' maxmemory is a share of it
    password_set: bool  # the secret stateStorePassword is set; otherwise one is generated

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


def parse_metrics_server(r: Reader) -> MetricsServerSettings:
    raw = r.raw("metricsServerEnabled")
    # A stack file may hold the YAML booleans true/false of the key's earlier boolean type.
    mode = "auto" if raw is None else raw.strip().lower()
    if mode not in ("auto", "true", "false"):
        r.fail("metricsServerEnabled", raw, "must be auto, true or false")
    return MetricsServerSettings(
        mode=mode,  # type: ignore[arg-type]
        kubelet_insecure_tls=r.boolean("metricsServerInsecureTls"),
        decision=parse_decision(r, "metricsServerDecision", ("install", "cluster")),
    )


def parse_decision(r: Reader, name: str, choices: tuple[str, ...]) -> str:
    value = r.string(name).strip()
    if value and value not in choices:
        r.fail(name, value, f"must be {' or '.join(choices)}, or empty to decide from the cluster")
    return value


def namespace_or_empty(r: Reader, name: str, value: str) -> str:
    if value and (len(value) > 63 or not DNS_LABEL.match(value)):
        r.fail(name, value, "must be a namespace name (a DNS-1123 label) or empty")
    return value


def parse_monitoring(r: Reader, namespace: str) -> MonitoringSettings:
    mode = r.string("monitoring", choices=MONITORING_MODES)
    pairs = []
    given = r.strings("monitoringLabels")
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
            r.fail(
                "monitoringLabels",
                list(given),
                f"'{item}' is not key=value with a valid label, e.g. release=kube-prometheus-stack",
            )
        pairs.append((key, value))
    prometheus_ns = namespace_or_empty(
        r, "prometheusNamespace", r.string("prometheusNamespace").strip()
    )
    dashboard_ns = namespace_or_empty(
        r, "grafanaDashboardNamespace", r.string("grafanaDashboardNamespace").strip()
    )
    return MonitoringSettings(
        mode=mode,  # type: ignore[arg-type]
        monitor_labels=tuple(pairs),
        prometheus_namespace=prometheus_ns,
        dashboard=r.boolean("grafanaDashboard"),
        dashboard_namespace=dashboard_ns or namespace,
        decision=parse_decision(r, "monitoringDecision", ("podMonitor", "annotations")),
    )


def parse_quota(r: Reader) -> QuotaSettings:
    ceilings = []
    for name, parse, example in (
        ("quotaMaxCpu", cpu_millis, "8 or 8000m"),
        ("quotaMaxMemory", memory_amount, "8Gi"),
    ):
        text = r.string(name).strip()
        if text:
            amount = parse(text)
            if amount is None or amount <= 0:
                allowed = f"must be empty or a positive Kubernetes quantity, e.g. {example}"
                r.fail(name, text, allowed)
        ceilings.append(text)
    return QuotaSettings(
        enabled=r.boolean("quotaEnabled"),
        max_cpu=ceilings[0],
        max_memory=ceilings[1],
        drill_pods=r.integer("quotaDrillPods", 0, 50),
    )


def parse_state_store(r: Reader, password_set: bool) -> StateStoreSettings:
    kind = r.string("stateStore", choices=("none", "redis"))
    image = r.string("stateStoreImage").strip()
    check_image_ref(r, image, "stateStoreImage")
    cpu = r.string("stateStoreCpu").strip()
    millis = cpu_millis(cpu)
    if millis is None or millis < 10:
        r.fail("stateStoreCpu", cpu, "must be a Kubernetes CPU quantity of at least 10m, e.g. 250m")
    memory = r.string("stateStoreMemory").strip()
    amount = memory_amount(memory)
    if amount is None or amount < 32 * 2**20:
        r.fail(
            "stateStoreMemory", memory, "must be a Kubernetes quantity of at least 32Mi, e.g. 128Mi"
        )
    return StateStoreSettings(
        kind=kind,  # type: ignore[arg-type]
        image=image,
        cpu=cpu,
        memory=memory,
        password_set=password_set,
    )
