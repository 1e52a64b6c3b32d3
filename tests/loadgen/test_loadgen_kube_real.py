"""loadgen's API access against a real kube-apiserver: the one-node cluster of `make cluster`.

Skipped, with the reason, when that cluster is not up. What a real server decides is tested
here (TLS with its CA and client certificates, contexts, 401, RBAC 403s that name what was
refused, exec credential plugins, the service-account config of a pod, and that the
permissions loadgen/README.md lists are enough); the faults a real server cannot be made to
produce (hangs, 5xx bursts) are tested against tests/loadgen/fake_kube.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import real_cluster
from lg_procs import free_port, run_cli

from loadgen import kube

pytestmark = pytest.mark.slow
SEL = "app=loadgen-real"


@pytest.fixture(scope="module")
def cluster() -> real_cluster.Cluster:
    return real_cluster.cluster()


@pytest.fixture(scope="module")
def ns(cluster: real_cluster.Cluster) -> Iterator[str]:
    with real_cluster.namespace(cluster) as name:
        yield name


@pytest.fixture(scope="module")
def loadgen_token(cluster: real_cluster.Cluster, ns: str) -> str:
    return real_cluster.service_account_token(cluster, ns, "loadgen", real_cluster.LOADGEN_RULES)


@pytest.fixture(scope="module")
def nobody_token(cluster: real_cluster.Cluster, ns: str) -> str:
    return real_cluster.service_account_token(cluster, ns, "nobody", None)


def snapshot(
    cfg: str, ns: str, *extra: str, timeout: str = "10", tmpdir: Path | None = None
) -> subprocess.CompletedProcess:
    env = {"KUBECONFIG": cfg, **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return run_cli(
        ["snapshot", "-n", ns, "-l", SEL, "--timeout", timeout, *extra], env=env, timeout=60
    )


def one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_admin_kubeconfig_client_certificate_and_context_choice(
    cluster: real_cluster.Cluster, ns: str, tmp_path: Path
) -> None:
    """The cluster's own kubeconfig (CA and client certificate): the API answers (an empty
    namespace: exit 2 'no pods match', not an auth or TLS error). A second kubeconfig in
    KUBECONFIG whose current context is unreachable: --context picks the real one."""
    dead = cluster.token_kubeconfig(tmp_path / "dead", {"token": "x"})
    doc = Path(dead).read_text().replace(cluster.server, f"https://127.0.0.1:{free_port()}")
    Path(dead).write_text(doc)
    env_list = f"{dead}:{cluster.kubeconfig}"
    private = tmp_path / "tmp"
    private.mkdir()
    proc = snapshot(env_list, ns, "--context", real_cluster.CONTEXT, tmpdir=private)
    assert proc.returncode == 2 and "no pods match" in one_line(proc)
    # Key material from *-data fields goes to temp files for TLS; none is left behind.
    assert not list(private.iterdir())
    start = time.monotonic()
    proc = snapshot(env_list, ns, timeout="4")  # current-context of the first file: dead
    assert proc.returncode == 2 and "cannot reach" in one_line(proc)
    assert time.monotonic() - start < 4 + 5


def test_wrong_token_is_401_one_line_not_retried(
    cluster: real_cluster.Cluster, ns: str, tmp_path: Path
) -> None:
    cfg = cluster.token_kubeconfig(tmp_path / "c", {"token": "not-a-valid-token"})
    start = time.monotonic()
    proc = snapshot(cfg, ns)
    assert proc.returncode == 2 and "unauthorized (401)" in one_line(proc)
    assert time.monotonic() - start < 5  # no retries, no waiting out the timeout


def test_rbac_refusal_is_403_naming_what_was_refused(
    cluster: real_cluster.Cluster, ns: str, nobody_token: str, tmp_path: Path
) -> None:
    cfg = cluster.token_kubeconfig(tmp_path / "c", {"token": nobody_token})
    proc = snapshot(cfg, ns)
    assert proc.returncode == 2
    err = one_line(proc)
    assert "forbidden (403)" in err and 'cannot list resource "pods"' in err and ns in err


def test_the_readme_permissions_are_enough_and_each_call_asks_for_its_own(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, nobody_token: str, tmp_path: Path
) -> None:
    """Every call loadgen makes, with the Role from loadgen/README.md: allowed (a missing object
    is 404, which the API only says after authorising). Without it: a 403 whose message names
    the verb and resource the README lists for that call (so the URL is the one we meant)."""
    calls = {
        'cannot list resource "pods" in API group ""': lambda c: c.list_pods(ns, SEL),
        'cannot get resource "pods/proxy"': lambda c: c.pod_proxy(ns, "x", 8080, "/metrics"),
        'cannot get resource "pods/log"': lambda c: c.pod_log(ns, "missing"),
        'cannot delete resource "pods"': lambda c: c.delete_pod(ns, "missing"),
        'cannot get resource "replicasets"': lambda c: c.get_replicaset(ns, "missing"),
        'cannot get resource "deployments"': lambda c: c.get_deployment(ns, "missing"),
    }
    metrics = 'cannot list resource "pods" in API group "metrics.k8s.io"'
    allowed = cluster.token_kubeconfig(tmp_path / "allowed", {"token": loadgen_token})
    refused = cluster.token_kubeconfig(tmp_path / "refused", {"token": nobody_token})
    with kube.client(allowed, "", 20) as c:
        for what, call in calls.items():
            try:
                call(c)
            except kube.KubeStatusError as exc:
                assert exc.status == 404, f"{what}: {exc}"
        try:
            c.pod_metrics(ns, SEL)
        except kube.KubeStatusError as exc:  # no metrics API is fine; a refusal is not
            assert exc.status != 403, exc
    with kube.client(refused, "", 20) as c:
        for what, call in [*calls.items(), (metrics, lambda c: c.pod_metrics(ns, SEL))]:
            with pytest.raises(kube.KubeStatusError) as info:
                call(c)
            assert info.value.status == 403 and what in str(info.value), str(info.value)


def test_exec_plugin_token_and_refresh_after_401(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, tmp_path: Path
) -> None:
    """An exec credential plugin hands out a token the real server checks; a stale first
    token (401) makes loadgen run the plugin once more and go on."""
    calls = tmp_path / "calls"
    plugin = tmp_path / "cred.py"
    plugin.write_text(
        "import json, os, pathlib\n"
        f"p = pathlib.Path({str(calls)!r})\n"
        "n = int(p.read_text()) if p.exists() else 0\n"
        "p.write_text(str(n + 1))\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "tok = 'stale' if n == 0 else os.environ['REAL_TOKEN']\n"
        "print(json.dumps({'apiVersion': info['apiVersion'], 'kind': 'ExecCredential',"
        " 'status': {'token': tok}}))\n"
    )
    cfg = cluster.token_kubeconfig(
        tmp_path / "c",
        {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": [str(plugin)],
                "env": [{"name": "REAL_TOKEN", "value": loadgen_token}],
                "interactiveMode": "Never",
            }
        },
    )
    proc = snapshot(cfg, ns)
    assert proc.returncode == 2 and "no pods match" in one_line(proc)
    assert calls.read_text() == "2"


def test_token_file_with_a_trailing_newline(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, tmp_path: Path
) -> None:
    """tokenFile relative to the kubeconfig, written as `echo TOKEN > file` would."""
    (tmp_path / "token").write_text(loadgen_token + "\n")
    cfg = cluster.token_kubeconfig(tmp_path / "c", {"tokenFile": "token"})
    proc = snapshot(cfg, ns)
    assert proc.returncode == 2 and "no pods match" in one_line(proc)


def test_wrong_ca_is_a_tls_error(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, tmp_path: Path
) -> None:
    import certifi  # public CAs: none of them signed the cluster's serving certificate

    cfg = cluster.token_kubeconfig(
        tmp_path / "c", {"token": loadgen_token}, ca={"certificate-authority": certifi.where()}
    )
    proc = snapshot(cfg, ns)
    assert proc.returncode == 2 and "TLS verification" in one_line(proc)


def test_tls_server_name_is_the_name_the_certificate_must_carry(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, tmp_path: Path
) -> None:
    ca = {"certificate-authority-data": cluster.ca_data}
    good = cluster.token_kubeconfig(
        tmp_path / "good", {"token": loadgen_token}, ca={**ca, "tls-server-name": "kubernetes"}
    )
    proc = snapshot(good, ns)
    assert proc.returncode == 2 and "no pods match" in one_line(proc)
    bad = cluster.token_kubeconfig(
        tmp_path / "bad", {"token": loadgen_token}, ca={**ca, "tls-server-name": "other.invalid"}
    )
    proc = snapshot(bad, ns)
    assert proc.returncode == 2 and "TLS verification" in one_line(proc)


def test_insecure_skip_tls_verify(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, tmp_path: Path
) -> None:
    cfg = cluster.token_kubeconfig(
        tmp_path / "c", {"token": loadgen_token}, ca={"insecure-skip-tls-verify": True}
    )
    proc = snapshot(cfg, ns)
    assert proc.returncode == 2 and "no pods match" in one_line(proc)


def test_in_cluster_service_account(
    cluster: real_cluster.Cluster,
    ns: str,
    loadgen_token: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in a pod: no kubeconfig, KUBERNETES_SERVICE_HOST/PORT, the mounted token and CA."""
    import base64

    from kubernetes.config import incluster_config

    (tmp_path / "token").write_text(loadgen_token)
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster.ca_data))
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    server = urlsplit(cluster.server)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", server.hostname or "")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port or 443))
    with kube.client("", "", 20) as c:
        assert c.source == "in-cluster service account"
        assert c.list_pods(ns, SEL) == []


def test_drill_calls_on_real_objects(
    cluster: real_cluster.Cluster, ns: str, loadgen_token: str, tmp_path: Path
) -> None:
    """A real Deployment: its pod's owner chain (pod -> ReplicaSet -> Deployment) as the drill
    reads it, and a pod deleted with the README's permissions is replaced by the controller."""
    from kubernetes import client

    restricted = {
        "runAsNonRoot": True,
        "runAsUser": 65535,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    client.AppsV1Api(cluster.api).create_namespaced_deployment(
        ns,
        {
            "metadata": {"name": "pause"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "loadgen-real"}},
                "template": {
                    "metadata": {"labels": {"app": "loadgen-real"}},
                    "spec": {
                        "securityContext": restricted,
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "pause",
                                # The cluster's own pause image, never pulled (no traffic
                                # to a registry); pods need not run for what is tested.
                                "image": "localhost/selfheal-lb/pause:3.10",
                                "imagePullPolicy": "Never",
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                            }
                        ],
                    },
                },
            },
        },
    )
    cfg = cluster.token_kubeconfig(tmp_path / "c", {"token": loadgen_token})
    with kube.client(cfg, "", 120) as c:
        deadline = time.monotonic() + 60
        pods: list[dict] = []
        while not pods and time.monotonic() < deadline:
            pods = c.list_pods(ns, SEL)
            time.sleep(0.5)
        assert pods, "the controller made no pod within 60s"
        first = kube.pod_name(pods[0])
        rs = kube.owner(pods[0], "ReplicaSet")
        assert rs and kube.owner(c.get_replicaset(ns, rs), "Deployment") == "pause"
        assert int(c.get_deployment(ns, "pause")["spec"]["replicas"]) == 1
        c.delete_pod(ns, first, 0)
        replacement = None
        while replacement is None and time.monotonic() < deadline + 30:
            names = [kube.pod_name(p) for p in c.list_pods(ns, SEL)]
            replacement = next((n for n in names if n != first), None)
            time.sleep(0.5)
        assert replacement, "no replacement pod within the time"


def test_pod_proxy_log_and_metrics_of_a_running_pod(cluster: real_cluster.Cluster) -> None:
    """The cluster's CoreDNS pod, through the calls loadgen makes: its readiness endpoint via
    the pod proxy, its log, and its CPU/memory from metrics-server (real quantities such as
    "1367871n" and "12380Ki", parsed by the client's parse_quantity)."""
    from loadgen.resources import Sampler

    system, dns = "kube-system", "k8s-app=kube-dns"
    with kube.client(str(cluster.kubeconfig), real_cluster.CONTEXT, 120) as c:
        ready = [p for p in c.list_pods(system, dns) if kube.is_ready(p)]
        assert ready, "the cluster's CoreDNS pod is not ready"
        name = kube.pod_name(ready[0])
        assert c.pod_proxy(system, name, 8181, "/ready").strip() == "OK"
        assert "CoreDNS" in c.pod_log(system, name)
        sampler = Sampler(c, system, dns)
        deadline = time.monotonic() + 90  # metrics-server's first scrape of a new pod
        while not (sampler.pods.get(name) and sampler.pods[name].cpu_m):
            assert time.monotonic() < deadline, sampler.problem or "no pod metrics within 90s"
            assert sampler.sample(), sampler.problem
            time.sleep(2)
        usage = sampler.pods[name]
        assert 0 < usage.cpu_m[0] < 4000 and 1 < usage.memory_mib[0] < 1024
