"""Outputs of this branch's `python -m loadgen` recorded on the real one-node Kubernetes 1.35
cluster (kube-proxy iptables, kube-router, metrics-server; namespace h-i9, 3 app pods of the
stack's image, a 3-pod fortio Job `-c 100 -n 1000 -qps 20`), fed through the stack.

- real-cluster-snapshot.json: `snapshot --expect-ready 3 --idle-wait 60` after a rollout
- real-cluster-verify-none.json: `verify --in-cluster` during the Job, sessionAffinity None
- real-cluster-verify-sticky.json: the same with sessionAffinity ClientIP (2000/1000/0)
- real-cluster-verify-rbac.json: with a ServiceAccount whose Role allows pods/proxy on two
  of the three pods (the third answers 403)
- real-cluster-verify-scaleup.json: the Deployment scaled from 3 to 4 pods 15 s into the load
  (recorded before a duplicate "new since the baseline" note was dropped)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from components import offline

FIXTURES = Path(__file__).with_name("fixtures")
COMMAND = "command:local:Command"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"real-cluster-{name}.json").read_text())


def through_the_stack(snapshot: str, verify: str) -> offline.ProgramRun:
    def outputs(rec: offline.RecordedResource) -> Mapping[str, Any]:
        out = dict(offline.realistic_outputs(rec, preview=False))
        if rec.type == COMMAND:
            out["stdout"] = snapshot if rec.name.endswith("-snapshot") else verify
        return out

    return offline.run_program(offline.stack_config("dev"), stack="dev", fake_outputs=outputs)


@pytest.mark.parametrize(
    "case", ["verify-none", "verify-sticky", "verify-rbac", "verify-scaleup"]
)
def test_recorded_reports_become_the_stack_outputs(case: str) -> None:
    report = recorded(case)
    run = through_the_stack(json.dumps(recorded("snapshot")), json.dumps(report))
    # The program adds whose metrics the CPU/memory figures are (components/metrics_plan.py).
    in_use = run.outputs["metricsServer"]["inUse"]
    assert run.outputs["loadDistribution"] == {**report, "metricsServer": in_use}
    fortio = report.get("fortio") or {}
    assert run.outputs["loadTest"]["total"] == fortio.get("total", report.get("total"))


def test_what_the_real_cluster_showed() -> None:
    none, sticky, rbac = (recorded(f"verify-{c}") for c in ("none", "sticky", "rbac"))
    assert (none["verdict"], none["exit_code"]) == ("balanced", 0)
    # Usage under the load, beside the idle baseline taken after start-up: higher for every pod.
    assert none["resources"]["note"].startswith("sampled while the load generator ran")
    for pod in none["pods"]:
        assert pod["resources"]["cpu_peak_m"] > pod["resources_idle"]["cpu_mean_m"], pod
    # The 2000/1000/0 with ClientIP: sticky, not imbalanced.
    assert (sticky["verdict"], sticky["exit_code"]) == ("sticky", 0)
    assert sorted(p["requests"] for p in sticky["pods"]) == [0, 1000, 2000]
    # One pod's proxy forbidden: unverifiable, that pod named, not "got no traffic".
    assert (rbac["verdict"], rbac["exit_code"]) == ("unverifiable", 2)
    assert len(rbac["unreadable_pods"]) == 1 and rbac["unreadable_pods"][0] in rbac["reason"]
    assert "403" in rbac["reason"]


def test_a_pod_that_joined_during_the_load_was_reported_and_left_out() -> None:
    report = recorded("verify-scaleup")
    assert (report["verdict"], report["exit_code"]) == ("balanced", 0)
    [joined] = report["pods_changed"]["joined"]
    assert joined not in {p["name"] for p in report["pods"]}
    assert any(f"{joined} joined during the run" in n for n in report["notes"])
