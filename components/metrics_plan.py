"""Which metrics-server the stack uses, and whether it installs one: one metrics-server per
cluster, however many stacks share it.

`decide()` turns the config (`metricsServerEnabled`: auto | true | false) and what the probe
found (components/metrics_api.py) into a `MetricsPlan`. The ownership rules (docs/metrics-server.md,
"Ownership"):

- The first stack that finds no metrics API installs the chart and becomes its owner: the
  APIService is annotated with that stack (`<project>/<stack>` and its namespace).
- Every other stack finds the API served and installs nothing; it uses what is there, whoever
  put it there (minikube addon, another selfheal-lb stack, a Helm release, ...).
- The owner keeps managing it (upgrades, values) on every later `up`.
- Its objects are retained on delete: `pulumi destroy` of the owner leaves metrics-server
  running for the stacks that still use it; the owner's next `up` adopts it again. Removing
  it for good is one command by hand (docs/metrics-server.md).

`OFFLINE` is set by components/offline.py under the mocks: the probe's answer and the chart
archive are then given, not looked up. `python -m components.metrics_plan STACK` is the
preflight of `scripts/stack.sh`: one line when the cluster and the config disagree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import chart_cache
from components.metrics_api import MetricsApiState, probe
from components.settings import MetricsServerSettings

CHART_NAME = "metrics-server"
CHART_VERSION = "3.13.0"  # metrics-server 0.8.0
CHART_REPOSITORY = "https://kubernetes-sigs.github.io/metrics-server/"
# The archive as the repository's index.yaml lists version 3.13.0, with the index's digest.
CHART = chart_cache.ChartPin(
    name=CHART_NAME,
    version=CHART_VERSION,
    url=(
        "https://github.com/kubernetes-sigs/metrics-server/releases/download/"
        f"metrics-server-helm-chart-{CHART_VERSION}/metrics-server-{CHART_VERSION}.tgz"
    ),
    sha256="fb929902e3b7565663cdd1734f31d63735c932be1541a7228b5aeef6d2348a1f",
)


@dataclass(frozen=True)
class MetricsPlan:
    install: bool  # declare the chart's objects in this stack
    metrics_available: bool  # something serves (or will serve) metrics.k8s.io: HPA, report
    in_use: str  # one line for the outputs and the report
    warnings: tuple[str, ...] = ()
    error: str = ""  # non-empty: stop the program with this one line

    def output(self, state: MetricsApiState) -> dict[str, Any]:
        """The stack output `metricsServer`."""
        return {
            "inUse": self.in_use,
            "installedByThisStack": self.install,
            "detected": state.status,
            "detectedProvider": state.provider,
        }


def stack_id(project: str, stack: str) -> str:
    return f"{project}/{stack}"


def _installed_here() -> str:
    return (
        f"installed by this stack: {CHART_NAME} chart {CHART_VERSION} in kube-system "
        "(kept on destroy for the other stacks that use it)"
    )


def decide(
    settings: MetricsServerSettings, state: MetricsApiState, *, owner: str, namespace: str
) -> MetricsPlan:
    """The plan for this run. With `auto` and a recorded decision (metricsServerDecision), the
    recorded one is kept whatever the probe says now (one warning line when it disagrees or
    could not tell): a slow API answer must not plan a different metrics-server."""
    fresh = _decide(settings, state, owner=owner, namespace=namespace)
    if settings.mode != "auto" or not settings.decision:
        return fresh
    install = settings.decision == "install"
    if fresh.install == install and not fresh.error:
        return fresh
    if state.status == "unknown":
        why = f"cannot tell whether the cluster serves metrics.k8s.io ({state.detail})"
    elif state.status == "absent":
        why = "the cluster now serves no metrics.k8s.io"
    else:
        why = f"the cluster now serves metrics.k8s.io ({state.provider})"
    warning = (
        f"metrics-server: {why}; keeping the recorded decision '{settings.decision}' "
        "(metricsServerDecision; make up REDECIDE=1 decides again)"
    )
    if install:
        return MetricsPlan(True, True, _installed_here(), (warning,))
    in_use = f"the cluster's own: {state.provider or 'as recorded'}"
    return MetricsPlan(False, True, in_use, (warning,))


def _decide(
    settings: MetricsServerSettings, state: MetricsApiState, *, owner: str, namespace: str
) -> MetricsPlan:
    mode = settings.mode
    ours = state.owned_by(owner, namespace)
    served = state.status in ("available", "unavailable")
    not_ready = (
        f"the cluster's metrics.k8s.io ({state.provider}) is not Available ({state.detail}): "
        "the HPA and the report get no metrics until it is"
    )
    if state.status == "unknown":
        cannot_tell = f"cannot tell whether the cluster serves metrics.k8s.io ({state.detail})"
        if mode == "auto":
            return MetricsPlan(
                install=False,
                metrics_available=False,
                in_use="unknown",
                error=(
                    f"{cannot_tell}: fix the cluster access, or set metricsServerEnabled true "
                    "(install it) or false (do not)"
                ),
            )
        if mode == "true":
            return MetricsPlan(
                True, True, _installed_here(), (f"{cannot_tell}; installing as configured",)
            )
        return MetricsPlan(
            False, False, "none", (f"{cannot_tell}; metricsServerEnabled is false: no HPA",)
        )
    if mode == "false":
        warnings: list[str] = []
        if ours:
            warnings.append(
                "metricsServerEnabled is false: the metrics-server this stack installed is no "
                "longer managed by it and stays in the cluster (retained)"
            )
        if not served:
            warnings.append(
                "metricsServerEnabled is false and the cluster serves no metrics.k8s.io: no "
                "HPA and no CPU/memory in the report; set it to auto to install metrics-server"
            )
            return MetricsPlan(False, False, "none", tuple(warnings))
        if state.status == "unavailable":
            warnings.append(not_ready)
        return MetricsPlan(False, True, f"the cluster's own: {state.provider}", tuple(warnings))
    if not served or ours:
        # Nothing there (install, become the owner), or this stack's own install (keep it).
        return MetricsPlan(True, True, _installed_here())
    if mode == "true":
        return MetricsPlan(
            install=False,
            metrics_available=True,
            in_use=f"the cluster's own: {state.provider}",
            error=(
                f"metricsServerEnabled is true but the cluster already serves metrics.k8s.io "
                f"({state.provider}); a second install would collide: set metricsServerEnabled "
                "auto (use that one) or false"
            ),
        )
    warnings = [not_ready] if state.status == "unavailable" else []
    return MetricsPlan(False, True, f"the cluster's own: {state.provider}", tuple(warnings))


@dataclass
class OfflineFacts:
    """What the mocks use instead of the probe and the chart cache."""

    metrics_api: MetricsApiState
    chart: Path | None = None  # the chart (archive or directory); None = not to be had here
    chart_problem: str = ""  # one line: why there is no chart
    # make render: without the chart, warn and leave its objects out instead of failing.
    render_without_chart: bool = False


OFFLINE: OfflineFacts | None = None


def detect(kube_context: str) -> MetricsApiState:
    if OFFLINE is not None:
        return OFFLINE.metrics_api
    return probe(kube_context)


def chart_path() -> Path:
    """The verified chart (fetched once into the cache, unpacked); ChartUnavailable otherwise."""
    if OFFLINE is not None:
        if OFFLINE.chart is None:
            raise chart_cache.ChartUnavailable(OFFLINE.chart_problem or "no chart offline")
        return OFFLINE.chart
    return chart_cache.unpacked(CHART)


def preflight(stack: str, project_dir: Path | None = None) -> tuple[int, str]:
    """(exit code, line) for `scripts/stack.sh`: 1 = stop with the line, 0 = go on (line may
    be a warning or empty)."""
    from components import offline
    from components.settings import ConfigError

    try:
        s = offline.settings_for(stack, project_dir or offline.PROJECT_DIR)
    except ConfigError as err:
        return 1, str(err)
    state = detect(s.cluster.kube_context)
    plan = decide(
        s.metrics_server,
        state,
        owner=stack_id(s.project, s.stack),
        namespace=s.cluster.namespace,
    )
    if plan.error:
        if state.status == "unknown":
            return 0, f"warning: {plan.error}"  # pulumi itself stops with the same line
        return 1, plan.error
    if plan.warnings:
        return 0, "warning: " + "; ".join(plan.warnings)
    return 0, ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.metrics_plan")
    parser.add_argument("stack")
    args = parser.parse_args(argv)
    try:
        code, line = preflight(args.stack)
    except FileNotFoundError as missing:
        code, line = 1, str(missing)
    except Exception as exc:  # the preflight prints one line, whatever went wrong
        code, line = 1, f"the metrics-server check failed: {type(exc).__name__}: {exc}"
    if line:
        print(line)
    return code


if __name__ == "__main__":
    sys.exit(main())
