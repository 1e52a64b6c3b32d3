"""Decided once, kept: `monitoring: auto` and `metricsServerEnabled: auto` follow the decision
recorded in the stack's config (monitoringDecision, metricsServerDecision) whatever the probe
answers on a later run; a probe that fails or times out changes nothing and warns in one line.
`make up` records the decisions from what the deployed stack's outputs show (scripts/stack.sh,
components/decisions.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from stack_fixtures import dev_config

from components import offline, operator_probe
from components.decisions import to_record
from components.metrics_api import CLUSTER_ADDON, MetricsApiState
from components.metrics_plan import decide
from components.operator_probe import ENV_OVERRIDE, ProbeResult, resolve_mode
from components.settings import MetricsServerSettings

pytestmark = pytest.mark.slow  # runs scripts/stack.sh and make as processes, with stand-in tools

ROOT = Path(__file__).resolve().parent.parent
TIMED_OUT = MetricsApiState("unknown", detail="the API server did not answer within 5 s")


def _plan_of(run: offline.ProgramRun) -> list[tuple[str, str, str]]:
    """What the engine would diff: every resource's type, name and inputs."""
    return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in run.resources)


# --- the program: a second up with the probe failing plans no change -------------------------
def test_metrics_server_a_failing_probe_keeps_the_recorded_decision():
    first = offline.run_program(dev_config(), stack="dev", metrics_api=CLUSTER_ADDON)
    assert first.outputs["metricsServer"]["installedByThisStack"] is False
    # Without a recorded decision a probe that cannot tell stops `up` (nothing is guessed) ...
    with pytest.raises(offline.ProgramFailed, match="cannot tell whether the cluster serves"):
        offline.run_program(dev_config(), stack="dev", metrics_api=TIMED_OUT)
    # ... with one, the same resources are declared, and one line says why.
    second = offline.run_program(
        dev_config(metricsServerDecision="cluster"), stack="dev", metrics_api=TIMED_OUT
    )
    assert _plan_of(second) == _plan_of(first)
    kept = [w for w in second.warnings if "metricsServerDecision" in w]
    assert len(kept) == 1 and "keeping the recorded decision 'cluster'" in kept[0], second.warnings
    assert "\n" not in kept[0]


def test_monitoring_a_failing_probe_keeps_the_recorded_podmonitor(monkeypatch):
    monkeypatch.setenv(ENV_OVERRIDE, "present")  # the first run's probe found the operator
    first = offline.run_program(dev_config(), stack="dev")
    assert first.outputs["monitoring"] == "podMonitor"
    monkeypatch.setenv(ENV_OVERRIDE, "no-answer")  # the second run's probe cannot tell
    unrecorded = offline.run_program(dev_config(), stack="dev")
    assert unrecorded.outputs["monitoring"] == "annotations", "the old fallback flips the mode"
    second = offline.run_program(dev_config(monitoringDecision="podMonitor"), stack="dev")
    assert second.outputs["monitoring"] == "podMonitor"
    assert _plan_of(second) == _plan_of(first)
    kept = [w for w in second.warnings if "monitoringDecision" in w]
    assert len(kept) == 1 and "keeping the recorded podMonitor" in kept[0], second.warnings


def test_an_unchanged_recorded_decision_changes_nothing(monkeypatch):
    """Recording what the probe decided is not a change: the same plan, no warning."""
    monkeypatch.setenv(ENV_OVERRIDE, "absent")
    first = offline.run_program(dev_config(), stack="dev")
    again = offline.run_program(
        dev_config(monitoringDecision="annotations", metricsServerDecision="cluster"), stack="dev"
    )
    assert _plan_of(again) == _plan_of(first)
    assert not [w for w in again.warnings if "Decision" in w]


# --- the decisions themselves ------------------------------------------------------------------
def test_resolve_mode_keeps_the_recorded_mode_whatever_the_probe_says(monkeypatch):
    monkeypatch.delenv(ENV_OVERRIDE, raising=False)
    monkeypatch.setattr(operator_probe, "under_mocks", lambda: False)
    for answer, warn in (
        (ProbeResult(None, "cluster unreachable"), True),
        (ProbeResult(False, "no CRDs"), True),
        (ProbeResult(True, "podmonitors served"), False),
    ):
        got = resolve_mode("auto", "ctx", lambda _ctx, a=answer: a, recorded="podMonitor")
        assert (got.mode, got.warn) == ("podMonitor", warn), answer
    changed = resolve_mode(
        "auto", "ctx", lambda _ctx: ProbeResult(False, "no CRDs"), recorded="podMonitor"
    )
    assert changed.note == (
        "monitoring auto: the probe now finds: no CRDs (annotations); keeping the recorded "
        "podMonitor (monitoringDecision; make up REDECIDE=1 asks again)"
    )
    # A mode the user chose is never overridden by a recorded decision.
    assert resolve_mode("off", "ctx", pytest.fail, recorded="podMonitor").mode == "off"


@pytest.mark.parametrize(
    "state", [TIMED_OUT, MetricsApiState("absent"), CLUSTER_ADDON], ids=lambda s: s.status
)
def test_metrics_plan_keeps_an_install_whatever_the_probe_says(state):
    settings = MetricsServerSettings("auto", True, decision="install")
    plan = decide(settings, state, owner="selfheal-lb/dev", namespace="selfheal-lb-dev")
    assert (plan.install, plan.metrics_available, plan.error) == (True, True, "")


def test_metrics_plan_without_a_decision_is_unchanged():
    plan = decide(
        MetricsServerSettings("auto", True), TIMED_OUT, owner="p/s", namespace="ns"
    )
    assert plan.error  # as before: cannot tell, nothing recorded -> stop with one line
    chosen = MetricsServerSettings("false", True, decision="install")
    assert not decide(chosen, CLUSTER_ADDON, owner="p/s", namespace="ns").install


def test_what_make_up_records_from_the_outputs():
    s = offline.settings_for("dev")
    outputs = {"monitoring": "podMonitor", "metricsServer": {"installedByThisStack": True}}
    assert to_record(s, outputs) == {
        "monitoringDecision": "podMonitor",
        "metricsServerDecision": "install",
    }
    as_text = {"monitoring": "annotations", "metricsServer": json.dumps(
        {"installedByThisStack": False})}  # fmt: skip
    assert to_record(s, as_text) == {
        "monitoringDecision": "annotations",
        "metricsServerDecision": "cluster",
    }
    assert to_record(s, {}) == {}, "nothing deployed yet: nothing to record"
    recorded = replace(
        s,
        monitoring=replace(s.monitoring, decision="annotations"),
        metrics_server=replace(s.metrics_server, decision="cluster"),
    )
    assert to_record(recorded, outputs) == {}, "a recorded decision is never overwritten"
    chosen = replace(s, monitoring=replace(s.monitoring, mode="podMonitor"))
    assert "monitoringDecision" not in to_record(chosen, outputs), "only auto is recorded"


# --- scripts/stack.sh records them after up, and REDECIDE=1 forgets them ----------------------
def _bin(tmp_path: Path, outputs: dict) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("bash", "dirname", "ls", "sed", "tr", "mkdir", "cat"):
        (bin_dir / name).symlink_to(shutil.which(name))
    pulumi = (
        'echo "pulumi $*" >> "$CALLS"\n'
        f"[ \"$1 $2\" = \"stack output\" ] && echo '{json.dumps(outputs)}'\n"
        "exit 0\n"
    )
    kubectl = (
        'echo "kubectl $*" >> "$CALLS"\n'
        '[ "$1 $2" = "config current-context" ] && echo k\nexit 0\n'
    )
    for name, body in (("pulumi", pulumi), ("kubectl", kubectl), ("docker", "exit 0")):
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def _stack_sh(bin_dir: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    calls = bin_dir.parent / "calls.log"
    proc = subprocess.run(
        [str(ROOT / "scripts" / "stack.sh"), "up", "dev"],
        env={
            "PATH": str(bin_dir),
            "HOME": str(bin_dir.parent),
            "CALLS": str(calls),
            "PYTHON": sys.executable,
            "PULUMI_BACKEND_URL": f"file://{bin_dir.parent / 'state'}",
            "YES": "1",
            **env,
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_make_up_records_what_auto_decided(tmp_path):
    outputs = {"monitoring": "podMonitor", "metricsServer": {"installedByThisStack": False}}
    proc, calls = _stack_sh(_bin(tmp_path, outputs))
    assert proc.returncode == 0, proc.stderr
    sets = [c for c in calls if c.startswith("pulumi config set")]
    assert "pulumi config set --stack dev selfheal-lb:monitoringDecision podMonitor" in sets
    assert "pulumi config set --stack dev selfheal-lb:metricsServerDecision cluster" in sets
    assert "recorded monitoringDecision=podMonitor in Pulumi.dev.yaml" in proc.stdout


def test_redecide_forgets_the_decisions_before_up(tmp_path):
    proc, calls = _stack_sh(_bin(tmp_path, {}), REDECIDE="1")
    assert proc.returncode == 0, proc.stderr
    up = calls.index("pulumi up --stack dev --yes")
    for key in ("monitoringDecision", "metricsServerDecision"):
        assert calls.index(f"pulumi config rm --stack dev selfheal-lb:{key}") < up
