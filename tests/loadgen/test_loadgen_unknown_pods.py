"""What the in-cluster verification cannot know it says: a pod whose counters cannot be read
is `unverifiable` with the pod named (never "got no traffic"), and every snapshot is a new
document (the stack's re-run coupling depends on it). Real `python -m loadgen` processes
against the fake Kubernetes API over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_kube import FakeKube
from lg_procs import ROOT, run_cli

pytestmark = pytest.mark.slow  # loadgen CLI processes against a fake API, bounded in seconds

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


def store_metrics(pod: str, served: int, stored: int | None) -> str:
    """/metrics of a pod counting views in Redis: up 0 while the store does not answer."""
    up = 0 if stored is None else 1
    lines = [metrics(pod, served).rstrip("\n"),
             f'articles_state_store_up{{pod="{pod}",store="redis"}} {up}.0']  # fmt: skip
    if stored is not None:
        lines.append(f'articles_views_stored{{article="1",pod="{pod}",store="redis"}} {stored}.0')
    return "\n".join(lines) + "\n"


def test_snapshot_waits_for_every_pod_to_reach_the_store(fake: FakeKube, kubeconfig: str) -> None:
    """The first `up` with Redis: the app pods are Ready before the store answers them. The
    baseline waits (bounded) until every pod reads the store, so the check has its figure."""
    names = fake.add_deployment(
        "articles", APP_LABELS, metrics_texts=[store_metrics(p, 0, None) for p in "abc"]
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadgen", "snapshot", "-n", NS, "-l", SEL, "--timeout", "30",
         "--expect-store"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "KUBECONFIG": kubeconfig},
    )  # fmt: skip
    # The store comes up for the pods once the snapshot has read them without it (bounded).
    deadline = time.monotonic() + 30
    while fake.calls("GET", "/metrics") < len(names) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fake.calls("GET", "/metrics") >= len(names), "the snapshot never read the pods"
    with fake.lock:
        for name, pod in zip(names, "abc", strict=True):
            fake.pods[name].metrics_text = store_metrics(pod, 0, 40)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["store_wait"]["pods_without_store"] == []
    assert doc["store_wait"]["seconds"] > 0  # it read again after the first read
    assert all(p["up"] and p["stored"] == 40 for p in doc["views"]["pods"].values())


def test_snapshot_says_which_pods_never_reached_the_store(fake: FakeKube, kubeconfig: str) -> None:
    names = fake.add_deployment(
        "articles", APP_LABELS,
        metrics_texts=[store_metrics("a", 0, 5), store_metrics("b", 0, None)],
    )  # fmt: skip
    done = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--timeout", "9", "--expect-store")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["store_wait"]["pods_without_store"] == [names[1]]
    assert f"the shared store did not answer {names[1]} within" in done.stderr
