"""LoadVerification: baseline before the load, check after the Job, run on update and never on
preview, report parsed into outputs, command lines that match the loadgen CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from stack_fixtures import ROOT

from components import offline, verification
from components.settings import LoadSettings, VerifySettings
from components.verification import (
    LoadVerificationArgs,
    load_test_summary,
    parse_report,
    snapshot_command,
    verify_command,
)

COMMAND = "command:local:Command"
JOB = "kubernetes:batch/v1:Job"
# What `verify --json` printed on a real cluster (the stack's loadDistribution there), and the
# loadTest the stack exported from it (tests/loadgen/fixtures/, recorded at f0d1308).
RECORDED = json.loads(
    (ROOT / "tests" / "loadgen" / "fixtures" / "real-cluster-stack-outputs-dev-defaults.json")
    .read_text()
)
REPORT = RECORDED["loadDistribution"]
LOAD = LoadSettings(
    mode="job",
    pods=3,
    connections=100,
    requests=1000,
    qps=0,
    path="/article1",
    keepalive=True,
    timeout_seconds=5,
    image="fortio/fortio:1.68.2",
)
VERIFY = VerifySettings(
    enabled=True, significance=0.01, timeout_seconds=300, fail_on_imbalance=False
)
SELECTOR = "app.kubernetes.io/name=articles,app.kubernetes.io/instance=dev"

PROGRAM = textwrap.dedent(
    """
    import pulumi, pulumi_kubernetes as k8s
    from components.settings import LoadSettings, VerifySettings
    from components.verification import LoadVerification, LoadVerificationArgs
    v = LoadVerification("verification", LoadVerificationArgs(
        verify=VERIFY, load=LOAD, namespace="selfheal-lb-dev", selector=SELECTOR,
        expected_pods=3, triggers=["selfheal-lb/articles:abc", 3]))
    # Stands in for the load generator's Job (made to wait for the baseline).
    job = k8s.batch.v1.Job("fortio", metadata={"namespace": "selfheal-lb-dev"},
        spec={"template": {"spec": {"restart_policy": "Never",
              "containers": [{"name": "fortio", "image": "fortio/fortio:1.69.1"}]}}},
        opts=pulumi.ResourceOptions(depends_on=[v.snapshot]))
    v.after_load(job, job.metadata.apply(lambda m: m["name"]))
    pulumi.export("loadDistribution", v.report)
    pulumi.export("loadTest", v.load_test)
    """
)


def _program() -> str:
    return (
        f"from components.settings import *\nLOAD = {LOAD!r}\nVERIFY = {VERIFY!r}\n"
        f"SELECTOR = {SELECTOR!r}\n{PROGRAM}"
    )


def fake_command_output(preview: bool, report: dict[str, Any] = REPORT):
    """What the command provider returns: nothing during a preview, stdout on update."""

    def fake(rec: offline.RecordedResource) -> dict[str, Any]:
        base = offline.realistic_outputs(rec, preview=preview)
        if rec.type != COMMAND or preview:
            return base
        if rec.name.endswith("-snapshot"):
            return {"stdout": '{"pods": {"articles-a": 17}}', "stderr": ""}
        return {"stdout": json.dumps(report), "stderr": ""}

    return fake


def test_update_runs_baseline_then_load_then_check_and_parses_the_report(run_snippet):
    run = run_snippet(_program(), fake_outputs=fake_command_output(preview=False))
    snapshot = run.named("verification-snapshot")
    check = run.named("verification-verify")
    job = run.one(JOB)
    assert snapshot.urn in job.dependencies, "the load must wait for the baseline"
    assert job.urn in check.dependencies, "the check must wait for the completed Job"
    assert check.inputs["stdin"] == '{"pods": {"articles-a": 17}}'
    assert run.outputs["loadDistribution"] == REPORT
    assert run.outputs["loadTest"] == RECORDED["loadTest"]
    component = run.one("selfheal-lb:verification:LoadVerification")
    assert {snapshot.parent_urn, check.parent_urn} == {component.urn}


def test_preview_registers_both_commands_but_runs_and_parses_nothing(run_snippet, monkeypatch):
    def must_not_parse(stdout):
        raise AssertionError("the report was parsed during a preview")

    monkeypatch.setattr(verification, "parse_report", must_not_parse)
    run = run_snippet(_program(), preview=True, fake_outputs=fake_command_output(preview=True))
    assert {r.name for r in run.of_type(COMMAND)} == {
        "verification-snapshot",
        "verification-verify",
    }
    assert run.outputs["loadDistribution"] == offline.UNKNOWN
    assert run.outputs["loadTest"] == offline.UNKNOWN


def test_commands_hold_nothing_machine_specific(run_snippet):
    first = run_snippet(_program(), preview=True)
    second = run_snippet(_program(), preview=True)
    for rec in first.of_type(COMMAND):
        text = rec.inputs["create"]
        assert str(ROOT) not in text and "/home/" not in text and "/tmp" not in text
        assert "dir" not in rec.inputs and "environment" not in rec.inputs
        assert second.named(rec.name).inputs["create"] == text


def _args(**changes: Any) -> LoadVerificationArgs:
    base = dict(verify=VERIFY, load=LOAD, namespace="ns", selector=SELECTOR, expected_pods=3)
    return LoadVerificationArgs(**{**base, **changes})


def _words(command: str) -> list[str]:
    return command.split(" -m loadgen ", 1)[1].split()


def test_verify_command_line():
    words = _words(verify_command(_args(), "loadgen-job-1a2b3c4d"))
    assert words[:2] == ["verify", "--in-cluster"]
    flags = " ".join(words)
    assert "--loadgen-selector batch.kubernetes.io/job-name=loadgen-job-1a2b3c4d" in flags
    assert "--baseline - --connections 300 --keepalive --expect-pods 3 --alpha 0.01" in flags
    assert "--report-only" in words and "--json" in words and "--context" not in words
    strict = _words(
        verify_command(
            _args(
                verify=VerifySettings(True, 0.001, 60, fail_on_imbalance=True),
                load=LoadSettings("job", 2, 10, 100, 0, "/", False, 5, "fortio/fortio:1.68.2"),
                kube_context="kind-ci",
            ),
            "j",
        )
    )
    assert "--report-only" not in strict and "--no-keepalive" in strict
    assert " ".join(strict).count("--connections 20") == 1
    assert "--context kind-ci" in " ".join(strict) and "--timeout 60" in " ".join(strict)


def _cli_flags(subcommand: str) -> set[str]:
    help_text = subprocess.run(
        [sys.executable, "-m", "loadgen", subcommand, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if help_text.returncode != 0:
        pytest.fail(f"python -m loadgen {subcommand} --help failed: {help_text.stderr.strip()}")
    return set(re.findall(r"--[a-z][a-z-]*", help_text.stdout))


@pytest.mark.parametrize(
    ("subcommand", "command"),
    [
        ("verify", verify_command(_args(kube_context="ctx"), "job")),
        (
            "verify",
            verify_command(
                _args(
                    load=LoadSettings("job", 1, 1, 1, 0, "/", False, 5, "fortio/fortio:1.68.2"),
                    verify=VerifySettings(True, 0.01, 10, True),
                ),
                "job",
            ),
        ),
        ("snapshot", snapshot_command(_args(kube_context="ctx"))),
    ],
)
def test_every_flag_exists_in_the_loadgen_cli(subcommand, command):
    used = {w for w in _words(command) if w.startswith("--")}
    missing = used - _cli_flags(subcommand)
    assert not missing, f"python -m loadgen {subcommand} has no {sorted(missing)}"


def test_unparsable_stdout_is_reported_not_raised():
    assert parse_report("Traceback ...")["verdict"] == "unparsed"
    assert parse_report("[1, 2]")["verdict"] == "unparsed"
    assert parse_report(json.dumps(REPORT)) == REPORT


def test_load_test_falls_back_to_the_report_level_figures():
    report = {"total": 10, "errors": 1, "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0}}
    assert load_test_summary(report) == {
        "qps": None,
        "p50_ms": 1.0,
        "p90_ms": 2.0,
        "p99_ms": 3.0,
        "errors": 1,
        "total": 10,
    }


def test_command_prefix_finds_the_project_and_its_python_from_a_subdirectory():
    result = subprocess.run(
        ["/bin/sh", "-c", f"{verification.PYTHON} -m loadgen verify --help"],
        cwd=ROOT / "tests" / "components",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "--in-cluster" in result.stdout


def test_load_test_reads_the_fortio_summary_loadgen_produces():
    from loadgen import fortio

    logs = sorted((ROOT / "tests" / "loadgen" / "fixtures").glob("fortio-*.log"))
    assert logs, "recorded fortio outputs are missing"
    summary = fortio.merge(fortio.extract_result(p.read_text()) for p in logs)
    load_test = load_test_summary({"verdict": "balanced", "fortio": summary})
    assert load_test["qps"] == summary["qps"] > 0
    assert load_test["p50_ms"] == summary["latency_ms"]["p50"] is not None
    assert load_test["p99_ms"] >= load_test["p90_ms"] >= load_test["p50_ms"]
    assert (load_test["errors"], load_test["total"]) == (summary["errors"], summary["total"])
