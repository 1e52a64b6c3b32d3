"""On the real cluster: the dashboard's app, CPU and memory expressions over real pods.

A real Prometheus (Debian's) scrapes, through the API server's proxy with the kubeconfig's
credentials, each app pod's /metrics (with the namespace and pod target labels a PodMonitor or
the annotations give) and the kubelet's per-container resource metrics (the same
`container_cpu_usage_seconds_total` / `container_memory_working_set_bytes` names and labels as
cAdvisor's; this cluster's cAdvisor endpoint has no per-container series). The test sends a
known, uneven number of requests to each pod and 404s to one (after one of each per pod, so
every series exists before the counted load), and checks the panels' numbers against what it
sent and against metrics-server. Restarts and ready replicas need
kube-state-metrics, which this cluster does not run: those two panels are only checked on
loopback (test_dashboard_on_prometheus.py).
"""

from __future__ import annotations

import base64
import math
import tempfile
import time
from pathlib import Path

import mon_prom
import pytest
import yaml
from mon_cluster import KUBECONFIG, SKIP_NO_CLUSTER, api_client, deployed, wait_ready

from components import dashboard

pytestmark = [pytest.mark.slow, SKIP_NO_CLUSTER]
SENT = (30, 60, 90)  # requests to the pods, in name order: an uneven split to recover
NOT_FOUND = 20  # 404s to the first pod
ROUTE = "/article1"
SCRAPE = "2s"
SCRAPE_SECONDS = 2.0


def credentials(tmp: Path) -> tuple[str, dict]:
    """(API server host:port, Prometheus tls_config) from the kubeconfig's current context."""
    doc = yaml.safe_load(KUBECONFIG.read_text())
    context = next(c for c in doc["contexts"] if c["name"] == doc["current-context"])["context"]
    cluster = next(c for c in doc["clusters"] if c["name"] == context["cluster"])["cluster"]
    user = next(u for u in doc["users"] if u["name"] == context["user"])["user"]
    if "client-certificate-data" not in user:
        pytest.skip("the kubeconfig's user has no client certificate for Prometheus to use")
    files = {}
    for key, field in (("ca_file", "certificate-authority-data"),
                       ("cert_file", "client-certificate-data"),
                       ("key_file", "client-key-data")):  # fmt: skip
        data = cluster.get(field) if key == "ca_file" else user.get(field)
        path = tmp / key
        path.write_bytes(base64.b64decode(data))
        files[key] = str(path)
    return cluster["server"].removeprefix("https://"), files


def by_pod(result: list[dict]) -> dict[str, float]:
    return {item["metric"]["pod"]: float(item["value"][1]) for item in result}


def expr(title: str, index: int = 0) -> str:
    return next(p for p in dashboard.PANELS if p.title == title).queries[index].expr


def test_dashboard_expressions_over_real_pods():
    from kubernetes import client
    from kubernetes.utils.quantity import parse_quantity

    api = api_client()
    with (
        deployed(api, "t-monitoring-dash", {"appReplicas": 3}) as stack,
        tempfile.TemporaryDirectory(prefix="mon-cluster-") as tmp,
    ):
        ns = stack["namespace"]
        wait_ready(api, ns, 3)
        core = client.CoreV1Api(api)
        pods = sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items)
        # Every node's kubelet: with make cluster NODES=3 the pods spread over the nodes.
        nodes = [n.metadata.name for n in core.list_node().items]
        resource = "/api/v1/nodes/{}/proxy/metrics/resource".format
        server, tls = credentials(Path(tmp))
        proxy = {p: f"/api/v1/namespaces/{ns}/pods/{p}:9090/proxy" for p in pods}  # metrics port
        jobs = [
            mon_prom.static_job(
                "articles",
                [
                    mon_prom.Target(
                        server,
                        {"namespace": ns, "pod": p, "__metrics_path__": f"{proxy[p]}/metrics"},
                    )
                    for p in pods
                ],
                scheme="https",
                tls_config=tls,
            ),
            mon_prom.static_job(
                "kubelet-resource",
                [
                    mon_prom.Target(server, {"node": n, "__metrics_path__": resource(n)})
                    for n in nodes
                ],
                honor_labels=True,
                scheme="https",
                tls_config=tls,
            ),
        ]

        def get(pod: str, path: str) -> int:
            """One request through the API server's pod proxy; the app's status code."""
            try:
                core.connect_get_namespaced_pod_proxy_with_path(
                    f"{pod}:8080", ns, path.lstrip("/"), _request_timeout=10
                )
            except client.ApiException as err:
                return err.status
            return 200

        with mon_prom.running(jobs, SCRAPE) as prom:
            deadline = time.monotonic() + 60
            while set(prom.targets_up().values()) != {"up"}:
                assert time.monotonic() < deadline, prom.targets_up()
                time.sleep(1)
            # A counter's label set exists only from its first request on, and rate() cannot
            # see the increase before its first sample: one request of each kind per pod first,
            # then the counted load.
            for pod in pods:
                assert get(pod, ROUTE) == 200 and get(pod, "/no-such-page") == 404
            time.sleep(8)  # a few samples of every series before the load
            start = time.time()
            for count, pod in zip(SENT, pods, strict=True):
                for _ in range(count):
                    assert get(pod, ROUTE) == 200
                    time.sleep(0.05)
            for i in range(NOT_FOUND):
                assert get(pods[0], f"/no-such-page-{i}") == 404
            time.sleep(8)  # the last scrapes
            at = time.time()
            # From 4 s (two scrapes) before the load: after the priming requests were scraped,
            # so the window's increase is the counted load alone (8 s took the priming in too,
            # and rate() then read 55.5 for 50 sent on a CI run).
            window = f"{math.ceil(at - start) + 4}s"

            def query(e: str) -> dict[str, float]:
                return by_pod(
                    prom.query(e.replace("$namespace", ns).replace("$__rate_interval", window), at)
                )

            seconds = float(window[:-1])
            rates = query(expr("Requests per second by pod"))
            shares = query(expr("Share of requests by pod"))
            fives = query(expr("Errors per second by pod", 0))
            fours = query(expr("Errors per second by pod", 1))
            p50 = query(expr("Latency p50 and p99 by pod", 0))
            p99 = query(expr("Latency p50 and p99 by pod", 1))
            cpu = query(expr("CPU by pod"))
            memory = query(expr("Memory by pod"))
        metrics = {
            p: client.CustomObjectsApi(api).get_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", ns, "pods", p
            )
            for p in pods
        }

    total = sum(SENT)
    for count, pod in zip(SENT, pods, strict=True):
        expected = count + (NOT_FOUND if pod == pods[0] else 0)  # the 404s are traffic too
        # rate() extrapolates the increase it saw between the window's first and last samples
        # to the window's edges (each by up to 1.1 scrape intervals), so for a burst inside the
        # window it reads high by at most window / (window - 2.2 intervals); never low.
        high = expected * seconds / (seconds - 2.2 * SCRAPE_SECONDS)
        assert 0.98 * expected <= rates[pod] * seconds <= high * 1.02, (pod, rates, high)
        assert shares[pod] == pytest.approx(expected / (total + NOT_FOUND), abs=0.03), shares
        assert fives[pod] == 0
        assert fours[pod] * seconds == pytest.approx(NOT_FOUND if pod == pods[0] else 0, rel=0.15)
        assert 0 < p50[pod] <= p99[pod] <= 5, (pod, p50, p99)
        assert 0 < cpu[pod] <= 0.5, (pod, cpu)  # used some CPU, within appCpuLimit
        (container,) = metrics[pod]["containers"]
        server_side = float(parse_quantity(container["usage"]["memory"]))
        assert memory[pod] == pytest.approx(server_side, rel=0.25), (pod, memory, server_side)
        assert memory[pod] > 10 * 2**20
