"""A real Prometheus (Debian's package) on a free loopback port, with its own config and data
directory; never the system service. Plus the two HTTP API calls the tests make."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lg_procs import free_port, stop


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


@dataclass(frozen=True)
class Target:
    address: str  # host:port
    labels: Mapping[str, str]


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen
    log: Path

    def query(self, expr: str, at: float) -> list[dict]:
        """Instant query: [{'metric': {...}, 'value': [t, '1.5']}, ...]."""
        return self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
        return self._get("/api/v1/query_range", params)["result"]

    def targets_up(self) -> dict[str, str]:
        data = self._get("/api/v1/targets", {"state": "active"})
        return {t["scrapeUrl"]: t["health"] for t in data["activeTargets"]}

    def _get(self, path: str, params: Mapping[str, str]) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as err:  # Prometheus explains a bad query in the body
            detail = err.read().decode()[:500]
            raise AssertionError(f"{path} {params}: {err.code} {detail}") from None
        assert body["status"] == "success", body
        return body["data"]


def static_job(
    name: str, targets: Sequence[Target], honor_labels: bool = False, **extra: Any
) -> dict:
    """One scrape job over fixed targets; `extra` adds fields such as scheme or tls_config."""
    return {
        "job_name": name,
        "honor_labels": honor_labels,
        "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in targets],
        **extra,
    }


def config(jobs: Sequence[dict], interval: str) -> dict:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": list(jobs),
    }


@contextlib.contextmanager
def running(jobs: Sequence[dict], interval: str) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    assert binary, "prometheus is not installed (scripts/install-tools.sh installs it)"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mon-prom-") as tmp:
        cfg = Path(tmp) / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config(jobs, interval)))
        log = Path(tmp) / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={cfg}",
                    f"--storage.tsdb.path={Path(tmp) / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        prom = Prometheus(f"http://127.0.0.1:{port}", proc, log)
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"prometheus exited:\n{log.read_text()[-2000:]}")
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(prom.url + "/-/ready", timeout=1) as resp,
                ):
                    if resp.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus not ready:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            yield prom
        finally:
            stop(proc)
