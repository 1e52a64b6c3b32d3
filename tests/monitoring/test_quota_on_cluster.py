"""On the real cluster (cluster/, `make cluster`): the stack's own ResourceQuota, LimitRange and
app Deployment, rendered by the program for a small config, admit a scale-out to the HPA maximum,
a full rollout at that maximum and a drill (the project's `python -m loadgen drill`), and the
quota does bind: one replica more than it holds is refused by the API server.

Runs only when the cluster's kubeconfig exists and its API answers; it works in its own
namespace h-i13-quota-<random> and deletes it afterwards. The pods run the app image when the
node has one, else the node's fortio image as an HTTP server (the quota counts pods and their
resources, not what runs in them).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components import offline, render

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = Path("/root/.cache/selfheal-lb/cluster/kubeconfig")
SELECTOR = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=quota"
REPLICAS, HPA_MAX, DRILL = 2, 4, 1

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not KUBECONFIG.exists(), reason=f"no cluster kubeconfig at {KUBECONFIG}"),
]


@pytest.fixture(scope="module")
def api():
    from kubernetes import client, config

    try:
        api_client = config.new_client_from_config(config_file=str(KUBECONFIG))
        client.VersionApi(api_client).get_code(_request_timeout=5)
    except Exception as err:  # any failure to reach it: the cluster is not up right now
        pytest.skip(f"the cluster's API does not answer: {err}")
    yield api_client
    api_client.close()


def node_image(api_client) -> tuple[str, bool]:
    """(image, is_the_app): the app image if the node has one, else its fortio image."""
    from kubernetes import client

    names = [
        name
        for node in client.CoreV1Api(api_client).list_node().items
        for image in node.status.images or []
        for name in image.names or []
        if "@" not in name
    ]
    for marker, is_app in (("selfheal-lb/articles:", True), ("fortio", False)):
        found = sorted(n for n in names if marker in n)
        if found:
            return found[0], is_app
    pytest.skip(f"no app or fortio image on the node (images: {names[:10]})")


def stack_objects(namespace: str) -> list[dict[str, Any]]:
    config = {
        **offline.stack_config("dev"),
        **{
            f"selfheal-lb:{k}": v
            for k, v in {
                "namespace": namespace,
                "imageRef": "selfheal-lb/articles:quota-test",
                "appReplicas": REPLICAS,
                "hpaMaxReplicas": HPA_MAX,
                "quotaDrillPods": DRILL,
                "metricsServerEnabled": False,
                "metricsServerPresent": True,  # the cluster's addon: the HPA exists
                "loadgenMode": "off",
                "verifyEnabled": False,
                "monitoring": "off",
                "networkPolicy": False,
                "drainSeconds": 2,
                "terminationGracePeriodSeconds": 15,
            }.items()
        },
    }
    run = offline.run_program(config, stack="quota")
    wanted = ("Namespace", "LimitRange", "ResourceQuota", "Deployment")
    objects = [o for o in render.k8s_objects(run) if o["kind"] in wanted]
    return sorted(objects, key=lambda o: wanted.index(o["kind"]))


@pytest.fixture(scope="module")
def deployed(api) -> Iterator[dict[str, Any]]:
    from kubernetes import client, utils

    namespace = f"h-i13-quota-{secrets.token_hex(3)}"
    image, is_app = node_image(api)
    objects = stack_objects(namespace)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["imagePullPolicy"] = image, "Never"
    if not is_app:
        # fortio's echo server answers every path with 200, so the app's probes pass; the
        # image is FROM scratch (no `sleep` for the preStop hook).
        container["command"] = ["/usr/bin/fortio"]
        container["args"] = ["server", "-http-port", "8080", "-grpc-port", "disabled",
                             "-redirect-port", "disabled"]  # fmt: skip
        container.pop("lifecycle", None)
    core = client.CoreV1Api(api)
    try:
        for obj in objects:
            utils.create_from_dict(api, obj)
        yield {"namespace": namespace, "objects": objects, "image": image}
    finally:
        core.delete_namespace(namespace)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                core.read_namespace(namespace)
            except client.ApiException as err:
                if err.status == 404:
                    break
            time.sleep(2)


def wait_ready(api, namespace: str, replicas: int, timeout: float = 180) -> None:
    from kubernetes import client

    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        d = apps.read_namespaced_deployment("articles", namespace)
        st = d.status
        done = (
            st.observed_generation == d.metadata.generation
            and (st.updated_replicas or 0) == replicas
            and (st.ready_replicas or 0) == replicas
            and (st.replicas or 0) == replicas
        )
        if done:
            return
        if time.monotonic() > deadline:
            pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
            states = [(p.metadata.name, p.status.phase, p.status.container_statuses) for p in pods]
            pytest.fail(f"not {replicas} ready in {timeout}s: {st}; pods: {states}")
        time.sleep(1)


def quota_refusals(api, namespace: str) -> list[str]:
    from kubernetes import client

    events = client.CoreV1Api(api).list_namespaced_event(namespace).items
    return [e.message for e in events if "exceeded quota" in (e.message or "")]


def scale(api, namespace: str, replicas: int) -> None:
    from kubernetes import client

    client.AppsV1Api(api).patch_namespaced_deployment_scale(
        "articles", namespace, {"spec": {"replicas": replicas}}
    )


def test_scale_out_rollout_and_drill_fit_under_the_quota_and_one_more_does_not(api, deployed):
    from kubernetes import client

    ns = deployed["namespace"]
    quota = next(o for o in deployed["objects"] if o["kind"] == "ResourceQuota")
    hard_pods = int(quota["spec"]["hard"]["pods"])
    assert hard_pods == 2 * HPA_MAX + 1 + DRILL  # what the live quota holds, from the program
    wait_ready(api, ns, REPLICAS)

    scale(api, ns, HPA_MAX)  # what the HPA does at full load
    wait_ready(api, ns, HPA_MAX)

    # A rollout at the maximum: every pod replaced, one surge pod at a time.
    client.AppsV1Api(api).patch_namespaced_deployment(
        "articles",
        ns,
        {"spec": {"template": {"metadata": {"annotations": {"quota-test/rollout": "1"}}}}},
    )
    wait_ready(api, ns, HPA_MAX)

    drill = subprocess.run(
        [sys.executable, "-m", "loadgen", "drill", "--kubeconfig", str(KUBECONFIG),
         "--namespace", ns, "--selector", SELECTOR, "--kill", str(DRILL),
         "--timeout", "120", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert drill.returncode == 0, drill.stderr + drill.stdout
    wait_ready(api, ns, HPA_MAX)
    assert quota_refusals(api, ns) == []

    used = client.CoreV1Api(api).read_namespaced_resource_quota("selfheal-lb", ns).status.used
    # The drilled pod may still be terminating, and it still counts: the reason the quota
    # holds terminating pods at all.
    assert HPA_MAX <= int(used["pods"]) <= hard_pods, used

    # The quota binds: ask for more pods than it holds and the API server refuses the rest.
    scale(api, ns, hard_pods + 1)
    deadline = time.monotonic() + 60
    while not quota_refusals(api, ns):
        assert time.monotonic() < deadline, "no pod was refused above the quota"
        time.sleep(1)
    pods = client.CoreV1Api(api).list_namespaced_pod(ns, label_selector=SELECTOR).items
    assert len(pods) <= hard_pods
    print(json.dumps({"image": deployed["image"], "hard": quota["spec"]["hard"], "used": used}))
