"""metrics-server on the real cluster of `make cluster` (issue 8), whose set-up plays minikube's
addon: a metrics-server Deployment in kube-system behind the APIService v1beta1.metrics.k8s.io.

- the probe, against that real API server, answers "available" and names it;
- the program, given that real answer, declares no metrics-server object and still its HPA;
- pods in two namespaces (t-metrics-a, t-metrics-b) both get metrics from the addon through the
  report's own sampler (loadgen.resources), and removing one leaves the other's metrics working;
- the HPA the program declares reads CPU utilisation from the addon.
Two whole stacks verified side by side: test_real_cluster_two_stacks.py.

Runs only where the cluster's kubeconfig exists and answers (skipped with the reason
otherwise). The checks run pause pods (an image every node has) labelled like the app's pods.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from metrics_cluster import absent, delete_namespace, detect_or_skip, wait
from stack_fixtures import ROOT, dev_config

from cluster.paths import CONTEXT, KUBECONFIG
from components import offline, render
from components.metrics_api import MetricsApiState, probe
from components.metrics_plan import decide, preflight, stack_id
from components.settings import MetricsServerSettings

NAMESPACES = ("t-metrics-a", "t-metrics-b")
HPA_NAMESPACE = "t-metrics-c"
SELECTOR = "app.kubernetes.io/name=articles"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detected() -> MetricsApiState:
    return detect_or_skip()


def test_detection_against_the_real_api_server_answers_present(detected):
    assert detected.status == "available", detected
    assert detected.provider.endswith("(kube-system/metrics-server)"), detected.provider
    assert detected.owner_stack == ""  # the addon, not something a selfheal-lb stack installed


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_the_stack_applies_no_metrics_server_there_and_keeps_its_hpa(detected, namespace):
    run = offline.run_program(
        dev_config(namespace=namespace, kubeContext=CONTEXT),
        stack=namespace,
        metrics_api=detected,
    )
    kinds = {r.inputs.get("kind") for r in run.resources if r.type.startswith("kubernetes:")}
    assert "APIService" not in kinds and "ClusterRole" not in kinds
    assert not [r for r in run.resources if "metrics_server" in r.type or "helm.sh" in r.type]
    assert "HorizontalPodAutoscaler" in kinds
    assert run.outputs["metricsServer"]["inUse"] == f"the cluster's own: {detected.provider}"
    assert run.outputs["metricsServer"]["installedByThisStack"] is False


def test_explicit_true_on_that_cluster_is_the_one_line_preflight_error(detected):
    plan = decide(
        MetricsServerSettings(mode="true", kubelet_insecure_tls=True),
        detected,
        owner=stack_id("selfheal-lb", "t-metrics-a"),
        namespace="t-metrics-a",
    )
    assert plan.error.startswith(
        "metricsServerEnabled is true but the cluster already serves metrics.k8s.io ("
    )


@pytest.mark.parametrize(
    ("mode", "code", "start"),
    [
        ("auto", 0, ""),
        ("false", 0, ""),
        ("true", 1, "metricsServerEnabled is true but the cluster already serves metrics.k8s.io"),
    ],
)
def test_preflight_against_the_real_cluster(detected, tmp_path, monkeypatch, mode, code, start):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    config = {"selfheal-lb:kubeContext": CONTEXT, "selfheal-lb:metricsServerEnabled": mode}
    (tmp_path / "Pulumi.t-metrics.yaml").write_text(yaml.safe_dump({"config": config}))
    monkeypatch.setenv("KUBECONFIG", str(KUBECONFIG))
    got_code, line = preflight("t-metrics", tmp_path)
    assert got_code == code and line.startswith(start), line
    assert (line == "") == (start == "")


# --- two namespaces sharing the addon -------------------------------------------------------


@pytest.fixture(scope="module")
def core(detected) -> Iterator[Any]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(KUBECONFIG), context=CONTEXT)
    v1 = client.CoreV1Api(api_client)
    for ns in (*NAMESPACES, HPA_NAMESPACE):  # left over from an interrupted run: start clean
        if delete_namespace(v1, ns):
            wait(f"old namespace {ns} gone", lambda ns=ns: absent(v1, ns), seconds=120)
    yield v1
    for ns in (*NAMESPACES, HPA_NAMESPACE):  # leave nothing behind, whatever happened
        delete_namespace(v1, ns)
    api_client.close()



def _pause_image(v1: Any) -> str:
    for node in v1.list_node().items:
        for image in node.status.images or []:
            for name in image.names or []:
                if "/pause:" in name:
                    return name
    pytest.skip("no pause image on the node to run a pod from (no image pulls here)")


def _pod(namespace: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "metrics-probe",
            "labels": {
                "app.kubernetes.io/name": "articles",
                "app.kubernetes.io/instance": namespace,
            },
        },
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65535,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "pause",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "resources": {
                        "requests": {"cpu": "5m", "memory": "8Mi"},
                        "limits": {"cpu": "20m", "memory": "16Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }



def _pod_usage(namespace: str) -> dict[str, Any] | None:
    """The report's own sampler (loadgen.resources) over the namespace's app-labelled pods."""
    from loadgen.kube import KubeClient
    from loadgen.resources import Sampler

    kube = KubeClient.from_kubeconfig(str(KUBECONFIG), CONTEXT, timeout=30)
    try:
        sampler = Sampler(kube, namespace, SELECTOR)
        sampler.sample()
        summary = sampler.summary("now")
    finally:
        kube.close()
    return summary if summary["available"] and summary["pods"] else None


def test_two_stacks_get_metrics_from_the_addon_and_removing_one_keeps_the_other(detected, core):
    from kubernetes import client

    image = _pause_image(core)
    for ns in NAMESPACES:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        core.create_namespaced_pod(ns, _pod(ns, image))
    for ns in NAMESPACES:
        wait(
            f"pod in {ns} running",
            lambda ns=ns: core.read_namespaced_pod("metrics-probe", ns).status.phase == "Running",
            seconds=120,
        )
    for ns in NAMESPACES:
        usage = wait(f"pod metrics in {ns} from the addon", lambda ns=ns: _pod_usage(ns))
        assert list(usage["pods"]) == ["metrics-probe"]
        assert usage["pods"]["metrics-probe"]["memory_mean_mib"] > 0

    # Remove "stack" a entirely; b's metrics must keep coming from the same addon.
    core.delete_namespace(NAMESPACES[0])

    wait(f"namespace {NAMESPACES[0]} deleted", lambda: absent(core, NAMESPACES[0]), seconds=120)
    after = probe(CONTEXT, str(KUBECONFIG))
    assert after.status == "available" and after.provider == detected.provider
    usage = wait(
        f"pod metrics in {NAMESPACES[1]} after the removal", lambda: _pod_usage(NAMESPACES[1])
    )
    assert usage["pods"]["metrics-probe"]["samples"] >= 1


def test_the_stacks_hpa_gets_cpu_metrics_from_the_addon(detected, core):
    """The HPA the program declares (given the real detection), applied as rendered, against a
    Deployment of the same name: the autoscaler reads CPU utilisation from the addon."""
    from kubernetes import client

    run = offline.run_program(
        dev_config(namespace=HPA_NAMESPACE, kubeContext=CONTEXT),
        stack=HPA_NAMESPACE,
        metrics_api=detected,
    )
    (hpa,) = [o for o in render.k8s_objects(run) if o["kind"] == "HorizontalPodAutoscaler"]
    target = hpa["spec"]["scaleTargetRef"]["name"]
    pod = _pod(HPA_NAMESPACE, _pause_image(core))
    labels = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": HPA_NAMESPACE}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": target, "namespace": HPA_NAMESPACE},
        "spec": {
            "replicas": hpa["spec"]["minReplicas"],
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=HPA_NAMESPACE)))
    api_client = core.api_client
    client.AppsV1Api(api_client).create_namespaced_deployment(HPA_NAMESPACE, deployment)
    autoscaling = client.AutoscalingV2Api(api_client)
    autoscaling.create_namespaced_horizontal_pod_autoscaler(HPA_NAMESPACE, hpa)

    def cpu_utilisation() -> int | None:
        status = autoscaling.read_namespaced_horizontal_pod_autoscaler(
            hpa["metadata"]["name"], HPA_NAMESPACE
        ).status
        active = [c for c in status.conditions or [] if c.type == "ScalingActive"]
        for metric in status.current_metrics or []:
            current = metric.resource.current if metric.resource else None
            if active and active[0].status == "True" and current is not None:
                return current.average_utilization
        return None

    utilisation = wait("HPA reading CPU from the addon", cpu_utilisation)
    assert utilisation is not None and utilisation >= 0
