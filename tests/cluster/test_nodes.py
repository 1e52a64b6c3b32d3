"""`make cluster NODES=3` on the real cluster: pods on every node reach each other and a Service,
NetworkPolicy holds on an extra node, metrics-server sees the extra nodes' pods, a cut node goes
NotReady and comes back. Skipped unless the local cluster runs with at least 3 nodes."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.paths import CONTEXT, KUBECONFIG, KUBECTL
from components import offline

pytestmark = pytest.mark.slow  # runs kubectl and cluster/node.sh against the real cluster
NODE_SH = Path(__file__).resolve().parents[2] / "cluster" / "node.sh"
DOWN_SH = NODE_SH.with_name("down.sh")
FORTIO = offline.stack_config("local")["selfheal-lb:loadgenImage"]
EXTRA = "selfheal-lb.dev/extra-node=true"
# node-monitor-grace-period 20 s + the monitor period 2 s + a lease renewal 5 s + margin.
NOT_READY_WITHIN_S = 40


def kc(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def ready(node: str) -> str:
    path = '{.status.conditions[?(@.type=="Ready")].status}'
    return kc("get", "node", node, "-o", f"jsonpath={path}", timeout=15).stdout


@pytest.fixture(scope="module")
def nodes() -> list[str]:
    if not KUBECONFIG.exists() or not KUBECTL.exists():
        pytest.skip(f"no real cluster: {KUBECONFIG} does not exist (make cluster NODES=3)")
    if kc("get", "--raw", "/readyz", check=False, timeout=10).returncode != 0:
        pytest.skip("the real cluster does not answer /readyz (make cluster NODES=3)")
    names = kc("get", "nodes", "-o", "name").stdout.split()
    if len(names) < 3:
        pytest.skip(
            f"the local cluster runs {len(names)} node(s), these tests need 3: "
            "make cluster-down; make cluster NODES=3"
        )
    return sorted(n.removeprefix("node/") for n in names)


def server_pod(name: str, node: str, labels: dict[str, str]) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "fortio", "image": FORTIO, "imagePullPolicy": "Never",
                            "args": ["server", "-http-port", "8080"]}],
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def spread(nodes: list[str]) -> Iterator[tuple[str, dict[str, str]]]:
    """One fortio server per node behind a Service `echo`: (namespace, node -> pod IP)."""
    ns = f"t-nodes-{uuid.uuid4().hex[:6]}"
    kc("create", "namespace", ns)
    try:
        items = [server_pod(f"echo-{i}", n, {"app": "echo"}) for i, n in enumerate(nodes)]
        ports = [{"port": 80, "targetPort": 8080}]
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
               "spec": {"selector": {"app": "echo"}, "ports": ports}}  # fmt: skip
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": [*items, svc]})
        subprocess.run([str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT,
                        "-n", ns, "apply", "-f", "-"], input=body, text=True, check=True,
                       capture_output=True, timeout=60)  # fmt: skip
        kc("-n", ns, "wait", "--for=condition=Ready", "pod", "--all", "--timeout=90s", timeout=100)
        pods = json.loads(kc("-n", ns, "get", "pods", "-o", "json").stdout)["items"]
        yield ns, {p["spec"]["nodeName"]: p["status"]["podIP"] for p in pods}
    finally:
        kc("delete", "namespace", ns, "--wait=false", check=False)


def curl(ns: str, pod: str, url: str) -> bool:
    """Whether pod `pod` gets a 200 from url (fortio's own client, 3 s)."""
    r = kc("-n", ns, "exec", pod, "--", "fortio", "curl", "-quiet", "-timeout", "3s", url,
           check=False, timeout=30)  # fmt: skip
    return r.returncode == 0 and "HTTP/1.1 200 OK" in r.stderr  # fortio prints headers there


def test_pods_on_every_node_reach_each_other_and_a_service(nodes, spread):
    ns, ips = spread
    assert sorted(ips) == nodes, "one server pod landed on each node"
    pod_of = {node: f"echo-{i}" for i, node in enumerate(nodes)}
    failed = [
        f"{src} -> {dst}" for src in nodes for dst in nodes
        if not curl(ns, pod_of[src], f"http://{ips[dst]}:8080/")
    ]  # fmt: skip
    # Through the Service by its DNS name (CoreDNS on node 1), 3 times from each node: kube-proxy
    # picks any of the three pods, so this crosses nodes too.
    failed += [
        f"{src} -> Service echo" for src in nodes for _ in range(3)
        if not curl(ns, pod_of[src], f"http://echo.{ns}.svc.cluster.local/")
    ]  # fmt: skip
    assert failed == []


def test_default_deny_is_enforced_on_an_extra_node(nodes, spread):
    ns, ips = spread
    extra = nodes[1]
    pod_of = {node: f"echo-{i}" for i, node in enumerate(nodes)}
    assert curl(ns, pod_of[nodes[0]], f"http://{ips[extra]}:8080/"), "reachable before the policy"
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-extra", "namespace": ns},
            "spec": {"podSelector": {"matchLabels": {"deny": "yes"}},
                     "policyTypes": ["Ingress"]}}  # fmt: skip
    kc("-n", ns, "label", "pod", pod_of[extra], "deny=yes")
    subprocess.run([str(KUBECTL), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT,
                    "apply", "-f", "-"], input=json.dumps(deny), text=True, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    try:
        deadline = time.monotonic() + 30  # kube-router programs the policy within a few seconds
        while curl(ns, pod_of[nodes[0]], f"http://{ips[extra]}:8080/"):
            assert time.monotonic() < deadline, f"{extra}'s pod reachable 30 s after default-deny"
            time.sleep(1)
        for src in (n for n in nodes if n != extra):  # a pod always reaches itself
            assert not curl(ns, pod_of[src], f"http://{ips[extra]}:8080/"), f"{src} got through"
        other = f"http://{ips[nodes[2]]}:8080/"
        assert curl(ns, pod_of[nodes[0]], other), "the unselected pod stays open"
    finally:
        kc("-n", ns, "delete", "networkpolicy", "deny-extra", check=False)
        kc("-n", ns, "label", "pod", pod_of[extra], "deny-", check=False)


def test_top_pods_shows_pods_on_the_extra_nodes(nodes, spread):
    ns, _ = spread
    pod_of = {f"echo-{i}": node for i, node in enumerate(nodes)}
    seen: set[str] = set()
    deadline = time.monotonic() + 120  # metrics-server scrapes every 15 s; a new pod needs two
    while time.monotonic() < deadline:
        r = kc("top", "pods", "-n", ns, "--no-headers", check=False, timeout=30)
        seen = {pod_of[line.split()[0]] for line in r.stdout.splitlines() if line.split()}
        if seen == set(nodes):
            break
        time.sleep(5)
    assert seen == set(nodes), f"kubectl top pods saw pods on {sorted(seen)} only"


def node_sh(*args: str, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([str(NODE_SH), *args], capture_output=True, text=True, timeout=timeout)


def test_node_1_cannot_be_cut(nodes):
    r = node_sh("cut", nodes[0])
    assert r.returncode != 0 and "control plane" in r.stderr and len(r.stderr.splitlines()) == 1


def test_a_cut_node_goes_not_ready_and_restore_brings_it_back(nodes, spread):
    """Cuts the last extra node. Other tests share the cluster, so it is cordoned first and the
    test is skipped (with the pods named) if other tests' pods still run there after 60 s."""
    node = nodes[-1]
    kc("cordon", node)
    try:
        deadline = time.monotonic() + 60
        while True:
            pods = json.loads(kc("get", "pods", "-A", "--field-selector", f"spec.nodeName={node}",
                                 "-o", "json").stdout)["items"]  # fmt: skip
            others = [
                f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                for p in pods
                if p["metadata"]["namespace"] != spread[0]  # this module's own: expendable
            ]
            if not others:
                break
            if time.monotonic() > deadline:
                pytest.skip(f"{node} still runs other tests' pods after 60 s: {others[:3]}")
            time.sleep(2)
        t0 = time.monotonic()
        cut = node_sh("cut", node)
        assert cut.returncode == 0, cut.stderr
        try:
            status = node_sh("status").stdout.splitlines()
            assert "yes" in next(line for line in status if line.startswith(node + " "))
            while ready(node) == "True":
                late = time.monotonic() - t0 > NOT_READY_WITHIN_S
                assert not late, f"{node} still Ready {NOT_READY_WITHIN_S} s after the cut"
                time.sleep(0.5)
        finally:
            restore = node_sh("restore", node)
        assert restore.returncode == 0, restore.stderr
        assert ready(node) == "True"
        assert node_sh("cut", "no-such-node").returncode != 0
    finally:
        kc("uncordon", node, check=False)


def test_cluster_down_left_nothing_behind():
    """After `make cluster-down` nothing of the cluster is left (down.sh checks the same list
    itself and fails naming what is left); meaningful only while no cluster runs."""
    if (KUBECONFIG.parent / "state" / "pids").exists():
        pytest.skip("a local cluster is running: run after make cluster-down")
    r = subprocess.run([str(DOWN_SH), "--check"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
