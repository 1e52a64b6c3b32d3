"""The real local cluster (cluster/, `make cluster`) for the monitoring and quota tests: reach
it, render the stack's own objects for a small config into a namespace of this test's, with the
app image of this checkout built and loaded into the node (nothing can be pulled), deploy, wait,
and always clean up."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from node_app_image import app_image_on_node

from cluster.paths import KUBECONFIG
from components import offline, render

SKIP_NO_CLUSTER = pytest.mark.skipif(
    not KUBECONFIG.exists(), reason=f"no cluster kubeconfig at {KUBECONFIG}"
)
STACK = "quota"  # app.kubernetes.io/instance of the test's objects
SELECTOR = f"app.kubernetes.io/name=articles,app.kubernetes.io/instance={STACK}"
KINDS = ("Namespace", "LimitRange", "ResourceQuota", "Deployment")


def api_client():
    """An API client for the cluster, or a skip saying why it cannot be reached."""
    from kubernetes import client, config

    try:
        api = config.new_client_from_config(config_file=str(KUBECONFIG))
        client.VersionApi(api).get_code(_request_timeout=5)
    except Exception as err:  # any failure to reach it: the cluster is not up right now
        pytest.skip(f"the cluster's API does not answer: {err}")
    return api


def stack_objects(namespace: str, overrides: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Namespace, LimitRange, ResourceQuota and app Deployment the program declares."""
    base = {
        "namespace": namespace,
        "imageRef": "selfheal-lb/articles:cluster-test",
        "metricsServerEnabled": "auto",  # the offline default: the cluster's addon, so an HPA
        "loadgenMode": "off",
        "verifyEnabled": False,
        "monitoring": "off",
        "networkPolicy": False,
        "drainSeconds": 2,
        "terminationGracePeriodSeconds": 15,
    }
    config = {
        **offline.stack_config("dev"),
        **{f"selfheal-lb:{k}": v for k, v in {**base, **overrides}.items()},
    }
    run = offline.run_program(config, stack=STACK)
    objects = [o for o in render.k8s_objects(run) if o["kind"] in KINDS]
    return sorted(objects, key=lambda o: KINDS.index(o["kind"]))


@contextlib.contextmanager
def deployed(api, prefix: str, overrides: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Deploy the stack's objects into `<prefix>-<random>`; delete the namespace afterwards."""
    from kubernetes import client, utils

    namespace = f"{prefix}-{secrets.token_hex(3)}"
    image = app_image_on_node()
    objects = stack_objects(namespace, overrides)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["image"], container["imagePullPolicy"] = image, "Never"
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
