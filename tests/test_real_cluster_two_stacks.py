"""Two whole stacks on the real cluster of `make cluster`, side by side on its metrics-server
addon (issue 10): each applied as the program renders it (under the mocks, given the real
detection) and checked by its own verification commands, both at the same time as two users'
stacks would be; both verify "balanced" with CPU/memory from the addon, and with one removed the
other's metrics are still served.

No Pulumi engine here: the objects are applied with the official client and the verification
runs the very commands the stack's local.Commands run. fortio's image is the copy loaded on the
node (no image pulls from this cluster), named through the stack's own loadgenImage key; the app
image is built from this checkout and loaded into the node the way the local stack does it
(node_app_image.py).
Skipped with the reason when the cluster is not there, or when the shared node has no room.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from metrics_cluster import absent, delete_namespace, detect_or_skip, wait
from node_app_image import app_image_on_node
from stack_fixtures import ROOT, dev_config

from cluster.e2e.stack import COMMAND, SKIP_AWAIT
from cluster.paths import CONTEXT, KUBECONFIG
from components import offline, render
from components.metrics_api import MetricsApiState, probe

STACKS = ("t-metrics-s1", "t-metrics-s2")
# fortio as the local cluster's stack names it (built from its Go module, loaded on the node).
NODE_FORTIO_IMAGE = os.environ.get(
    "SELFHEAL_LB_REAL_FORTIO_IMAGE", offline.stack_config("local")["selfheal-lb:loadgenImage"]
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def detected() -> MetricsApiState:
    return detect_or_skip()


@pytest.fixture
def core(detected) -> Iterator[Any]:
    """The cluster's CoreV1Api; the stacks' namespaces absent before and deleted after."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(KUBECONFIG), context=CONTEXT)
    v1 = client.CoreV1Api(api_client)
    for ns in STACKS:  # left over from an interrupted run: start clean
        if delete_namespace(v1, ns):
            wait(f"old {ns} gone", lambda ns=ns: absent(v1, ns), seconds=120)
    yield v1
    for ns in STACKS:  # leave nothing behind, whatever happened
        delete_namespace(v1, ns)
    api_client.close()


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


def _render(detected: MetricsApiState, ns: str, image_ref: str) -> offline.ProgramRun:
    """The stack under the SDK's mocks (one at a time, in the test's thread)."""
    run = offline.run_program(
        dev_config(
            namespace=ns,
            kubeContext=CONTEXT,
            serviceType="ClusterIP",
            loadgenImage=NODE_FORTIO_IMAGE,
            imageRef=image_ref,
            imagePullPolicy="Never",
        ),
        stack=ns,
        preview=True,
        metrics_api=detected,
    )
    assert run.outputs["metricsServer"]["installedByThisStack"] is False
    return run


def _stand_up_and_verify(v1: Any, ns: str, run: offline.ProgramRun) -> dict[str, Any]:
    from kubernetes import client, utils

    objects = render.k8s_objects(run)
    assert not [o for o in objects if o["kind"] in ("APIService", "ClusterRole")]
    commands = {r.name: r.inputs["create"] for r in run.of_type(COMMAND)}
    (job,) = [o for o in objects if o["kind"] == "Job"]
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

    # The verified Job carries skipAwait: like the engine, go straight on to verify, which waits
    # for fortio itself and samples CPU/memory while it runs.
    if (job["metadata"].get("annotations") or {}).get(SKIP_AWAIT) != "true":
        _wait_or_skip_if_no_room(v1, ns, f"fortio Job in {ns} complete", complete, seconds=300)
    return json.loads(_run_command(commands["verification-verify"], stdin=baseline))


def test_two_stacks_verify_on_the_addon_and_one_removed_leaves_the_others_metrics(detected, core):
    # Both at once, as two users' stacks share the cluster (and in half the time of one by one).
    image_ref = app_image_on_node()
    runs = {ns: _render(detected, ns, image_ref) for ns in STACKS}
    with ThreadPoolExecutor(len(STACKS)) as pool:
        futures = {ns: pool.submit(_stand_up_and_verify, core, ns, runs[ns]) for ns in STACKS}
        reports = {ns: future.result() for ns, future in futures.items()}
    for ns, report in reports.items():
        assert report["verdict"] == "balanced", (ns, report.get("reason"))
        # The report's CPU/memory come from the add-on, sampled while the load ran.
        assert report["resources"]["available"] is True, (ns, report["resources"])
        assert report["resources"]["note"].startswith("sampled while the load generator ran"), (
            ns,
            report["resources"]["note"],
        )
        print(  # the figures, for the record (pytest -s)
            f"{ns}: {report['verdict']} p={(report.get('distribution') or {}).get('p_value')} "
            f"requests={[p.get('requests') for p in report.get('pods', [])]} "
            f"resources: {report['resources'].get('note')}"
        )
    core.delete_namespace(STACKS[0])
    wait(f"{STACKS[0]} deleted", lambda: absent(core, STACKS[0]), seconds=180)
    assert probe(CONTEXT, str(KUBECONFIG)).status == "available"
    selector = f"app.kubernetes.io/name=articles,app.kubernetes.io/instance={STACKS[1]}"
    top = _run_command(
        f"venv/bin/python -m loadgen top --namespace {STACKS[1]} --selector {selector} "
        f"--context {CONTEXT} --json"
    )
    rep = json.loads(top)
    assert rep["available"] is True, rep["note"]
    assert len(rep["pods"]) == 3 and all(row["resources"] for row in rep["pods"]), rep
