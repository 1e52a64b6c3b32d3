"""decide(): the table in docs/metrics-server.md, cell by cell — what the stack installs, whether
the HPA gets metrics, and the one line it says (error or warning) for each mode and each cluster
state."""

from __future__ import annotations

import pytest

from components.metrics_api import ABSENT, MetricsApiState
from components.metrics_plan import decide
from components.settings import MetricsServerSettings

OWNER, NAMESPACE = "selfheal-lb/dev", "selfheal-lb-dev"
ADDON = MetricsApiState("available", provider="minikube addon (kube-system/metrics-server)")
OURS = MetricsApiState(
    "available",
    provider="installed by selfheal-lb stack selfheal-lb/dev (kube-system/m)",
    owner_stack=OWNER,
    owner_namespace=NAMESPACE,
)
OTHER_STACK = MetricsApiState(
    "available",
    provider="installed by selfheal-lb stack selfheal-lb/dev (kube-system/m)",
    owner_stack=OWNER,
    owner_namespace="elsewhere",
)
SICK = MetricsApiState(
    "unavailable",
    provider="minikube addon (kube-system/metrics-server)",
    detail="Available=False: MissingEndpoints",
)
UNKNOWN = MetricsApiState("unknown", detail="cluster unreachable: timed out")

# (mode, state) -> (install, metrics_available, error starts with, warning contains)
CASES = [
    ("auto", ABSENT, True, True, "", ""),
    ("auto", OURS, True, True, "", ""),
    ("auto", ADDON, False, True, "", ""),
    ("auto", OTHER_STACK, False, True, "", ""),  # same stack name, other namespace: not ours
    ("auto", SICK, False, True, "", "is not Available (Available=False: MissingEndpoints)"),
    ("auto", UNKNOWN, False, False, "cannot tell whether the cluster serves metrics.k8s.io", ""),
    ("true", ABSENT, True, True, "", ""),
    ("true", OURS, True, True, "", ""),
    ("true", ADDON, False, True, "metricsServerEnabled is true but the cluster already", ""),
    ("true", SICK, False, True, "metricsServerEnabled is true but the cluster already", ""),
    ("true", UNKNOWN, True, True, "", "installing as configured"),
    ("false", ABSENT, False, False, "", "serves no metrics.k8s.io: no HPA"),
    ("false", OURS, False, True, "", "no longer managed by it and stays in the cluster"),
    ("false", ADDON, False, True, "", ""),
    ("false", SICK, False, True, "", "is not Available"),
    ("false", UNKNOWN, False, False, "", "metricsServerEnabled is false: no HPA"),
]


@pytest.mark.parametrize(
    ("mode", "state", "install", "available", "error", "warning"),
    CASES,
    ids=[f"{c[0]}-{c[1].status}-{c[1].owner_namespace or c[1].provider[:12]}" for c in CASES],
)
def test_each_cell_of_the_table(mode, state, install, available, error, warning):
    plan = decide(
        MetricsServerSettings(mode=mode, kubelet_insecure_tls=True),
        state,
        owner=OWNER,
        namespace=NAMESPACE,
    )
    assert (plan.install, plan.metrics_available) == (install, available)
    assert plan.error.startswith(error) and (plan.error == "") == (error == "")
    assert "\n" not in plan.error
    joined = " | ".join(plan.warnings)
    assert (warning in joined) and ((joined == "") == (warning == "")), plan.warnings
    if plan.install:
        assert plan.in_use.startswith("installed by this stack")
