"""metrics-server on the real cluster of `make cluster` (issue 8), whose set-up plays minikube's
addon: a metrics-server Deployment in kube-system behind the APIService v1beta1.metrics.k8s.io.

- the probe, against that real API server, answers "available" and names it;
- the program, given that real answer, declares no metrics-server object and still its HPA;
- pods in two namespaces (t-metrics-a, t-metrics-b) both get metrics from the addon through the
  report's own sampler (loadgen.resources), and removing one leaves the other's metrics working;
- the HPA the program declares reads CPU utilisation from the addon;
- two whole stacks, applied as the program renders them and checked by their own verification
  commands, verify "balanced" with CPU/memory from the add-on; one removed, the other's
  metrics are still served.

Runs only where the cluster's kubeconfig exists and answers (skipped with the reason
otherwise; the two-stack test also skips when the shared node has no room for its pods). The
lighter checks run pause pods (an image every node has) labelled like the app's pods.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from stack_fixtures import ROOT, dev_config

from components import offline, render
from components.metrics_api import MetricsApiState, probe
from components.metrics_plan import decide, preflight, stack_id
from components.settings import MetricsServerSettings

KUBECONFIG = Path(
    os.environ.get("SELFHEAL_LB_REAL_KUBECONFIG", "/root/.cache/selfheal-lb/cluster/kubeconfig")
)
CONTEXT = os.environ.get("SELFHEAL_LB_REAL_CONTEXT", "selfheal-lb")
NAMESPACES = ("t-metrics-a", "t-metrics-b")
HPA_NAMESPACE = "t-metrics-c"
SELECTOR = "app.kubernetes.io/name=articles"
DEADLINE_SECONDS = 180  # metrics-server scrapes every 15 s; a new pod shows within ~1 minute

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detected() -> MetricsApiState:
    if not KUBECONFIG.exists():
        pytest.skip(f"no real cluster: {KUBECONFIG} does not exist (the lead's `make cluster`)")
    state = probe(CONTEXT, str(KUBECONFIG))
    if state.status == "unknown":
        pytest.skip(f"the real cluster does not answer: {state.detail}")
    return state


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
        try:
            v1.delete_namespace(ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
            continue
        _wait(f"old namespace {ns} gone", lambda ns=ns: _absent(v1, ns), seconds=120)
    yield v1
    for ns in (*NAMESPACES, HPA_NAMESPACE):  # leave nothing behind, whatever happened
        try:
            v1.delete_namespace(ns)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    api_client.close()


def _absent(v1: Any, namespace: str) -> bool:
    from kubernetes import client

    try:
        v1.read_namespace(namespace)
    except client.ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


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


def _wait(what: str, check, seconds: float = DEADLINE_SECONDS, every: float = 5.0):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"{what}: not within {seconds:.0f} s (last: {last!r})")


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
        _wait(
            f"pod in {ns} running",
            lambda ns=ns: core.read_namespaced_pod("metrics-probe", ns).status.phase == "Running",
            seconds=120,
        )
    for ns in NAMESPACES:
        usage = _wait(f"pod metrics in {ns} from the addon", lambda ns=ns: _pod_usage(ns))
        assert list(usage["pods"]) == ["metrics-probe"]
        assert usage["pods"]["metrics-probe"]["memory_mean_mib"] > 0

    # Remove "stack" a entirely; b's metrics must keep coming from the same addon.
    core.delete_namespace(NAMESPACES[0])

    _wait(f"namespace {NAMESPACES[0]} deleted", lambda: _absent(core, NAMESPACES[0]), seconds=120)
    after = probe(CONTEXT, str(KUBECONFIG))
    assert after.status == "available" and after.provider == detected.provider
    usage = _wait(
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

    utilisation = _wait("HPA reading CPU from the addon", cpu_utilisation)
    assert utilisation is not None and utilisation >= 0


# --- two whole stacks, verified, then one removed -------------------------------------------
# No Pulumi engine here: each stack's objects are what the program declares (under the mocks,
# given the real detection), applied as rendered; its verification runs the very commands the
# stack's local.Commands run. fortio's image is the copy loaded on the node (no image pulls from
# this cluster), named through the stack's own loadgenImage key.

STACKS = ("t-metrics-s1", "t-metrics-s2")
NODE_FORTIO_IMAGE = os.environ.get(
    "SELFHEAL_LB_REAL_FORTIO_IMAGE", "localhost/selfheal-lb/fortio:1.68.2"
)
COMMAND = "command:local:Command"


def _unschedulable(v1: Any, namespace: str) -> str:
    for pod in v1.list_namespaced_pod(namespace).items:
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False":
                return f"{pod.metadata.name}: {cond.message}"
    return ""


def _wait_or_skip_if_no_room(v1: Any, namespace: str, what: str, check, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(5)
    no_room = _unschedulable(v1, namespace)
    if no_room:
        pytest.skip(f"the shared node has no room for the stack's pods: {no_room}")
    pytest.fail(f"{what}: not within {seconds:.0f} s")


def _run_command(create: str, stdin: str = "") -> str:
    env = {**os.environ, "KUBECONFIG": str(KUBECONFIG)}
    proc = subprocess.run(
        ["bash", "-c", create],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _stand_up_and_verify(v1: Any, detected: MetricsApiState, ns: str) -> dict[str, Any]:
    from kubernetes import client, utils

    run = offline.run_program(
        dev_config(
            namespace=ns,
            kubeContext=CONTEXT,
            serviceType="ClusterIP",
            loadgenImage=NODE_FORTIO_IMAGE,
        ),
        stack=ns,
        preview=True,
        metrics_api=detected,
    )
    assert run.outputs["metricsServer"]["installedByThisStack"] is False
    objects = render.k8s_objects(run)
    assert not [o for o in objects if o["kind"] in ("APIService", "ClusterRole")]
    (job,) = [o for o in objects if o["kind"] == "Job"]
    commands = {r.name: r.inputs["create"] for r in run.of_type(COMMAND)}
    api_client = v1.api_client
    for obj in objects:
        if obj["kind"] != "Job":
            utils.create_from_dict(api_client, obj)
    apps = client.AppsV1Api(api_client)
    _wait_or_skip_if_no_room(
        v1,
        ns,
        f"Deployment articles in {ns} ready",
        lambda: (
            (apps.read_namespaced_deployment_status("articles", ns).status.ready_replicas or 0) >= 3
        ),
        seconds=240,
    )
    baseline = _run_command(commands["verification-snapshot"])
    utils.create_from_dict(api_client, job)
    batch = client.BatchV1Api(api_client)

    def complete() -> bool:
        status = batch.read_namespaced_job_status(job["metadata"]["name"], ns).status
        return any(c.type == "Complete" and c.status == "True" for c in status.conditions or [])

    _wait_or_skip_if_no_room(v1, ns, f"fortio Job in {ns} complete", complete, seconds=300)
    return json.loads(_run_command(commands["verification-verify"], stdin=baseline))


def test_two_stacks_verify_on_the_addon_and_one_removed_leaves_the_others_metrics(detected, core):
    from kubernetes import client

    for ns in STACKS:
        try:
            core.delete_namespace(ns)
            _wait(f"old {ns} gone", lambda ns=ns: _absent(core, ns), seconds=120)
        except client.ApiException as exc:
            if exc.status != 404:
                raise
    try:
        reports = {ns: _stand_up_and_verify(core, detected, ns) for ns in STACKS}
        for ns, report in reports.items():
            assert report["verdict"] == "balanced", (ns, report.get("reason"))
            # The report's CPU/memory come from the add-on.
            assert report["resources"]["available"] is True, (ns, report["resources"])
            print(  # the figures, for the record (pytest -s)
                f"{ns}: {report['verdict']} p={(report.get('distribution') or {}).get('p_value')} "
                f"requests={[p.get('requests') for p in report.get('pods', [])]} "
                f"resources: {report['resources'].get('note')}"
            )
        core.delete_namespace(STACKS[0])
        _wait(f"{STACKS[0]} deleted", lambda: _absent(core, STACKS[0]), seconds=180)
        assert probe(CONTEXT, str(KUBECONFIG)).status == "available"
        selector = f"app.kubernetes.io/name=articles,app.kubernetes.io/instance={STACKS[1]}"
        top = _run_command(
            f"venv/bin/python -m loadgen top --namespace {STACKS[1]} --selector {selector} "
            f"--context {CONTEXT} --json"
        )
        rep = json.loads(top)
        assert rep["available"] is True, rep["note"]
        assert len(rep["pods"]) == 3 and all(row["resources"] for row in rep["pods"]), rep
    finally:
        for ns in STACKS:
            try:
                core.delete_namespace(ns)
            except client.ApiException as exc:
                if exc.status != 404:
                    raise
