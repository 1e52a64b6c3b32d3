"""Issue 20 on the real cluster of `make cluster` (NetworkPolicies enforced by kube-router):

- through the LoadBalancer the pages answer and `/metrics` is 404; the verification's report
  (read through the API server's pod proxy on the metrics port) still comes out "balanced";
- with `ingressAllowedCidrs` 0.0.0.0/0 and the pod range in `clusterPodCidrs`, a pod in another
  namespace reaches neither app port directly, while a pod in Prometheus' namespace reaches the
  metrics port (the scrape) and nothing else.

Applied as the program renders it (under the mocks), as test_real_cluster_two_stacks.py does;
the app image is this checkout's, loaded on the node. Namespaces: SELFHEAL_LB_SECURITY_NS_PREFIX
(default t-security) + -app / -other / -prom, deleted afterwards. Skipped when no cluster.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from metrics_cluster import absent, delete_namespace, detect_or_skip, wait
from node_app_image import app_image_on_node
from stack_fixtures import ROOT, dev_config

from cluster.e2e.stack import COMMAND
from cluster.paths import CONTEXT, KUBECONFIG
from components import offline, render

PREFIX = os.environ.get("SELFHEAL_LB_SECURITY_NS_PREFIX", "t-security")
APP_NS, OTHER_NS, PROM_NS = f"{PREFIX}-app", f"{PREFIX}-other", f"{PREFIX}-prom"
# The local cluster's pod range and the node's bridge address in it (cluster/lib.sh).
POD_CIDR = offline.stack_config("local")["selfheal-lb:clusterPodCidrs"][0]
NODE_FORTIO_IMAGE = offline.stack_config("local")["selfheal-lb:loadgenImage"]
# From inside a pod: each address:port, tried for up to 20 s (the policy engine adds a new pod's
# address to its sets a moment after the pod starts); prints {target: "open" | last error}.
PROBE = """
import json, socket, sys, time
out = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    for attempt in range(20):
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            out[target] = "open"
            break
        except OSError as exc:
            out[target] = type(exc).__name__
            time.sleep(1)
print(json.dumps(out))
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def core() -> Iterator[Any]:
    from kubernetes import client, config

    detect_or_skip()
    api_client = config.new_client_from_config(config_file=str(KUBECONFIG), context=CONTEXT)
    v1 = client.CoreV1Api(api_client)
    for ns in (APP_NS, OTHER_NS, PROM_NS):  # left over from an interrupted run
        if delete_namespace(v1, ns):
            wait(f"old {ns} gone", lambda ns=ns: absent(v1, ns), seconds=180)
    yield v1
    for ns in (APP_NS, OTHER_NS, PROM_NS):
        delete_namespace(v1, ns)
    api_client.close()


def _command(create: str, stdin: str = "") -> str:
    proc = subprocess.run(
        ["bash", "-c", create],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "KUBECONFIG": str(KUBECONFIG)},
        timeout=420,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _http(host: str, port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _probe_from(v1: Any, namespace: str, image: str, targets: list[str]) -> dict[str, str]:
    """Runs PROBE in a one-shot pod of `namespace`; its verdict per target."""
    from kubernetes import client

    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    name = "probe"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", PROBE, *targets],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "runAsNonRoot": True,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                }
            ],
        },
    }
    v1.create_namespaced_pod(namespace, pod)
    wait(
        f"probe pod in {namespace} finished",
        lambda: v1.read_namespaced_pod(name, namespace).status.phase in ("Succeeded", "Failed"),
        seconds=180,
        every=2,
    )
    log = v1.read_namespaced_pod_log(name, namespace)
    return dict(json.loads(log.strip().splitlines()[-1]))


def test_public_port_has_no_metrics_pods_elsewhere_are_refused_and_report_and_scrape_work(core):
    from kubernetes import client, utils

    image = app_image_on_node()
    run = offline.run_program(
        dev_config(
            namespace=APP_NS,
            kubeContext=CONTEXT,
            serviceType="LoadBalancer",
            ingressAllowedCidrs=["0.0.0.0/0", "10.244.0.1/32"],
            clusterPodCidrs=[POD_CIDR],
            prometheusNamespace=PROM_NS,
            monitoring="annotations",
            loadgenImage=NODE_FORTIO_IMAGE,
            imageRef=image,
            imagePullPolicy="Never",
        ),
        stack=APP_NS,
        preview=True,
        metrics_api=detect_or_skip(),
    )
    objects = render.k8s_objects(run)
    commands = {r.name: r.inputs["create"] for r in run.of_type(COMMAND)}
    (job,) = [o for o in objects if o["kind"] == "Job"]
    for obj in objects:
        if obj["kind"] != "Job":
            utils.create_from_dict(core.api_client, obj)
    apps = client.AppsV1Api(core.api_client)
    wait(
        "articles ready",
        lambda: (apps.read_namespaced_deployment_status("articles", APP_NS).status.ready_replicas
                 or 0) >= 3,
        seconds=240,
    )  # fmt: skip

    # The report: its pod-proxy reads go to the metrics port; the load through the Service.
    baseline = _command(commands["verification-snapshot"])
    utils.create_from_dict(core.api_client, job)
    report = json.loads(_command(commands["verification-verify"], stdin=baseline))
    assert report["verdict"] == "balanced", report.get("reason")
    served = [p.get("requests") for p in report.get("pods", [])]
    assert len(served) == 3 and all(served), served
    print(f"report: {report['verdict']} requests={served}")

    # Through the LoadBalancer: the pages, but no /metrics.
    def lb_address() -> Any:
        status = core.read_namespaced_service("articles", APP_NS).status
        return (status.load_balancer.ingress or [None])[0]

    lb_ip = wait("LoadBalancer address", lb_address, seconds=120, every=2).ip
    assert _http(lb_ip, 8080, "/article1")[0] == 200
    status, body = _http(lb_ip, 8080, "/metrics")
    assert status == 404 and b"articles_" not in body
    print(f"LoadBalancer {lb_ip}: /article1 200, /metrics {status}")

    # Directly, from pods: another namespace reaches nothing; Prometheus' the metrics port only.
    pods = core.list_namespaced_pod(APP_NS, label_selector="app.kubernetes.io/name=articles")
    pod_ip = pods.items[0].status.pod_ip
    targets = [f"{pod_ip}:8080", f"{pod_ip}:9090"]
    other = _probe_from(core, OTHER_NS, image, targets)
    prom = _probe_from(core, PROM_NS, image, targets)
    print(f"from {OTHER_NS}: {other}; from {PROM_NS}: {prom}")
    assert other[targets[0]] != "open" and other[targets[1]] != "open", other
    assert prom[targets[1]] == "open" and prom[targets[0]] != "open", prom
    # The scrape itself, as Prometheus would do it (pod IP, metrics port) through the pod proxy.
    text = core.connect_get_namespaced_pod_proxy_with_path(
        f"{pods.items[0].metadata.name}:9090", APP_NS, "metrics"
    )
    assert "articles_http_requests_total" in text
