"""The whole program under mocks: which metrics-server the stack uses, whether it installs
one, and every one-line message — with the cluster's metrics.k8s.io given as the probe would
report it, and a chart archive the tests build (tests/chart_fixtures.py) rendered by the
pinned helm."""

from __future__ import annotations

from pathlib import Path

import pytest
from chart_fixtures import require_helm, sha256_hex, write_chart
from stack_fixtures import dev_config

from components import chart_cache, offline
from components.chart_cache import ChartPin
from components.metrics_api import (
    ABSENT,
    CLUSTER_ADDON,
    INSTALLED_LABEL,
    OWNER_NAMESPACE_ANNOTATION,
    OWNER_STACK_ANNOTATION,
    MetricsApiState,
)

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
CHART = "kubernetes:helm.sh/v3:Chart"
APISERVICE = "kubernetes:apiregistration.k8s.io/v1:APIService"
COMPONENT = "selfheal-lb:metrics_server:MetricsServer"
MINIKUBE = MetricsApiState("available", provider="minikube addon (kube-system/metrics-server)")


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    require_helm()
    return write_chart(tmp_path_factory.mktemp("chart"))


def _metrics_objects(run: offline.ProgramRun) -> list[offline.RecordedResource]:
    """The Kubernetes objects the chart registered (its children)."""
    charts = run.of_type(CHART)
    return [r for r in run.resources if any(r.parent_urn == c.urn for c in charts)]


def test_with_the_minikube_addon_the_stack_installs_nothing_and_says_whose_metrics_it_uses():
    run = offline.run_program(dev_config(), stack="dev", metrics_api=MINIKUBE)
    assert run.of_type(COMPONENT) == [] and run.of_type(CHART) == []
    assert run.of_type(APISERVICE) == []
    assert len(run.of_type(HPA)) == 1  # the addon serves the metrics the HPA needs
    assert run.outputs["metricsServer"] == {
        "inUse": "the cluster's own: minikube addon (kube-system/metrics-server)",
        "installedByThisStack": False,
        "detected": "available",
        "detectedProvider": "minikube addon (kube-system/metrics-server)",
    }
    assert run.warnings == [] and run.errors == []


@pytest.mark.slow  # runs helm
def test_on_a_cluster_without_metrics_the_stack_installs_the_chart_it_owns(archive):
    run = offline.run_program(dev_config(), stack="dev", metrics_api=ABSENT, chart=archive)
    component = run.one(COMPONENT)
    objects = _metrics_objects(run)
    kinds = sorted(r.inputs["kind"] for r in objects)
    assert kinds == ["APIService", "Deployment", "Service"]
    # Every object is kept when this stack is destroyed: other stacks may use it.
    assert all(r.retain_on_delete for r in objects)
    # ... and is applied through the component's own provider, which may adopt this stack's
    # install kept by an earlier destroy.
    provider = run.named("metrics-server-provider")
    assert provider.parent_urn == component.urn
    assert provider.inputs["upsertExistingObjects"] == "true"
    assert all(r.provider.startswith(provider.urn) for r in objects)
    (apiservice,) = run.of_type(APISERVICE)
    annotations = apiservice.inputs["metadata"]["annotations"]
    assert annotations[OWNER_STACK_ANNOTATION] == "selfheal-lb/dev"
    assert annotations[OWNER_NAMESPACE_ANNOTATION] == "selfheal-lb-dev"
    for obj in objects:
        assert obj.inputs["metadata"]["labels"][INSTALLED_LABEL] == "metrics-server"
    deployment = next(r for r in objects if r.inputs["kind"] == "Deployment")
    assert deployment.inputs["metadata"]["namespace"] == "kube-system"
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert "--kubelet-insecure-tls" in container["args"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert len(run.of_type(HPA)) == 1
    out = run.outputs["metricsServer"]
    assert out["installedByThisStack"] is True and out["detected"] == "absent"
    assert out["inUse"].startswith("installed by this stack: metrics-server chart 3.13.0")


@pytest.mark.slow  # runs helm
def test_a_stack_that_does_not_say_otherwise_checks_the_kubelets_certificates(archive):
    """metricsServerInsecureTls defaults to false: on a managed cluster the installed
    metrics-server verifies the kubelets (only the local clusters' stacks set it)."""
    config = {k: v for k, v in dev_config().items() if not k.endswith(":metricsServerInsecureTls")}
    run = offline.run_program(config, stack="dev", metrics_api=ABSENT, chart=archive)
    deployment = next(r for r in _metrics_objects(run) if r.inputs["kind"] == "Deployment")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert "--kubelet-insecure-tls" not in container["args"]


@pytest.mark.slow  # runs helm
def test_the_unpacked_verified_chart_is_what_the_program_renders(tmp_path):
    """The real path: archive in the cache, digest checked, unpacked, handed to helm.v3.Chart."""
    require_helm()
    cache = tmp_path / "cache"
    archive = write_chart(cache)
    pin = ChartPin(
        "selfheal-lb-test-chart",
        "0.0.1",
        "http://127.0.0.1:9/unused.tgz",
        sha256_hex(archive.read_bytes()),
    )
    chart_dir = chart_cache.unpacked(pin, cache)
    assert chart_dir.is_dir()
    run = offline.run_program(dev_config(), stack="dev", metrics_api=ABSENT, chart=chart_dir)
    assert sorted(r.inputs["kind"] for r in _metrics_objects(run)) == [
        "APIService",
        "Deployment",
        "Service",
    ]


@pytest.mark.slow  # runs helm
def test_insecure_tls_off_reaches_the_chart(archive):
    run = offline.run_program(
        dev_config(metricsServerInsecureTls=False), stack="dev", metrics_api=ABSENT, chart=archive
    )
    deployment = next(r for r in _metrics_objects(run) if r.inputs["kind"] == "Deployment")
    args = deployment.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--kubelet-insecure-tls" not in args


@pytest.mark.slow  # runs helm
def test_the_owner_keeps_managing_its_install_on_later_runs(archive):
    ours = MetricsApiState(
        "available",
        provider="installed by selfheal-lb stack selfheal-lb/dev (kube-system/metrics-server)",
        owner_stack="selfheal-lb/dev",
        owner_namespace="selfheal-lb-dev",
    )
    run = offline.run_program(dev_config(), stack="dev", metrics_api=ours, chart=archive)
    assert len(run.of_type(APISERVICE)) == 1  # still declared: not deleted by the next up
    assert run.outputs["metricsServer"]["installedByThisStack"] is True


def test_a_second_stack_uses_the_first_stacks_install_and_declares_none_of_it():
    first = MetricsApiState(
        "available",
        provider="installed by selfheal-lb stack selfheal-lb/dev (kube-system/metrics-server)",
        owner_stack="selfheal-lb/dev",
        owner_namespace="selfheal-lb-dev",
    )
    run = offline.run_program(
        dev_config(namespace="selfheal-lb-staging"), stack="staging", metrics_api=first
    )
    assert run.of_type(COMPONENT) == [] and run.of_type(APISERVICE) == []
    assert len(run.of_type(HPA)) == 1
    assert run.outputs["metricsServer"]["inUse"] == (
        "the cluster's own: installed by selfheal-lb stack selfheal-lb/dev "
        "(kube-system/metrics-server)"
    )


def test_explicit_true_next_to_an_addon_stops_with_one_line_before_any_resource():
    recorded: list[str] = []

    def spy(rec: offline.RecordedResource) -> dict:
        recorded.append(rec.type)
        return {}

    with pytest.raises(offline.ProgramFailed) as failed:
        offline.run_program(
            dev_config(metricsServerEnabled="true"),
            stack="dev",
            metrics_api=MINIKUBE,
            fake_outputs=spy,
        )
    assert failed.value.code == 32
    assert failed.value.errors == [
        "metricsServerEnabled is true but the cluster already serves metrics.k8s.io (minikube "
        "addon (kube-system/metrics-server)); a second install would collide: set "
        "metricsServerEnabled auto (use that one) or false"
    ]
    assert [t for t in recorded if t.startswith("kubernetes:")] == []


def test_auto_cannot_decide_without_the_cluster_and_says_so_in_one_line():
    unknown = MetricsApiState("unknown", detail="cluster unreachable: connection refused")
    with pytest.raises(offline.ProgramFailed) as failed:
        offline.run_program(dev_config(), stack="dev", metrics_api=unknown)
    (line,) = failed.value.errors
    assert line.startswith(
        "cannot tell whether the cluster serves metrics.k8s.io (cluster unreachable: "
        "connection refused): "
    )
    assert "metricsServerEnabled true" in line


def test_false_without_metrics_warns_and_creates_no_hpa():
    run = offline.run_program(
        dev_config(metricsServerEnabled="false"), stack="dev", metrics_api=ABSENT
    )
    assert run.of_type(HPA) == [] and run.of_type(COMPONENT) == []
    assert run.warnings == [
        "metricsServerEnabled is false and the cluster serves no metrics.k8s.io: no HPA and no "
        "CPU/memory in the report; set it to auto to install metrics-server"
    ]
    assert run.outputs["metricsServer"]["inUse"] == "none"


def test_an_addon_that_is_not_available_is_used_with_a_warning():
    sick = MetricsApiState(
        "unavailable",
        provider="minikube addon (kube-system/metrics-server)",
        detail="Available=False: MissingEndpoints endpoints for service/metrics-server not found",
    )
    run = offline.run_program(dev_config(), stack="dev", metrics_api=sick)
    assert run.of_type(COMPONENT) == []
    assert len(run.of_type(HPA)) == 1
    (warning,) = run.warnings
    assert "is not Available (Available=False: MissingEndpoints" in warning


def test_when_the_chart_cannot_be_had_up_stops_with_its_one_line():
    with pytest.raises(offline.ProgramFailed) as failed:
        offline.run_program(
            dev_config(),
            stack="dev",
            metrics_api=ABSENT,
            chart=None,
            chart_problem="metrics-server chart 3.13.0 is not in the cache (/c) and cannot be "
            "downloaded from https://x/y.tgz: Name or service not known",
        )
    assert failed.value.errors == [
        "metrics-server chart 3.13.0 is not in the cache (/c) and cannot be downloaded from "
        "https://x/y.tgz: Name or service not known"
    ]


def test_the_default_offline_cluster_is_an_addon():
    run = offline.run_program(dev_config(), stack="dev")
    assert run.outputs["metricsServer"]["detected"] == CLUSTER_ADDON.status
    assert run.of_type(COMPONENT) == []


@pytest.mark.slow  # runs helm
def test_every_kubernetes_provider_keeps_the_cluster_identifier(archive):
    """The metrics-server's own provider too: without it a kubeContext change would replace
    that provider and the metrics-server under it."""
    run = offline.run_program(dev_config(), stack="dev", metrics_api=ABSENT, chart=archive)
    providers = run.of_type("pulumi:providers:kubernetes")
    assert len(providers) == 2
    assert {p.inputs.get("clusterIdentifier") for p in providers} == {"selfheal-lb-dev"}
