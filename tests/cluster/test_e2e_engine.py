"""make e2e's executor is as strict as the engine: its step decisions, its concurrency.

The decisions are checked against a real engine's recorded plan (shared/recorded, copied to
tests/previewdiff/recordings), the concurrency with real processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from inline_program import run_inline

from cluster.e2e import engine, stack
from components import offline
from components.metrics_api import ABSENT

ROOT = Path(__file__).resolve().parents[2]
RECORDED_ONE_FIELD = ROOT / "tests" / "previewdiff" / "recordings" / "preview-one-field.json"


def _rec(inputs: dict, *, name: str = "r", type_: str = "kubernetes:batch/v1:Job", dbr=False):
    return offline.RecordedResource(
        type=type_, name=name, inputs=inputs, custom=True, parent_urn="", urn=f"urn::{name}",
        delete_before_replace=dbr,
    )  # fmt: skip


def _job(name: str | None, stamp: str, skip_await: bool = True) -> dict:
    metadata: dict = {"namespace": "ns", "labels": {"a": "b"}}
    if name:
        metadata["name"] = name
    if skip_await:
        metadata["annotations"] = {engine.SKIP_AWAIT: "true"}
    template = {"metadata": {"annotations": {"run": stamp}}, "spec": {"containers": []}}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
            "spec": {"parallelism": 3, "completions": 3, "template": template}}  # fmt: skip


def test_a_named_jobs_new_run_deletes_the_old_job_first_without_waiting():
    """The engine's plan for the landed fortio Job: same name, so delete first; skipAwait, so
    the deletion is not awaited. Together: the create races the deletion."""
    step = engine.plan(_rec(_job("fortio", "a")), _rec(_job("fortio", "b")))
    assert step == engine.Plan(engine.REPLACE, True, ("spec.template",))
    assert engine.awaits_deletion(_job("fortio", "a")) is False
    assert engine.awaits_deletion(_job("fortio", "a", skip_await=False)) is True
    assert engine.propagation(_job("fortio", "a")) == "Foreground"


def test_an_auto_named_jobs_new_run_is_created_beside_the_old_one():
    step = engine.plan(_rec(_job(None, "a")), _rec(_job(None, "b")))
    assert step.step == engine.REPLACE and step.delete_first is False
    # ... unless the program asks for delete-first.
    assert engine.plan(_rec(_job(None, "a")), _rec(_job(None, "b"), dbr=True)).delete_first


def test_mutable_fields_update_and_immutable_ones_replace():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "1"}}}}  # fmt: skip
    scaled = {**deployment, "spec": {**deployment["spec"], "replicas": 4}}
    reselected = {**deployment, "spec": {**deployment["spec"], "selector": {"matchLabels": {}}}}
    type_ = "kubernetes:apps/v1:Deployment"
    assert engine.plan(_rec(deployment, type_=type_), _rec(scaled, type_=type_)).step == "update"
    assert engine.plan(_rec(deployment, type_=type_), _rec(reselected, type_=type_)).step == (
        "replace"
    )
    # A Secret's or ConfigMap's data is immutable to pulumi-kubernetes by default.
    conf = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}
    changed = {**conf, "data": {"k": "2"}}
    type_ = "kubernetes:core/v1:ConfigMap"
    assert engine.plan(_rec(conf, type_=type_), _rec(changed, type_=type_)).reasons == ("data",)
    assert engine.plan(None, _rec(conf, type_=type_)).step == "create"
    assert engine.plan(_rec(conf, type_=type_), _rec(conf, type_=type_)).step == "same"


def test_a_commands_triggers_replace_it_and_its_script_updates_it():
    base = {"create": "echo a", "triggers": ["x"]}

    def step(new: dict) -> str:
        cmd = engine.COMMAND
        return engine.plan(_rec(base, type_=cmd), _rec({**base, **new}, type_=cmd)).step

    assert step({"triggers": ["y"]}) == "replace"
    assert step({"create": "echo b"}) == "update"


def test_the_plan_for_a_replica_change_matches_the_real_engines_recorded_plan():
    """Recorded with a real engine: `pulumi config set appReplicas 4` after `up`. Our rules give
    the same step for every resource of that recording that this stack still has."""
    recorded = json.loads(RECORDED_ONE_FIELD.read_text())
    engine_ops = {s["urn"].rsplit("::", 1)[-1]: s["op"] for s in recorded["steps"]}
    config = offline.stack_config("dev")
    config["selfheal-lb:imageRef"] = "selfheal-lb/articles:recorded"
    # As recorded: no metrics API and none installed, so no HPA owns the replica count (with
    # one, spec.replicas is under ignoreChanges and the Deployment would not change).
    config["selfheal-lb:metricsServerEnabled"] = "false"

    def evaluate(stdout: dict[str, str]) -> offline.ProgramRun:
        return offline.run_program(
            config, fake_outputs=stack.outputs_with(stdout), metrics_api=ABSENT
        )

    snapshot = evaluate({}).named("verification-snapshot").urn
    before = evaluate({snapshot: "baseline 1"})
    assert not before.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    config["selfheal-lb:appReplicas"] = 4
    # After the snapshot re-ran (as its triggers say), the rest sees its new document.
    after = evaluate({snapshot: "baseline 2"})
    ours = {}
    for rec in after.resources:
        old = [r for r in before.resources if r.urn == rec.urn]
        if rec.custom and old:
            ours[rec.name] = engine.plan(old[0], rec).step
    compared = {n: (engine_ops[n], ours[n]) for n in engine_ops if n in ours}
    assert {"app-deployment", "loadgen-job", "verification-snapshot"} <= compared.keys()
    assert all(op == mine for op, mine in compared.values()), compared


# --- concurrency, with real processes --------------------------------------------------------


def _deployer() -> stack.Deployer:
    return stack.Deployer(kubectl="kubectl", kubeconfig="/nonexistent", context="x", log=print)


def test_independent_steps_run_at_the_same_time_and_dependents_wait(tmp_path: Path):
    marks = tmp_path / "marks"
    marks.mkdir()
    run = run_inline(
        tmp_path,
        f"""
        import pulumi
        from pulumi_command import local
        a = local.Command("a", create="sleep 2; date +%s.%N > {marks}/a")
        b = local.Command("b", create="sleep 2; date +%s.%N > {marks}/b")
        local.Command("c", create="test -f {marks}/a && test -f {marks}/b && echo both",
                      opts=pulumi.ResourceOptions(depends_on=[a, b]))
        """,
    )
    t0 = time.monotonic()
    _, acted = _deployer().up(run)
    took = time.monotonic() - t0
    assert sorted(acted[:2]) == ["a", "b"] and acted[2] == "c"
    assert took < 3.5, f"a and b ran one after the other ({took:.1f} s)"
    ends = sorted(float((marks / n).read_text()) for n in "ab")
    assert ends[1] - ends[0] < 1.0


def test_a_forgotten_dependency_fails_as_it_would_under_the_engine(tmp_path: Path):
    """`reader` reads what `writer` makes but does not declare it: one-at-a-time in
    registration order would pass; started together, as the engine starts them, it fails."""
    made = tmp_path / "made"
    run = run_inline(
        tmp_path,
        f"""
        from pulumi_command import local
        local.Command("writer", create="sleep 3; echo x > {made}")
        local.Command("reader", create="cat {made}")
        """,
    )
    with pytest.raises(stack.DeployError, match="reader exited"):
        _deployer().up(run)
    assert made.exists()  # the step under way when reader failed was finished, as the engine does


def test_ignored_changes_are_no_diff():
    """ignoreChanges (the Deployment's spec.replicas under an HPA): no update for it alone."""
    deployment = "kubernetes:apps/v1:Deployment"
    old = _rec({"spec": {"replicas": 3, "x": 1}}, type_=deployment)
    new = _rec({"spec": {"replicas": 5, "x": 1}}, type_=deployment)
    assert engine.plan(old, new).step == engine.UPDATE
    ignoring = offline.RecordedResource(**{**new.__dict__, "ignore_changes": ("spec.replicas",)})
    assert engine.plan(old, ignoring).step == engine.SAME
    changed = offline.RecordedResource(
        **{**ignoring.__dict__, "inputs": {"spec": {"replicas": 5, "x": 2}}}
    )
    assert engine.plan(old, changed).step == engine.UPDATE
