"""snapshot / verify --in-cluster / top against the fake Kubernetes API over real HTTP, with
the pod proxy reaching real app processes, and the stack's exact two-step flow."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_kube import FakeKube, Pod, write_kubeconfig
from lg_procs import (
    FORTIO,
    RANDOM_WEIGHT,
    App,
    app_servers,
    free_port,
    haproxy,
    run_cli,
    run_fortio,
)

from loadgen.http_load import run_load

pytestmark = pytest.mark.slow
NS = "selfheal-lb-dev"
APP_LABELS = {"app.kubernetes.io/name": "articles", "app.kubernetes.io/instance": "dev"}
SEL = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"
JOB = "articles-loadgen-1a2b"
JOB_SEL = f"batch.kubernetes.io/job-name={JOB}"
FIXTURE = (Path(__file__).with_name("fixtures") / "fortio-1.68.2-keepalive.log").read_text()


def metrics(pod: str, served: int, probes: int = 40) -> str:
    return (
        "# TYPE articles_http_requests_total counter\n"
        f'articles_http_requests_total{{method="GET",pod="{pod}",route="/article<int:article_id>",'
        f'status="200"}} {served}.0\n'
        f'articles_http_requests_total{{method="GET",pod="{pod}",route="/healthz",'
        f'status="200"}} {probes}.0\n'
    )


@pytest.fixture(scope="module")
def apps() -> Iterator[list[App]]:
    with app_servers(["k-a", "k-b", "k-c"]) as started:
        yield started


def cli(
    kubeconfig: str, *args: str, stdin: str | None = None, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    # Through KUBECONFIG, as a user or the stack would have it set.
    return run_cli(list(args), stdin=stdin, timeout=timeout, env={"KUBECONFIG": kubeconfig})


def verify_in_cluster(kubeconfig: str, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    """`verify --in-cluster` on the test namespace and the app selector (short flags)."""
    return cli(kubeconfig, "verify", "--in-cluster", "-n", NS, "-l", SEL, *args, **kwargs)


def job_pod(log: str, finish_after: float = 0.0) -> Pod:
    return Pod(
        f"{JOB}-x7k2p",
        {"batch.kubernetes.io/job-name": JOB},
        log=log,
        owner_kind="Job",
        owner_name=JOB,
        finish_after=finish_after,
    )


def test_stack_flow_snapshot_fortio_verify_with_real_apps(
    apps: list[App], fake: FakeKube, kubeconfig: str
) -> None:
    """The two commands the stack runs, around a real fortio run through HAProxy to the real
    apps; the fake API proxies /metrics to those apps and serves fortio's output as the Job
    pod's log."""
    if not FORTIO.exists():
        pytest.skip("fortio not installed (make tools)")
    fake.add_deployment("articles", APP_LABELS, backends=[a.backend for a in apps])
    snap = cli(kubeconfig, "snapshot", "--namespace", NS, "--selector", SEL, "--timeout", "20")
    assert snap.returncode == 0, snap.stderr
    baseline = json.loads(snap.stdout)
    assert baseline["kind"] == "loadgen-snapshot" and len(baseline["pods"]) == 3

    with haproxy([(a.name, a.port, RANDOM_WEIGHT) for a in apps], balance="random(1)") as url:
        run = run_fortio(url + "/article1")
    assert run.returncode == 0
    fake.add_pod(job_pod(run.stdout))
    fake.requests.clear()

    proc = cli(
        kubeconfig,
        "verify",
        "--in-cluster",
        "--namespace",
        NS,
        "--selector",
        SEL,
        "--loadgen-selector",
        JOB_SEL,
        "--baseline",
        "-",
        "--connections",
        "30",
        "--keepalive",
        "--expect-pods",
        "3",
        "--alpha",
        "0.001",
        "--timeout",
        "20",
        "--json",
        stdin=snap.stdout,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["verdict"] == "balanced"
    assert rep["fortio"]["total"] == 600 and rep["fortio"]["errors"] == 0
    assert rep["fortio"]["qps"] > 0 and rep["fortio"]["latency_ms"]["p99"] > 0
    # The pods' own counters (baseline subtracted) add up to exactly what fortio sent.
    assert sum(p["requests"] for p in rep["pods"]) == 600
    # And each of those requests counted exactly one article view (loadgen/consistency.py).
    assert rep["consistency"]["verdict"] == "consistent", rep["consistency"]
    assert rep["consistency"]["recorded"] == 600
    assert rep["distribution"]["unit"] == "connection"
    assert rep["distribution"]["units_total"] == 30
    assert rep["resources"]["available"] is True
    assert all(p["resources"]["cpu_peak_m"] == 25.0 for p in rep["pods"])
    # Everything went through the API: pod proxy and log endpoints were used.
    assert fake.calls("GET", ":9090/proxy/metrics") == 3
    assert fake.calls("GET", f"/pods/{JOB}-x7k2p/log") == 1


def test_imbalanced_counters_exit_1_and_report_only_exit_0(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment(
        "articles",
        APP_LABELS,
        metrics_texts=[metrics("a", 600), metrics("b", 200), metrics("c", 200)],
    )
    args = [
        "verify",
        "--in-cluster",
        "-n",
        NS,
        "-l",
        SEL,
        "--no-keepalive",
        "--expect-pods",
        "3",
        "--json",
        "--timeout",
        "10",
    ]
    proc = cli(kubeconfig, *args)
    assert proc.returncode == 1, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["verdict"] == "imbalanced"
    assert "no --baseline" in " ".join(rep["notes"])
    assert sorted(p["requests"] for p in rep["pods"]) == [200, 200, 600]  # probes excluded
    assert cli(kubeconfig, *args, "--report-only").returncode == 0


def test_baseline_is_subtracted(fake: FakeKube, kubeconfig: str, tmp_path: Path) -> None:
    names = fake.add_deployment(
        "articles",
        APP_LABELS,
        metrics_texts=[metrics("a", 1100), metrics("b", 1000), metrics("c", 1000)],
    )
    base = {
        "kind": "loadgen-snapshot",
        "version": 1,
        "pods": {
            names[0]: {"served": 1000, "uid": ""},
            names[1]: {"served": 900, "uid": ""},
            names[2]: {"served": 900, "uid": ""},
        },
    }
    path = tmp_path / "base.json"
    path.write_text(json.dumps(base))
    proc = verify_in_cluster(
        kubeconfig,
        "--no-keepalive",
        "--baseline",
        str(path),
        "--json",
        "--timeout",
        "10",
    )
    assert proc.returncode == 0, proc.stderr
    assert [p["requests"] for p in json.loads(proc.stdout)["pods"]] == [100, 100, 100]


def test_the_report_names_each_pods_node_and_how_many_nodes_served(
    fake: FakeKube, kubeconfig: str
) -> None:
    """Pods as the API lists them (spec.nodeName): two of three on one node. The baseline
    records each pod's node, the report names it per pod, counts the nodes that served and
    says so in the table and the summary line."""
    on = ["selfheal-lb-node", "selfheal-lb-node2", "selfheal-lb-node2"]
    names = fake.add_deployment(
        "articles",
        APP_LABELS,
        metrics_texts=[metrics("a", 300), metrics("b", 340), metrics("c", 320)],
        nodes=on,
    )
    snap = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--timeout", "10")
    assert snap.returncode == 0, snap.stderr
    assert {n: p["node"] for n, p in json.loads(snap.stdout)["pods"].items()} == dict(
        zip(names, on, strict=True)
    )
    args = ("--no-keepalive", "--expect-pods", "3", "--timeout", "10")
    proc = verify_in_cluster(kubeconfig, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert {p["name"]: p["node"] for p in rep["pods"]} == dict(zip(names, on, strict=True))
    assert rep["nodes_served"] == 2
    assert [(n["name"], n["requests"]) for n in rep["nodes"]] == [
        ("selfheal-lb-node", 300),
        ("selfheal-lb-node2", 660),
    ]
    assert proc.stderr.strip().endswith("(2 nodes served traffic)")
    table = verify_in_cluster(kubeconfig, *args).stdout
    assert (
        "nodes: 2 served traffic: selfheal-lb-node (1 pod, 300 requests), "
        "selfheal-lb-node2 (2 pods, 660 requests)"
    ) in table.splitlines()


def test_missing_pod_with_expect_3_exit_1(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment(
        "articles", APP_LABELS, metrics_texts=[metrics("a", 500), metrics("b", 500)]
    )
    proc = verify_in_cluster(
        kubeconfig,
        "--no-keepalive",
        "--expect-pods",
        "3",
        "--timeout",
        "10",
    )
    assert proc.returncode == 1
    assert "got no traffic" in proc.stderr


def test_verify_waits_for_running_fortio_and_samples_meanwhile(
    fake: FakeKube, kubeconfig: str
) -> None:
    fake.add_deployment(
        "articles", APP_LABELS, metrics_texts=[metrics("a", 80), metrics("b", 80), metrics("c", 80)]
    )
    fake.add_pod(job_pod(FIXTURE, finish_after=2.5))
    start = time.monotonic()
    proc = verify_in_cluster(
        kubeconfig,
        "--loadgen-selector",
        JOB_SEL,
        "--expect-pods",
        "3",
        "--json",
        "--timeout",
        "20",
    )
    assert time.monotonic() - start >= 2.0
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert "while the load generator ran" in rep["resources"]["note"]
    assert rep["fortio"]["connections"] == 12  # keep-alive taken from fortio's own result
    assert rep["distribution"]["units_total"] == 12
    assert fake.calls("GET", "metrics.k8s.io") >= 2


def test_metrics_api_absent_is_reported_and_the_verdict_stands(
    fake: FakeKube, kubeconfig: str
) -> None:
    fake.metrics_enabled = False
    fake.add_deployment(
        "articles",
        APP_LABELS,
        metrics_texts=[metrics("a", 100), metrics("b", 100), metrics("c", 100)],
    )
    fake.add_pod(job_pod(FIXTURE))
    proc = verify_in_cluster(
        kubeconfig,
        "--loadgen-selector",
        JOB_SEL,
        "--json",
        "--timeout",
        "10",
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["resources"]["available"] is False
    assert "metrics-server" in rep["resources"]["note"]
    assert rep["fortio"]["total"] == 240


def test_transient_api_errors_are_retried(fake: FakeKube, kubeconfig: str) -> None:
    fake.add_deployment(
        "articles",
        APP_LABELS,
        metrics_texts=[metrics("a", 100), metrics("b", 100), metrics("c", 100)],
    )
    fake.fail("GET", "/pods?labelSelector", 503, times=2)
    fake.fail("GET", "/proxy/metrics", 500, times=1)
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--timeout", "10")
    assert proc.returncode == 0, proc.stderr
    # The pod list (not the metrics API's, which the snapshot also reads for the idle baseline).
    assert fake.calls("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector") == 3
    assert fake.calls("GET", "/proxy/metrics") == 4
    assert sum(p["served"] for p in json.loads(proc.stdout)["pods"].values()) == 300


def test_persistent_5xx_gives_up_with_exit_2(fake: FakeKube, kubeconfig: str) -> None:
    fake.fail("GET", "/pods", 500, times=100)
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--timeout", "10")
    assert proc.returncode == 2
    assert "HTTP 500" in proc.stderr and proc.stderr.count("\n") == 1
    assert fake.calls("GET", "/pods") == 4  # one try + three retries


@pytest.mark.parametrize(("status", "words"), [(401, "unauthorized"), (403, "forbidden")])
def test_auth_failures_exit_2_one_line(
    fake: FakeKube, tmp_path: Path, status: int, words: str
) -> None:
    token = "wrong" if status == 401 else fake.token
    if status == 403:
        fake.fail("GET", "/pods", 403, times=10)
    cfg = write_kubeconfig(str(tmp_path / "c"), fake.url, token)
    proc = cli(
        cfg, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--no-keepalive", "--timeout", "10"
    )
    assert proc.returncode == 2
    assert words in proc.stderr and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    paths = [path for _, path, _ in fake.requests]
    assert len(paths) == len(set(paths))  # auth errors are not retried


def test_unreachable_api_exit_2_within_timeout(tmp_path: Path) -> None:
    cfg = write_kubeconfig(str(tmp_path / "c"), f"http://127.0.0.1:{free_port()}", "t")
    start = time.monotonic()
    proc = cli(cfg, "verify", "--in-cluster", "-n", NS, "-l", SEL, "--timeout", "5")
    assert proc.returncode == 2
    assert "cannot reach" in proc.stderr and proc.stderr.count("\n") == 1
    assert time.monotonic() - start < 5 + 5


def test_hanging_api_exit_2_within_timeout(fake: FakeKube, kubeconfig: str) -> None:
    fake.hang("/pods", 30)
    start = time.monotonic()
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--timeout", "3")
    elapsed = time.monotonic() - start
    assert proc.returncode == 2
    assert "did not answer within 3s" in proc.stderr or "timed out" in proc.stderr
    assert elapsed < 3 + 5


def test_kubeconfig_problems_exit_2(fake: FakeKube, kubeconfig: str, tmp_path: Path) -> None:
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL, "--context", "nope")
    assert proc.returncode == 2 and "context 'nope' not found" in proc.stderr
    proc = cli(str(tmp_path / "missing"), "snapshot", "-n", NS, "-l", SEL)
    assert proc.returncode == 2 and "no kubeconfig found" in proc.stderr
    bad = tmp_path / "bad"
    bad.write_text("clusters: [unclosed\n")
    proc = cli(str(bad), "snapshot", "-n", NS, "-l", SEL)
    assert proc.returncode == 2 and "cannot read kubeconfig" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_pods_exit_2(fake: FakeKube, kubeconfig: str) -> None:
    proc = verify_in_cluster(
        kubeconfig,
        "--no-keepalive",
        "--timeout",
        "5",
    )
    assert proc.returncode == 2 and "no pods match" in proc.stderr
    proc = cli(kubeconfig, "snapshot", "-n", NS, "-l", SEL)
    assert proc.returncode == 2 and "no pods match" in proc.stderr


def test_failing_exec_plugin_exit_2(fake: FakeKube, tmp_path: Path) -> None:
    cfg = write_kubeconfig(
        str(tmp_path / "c"),
        fake.url,
        None,
        user={
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": ["-c", "import sys; sys.exit('no login')"],
            }
        },
    )
    proc = cli(cfg, "snapshot", "-n", NS, "-l", SEL, "--timeout", "10")
    assert proc.returncode == 2
    assert "exec plugin" in proc.stderr and "no login" in proc.stderr


def test_hanging_exec_plugin_exit_2_within_timeout(fake: FakeKube, tmp_path: Path) -> None:
    """The client runs an exec plugin without a time limit; the run's --timeout still holds."""
    cfg = write_kubeconfig(
        str(tmp_path / "c"),
        fake.url,
        None,
        user={
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": sys.executable,
                "args": ["-c", "import time; time.sleep(8)"],  # ends by itself after the test
            }
        },
    )
    start = time.monotonic()
    proc = cli(cfg, "snapshot", "-n", NS, "-l", SEL, "--timeout", "2")
    assert proc.returncode == 2
    assert "did not finish within 2s" in proc.stderr and proc.stderr.count("\n") == 1
    assert time.monotonic() - start < 2 + 4
    assert fake.requests == []  # nothing was sent without credentials


def test_top_prints_the_table(fake: FakeKube, kubeconfig: str) -> None:
    names = fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 1)] * 3)
    fake.pods[names[0]].cpu = "250000000n"
    fake.pods[names[0]].memory = "65536Ki"
    proc = cli(kubeconfig, "top", "-n", NS, "-l", SEL, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)["pods"]}
    assert rows[names[0]]["resources"]["cpu_peak_m"] == 250.0
    assert rows[names[0]]["resources"]["memory_peak_mib"] == 64.0
    table = cli(kubeconfig, "top", "-n", NS, "-l", SEL)
    assert names[0] in table.stdout and "250.0/250.0" in table.stdout


def test_top_without_metrics_api_exit_2(fake: FakeKube, kubeconfig: str) -> None:
    fake.metrics_enabled = False
    fake.add_deployment("articles", APP_LABELS, metrics_texts=[metrics("a", 1)])
    proc = cli(kubeconfig, "top", "-n", NS, "-l", SEL)
    assert proc.returncode == 2
    assert "metrics API" in proc.stderr


def test_window_mode_counts_a_running_load(
    apps: list[App], fake: FakeKube, kubeconfig: str
) -> None:
    """By hand during a continuous load: snapshot, watch --window seconds, count the change."""
    fake.add_deployment("articles", APP_LABELS, backends=[a.backend for a in apps])
    stop = threading.Event()
    with haproxy([(a.name, a.port, 1) for a in apps]) as url:
        load = threading.Thread(
            target=run_load,
            kwargs={
                "url": url + "/article1",
                "requests": 10**6,
                "concurrency": 3,
                "keepalive": False,
                "timeout": 2.0,
                "deadline_s": 60.0,
                "stop": stop,
                "interval": 0.005,
            },
        )
        load.start()
        try:
            proc = verify_in_cluster(
                kubeconfig,
                "--window",
                "3",
                "--no-keepalive",
                "--expect-pods",
                "3",
                "--json",
                "--timeout",
                "20",
            )
        finally:
            stop.set()
            load.join(10)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert rep["baseline_taken_at"] is not None
    assert rep["total"] > 100
    assert "observation window" in rep["resources"]["note"]


def test_pod_that_joined_after_the_baseline_with_no_traffic_is_not_counted(
    fake: FakeKube, kubeconfig: str, tmp_path: Path
) -> None:
    names = fake.add_deployment(
        "articles",
        APP_LABELS,
        metrics_texts=[metrics("a", 200), metrics("b", 200), metrics("c", 0)],
    )
    base = {
        "kind": "loadgen-snapshot",
        "version": 1,
        "pods": {names[0]: {"served": 100}, names[1]: {"served": 100}},
    }
    path = tmp_path / "base.json"
    path.write_text(json.dumps(base))
    proc = verify_in_cluster(
        kubeconfig,
        "--no-keepalive",
        "--baseline",
        str(path),
        "--expect-pods",
        "2",
        "--json",
        "--timeout",
        "10",
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert [p["name"] for p in rep["pods"]] == sorted(names[:2])
    assert any("joined during the run (0 requests): not in the test" in n for n in rep["notes"])


def test_bad_baseline_still_prints_a_json_report(fake: FakeKube, kubeconfig: str) -> None:
    """If `snapshot` failed, the stack pipes nothing: verify says why, as JSON and on stderr."""
    proc = verify_in_cluster(
        kubeconfig,
        "--baseline",
        "-",
        "--json",
        "--report-only",
        stdin="",
    )
    assert proc.returncode == 2
    rep = json.loads(proc.stdout)
    assert rep["verdict"] == "unverifiable" and "not JSON" in rep["reason"]
    assert proc.stderr.startswith("loadgen verify: could not verify:")
