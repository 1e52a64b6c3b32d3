"""MetricsServer: the pinned upstream chart in kube-system, --kubelet-insecure-tls switchable."""

from __future__ import annotations

import re
import textwrap

import pytest

from components.metrics_server import CHART_REPOSITORY, CHART_VERSION

CHART = "kubernetes:helm.sh/v4:Chart"


def _program(insecure: bool) -> str:
    return textwrap.dedent(
        f"""
        from components.metrics_server import MetricsServer, MetricsServerArgs
        from components.settings import MetricsServerSettings
        MetricsServer("metrics-server", MetricsServerArgs(MetricsServerSettings(
            enabled=True, kubelet_insecure_tls={insecure}, already_present=False)))
        """
    )


@pytest.mark.parametrize("insecure", [True, False])
def test_chart_is_pinned_upstream_in_kube_system(run_snippet, insecure):
    run = run_snippet(_program(insecure))
    chart = run.one(CHART)
    assert chart.inputs["chart"] == "metrics-server"
    assert chart.inputs["repositoryOpts"] == {"repo": CHART_REPOSITORY}
    assert chart.inputs["version"] == CHART_VERSION
    assert chart.inputs["namespace"] == "kube-system"
    expected = ["--kubelet-insecure-tls"] if insecure else []
    assert chart.inputs["values"]["args"] == expected
    # The chart itself sets no limits; the policy pack rejects a container without them.
    resources = chart.inputs["values"]["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}
    component = run.one("selfheal-lb:metrics_server:MetricsServer")
    assert chart.parent_urn == component.urn


def test_version_is_an_exact_release_not_a_range():
    assert re.fullmatch(r"\d+\.\d+\.\d+", CHART_VERSION)
    assert CHART_REPOSITORY == "https://kubernetes-sigs.github.io/metrics-server/"
