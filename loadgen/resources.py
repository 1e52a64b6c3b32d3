"""Pod CPU and memory from the metrics API (metrics.k8s.io, served by metrics-server), as the
original project watched them with `kubectl top pods`.

metrics-server refreshes each pod's figures once per scrape (15-60 s); polling faster only
returns the same sample again, so samples are de-duplicated by their timestamp.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from loadgen.kube import KubeClient, KubeError, KubeStatusError, parse_cpu, parse_memory


@dataclass
class PodUsage:
    cpu_m: list[float] = field(default_factory=list)
    memory_mib: list[float] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def summary(self) -> dict:
        def mean(v: list[float]) -> float | None:
            return round(sum(v) / len(v), 1) if v else None

        return {
            "cpu_peak_m": round(max(self.cpu_m), 1) if self.cpu_m else None,
            "cpu_mean_m": mean(self.cpu_m),
            "memory_peak_mib": round(max(self.memory_mib), 1) if self.memory_mib else None,
            "memory_mean_mib": mean(self.memory_mib),
            "samples": len(self.cpu_m),
        }


def _window_start(item: dict) -> str:
    """When the reading's measurement window began, as ISO UTC ("" when unknown)."""
    stamp, window = str(item.get("timestamp") or ""), str(item.get("window") or "0s")
    try:
        end = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")
        seconds = float(window.rstrip("s"))
    except ValueError:
        return ""
    return (end - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Sampler:
    """Polls pod metrics; remembers whether the API exists and why not."""

    def __init__(
        self, client: KubeClient, namespace: str, selector: str, since: str = ""
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.selector = selector
        # ISO time (UTC, "...Z"): readings metrics-server took before it are skipped (e.g. a
        # pod's start-up reading, still served when the load begins).
        self.since = since
        self.skipped_before = 0
        # Per pod (ISO UTC): leave out readings whose window began before this, e.g. the
        # moment the pod became Ready, so an idle baseline is not its start-up burst.
        self.window_after: dict[str, str] = {}
        self.pods: dict[str, PodUsage] = {}
        self.available: bool | None = None
        self.problem = ""
        self.polls = 0
        self.first: float | None = None
        self.last: float | None = None

    def sample(self) -> bool:
        """One poll. False (and no more polling) once the metrics API is known absent."""
        if self.available is False:
            return False
        try:
            items = self.client.pod_metrics(self.namespace, self.selector)
        except KubeStatusError as exc:
            if exc.status == 401:
                raise  # the credentials are bad for everything, not just metrics
            if exc.status in (404, 503, 403):
                self.available = False
                self.problem = (
                    f"metrics API (metrics.k8s.io) not available: {exc}; install "
                    "metrics-server (minikube: `minikube addons enable metrics-server`)"
                )
                return False
            self.problem = f"metrics API error: {exc}"
            return True
        except KubeError as exc:
            self.problem = f"metrics API error: {exc}"
            return True
        self.available = True
        self.polls += 1
        now = time.time()
        self.first = self.first or now
        self.last = now
        for item in items:
            meta = item.get("metadata") or {}
            name = meta.get("name", "")
            stamp = str(item.get("timestamp") or now)
            if self.since and item.get("timestamp") and stamp < self.since:
                self.skipped_before += 1  # same fixed ISO format: string order is time order
                continue
            if name in self.window_after and _window_start(item) < self.window_after[name]:
                self.skipped_before += 1
                continue
            usage = self.pods.setdefault(name, PodUsage())
            if stamp in usage.seen:
                continue
            usage.seen.add(stamp)
            try:
                cpu = sum(parse_cpu(c["usage"]["cpu"]) for c in item.get("containers") or [])
                mem = sum(parse_memory(c["usage"]["memory"]) for c in item.get("containers") or [])
            except (KeyError, TypeError, ValueError):
                continue
            usage.cpu_m.append(cpu)
            usage.memory_mib.append(mem)
        return True

    def summary(self, when: str) -> dict:
        """`when` says honestly what the samples cover (during the load, after it, ...)."""
        if self.available is False or (self.available is None and self.problem):
            return {"available": False, "note": self.problem, "pods": {}}
        if self.available is None:
            return {"available": False, "note": "metrics API was not sampled", "pods": {}}
        note = f"{when}; {self.polls} poll{'s' if self.polls != 1 else ''}"
        if self.first is not None and self.last is not None and self.last > self.first:
            note += f" over {self.last - self.first:.0f}s"
        note += " (metrics-server refreshes every 15-60s; duplicates dropped"
        if self.since:
            note += f"; readings older than {self.since} left out"
        note += ")"
        if self.problem:
            note += f"; last problem: {self.problem}"
        return {
            "available": True,
            "note": note,
            "pods": {name: u.summary() for name, u in sorted(self.pods.items())},
        }
