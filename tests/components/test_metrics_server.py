"""MetricsServer: the pinned chart from the verified archive in kube-system, its objects marked
with the owning stack, retained on delete, applied through a provider that may adopt this
stack's earlier install. The archive here is one the tests build (tests/chart_fixtures.py)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from chart_fixtures import require_helm, write_chart

from components.metrics_plan import CHART, CHART_REPOSITORY, CHART_VERSION
from components.metrics_server import MetricsServerArgs, chart_values
from components.settings import MetricsServerSettings

CHART_TYPE = "kubernetes:helm.sh/v3:Chart"


def _args(insecure: bool = True, archive: Path = Path("/x.tgz")) -> MetricsServerArgs:
    return MetricsServerArgs(
        settings=MetricsServerSettings(mode="auto", kubelet_insecure_tls=insecure),
        chart=archive,
        owner_stack="selfheal-lb/dev",
        owner_namespace="selfheal-lb-dev",
    )


@pytest.mark.parametrize("insecure", [True, False])
def test_values_switch_insecure_tls_set_limits_and_mark_the_owner(insecure):
    values = chart_values(_args(insecure))
    assert values["args"] == (["--kubelet-insecure-tls"] if insecure else [])
    # The chart itself sets no limits; the policy pack rejects a container without them.
    for kind in ("requests", "limits"):
        assert set(values["resources"][kind]) == {"cpu", "memory"}
    # Restricted like the app's pods, with a UID that maps onto no host account.
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["podSecurityContext"]["runAsUser"] >= 10000
    assert values["securityContext"]["runAsUser"] == values["podSecurityContext"]["runAsUser"]
    # The one checkov finding it keeps is skipped on that object only, with its reason.
    (skip,) = values["deploymentAnnotations"].values()
    assert skip.startswith("CKV_K8S_38=") and "token" in skip
    assert values["commonLabels"] == {"selfheal-lb/installed": "metrics-server"}
    assert values["apiService"]["annotations"] == {
        "selfheal-lb/owner-stack": "selfheal-lb/dev",
        "selfheal-lb/owner-namespace": "selfheal-lb-dev",
    }


@pytest.mark.slow  # runs helm
def test_the_component_renders_the_archive_into_kube_system(run_snippet, tmp_path):
    require_helm()
    archive = write_chart(tmp_path / "chart")
    run = run_snippet(
        textwrap.dedent(
            f"""
            from pathlib import Path
            from components.metrics_server import MetricsServer, MetricsServerArgs
            from components.settings import MetricsServerSettings
            MetricsServer("metrics-server", MetricsServerArgs(
                settings=MetricsServerSettings(mode="true", kubelet_insecure_tls=True),
                chart=Path({str(archive)!r}),
                owner_stack="selfheal-lb/dev",
                owner_namespace="selfheal-lb-dev",
                kube_context="kind-x",
            ))
            """
        )
    )
    component = run.one("selfheal-lb:metrics_server:MetricsServer")
    chart = run.one(CHART_TYPE)
    assert chart.parent_urn == component.urn and chart.name == "metrics-server"
    provider = run.named("metrics-server-provider")
    assert provider.inputs["context"] == "kind-x"
    objects = run.children_of(chart)
    assert {o.inputs["kind"] for o in objects} == {"Deployment", "Service", "APIService"}
    for obj in objects:
        assert obj.retain_on_delete, obj.name
        if obj.inputs["kind"] != "APIService":
            assert obj.inputs["metadata"]["namespace"] == "kube-system"


def test_version_is_an_exact_release_not_a_range():
    assert CHART_VERSION == CHART.version == "3.13.0"
    assert CHART_REPOSITORY == "https://kubernetes-sigs.github.io/metrics-server/"
