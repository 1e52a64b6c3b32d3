"""Re-verification: whatever re-runs the baseline snapshot re-runs the fortio Job and the check.

The engine re-runs a `local.Command` when its inputs change (or on `pulumi up --replace`), and
replaces a Job whose pod template changed. These tests evaluate the real program under mocks
with every config key changed in turn, model "a command that runs again prints a new
document" (what `python -m loadgen snapshot` does: each document has a fresh run_id, see
test_snapshot_prints_a_new_document_every_run) and check the coupling:

- snapshot re-runs  =>  the Job's pod template changes (a new load) and verify re-runs;
- verify or the Job would change  =>  the snapshot re-runs too (never a check against an old
  baseline, never a load without one);
- the app's pods change (a rollout)  =>  everything re-runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from stack_fixtures import dev_config

from components import offline
from components.loadgen import RUN_ANNOTATION
from components.rerun import KEEPS_THE_REPORT, RERUNS_LOAD
from components.settings import CONFIG_SPEC
from components.verification import snapshot_urn

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "command:local:Command"
JOB = "kubernetes:batch/v1:Job"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"

# A valid other value for every key whose alternative cannot be derived (strings, arrays), and
# for keys that need a companion change to stay valid. Integers and booleans not listed here
# get default+1 / the opposite value.
ALTERNATIVES: dict[str, dict[str, Any]] = {
    "kubeContext": {"kubeContext": "kind-other"},
    "clusterIdentifier": {"clusterIdentifier": "other-cluster"},
    "namespace": {"namespace": "other-ns"},
    "imageRef": {"imageRef": "ghcr.io/me/articles:v2"},
    "imageRepository": {"imageRepository": "ghcr.io/me/articles"},
    "imagePush": {"imagePush": True, "imageRegistryServer": "ghcr.io"},
    "imageRegistryServer": {"imageRegistryServer": "ghcr.io"},
    "imageRegistryUsername": {},  # needs the secret password too: covered by imagePush's case
    "imagePullPolicy": {"imagePullPolicy": "Never"},
    "appCpuRequest": {"appCpuRequest": "200m"},
    "appCpuLimit": {"appCpuLimit": "600m"},
    "appMemoryRequest": {"appMemoryRequest": "100Mi"},
    "appMemoryLimit": {"appMemoryLimit": "200Mi"},
    "serviceType": {"serviceType": "ClusterIP"},
    "sessionAffinity": {"sessionAffinity": "ClientIP"},
    "ingressAllowedCidrs": {"ingressAllowedCidrs": ["10.0.0.0/8"]},
    "clusterPodCidrs": {"clusterPodCidrs": ["10.42.0.0/16"]},
    "hpaMinReplicas": {"hpaMinReplicas": 4},
    "metricsServerEnabled": {"metricsServerEnabled": "false"},
    "imageBase": {"imageBase": "mirror.example/python:3.11.14-slim-bookworm"},
    "imageLoadCommand": {"imageLoadCommand": "kind load docker-image --name x"},
    "loadgenImage": {"loadgenImage": "mirror.example/fortio/fortio:1.68.2"},
    "monitoring": {"monitoring": "podMonitor"},
    "monitoringDecision": {"monitoringDecision": "podMonitor"},
    # "cluster" is what auto decides against the offline default (a cluster addon serves the
    # metrics); "install" needs the chart archive, which these runs do not have.
    "metricsServerDecision": {"metricsServerDecision": "cluster"},
    "monitoringLabels": {"monitoringLabels": ["release=kube-prometheus-stack"]},
    "prometheusNamespace": {"prometheusNamespace": "monitoring"},
    "grafanaDashboardNamespace": {"grafanaDashboardNamespace": "monitoring"},
    "quotaMaxCpu": {"quotaMaxCpu": "64"},
    "stateStore": {"stateStore": "redis"},
    "stateStoreImage": {"stateStore": "redis", "stateStoreImage": "mirror.example/redis:7.4.2"},
    "stateStoreCpu": {"stateStore": "redis", "stateStoreCpu": "300m"},
    "stateStoreMemory": {"stateStore": "redis", "stateStoreMemory": "256Mi"},
    "quotaMaxMemory": {"quotaMaxMemory": "64Gi"},
    "loadgenMode": {"loadgenMode": "continuous", "loadgenQps": 10, "verifyEnabled": False},
    "loadgenPath": {"loadgenPath": "/article/2"},
    "verifySignificance": {"verifySignificance": "0.01"},
}


def alternative(key: str) -> dict[str, Any]:
    if key in ALTERNATIVES:
        return ALTERNATIVES[key]
    kind, default = CONFIG_SPEC[key]
    if kind == "boolean":
        return {key: not default}
    if kind == "integer":
        return {key: int(default) + 1}
    pytest.fail(f"add a valid other value for config key {key!r} to ALTERNATIVES")


def command_reruns_print_new_stdout(rec: offline.RecordedResource) -> Mapping[str, Any]:
    """The engine's behaviour, modelled: a command with the same inputs is not run again and
    keeps its stdout; a command whose inputs changed runs and prints a new document."""
    out = dict(offline.realistic_outputs(rec, preview=False))
    if rec.type == COMMAND:
        digest = hashlib.sha256(json.dumps(rec.inputs, sort_keys=True).encode()).hexdigest()
        if rec.name.endswith("-snapshot"):
            doc = {"kind": "loadgen-snapshot", "run_id": digest, "pods": {}}
        else:
            doc = {"verdict": "balanced", "reason": digest}
        out["stdout"] = json.dumps(doc)
    return out


def evaluate(config: dict[str, Any]) -> offline.ProgramRun:
    return offline.run_program(config, stack="dev", fake_outputs=command_reruns_print_new_stdout)


def _inputs(run: offline.ProgramRun, name: str) -> str | None:
    found = [r for r in run.resources if r.name == name]
    return json.dumps(found[0].inputs, sort_keys=True) if found else None


def _one(run: offline.ProgramRun, type_: str) -> str | None:
    found = run.of_type(type_)
    return json.dumps(found[0].inputs, sort_keys=True) if found else None


def _pod_template(run: offline.ProgramRun, type_: str) -> str | None:
    found = run.of_type(type_)
    return json.dumps(found[0].inputs["spec"]["template"], sort_keys=True) if found else None


@pytest.fixture(scope="module")
def base() -> offline.ProgramRun:
    return evaluate(dev_config())


@pytest.mark.parametrize("key", sorted(CONFIG_SPEC))
def test_every_key_that_reruns_the_baseline_reruns_the_load_and_the_check(key, base):
    changes = alternative(key)
    if not changes:
        pytest.skip(f"{key} cannot change alone (see ALTERNATIVES)")
    run = evaluate(dev_config(**changes))
    snap_before, snap_after = _inputs(base, "verification-snapshot"), _inputs(
        run, "verification-snapshot"
    )
    if snap_after is None:  # this change turns the verification off: nothing can go stale
        assert run.outputs["loadDistribution"]["verdict"] == "skipped", key
        return
    snapshot_reruns = snap_before != snap_after
    verify_reruns = _inputs(base, "verification-verify") != _inputs(run, "verification-verify")
    job_changes = _one(base, JOB) != _one(run, JOB)
    template_changes = _pod_template(base, JOB) != _pod_template(run, JOB)
    rollout = _pod_template(base, DEPLOYMENT) != _pod_template(run, DEPLOYMENT)
    if snapshot_reruns:
        assert template_changes, f"{key}: the baseline re-runs but the fortio Job stays"
        assert verify_reruns, f"{key}: the baseline re-runs but the check does not"
    if verify_reruns or job_changes or rollout:
        assert snapshot_reruns, f"{key}: the check or the load changes but not the baseline"


def test_every_config_key_is_classified_once():
    """A new key must say whether it re-runs the load (components/rerun.py)."""
    both = set(RERUNS_LOAD) & set(KEEPS_THE_REPORT)
    assert not both, f"classified twice: {sorted(both)}"
    unclassified = set(CONFIG_SPEC) - set(RERUNS_LOAD) - set(KEEPS_THE_REPORT)
    assert not unclassified, (
        f"classify {sorted(unclassified)} in components/rerun.py: RERUNS_LOAD or KEEPS_THE_REPORT"
    )
    stale = (set(RERUNS_LOAD) | set(KEEPS_THE_REPORT)) - set(CONFIG_SPEC)
    assert not stale, f"no such config keys: {sorted(stale)}"


@pytest.mark.parametrize("key", sorted(CONFIG_SPEC))
def test_a_key_reruns_the_load_exactly_when_it_is_classified_so(key, base):
    """The classification is what the program does: a RERUNS_LOAD key changes the baseline's
    inputs (so the engine re-runs it, and with it the Job and the check); a KEEPS_THE_REPORT key
    leaves the snapshot, the Job and the check as they are (no load at a live Service)."""
    changes = alternative(key)
    if not changes:
        pytest.skip(f"{key} cannot change alone (see ALTERNATIVES)")
    run = evaluate(dev_config(**changes))
    snap_after = _inputs(run, "verification-snapshot")
    if snap_after is None:  # the verification is turned off: nothing runs, nothing is stale
        assert key in RERUNS_LOAD, key
        return
    reruns = _inputs(base, "verification-snapshot") != snap_after
    if key in KEEPS_THE_REPORT:
        assert not reruns, f"{key} re-runs the load: {KEEPS_THE_REPORT[key]}?"
        assert _one(base, JOB) == _one(run, JOB), key
        assert _inputs(base, "verification-verify") == _inputs(run, "verification-verify"), key
    else:
        assert reruns, f"{key} is classified as re-running the load but does not"


def test_a_dashboard_quota_and_label_change_together_rerun_nothing(base):
    run = evaluate(
        dev_config(
            grafanaDashboard=False,
            monitoringLabels=["release=kube-prometheus-stack"],
            quotaMaxCpu="64",
            quotaDrillPods=2,
            pdbMaxUnavailable=2,
        )
    )
    for name in ("verification-snapshot", "verification-verify"):
        assert _inputs(run, name) == _inputs(base, name), name
    assert _one(run, JOB) == _one(base, JOB)


@pytest.mark.parametrize(
    "key",
    ["appReplicas", "imageRef", "loadgenConnections", "verifyTimeoutSeconds",
     "verifySignificance", "verifyFailOnImbalance", "kubeContext", "appWorkers",
     "sessionAffinity"],
)  # fmt: skip
def test_keys_of_the_app_the_load_and_the_verification_rerun_it(key, base):
    """The issue's case: `pulumi config set verifyTimeoutSeconds 600` re-ran only the snapshot."""
    run = evaluate(dev_config(**alternative(key)))
    stamp = RUN_ANNOTATION

    def job_stamp(r: offline.ProgramRun) -> str:
        return r.one(JOB).inputs["spec"]["template"]["metadata"]["annotations"][stamp]

    assert job_stamp(run) != job_stamp(base), key
    assert _inputs(run, "verification-verify") != _inputs(base, "verification-verify"), key


def test_an_unchanged_stack_reruns_nothing(base):
    again = evaluate(dev_config())
    for name in ("verification-snapshot", "verification-verify"):
        assert _inputs(again, name) == _inputs(base, name)
    assert _one(again, JOB) == _one(base, JOB)


def test_replacing_the_snapshot_alone_reruns_the_load_and_the_check(base):
    """`pulumi up --replace <snapshot URN>` (scripts/stack.sh reverify): the engine re-runs the
    snapshot with unchanged inputs; its new stdout must carry the Job and the check with it."""
    snapshot_urn_ = base.named("verification-snapshot").urn

    def replaced(rec: offline.RecordedResource) -> Mapping[str, Any]:
        out = dict(command_reruns_print_new_stdout(rec))
        if rec.urn == snapshot_urn_:
            out["stdout"] = json.dumps({"kind": "loadgen-snapshot", "run_id": "replaced"})
        return out

    run = offline.run_program(dev_config(), stack="dev", fake_outputs=replaced)
    assert _pod_template(run, JOB) != _pod_template(base, JOB)
    assert _inputs(run, "verification-verify") != _inputs(base, "verification-verify")


def test_the_reverify_recipe_replaces_the_snapshot_the_program_registers(base, tmp_path):
    """`make reverify` = scripts/stack.sh reverify: runs `pulumi up --replace URN` with the
    snapshot's URN. A stand-in pulumi/kubectl record the call; the URN must be the one the
    program really registers (the mocks build URNs as the engine does)."""
    assert snapshot_urn("dev", "selfheal-lb") == base.named("verification-snapshot").urn
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    for name in ("pulumi", "kubectl", "docker"):
        tool = bin_dir / name
        body = 'if [ "$1" = "config" ]; then echo test-context; fi'
        tool.write_text(f'#!/bin/bash\necho "{name} $*" >> "{calls}"\n{body}\n')
        tool.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "PULUMI_BACKEND_URL": f"file://{tmp_path / 'state'}",
        "YES": "1",  # make reverify YES=1: no question
    }
    proc = subprocess.run(
        [str(ROOT / "scripts" / "stack.sh"), "reverify", "dev"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    up = [line for line in calls.read_text().splitlines() if line.startswith("pulumi up")]
    assert up == [f"pulumi up --stack dev --yes --replace {snapshot_urn('dev', 'selfheal-lb')}"]


def test_the_baseline_waits_for_the_pods_and_verify_runs_during_the_load(base):
    """The snapshot waits for appReplicas Ready pods; the Job is not awaited (so verify samples
    CPU/memory while fortio runs) and verify's time limit covers the paced load."""
    snap = base.named("verification-snapshot").inputs["create"].split()
    assert snap[snap.index("--expect-ready") + 1] == "3"
    job = base.one(JOB).inputs
    assert job["metadata"]["annotations"] == {"pulumi.com/skipAwait": "true"}
    check = base.named("verification-verify").inputs["create"].split()
    # 1000 requests at 20 per second per fortio pod: 50 s on top of verifyTimeoutSeconds.
    assert check[check.index("--timeout") + 1] == str(300 + 50)
