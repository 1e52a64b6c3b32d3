"""Fixtures for the ArticleApp / LoadGenerator tests: build one component from dataclass values
under Pulumi mocks (components/offline.run_program) and look at what it registered."""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.offline import OutputFaker, ProgramRun, RecordedResource, run_program  # noqa: E402

PROGRAMS = Path(__file__).resolve().parent / "programs"

APP_CASE: dict[str, Any] = {
    "settings": {
        "replicas": 3,
        "workers": 2,
        "resources": {
            "cpu_request": "100m",
            "cpu_limit": "500m",
            "memory_request": "128Mi",
            "memory_limit": "256Mi",
        },
        "drain_seconds": 5,
        "termination_grace_seconds": 30,
        "service_type": "LoadBalancer",
        "service_port": 8080,
        "session_affinity": "None",
        "pdb_max_unavailable": 1,
        "network_policy": True,
        "ingress_cidrs": ["0.0.0.0/0"],
        "node_loss_toleration_seconds": 5,
        "await_load_balancer": False,
    },
    "autoscaling": {"enabled": True, "min_replicas": 0, "max_replicas": 10, "cpu_utilization": 70},
    "metrics_available": True,
    "namespace": "selfheal-lb-dev",
    "image_ref": "selfheal-lb/articles:3f9a1c2e7b4d",
    "pull_policy": "IfNotPresent",
    "instance": "dev",
}

LOAD_CASE: dict[str, Any] = {
    "load": {
        "mode": "job",
        "pods": 3,
        "connections": 100,
        "requests": 1000,
        "qps": 0,
        "path": "/article1",
        "keepalive": True,
        "timeout_seconds": 5,
        "image": "fortio/fortio:1.68.2",
    },
    "namespace": "selfheal-lb-dev",
    "service_dns": "articles.selfheal-lb-dev.svc.cluster.local",
    "service_port": 8080,
    "instance": "dev",
    "app_pod_labels": {
        "app.kubernetes.io/name": "articles",
        "app.kubernetes.io/instance": "dev",
        "app.kubernetes.io/part-of": "selfheal-lb",
        "app.kubernetes.io/component": "web",
    },
    "network_policy": True,
    "with_baseline": True,
}


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` applied; nested dicts are merged key by key."""
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class ComponentRun:
    run: ProgramRun

    @property
    def resources(self) -> list[RecordedResource]:
        return self.run.resources

    @property
    def outputs(self) -> dict[str, Any]:
        return self.run.outputs

    @property
    def options(self) -> dict[str, dict[str, Any]]:
        return self.run.outputs["options"]

    def kind(self, kind: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.inputs.get("kind") == kind]

    def one(self, kind: str) -> RecordedResource:
        found = self.kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {[r.name for r in found]}"
        return found[0]

    def named(self, name: str) -> RecordedResource:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name}"
        return found[0]


def _run(
    program: str,
    key: str,
    case: dict[str, Any],
    preview: bool,
    fake_outputs: OutputFaker | None,
) -> ComponentRun:
    run = run_program(
        {f"selfheal-lb:{key}": case},
        stack="dev",
        preview=preview,
        fake_outputs=fake_outputs,
        program=PROGRAMS / program,
        project_dir=PROGRAMS,
    )
    return ComponentRun(run)


RunApp = Callable[..., ComponentRun]


@pytest.fixture
def run_app() -> RunApp:
    """run_app(settings={...}, autoscaling={...}, metrics_available=..., ...) → ComponentRun."""

    def run(
        *, preview: bool = False, fake_outputs: OutputFaker | None = None, **overrides: Any
    ) -> ComponentRun:
        return _run("app_program.py", "testApp", merged(APP_CASE, overrides), preview, fake_outputs)

    return run


@pytest.fixture
def run_loadgen() -> RunApp:
    """run_loadgen(load={...}, network_policy=..., ...) → ComponentRun."""

    def run(
        *, preview: bool = False, fake_outputs: OutputFaker | None = None, **overrides: Any
    ) -> ComponentRun:
        case = merged(LOAD_CASE, overrides)
        return _run("loadgen_program.py", "testLoad", case, preview, fake_outputs)

    return run
