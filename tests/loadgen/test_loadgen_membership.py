"""The baseline waits for the expected Ready pods (bounded, one line naming the pods that are
not), pods that come or go are reported, and CPU/memory are sampled while the load generator
runs, beside the idle baseline. Real `python -m loadgen` against the fake API over HTTP."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from fake_kube import FakeKube, Pod
from lg_procs import run_cli

pytestmark = pytest.mark.slow  # loadgen CLI processes against a fake API, bounded in seconds

NS = "selfheal-lb-dev"
APP_LABELS = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
SEL = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"
JOB = "loadgen"
FORTIO_LOG = (Path(__file__).with_name("fixtures") / "fortio-1.68.2-keepalive.log").read_text()


def metrics(pod: str, served: int) -> str:
    return (
        "# TYPE articles_http_requests_total counter\n"
        f'articles_http_requests_total{{method="GET",pod="{pod}",route="/article1",'
        f'status="200"}} {served}.0\n'
    )


def cli(kubeconfig: str, *args: str, stdin: str | None = None):
    return run_cli(list(args), stdin=stdin, timeout=90, env={"KUBECONFIG": kubeconfig})


def test_snapshot_waits_until_the_expected_pods_are_ready(fake: FakeKube, kubeconfig: str):
    fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 2)
    fake.add_pod(Pod("articles-late", dict(APP_LABELS), metrics_text=metrics("late", 0),
                     ready_after=2.5))  # fmt: skip
    started = time.monotonic()
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--expect-ready", "3",
               "--timeout", "20")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert "articles-late" in doc["pods"] and len(doc["ready_wait"]["ready"]) == 3
    assert 2.0 <= time.monotonic() - started < 20


def test_snapshot_gives_up_in_one_line_naming_the_pod(fake: FakeKube, kubeconfig: str):
    fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 2)
    fake.add_pod(Pod("articles-stuck", dict(APP_LABELS), ready_after=3600))
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--expect-ready", "3",
               "--timeout", "4")  # fmt: skip
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("loadgen snapshot: error: only 2 of 3 expected pods Ready after")
    assert "articles-stuck" in line


def test_usage_under_load_beside_idle_and_pods_that_came(fake: FakeKube, kubeconfig: str):
    names = fake.add_deployment("articles", APP_LABELS,
                                metrics_texts=[metrics("a", 0), metrics("b", 0)])  # fmt: skip
    for name in names:
        fake.pods[name].cpu = "2m"
    base = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--expect-ready", "2")
    assert base.returncode == 0, base.stderr
    assert json.loads(base.stdout)["resources_idle"]["pods"][names[0]]["cpu_mean_m"] == 2.0

    def load_starts() -> None:
        # The Job's pod appears a moment after verify started (the stack does not await the
        # Job), runs 3 s, during which the app pods are busy; a third pod joins.
        time.sleep(1.5)
        for i, name in enumerate(names):
            fake.pods[name].cpu = "180m"
            fake.pods[name].metrics_text = metrics(name, 300 - 2 * i)
        fake.add_pod(Pod(f"{JOB}-0", {"batch.kubernetes.io/job-name": JOB}, log=FORTIO_LOG,
                         owner_kind="Job", owner_name=JOB, finish_after=3.0))  # fmt: skip
        fake.add_pod(Pod("articles-new", dict(APP_LABELS), metrics_text=metrics("n", 0)))

    threading.Thread(target=load_starts, daemon=True).start()
    proc = cli(kubeconfig, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--loadgen-selector",
               f"batch.kubernetes.io/job-name={JOB}", "--baseline", "-", "--expect-pods", "2",
               "--no-keepalive", "--json", "--timeout", "40", stdin=base.stdout)  # fmt: skip
    rep = json.loads(proc.stdout)
    assert rep["resources"]["note"].startswith("sampled while the load generator ran"), rep
    by_name = {p["name"]: p for p in rep["pods"]}
    for name in names:
        assert by_name[name]["resources"]["cpu_peak_m"] == 180.0
        assert by_name[name]["resources_idle"]["cpu_mean_m"] == 2.0
    assert rep["pods_changed"] == {"joined": ["articles-new"], "left": []}
    assert any("joined articles-new" in n for n in rep["notes"])
    table = cli(kubeconfig, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--loadgen-selector",
                f"batch.kubernetes.io/job-name={JOB}", "--baseline", "-", "--no-keepalive",
                "--timeout", "20", stdin=base.stdout).stdout  # fmt: skip
    assert "idle cpu m" in table


def test_top_shows_usage_now_beside_the_idle_baseline(fake: FakeKube, kubeconfig: str, tmp_path):
    names = fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 2)
    for name in names:
        fake.pods[name].cpu = "2m"
    base = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL)
    path = tmp_path / "baseline.json"
    path.write_text(base.stdout)
    for name in names:
        fake.pods[name].cpu = "150m"
    proc = cli(kubeconfig, "top", "-n", NS, "-l", SEL, "--baseline", str(path))
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert "idle cpu m" in header
    for name in names:
        [row] = [r for r in rows if r.startswith(name)]
        assert "150.0/150.0" in row and row.split()[-2] == "2.0"
    as_json = json.loads(cli(kubeconfig, "top", "-n", NS, "-l", SEL, "--baseline", str(path),
                             "--json").stdout)  # fmt: skip
    assert {r["resources_idle"]["cpu_mean_m"] for r in as_json["pods"]} == {2.0}


def test_pods_that_join_or_leave_during_the_run_are_reported_not_tested(
    fake: FakeKube, kubeconfig: str
):
    """A replica change mid-run (HPA scale-up, scale-down): the pod that joined took only part
    of the load, the one leaving got nothing after it left the endpoints; neither may turn a
    fair split of the pods that served throughout into `imbalanced`."""
    names = fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 3)
    leaving = Pod("articles-old", dict(APP_LABELS), metrics_text=metrics("old", 0))
    fake.add_pod(leaving)
    base = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--expect-ready", "4")
    assert base.returncode == 0, base.stderr
    leaving.deleted_at = time.monotonic()  # scale-down: terminating, out of the endpoints
    for name, served in zip(names, (330, 340, 310), strict=True):
        fake.pods[name].metrics_text = metrics(name, served)
    fake.add_pod(Pod("articles-hpa", dict(APP_LABELS), metrics_text=metrics("hpa", 20)))
    proc = cli(kubeconfig, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--baseline", "-",
               "--keepalive", "--connections", "100", "--expect-pods", "4", "--json",
               "--timeout", "20", stdin=base.stdout)  # fmt: skip
    rep = json.loads(proc.stdout)
    assert (proc.returncode, rep["verdict"]) == (0, "balanced"), rep["reason"]
    assert sorted(p["name"] for p in rep["pods"]) == sorted(names)
    assert rep["pods_changed"]["joined"] == ["articles-hpa"]
    notes = " ".join(rep["notes"])
    assert "articles-hpa joined during the run (20 requests): not in the test" in notes
    assert "articles-old was leaving" in notes
    # 100 connections over 1000 requests, 980 of them on the tested pods: 98 units.
    assert rep["distribution"]["units_total"] == 98


def test_snapshot_waits_for_a_rollout_to_settle(fake: FakeKube, kubeconfig: str):
    """3 Ready pods are not enough while an old one is still terminating (a rollout)."""
    fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 3)
    old = Pod("articles-old", dict(APP_LABELS), metrics_text=metrics("old", 0))
    old.deleted_at = time.monotonic()
    fake.add_pod(old)
    stuck = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--expect-ready", "3",
                "--timeout", "4")  # fmt: skip
    assert stuck.returncode == 2
    assert "others still starting or leaving" in stuck.stderr and "articles-old" in stuck.stderr

    def gone() -> None:
        time.sleep(2.0)
        with fake.lock:
            del fake.pods["articles-old"]

    threading.Thread(target=gone, daemon=True).start()
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--expect-ready", "3",
               "--timeout", "20")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "articles-old" not in json.loads(proc.stdout)["pods"]


def test_idle_wait_and_readings_from_before_the_load(fake: FakeKube, kubeconfig: str):
    """The snapshot waits for metrics-server's first figure of a new pod; verify leaves out
    readings older than its start (a start-up reading is not usage under the load)."""
    names = fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 2)
    fake.pods[names[1]].metrics_after = 3.0  # not scraped yet, as just after a rollout
    base = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--idle-wait", "15")
    assert base.returncode == 0, base.stderr
    assert set(json.loads(base.stdout)["resources_idle"]["pods"]) == set(names)
    fake.pods[names[0]].metrics_stamp = "2020-01-01T00:00:00Z"  # an old reading
    for name in names:
        fake.pods[name].metrics_text = metrics(name, 100)
    proc = cli(kubeconfig, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--baseline", "-",
               "--no-keepalive", "--json", "--timeout", "10", stdin=base.stdout)  # fmt: skip
    rep = json.loads(proc.stdout)
    rows = {p["name"]: p for p in rep["pods"]}
    assert rows[names[0]]["resources"] is None and rows[names[1]]["resources"]["samples"] >= 1
    assert "left out" in rep["resources"]["note"]


def test_the_idle_baseline_is_not_a_start_up_reading(fake: FakeKube, kubeconfig: str):
    """A reading whose 15 s window began before the pod was Ready covers its start-up (on the
    real cluster: 22-26m against 0.8m idle), so the idle baseline leaves it out."""
    names = fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 0)] * 2)
    fake.pods[names[0]].created -= 100.0  # Ready long ago: its readings are idle readings
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--idle-wait", "3")
    assert proc.returncode == 0, proc.stderr
    idle = json.loads(proc.stdout)["resources_idle"]["pods"]
    assert names[0] in idle and names[1] not in idle
