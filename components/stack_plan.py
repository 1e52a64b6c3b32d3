"""What the program decides before it declares anything: one place, so __main__.py only wires.

- metrics-server: install it only where the cluster serves no metrics API yet (or this stack
  installed it), else use what is there (components/metrics_plan.py);
- monitoring: what `auto` means on this cluster, or the recorded decision (operator_probe.py);
- the namespace's quota: its size at the stack's worst moment, refused in one line when it
  cannot fit under the configured ceiling (components/sizing.py).

A mistake the user can fix is raised as ConfigError (one line, shown by `pulumi up`, no
traceback); a note worth showing is in `warnings` / `notes`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from components import metrics_plan, operator_probe, sizing
from components.chart_cache import ChartUnavailable
from components.metrics_api import MetricsApiState
from components.quota import NamespaceNeed, QuotaPlan
from components.settings import ConfigError, Settings


@dataclass(frozen=True)
class StackPlan:
    metrics_api: MetricsApiState  # what the cluster serves now
    metrics: metrics_plan.MetricsPlan
    metrics_chart: Path | None  # the pinned chart to install; None = install nothing
    monitoring: str  # podMonitor, serviceMonitor, annotations or off
    quota_need: NamespaceNeed  # exported as namespaceQuota when the quota is on
    quota: QuotaPlan | None  # None = quotaEnabled false
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def plan_stack(
    s: Settings,
    *,
    detect: Callable[[str], MetricsApiState] | None = None,
    resolve_monitoring: Callable[..., operator_probe.Resolution] | None = None,
) -> StackPlan:
    """Every decision of one run, from the settings and (for `auto`) the cluster's answers.

    `detect` and `resolve_monitoring` stand in for the cluster probes (looked up at call time,
    so the offline harness's stand-ins apply)."""
    detect = detect or metrics_plan.detect
    resolve_monitoring = resolve_monitoring or operator_probe.resolve_mode
    warnings: list[str] = []
    notes: list[str] = []
    metrics_api = detect(s.cluster.kube_context)
    metrics = metrics_plan.decide(
        s.metrics_server,
        metrics_api,
        owner=metrics_plan.stack_id(s.project, s.stack),
        namespace=s.cluster.namespace,
    )
    if metrics.error:
        raise ConfigError(metrics.error)
    warnings += metrics.warnings
    chart = None
    if metrics.install:
        try:
            chart = metrics_plan.chart_path()
        except ChartUnavailable as missing:
            offline_facts = metrics_plan.OFFLINE
            if offline_facts is None or not offline_facts.render_without_chart:
                raise ConfigError(str(missing)) from None
            warnings.append(f"{missing}; metrics-server's objects are left out of this render")

    # `auto` asks the cluster whether the operator's CRDs exist; a decision recorded by an
    # earlier `make up` (monitoringDecision) is kept whatever it answers.
    monitoring = resolve_monitoring(
        s.monitoring.mode, s.cluster.kube_context, recorded=s.monitoring.decision
    )
    if monitoring.note:
        (warnings if monitoring.warn else notes).append(monitoring.note)

    # The optional Redis is a pod of the namespace too: the quota holds it.
    extra = []
    if s.state_store.enabled:
        extra.append(sizing.single_pod_shape("redis", s.state_store.cpu, s.state_store.memory))
    need = sizing.namespace_need(s, extra, metrics_available=metrics.metrics_available)
    quota = None
    if s.quota.enabled:
        sizing.check_fits(s, need)  # refuses a config that cannot fit, saying by how much
        quota = QuotaPlan(need=need, container_default=s.app.resources)
    return StackPlan(
        metrics_api=metrics_api,
        metrics=metrics,
        metrics_chart=chart,
        monitoring=monitoring.mode,
        quota_need=need,
        quota=quota,
        warnings=tuple(warnings),
        notes=tuple(notes),
    )
