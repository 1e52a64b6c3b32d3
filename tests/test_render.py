"""`make render`: every Kubernetes object as YAML, valid against the OpenAPI schemas in strict
mode, a summary of the rest, and the same one-line error as `pulumi up` for a config mistake."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from chart_fixtures import require_helm, write_chart
from kubernetes_validate.utils import latest_version
from stack_fixtures import ROOT

from components import render
from components.metrics_api import ABSENT, CLUSTER_ADDON

OLDEST_SUPPORTED = "1.30.0"
NO_CHART = (None, "metrics-server chart 3.13.0 cannot be had in this test")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """The dev stack as on a cluster with an addon: everything but metrics-server."""
    out = tmp_path_factory.mktemp("build")
    render.render("dev", out, metrics_api=CLUSTER_ADDON, chart=NO_CHART)
    return out


@pytest.fixture(scope="module")
def rendered_with_chart(tmp_path_factory) -> Path:
    """On a cluster without metrics: the chart's objects too (a chart the tests build, rendered
    by the pinned helm, as the real archive is where it can be fetched)."""
    require_helm()
    archive = write_chart(tmp_path_factory.mktemp("chart"))
    out = tmp_path_factory.mktemp("build-chart")
    render.render("dev", out, metrics_api=ABSENT, chart=(archive, ""))
    return out


def _objects(rendered: Path) -> list[dict]:
    return [
        yaml.safe_load(p.read_text())
        for p in sorted((rendered / "manifests").glob("*.yaml"))
        if p.name != "all.yaml"
    ]


def test_one_file_per_object_plus_all_yaml(rendered):
    objects = _objects(rendered)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "Namespace",
            "Deployment",
            "Service",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "Job",
            "ConfigMap",  # the Grafana dashboard (components/monitoring.py)
            "ResourceQuota",
            "LimitRange",
        ]
        + ["NetworkPolicy"] * (kinds.count("NetworkPolicy"))
    )
    assert kinds.count("NetworkPolicy") >= 2
    for obj in objects:
        expected = render.file_name(obj)
        assert (rendered / "manifests" / expected).exists()
        assert expected.startswith(obj["kind"].lower() + "-")
    together = list(yaml.safe_load_all((rendered / "manifests" / "all.yaml").read_text()))
    assert sorted(together, key=render.file_name) == objects
    assert together[0]["kind"] == "Namespace"  # applicable in file order
    # Nothing that is not a Kubernetes object sits among the manifests.
    assert not (rendered / "manifests" / "summary.yaml").exists()


@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, latest_version()])
def test_every_object_validates_strictly(rendered, version):
    for obj in _objects(rendered):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} ({version}): {err.message}")


def test_render_is_reproducible(rendered, tmp_path):
    again = tmp_path / "again"
    render.render("dev", again, metrics_api=CLUSTER_ADDON, chart=NO_CHART)
    for path in sorted((rendered / "manifests").iterdir()):
        assert (again / "manifests" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (again / "summary.yaml").read_bytes() == (rendered / "summary.yaml").read_bytes()


def test_validation_catches_a_bad_object():
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prot": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, OLDEST_SUPPORTED, strict=True)


def test_nothing_unknown_or_float_slips_into_the_manifests(rendered):
    text = (rendered / "manifests" / "all.yaml").read_text()
    assert "<computed>" not in text
    assert "port: 8080.0" not in text and "port: 8080" in text


def test_summary_lists_image_and_commands(rendered):
    summary = yaml.safe_load((rendered / "summary.yaml").read_text())
    assert summary["stack"] == "dev"
    (image,) = summary["images"]
    assert image["imageName"].startswith("selfheal-lb/articles:") and image["skipPush"] is True
    assert summary["charts"] == []  # the addon serves the metrics: nothing to install
    commands = {c["name"]: c["create"] for c in summary["commands"]}
    assert set(commands) == {"verification-snapshot", "verification-verify"}
    assert "-m loadgen verify --in-cluster" in commands["verification-verify"]
    assert summary["outputs"]["namespace"] == "selfheal-lb-dev"
    assert summary["outputs"]["loadDistribution"] == "<computed>"  # known only after `up`
    assert summary["outputs"]["metricsServer"]["inUse"] == (
        "the cluster's own: cluster addon (kube-system/metrics-server)"
    )


def _chart_objects(out: Path) -> list[dict]:
    return [
        o
        for o in _objects(out)
        if o["metadata"]["name"] in ("metrics-server", "v1beta1.metrics.k8s.io")
    ]


@pytest.mark.slow  # runs helm
def test_the_charts_objects_are_rendered_with_the_rest(rendered_with_chart):
    objects = _chart_objects(rendered_with_chart)
    assert sorted(o["kind"] for o in objects) == ["APIService", "Deployment", "Service"]
    for obj in objects:
        assert obj["metadata"]["labels"]["selfheal-lb/installed"] == "metrics-server"
    summary = yaml.safe_load((rendered_with_chart / "summary.yaml").read_text())
    (chart,) = summary["charts"]
    assert (chart["chart"], chart["version"]) == ("metrics-server", "3.13.0")
    assert chart["retainOnDelete"] is True
    assert chart["objects"] == sorted(render.file_name(o) for o in objects)
    assert summary["outputs"]["metricsServer"]["installedByThisStack"] is True
    assert summary["warnings"] == []
    # In all.yaml too, after the namespaces: `kubectl apply -f all.yaml` works in order.
    together = list(
        yaml.safe_load_all((rendered_with_chart / "manifests" / "all.yaml").read_text())
    )
    assert sum(o["metadata"]["name"] == "v1beta1.metrics.k8s.io" for o in together) == 1


@pytest.mark.slow  # runs helm
@pytest.mark.parametrize("version", [OLDEST_SUPPORTED, latest_version()])
def test_the_charts_objects_validate_strictly(rendered_with_chart, version):
    objects = _chart_objects(rendered_with_chart)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "components.render", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_writes_the_manifests(tmp_path):
    result = _cli("--stack", "dev", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Kubernetes objects for stack 'dev'" in result.stdout
    assert (tmp_path / "manifests" / "all.yaml").exists()
    assert (tmp_path / "summary.yaml").exists()


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The program and its files in a scratch dir, to render a stack file written by a test."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("__main__.py", "Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("components", "app", "loadgen"):  # settings use loadgen's statistics
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_bad_config_prints_the_one_line_pulumi_up_would_and_exits_1(project_copy):
    stack = yaml.safe_load((project_copy / "Pulumi.dev.yaml").read_text())
    stack["config"]["selfheal-lb:appReplicas"] = 0
    (project_copy / "Pulumi.bad.yaml").write_text(yaml.safe_dump(stack))
    result = _cli("--stack", "bad", "--out", str(project_copy / "build"), cwd=project_copy)
    assert result.returncode == 1
    assert result.stderr == (
        "error: config 'selfheal-lb:appReplicas' is '0': must be an integer from 1 to 50\n"
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert not (project_copy / "build" / "manifests").exists()


def test_without_the_chart_render_says_so_in_one_line_and_renders_the_rest(tmp_path):
    env = {**os.environ, "SELFHEAL_LB_HELM": str(tmp_path / "no-helm")}
    result = subprocess.run(
        [sys.executable, "-m", "components.render", "--stack", "dev", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"render: metrics-server chart 3.13.0 cannot be rendered: helm v3.19.5 is not built at "
        f"{tmp_path / 'no-helm'}: run 'make tools' (needs Go); metrics-server's objects are left "
        "out of this render\n"
    )
    manifests = [p for p in (tmp_path / "manifests").iterdir() if p.name != "all.yaml"]
    assert f"{len(manifests)} Kubernetes objects for stack 'dev'" in result.stdout
    assert (tmp_path / "manifests" / "deployment-selfheal-lb-dev-articles.yaml").exists()
    assert not [p for p in manifests if "metrics-server" in p.name]


def test_render_for_a_cluster_with_an_addon_has_no_metrics_server(tmp_path):
    result = _cli("--stack", "dev", "--out", str(tmp_path), "--metrics-api", "available")
    assert result.returncode == 0 and result.stderr == ""
    names = [p.name for p in (tmp_path / "manifests").iterdir()]
    assert not [n for n in names if "metrics" in n]


def test_missing_stack_file_is_one_line(tmp_path):
    result = _cli("--stack", "nosuch", "--out", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == "error: no config file Pulumi.nosuch.yaml for stack 'nosuch'\n"
