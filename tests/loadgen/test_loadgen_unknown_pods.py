"""What the in-cluster verification cannot know it says: a pod whose counters cannot be read
is `unverifiable` with the pod named (never "got no traffic"), and every snapshot is a new
document (the stack's re-run coupling depends on it). Real `python -m loadgen` processes
against the fake Kubernetes API over HTTP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from fake_kube import FakeKube
from lg_procs import run_cli

NS = "selfheal-lb-dev"
APP_LABELS = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
SEL = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"


def metrics(pod: str, served: int) -> str:
    return (
        "# TYPE articles_http_requests_total counter\n"
        f'articles_http_requests_total{{method="GET",pod="{pod}",route="/article1",'
        f'status="200"}} {served}.0\n'
    )


def cli(kubeconfig: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return run_cli(list(args), stdin=stdin, timeout=60, env={"KUBECONFIG": kubeconfig})


def snapshot(kubeconfig: str) -> subprocess.CompletedProcess:
    return cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--timeout", "10")


def verify(kubeconfig: str, baseline: str, *extra: str) -> subprocess.CompletedProcess:
    return cli(
        kubeconfig, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--no-keepalive",
        "--expect-pods", "3", "--baseline", "-", "--json", "--timeout", "10", *extra,
        stdin=baseline,
    )  # fmt: skip


def test_snapshot_prints_a_new_document_every_run(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 5)] * 3)
    first, second = snapshot(kubeconfig), snapshot(kubeconfig)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["pods"] == b["pods"], "nothing moved between the two runs"
    assert a["run_id"] != b["run_id"] and first.stdout != second.stdout


def test_a_pod_unreadable_after_the_load_is_unverifiable_and_named(
    fake: FakeKube, kubeconfig: str
) -> None:
    names = fake.add_deployment(
        "articles", APP_LABELS, metrics_texts=[metrics("a", 0), metrics("b", 0), metrics("c", 0)]
    )
    base = snapshot(kubeconfig)
    assert base.returncode == 0, base.stderr
    for name, served in zip(names, (700, 650, 0), strict=True):
        fake.pods[name].metrics_text = metrics(name, served)
    # The third pod's proxy is refused, as by RBAC or a CNI that does not admit the API server.
    fake.fail("GET", f"/pods/{names[2]}:9090/proxy", 403, times=5)
    proc = verify(kubeconfig, base.stdout)
    assert proc.returncode == 2, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["verdict"] == "unverifiable"
    assert names[2] in rep["reason"] and "403" in rep["reason"]
    assert rep["unreadable_pods"] == [names[2]]
    assert "no traffic" not in rep["reason"]
    assert proc.stderr.strip().splitlines()[-1].startswith("loadgen verify: could not verify:")


def test_a_pod_unreadable_at_the_baseline_is_unverifiable_and_named(
    fake: FakeKube, kubeconfig: str
) -> None:
    names = fake.add_deployment(
        "articles", APP_LABELS, metrics_texts=[metrics("a", 10), metrics("b", 10), metrics("c", 10)]
    )
    fake.fail("GET", f"/pods/{names[0]}:9090/proxy", 503, times=10)
    base = snapshot(kubeconfig)
    assert base.returncode == 0, base.stderr
    assert names[0] in json.loads(base.stdout)["unreadable"]
    fake.faults.clear()
    proc = verify(kubeconfig, base.stdout)
    assert proc.returncode == 2, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["verdict"] == "unverifiable" and names[0] in rep["reason"]
    assert "at the baseline" in rep["reason"]


def test_readable_pods_still_get_a_verdict(fake: FakeKube, kubeconfig: str, tmp_path: Path) -> None:
    names = fake.add_deployment(
        "articles", APP_LABELS, metrics_texts=[metrics("a", 0), metrics("b", 0), metrics("c", 0)]
    )
    base = snapshot(kubeconfig)
    for name in names:
        fake.pods[name].metrics_text = metrics(name, 333)
    proc = verify(kubeconfig, base.stdout)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "balanced"
