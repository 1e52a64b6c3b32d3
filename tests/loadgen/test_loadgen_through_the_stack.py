"""Real `python -m loadgen` output through the stack: the program under mocks gets, as its two
commands' stdout, what the real CLI printed (here against the fake API with fortio's real
output as the Job's log; and the report recorded on a real cluster), and its outputs must be
that report and fortio's figures from it. No hand-written report stands in for the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fake_kube import FakeKube, Pod

from components import offline
from components.loadgen import RUN_ANNOTATION
from loadgen import fortio

pytestmark = pytest.mark.slow  # loadgen CLI processes against a fake API, bounded in seconds

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("fixtures")
NS = "selfheal-lb-dev"
COMMAND = "command:local:Command"
JOB = "kubernetes:batch/v1:Job"


def stack_run(snapshot_stdout: str, verify_stdout: str) -> offline.ProgramRun:
    def outputs(rec: offline.RecordedResource) -> Mapping[str, Any]:
        out = dict(offline.realistic_outputs(rec, preview=False))
        if rec.type == COMMAND:
            out["stdout"] = snapshot_stdout if rec.name.endswith("-snapshot") else verify_stdout
        return out

    return offline.run_program(offline.stack_config("dev"), stack="dev", fake_outputs=outputs)


def words_after(command: str, flag: str) -> str:
    words = command.split()
    return words[words.index(flag) + 1]


def run_as_the_stack(command: str, kubeconfig: str, stdin: str | None = None):
    """The command string exactly as the stack registers it, through /bin/sh in the project
    directory (its prefix finds the project's venv python, as under `pulumi up`)."""
    return subprocess.run(
        ["/bin/sh", "-c", command], cwd=ROOT, input=stdin, capture_output=True, text=True,
        timeout=120, env={**os.environ, "KUBECONFIG": kubeconfig},
    )  # fmt: skip


def test_the_stacks_own_commands_run_for_real_and_their_output_becomes_the_outputs(
    fake: FakeKube, kubeconfig: str
) -> None:
    first = stack_run("", "{}")
    snap_cmd = first.named("verification-snapshot").inputs["create"]
    labels = dict(p.split("=", 1) for p in words_after(snap_cmd, "--selector").split(","))
    names = fake.add_deployment("articles", labels, metrics_texts=[""] * 3)

    def serve(counts: tuple[int, ...]) -> None:
        for name, n in zip(names, counts, strict=True):
            fake.pods[name].metrics_text = (
                "# TYPE articles_http_requests_total counter\n"
                f'articles_http_requests_total{{pod="{name}",route="/article1",method="GET",'
                f'status="200"}} {n}.0\n'
            )

    serve((5, 5, 5))
    snap = run_as_the_stack(snap_cmd, kubeconfig)
    assert snap.returncode == 0, snap.stderr
    # The load: fortio 1.68.2's real output (240 requests on 12 keep-alive connections) as
    # the log of the Job pod the stack's verify command selects.
    verify_cmd = stack_run(snap.stdout, "{}").named("verification-verify").inputs["create"]
    job_key, job_name = words_after(verify_cmd, "--loadgen-selector").split("=", 1)
    log = (FIXTURES / "fortio-1.68.2-keepalive.log").read_text()
    fake.add_pod(Pod(f"{job_name}-x", {job_key: job_name}, log=log, owner_kind="Job",
                     owner_name=job_name, finish_after=0.0))  # fmt: skip
    sent = fortio.summarize(fortio.extract_result(log))["total"]
    serve((5 + 80, 5 + 100, 5 + sent - 180))  # whole connections of 20 requests
    check = run_as_the_stack(verify_cmd, kubeconfig, stdin=snap.stdout)
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["verdict"] == "balanced", report["reason"]

    run = stack_run(snap.stdout, check.stdout)
    in_use = run.outputs["metricsServer"]["inUse"]  # added by the program: whose metrics
    assert run.outputs["loadDistribution"] == {**report, "metricsServer": in_use}
    assert run.outputs["loadTest"]["total"] == sent == report["fortio"]["total"]
    assert run.outputs["loadTest"]["p99_ms"] == report["fortio"]["latency_ms"]["p99"]
    # The Job carries the digest of exactly this baseline; verify reads it on stdin.
    job = run.one(JOB).inputs["spec"]["template"]["metadata"]["annotations"][RUN_ANNOTATION]
    assert job == hashlib.sha256(snap.stdout.encode()).hexdigest()[:16]
    assert run.named("verification-verify").inputs["stdin"] == snap.stdout


def test_the_report_recorded_on_a_real_cluster_gives_the_recorded_outputs() -> None:
    """`pulumi stack output --json` after a real `pulumi up` (Kubernetes 1.35): fed the verify
    report it printed there, the program must export that report and the same loadTest."""
    recorded = json.loads((FIXTURES / "real-cluster-stack-outputs-dev-defaults.json").read_text())
    run = stack_run('{"kind": "loadgen-snapshot"}', json.dumps(recorded["loadDistribution"]))
    in_use = run.outputs["metricsServer"]["inUse"]  # added by the program: whose metrics
    assert run.outputs["loadDistribution"] == {
        **recorded["loadDistribution"],
        "metricsServer": in_use,
    }
    assert run.outputs["loadTest"] == recorded["loadTest"]
