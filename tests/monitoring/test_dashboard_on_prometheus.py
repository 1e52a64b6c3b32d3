"""Every PromQL expression of the shipped dashboard, run against a real Prometheus (Debian's
package) that scrapes three real app processes on loopback while fortio loads them through
HAProxy; then one "pod" is SIGKILLed and restarted, as the kubelet would.

Phase A (steady load, 120 requests/s over 6 keep-alive connections): the traffic panels are
checked against what the test reads itself, independently of Prometheus: each app's own
/metrics counters read at two moments, and fortio's measured rate. Phase B (light load): a pod
is killed and restarted, and 404s go to another; restarts, ready replicas and errors must show
it. CPU and memory come from the stand-in for the kubelet's cAdvisor (mon_pods), checked
against /proc readings the test takes at the same moments.

Grafana's $__rate_interval is max(4 x scrape interval, step + scrape interval) = 4 s for the
range queries here (1 s scrapes, 1 s steps); the phase-A checks use the window between the
test's own two readings instead, so both sides measure the same interval.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.image
import mon_panels
import mon_pods
import mon_prom
import pytest
from articles.observability import BUCKETS
from lg_procs import FORTIO, haproxy
from prometheus_client.parser import text_string_to_metric_families

from components import dashboard

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PNG_DIR = ROOT / "build" / "monitoring"
NAMESPACE = "t-monitoring-monitoring"
PODS = ["articles-0", "articles-1", "articles-2"]
PROBE_ROUTES = {"/healthz", "/readyz", "/metrics"}
QPS, CONNECTIONS, SECONDS = 120, 6, 16
KILLED, NOT_FOUND_POD = "articles-2", "articles-0"
RANGE_WINDOW = "4s"

if not mon_prom.prometheus_binary() or not FORTIO.exists():
    pytest.skip(
        "needs prometheus and fortio (make tools / scripts/install-tools.sh installs both)",
        allow_module_level=True,
    )


def fortio(url: str, qps: int, seconds: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(FORTIO), "load", "-json", "-", "-quiet", "-c", str(CONNECTIONS), "-qps", str(qps),
         "-t", f"{seconds}s", "-timeout", "5s", url],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def traffic_counts(pod: mon_pods.Pod) -> float:
    """Requests a pod answered outside probes and scrapes, from its own /metrics."""
    with urllib.request.urlopen(pod.metrics_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "articles_http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels["route"] not in PROBE_ROUTES:
                total += sample.value
    return total


@dataclass
class Reading:
    at: float
    counts: dict[str, float]
    cpu: dict[str, float]
    rss: dict[str, float]


def read_pods(cluster: mon_pods.Cluster) -> Reading:
    at = time.time()
    counts, cpu, rss = {}, {}, {}
    for pod in cluster.pods:
        counts[pod.name] = traffic_counts(pod)
        stats = mon_pods.group_stats(pod)
        assert stats is not None
        cpu[pod.name], rss[pod.name] = stats
    return Reading(at, counts, cpu, rss)


@dataclass
class Scenario:
    first: Reading
    second: Reading
    fortio_a: dict
    start: float
    end: float
    instant: dict[str, list[dict]] = field(default_factory=dict)  # expr -> result at second.at
    final: dict[str, list[dict]] = field(default_factory=dict)  # expr -> result at end
    ranges: dict[str, list[dict]] = field(default_factory=dict)  # expr -> range result
    events: list[tuple[float, str]] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)


def concrete(expr: str, window: str) -> str:
    return expr.replace("$namespace", NAMESPACE).replace("$__rate_interval", window)


def send_not_found(url: str, count: int, pause: float) -> None:
    for i in range(count):
        try:
            urllib.request.urlopen(f"{url}/no-such-page-{i}", timeout=2).read()
        except urllib.error.HTTPError as err:
            assert err.code == 404
        time.sleep(pause)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    queries = dashboard.expressions(dashboard.dashboard_json(NAMESPACE))
    with mon_pods.running(NAMESPACE, PODS) as pods:
        cluster = pods.cluster
        app_targets = [
            mon_prom.Target(f"127.0.0.1:{p.metrics_port}", {"namespace": NAMESPACE, "pod": p.name})
            for p in cluster.pods
        ]
        standin = mon_prom.Target(f"127.0.0.1:{pods.standin_port}", {})
        jobs = [
            # What the PodMonitor or the annotations give: namespace and pod target labels.
            mon_prom.static_job("articles", app_targets),
            # kube-prometheus-stack scrapes the kubelet and kube-state-metrics with honorLabels.
            mon_prom.static_job("kube-standin", [standin], honor_labels=True),
        ]
        servers = [(p.name, p.port, 1) for p in cluster.pods]
        with mon_prom.running(jobs, "1s") as prom, haproxy(servers, check=True) as lb:
            deadline = time.monotonic() + 20
            while set(prom.targets_up().values()) != {"up"} or len(prom.targets_up()) != 4:
                assert time.monotonic() < deadline, prom.targets_up()
                time.sleep(0.5)
            start = time.time()
            # Phase A: steady load; the test's own readings at +4 s and +14 s.
            load = fortio(f"{lb}/article1", QPS, SECONDS)
            time.sleep(4)
            first = read_pods(cluster)
            time.sleep(10)
            second = read_pods(cluster)
            out, _ = load.communicate(timeout=SECONDS + 30)
            fortio_a = json.loads(out[out.index("{") :])
            time.sleep(2)  # the last scrapes of phase A
            # Phase B: light load, a pod killed and restarted, 404s to another pod.
            light = fortio(f"{lb}/article1", 30, 14)
            time.sleep(2)
            cluster.kill(KILLED)
            not_found_pod = next(p for p in cluster.pods if p.name == NOT_FOUND_POD)
            send_not_found(not_found_pod.url, 40, 0.1)
            light.communicate(timeout=60)
            deadline = time.monotonic() + 30
            while not all(mon_pods.ready(p) for p in cluster.pods):
                assert time.monotonic() < deadline, "the killed pod did not come back"
                time.sleep(0.2)
            time.sleep(4)  # scrapes after the recovery
            end = time.time()
            window = f"{round(second.at - first.at)}s"
            run = Scenario(first, second, fortio_a, start, end, events=list(cluster.events))
            for _title, _legend, expr in queries:
                run.instant[expr] = prom.query(concrete(expr, window), second.at)
                run.final[expr] = prom.query(concrete(expr, RANGE_WINDOW), end)
                run.ranges[expr] = prom.query_range(concrete(expr, RANGE_WINDOW), start, end, 1)
    drawn = []
    for spec in dashboard.PANELS:
        series = []
        for q in spec.queries:
            series += mon_panels.series_from(run.ranges[q.expr], q.legend)
        drawn.append(mon_panels.DrawnPanel(spec.title, spec.unit, tuple(series)))
    run.pngs = mon_panels.render(drawn, PNG_DIR, run.events)
    return run


def by_pod(result: list[dict]) -> dict[str, float]:
    return {item["metric"]["pod"]: float(item["value"][1]) for item in result}


def spec_expr(title: str, index: int = 0) -> str:
    return next(p for p in dashboard.PANELS if p.title == title).queries[index].expr


def test_every_expression_ran_and_per_pod_ones_cover_every_pod(scenario):
    queries = dashboard.expressions(dashboard.dashboard_json(NAMESPACE))
    assert len(queries) == len(scenario.instant) == len(scenario.ranges) == 11
    for title, legend, expr in queries:
        result = scenario.instant[expr]  # under the steady load every pod has every series
        if "{{pod}}" in legend:
            assert set(by_pod(result)) == set(PODS), (title, expr, result)
        else:
            assert len(result) == 1, (title, expr, result)
        assert scenario.ranges[expr], (title, expr)


def test_per_pod_request_rates_match_the_apps_own_counters_and_sum_to_the_load(scenario):
    rates = by_pod(scenario.instant[spec_expr("Requests per second by pod")])
    seconds = scenario.second.at - scenario.first.at
    for pod in PODS:
        own = (scenario.second.counts[pod] - scenario.first.counts[pod]) / seconds
        assert rates[pod] == pytest.approx(own, rel=0.05), pod
    load_rate = scenario.fortio_a["ActualQPS"]
    assert load_rate == pytest.approx(QPS, rel=0.05)
    assert sum(rates.values()) == pytest.approx(load_rate, rel=0.05)


def test_shares_are_the_round_robin_split(scenario):
    shares = by_pod(scenario.instant[spec_expr("Share of requests by pod")])
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
    for pod in PODS:  # HAProxy round robin over 6 connections: 2 per pod
        assert shares[pod] == pytest.approx(1 / 3, abs=0.05), shares


def test_latency_quantiles_are_ordered_and_within_what_fortio_saw(scenario):
    p50 = by_pod(scenario.instant[spec_expr("Latency p50 and p99 by pod", 0)])
    p99 = by_pod(scenario.instant[spec_expr("Latency p50 and p99 by pod", 1)])
    # The server's time is part of the client's: its p99 lies at or below the histogram
    # bucket that holds fortio's slowest request (histogram_quantile interpolates in buckets).
    slowest = scenario.fortio_a["DurationHistogram"]["Max"]
    bound = next((b for b in BUCKETS if b >= slowest), BUCKETS[-1])
    for pod in PODS:
        assert 0 < p50[pod] <= p99[pod] <= bound, (pod, p50[pod], p99[pod], slowest)


def test_errors_show_the_404s_and_no_5xx(scenario):
    during_load = by_pod(scenario.instant[spec_expr("Errors per second by pod", 0)])
    assert during_load == dict.fromkeys(PODS, 0.0)
    fives = scenario.ranges[spec_expr("Errors per second by pod", 0)]
    assert all(float(v) == 0 for s in fives for _, v in s["values"])
    fours = {
        s["metric"]["pod"]: max(float(v) for _, v in s["values"])
        for s in scenario.ranges[spec_expr("Errors per second by pod", 1)]
    }
    # 40 requests at about 8/s (0.1 s apart plus the request) to one pod only.
    assert fours[NOT_FOUND_POD] >= 4
    assert all(fours[pod] == 0 for pod in PODS if pod != NOT_FOUND_POD), fours


def test_cpu_and_memory_per_pod_match_proc(scenario):
    cpu = by_pod(scenario.instant[spec_expr("CPU by pod")])
    memory = by_pod(scenario.instant[spec_expr("Memory by pod")])
    seconds = scenario.second.at - scenario.first.at
    for pod in PODS:
        own = (scenario.second.cpu[pod] - scenario.first.cpu[pod]) / seconds
        assert own > 0.005, (pod, own)  # the pods did work under the load
        assert cpu[pod] == pytest.approx(own, rel=0.2, abs=0.01), pod
        assert memory[pod] == pytest.approx(scenario.second.rss[pod], rel=0.15), pod
        assert memory[pod] > 10 * 2**20


def test_restart_and_ready_replicas_show_the_self_healing(scenario):
    restarts = by_pod(scenario.final[spec_expr("Restarts by pod")])
    assert restarts == {pod: (1.0 if pod == KILLED else 0.0) for pod in PODS}
    ready = scenario.ranges[spec_expr("Ready replicas", 0)]
    desired = scenario.ranges[spec_expr("Ready replicas", 1)]
    ready_values = [float(v) for _, v in ready[0]["values"]]
    assert min(ready_values) == 2  # the dip while the killed pod was down
    assert ready_values[0] == 3 and ready_values[-1] == 3  # before, and after the recovery
    assert {float(v) for _, v in desired[0]["values"]} == {3.0}


def test_panels_render_as_non_trivial_pngs(scenario):
    assert len(scenario.pngs) == len(dashboard.PANELS) + 1  # one per panel + the overview
    for path in scenario.pngs:
        assert path.stat().st_size > 8_000, path
        pixels = matplotlib.image.imread(path)[..., :3]
        not_white = (pixels < 0.95).any(axis=-1).mean()
        assert not_white > 0.02 and pixels.std() > 0.05, (path, not_white, pixels.std())
