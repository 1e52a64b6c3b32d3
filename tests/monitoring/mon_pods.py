"""Three real app processes as "pods" on loopback, restarted when they die (as the kubelet
restarts a container), and a stand-in for the kubelet's cAdvisor endpoint and kube-state-metrics.

The stand-in publishes, under the metric names and labels those two use in a cluster, what the
real processes do: CPU seconds and resident memory of each pod's process group from /proc, the
supervisor's restart count, and how many pods answer /readyz. Only the source differs from a
cluster; the dashboard's expressions over them run unchanged in a real Prometheus.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lg_procs import APP_DIR, free_port, stop, wait_http
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
RESTART_DELAY_SECONDS = 3.0  # the kubelet's first back-off is 10 s; 3 keeps the test short
CONTAINER = "articles"
DEPLOYMENT = "articles"


@dataclass
class Pod:
    name: str
    port: int
    metrics_dir: Path
    metrics_port: int = 0  # /metrics is served here only, as in the pod
    proc: subprocess.Popen | None = None
    restarts: int = 0
    died_at: float | None = None  # monotonic time the supervisor or kill() saw it die

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"


def _group_stats(pgid: int) -> tuple[float, int]:
    """(CPU seconds, resident bytes) of every live process in the group, plus what the group
    leader collected from children it reaped."""
    cpu_ticks, rss_pages = 0, 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15, cutime 16,
        # cstime 17, rss 24 (proc(5)).
        if int(fields[2]) != pgid:
            continue
        cpu_ticks += int(fields[11]) + int(fields[12])
        if int(entry.name) == pgid:
            cpu_ticks += int(fields[13]) + int(fields[14])
        rss_pages += int(fields[21])
    return cpu_ticks / CLOCK_TICKS, rss_pages * PAGE_SIZE


def group_stats(pod: Pod) -> tuple[float, int] | None:
    proc = pod.proc
    if proc is None or proc.poll() is not None:
        return None
    return _group_stats(proc.pid)


def ready(pod: Pod) -> bool:
    try:
        with urllib.request.urlopen(pod.url + "/readyz", timeout=0.5) as resp:
            return resp.status == 200
    except OSError:
        return False


class Cluster:
    """The pods, their supervisor thread and the stand-in exporter."""

    def __init__(self, namespace: str, names: list[str], tmp: Path) -> None:
        self.namespace = namespace
        self.pods = [Pod(n, free_port(), tmp / n, free_port()) for n in names]
        self.events: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def start(self) -> None:
        for pod in self.pods:
            pod.metrics_dir.mkdir(parents=True, exist_ok=True)
            self._launch(pod)
        for pod in self.pods:
            wait_http(pod.url + "/readyz", proc=pod.proc)
        self._thread.start()

    def _launch(self, pod: Pod) -> None:
        env = dict(os.environ)
        env.update(
            HOST="127.0.0.1",
            PORT=str(pod.port),
            METRICS_PORT=str(pod.metrics_port),
            POD_NAME=pod.name,
            WEB_CONCURRENCY="1",
            THREADS="8",
            DRAIN_SECONDS="0",
            GRACEFUL_TIMEOUT="2",
            PROMETHEUS_MULTIPROC_DIR=str(pod.metrics_dir),  # like the pod's /tmp emptyDir
        )
        pod.proc = subprocess.Popen(
            [sys.executable, "-m", "articles"],
            cwd=APP_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """SIGKILL a pod's whole process group, as an OOM kill or a crash would."""
        pod = next(p for p in self.pods if p.name == name)
        assert pod.proc is not None
        with self._lock:
            os.killpg(pod.proc.pid, signal.SIGKILL)
            pod.proc.wait(10)
            pod.died_at = time.monotonic()
            self.events.append((time.time(), f"killed {name}"))

    def _supervise(self) -> None:
        while not self._stop.wait(0.1):
            for pod in self.pods:
                with self._lock:
                    dead = pod.proc is not None and pod.proc.poll() is not None
                    if not dead:
                        continue
                    if pod.died_at is None:
                        pod.died_at = time.monotonic()
                    if time.monotonic() - pod.died_at < RESTART_DELAY_SECONDS:
                        continue
                    self._launch(pod)
                    pod.restarts += 1
                    pod.died_at = None
                    self.events.append((time.time(), f"restarted {pod.name}"))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for pod in self.pods:
            if pod.proc is not None:
                stop(pod.proc)

    def collect(self):
        """The stand-in's metrics, computed when Prometheus scrapes."""
        labels = ["namespace", "pod", "container"]
        cpu = CounterMetricFamily(
            "container_cpu_usage_seconds_total", "CPU seconds of the container", labels=labels
        )
        memory = GaugeMetricFamily(
            "container_memory_working_set_bytes", "Working set of the container", labels=labels
        )
        restarts = CounterMetricFamily(
            "kube_pod_container_status_restarts_total", "Container restarts", labels=labels
        )
        with self._lock:
            pods = list(self.pods)
            for pod in pods:
                key = [self.namespace, pod.name, CONTAINER]
                restarts.add_metric(key, pod.restarts)
                stats = group_stats(pod)
                if stats is not None:  # a dead container has no cgroup, so no series
                    cpu.add_metric(key, stats[0])
                    memory.add_metric(key, stats[1])
        deployment = [self.namespace, DEPLOYMENT]
        ready_count = GaugeMetricFamily(
            "kube_deployment_status_replicas_ready",
            "Ready replicas",
            labels=["namespace", "deployment"],
        )
        ready_count.add_metric(deployment, sum(ready(p) for p in pods))
        desired = GaugeMetricFamily(
            "kube_deployment_spec_replicas", "Desired replicas", labels=["namespace", "deployment"]
        )
        desired.add_metric(deployment, len(pods))
        yield from (cpu, memory, restarts, ready_count, desired)


class _Standin(Collector):
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def collect(self):
        return self.cluster.collect()


@dataclass
class Running:
    cluster: Cluster
    standin_port: int


@contextlib.contextmanager
def running(namespace: str, names: list[str]) -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="mon-pods-") as tmp:
        cluster = Cluster(namespace, names, Path(tmp))
        registry = CollectorRegistry()
        registry.register(_Standin(cluster))
        port = free_port()
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        try:
            cluster.start()
            yield Running(cluster, port)
        finally:
            cluster.stop()
            server.shutdown()
            server.server_close()
            thread.join(5)
