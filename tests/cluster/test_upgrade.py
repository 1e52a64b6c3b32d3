"""Upgrading a deployed stack to this code replaces nothing: the program of the last commit
before the namespace moved into its own component is evaluated (in a process of its own) and
every resource it declared is matched with this program's by URN or alias, then given the
engine's step. And make e2e's executor follows aliases as the engine does."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from inline_program import run_inline

from cluster.e2e import stack, upgrade
from components import offline

# The last commit before StackNamespace: the namespace and default-deny under ArticleApp,
# the quota a top-level component.
BEFORE_THE_MOVE = "5589e4c"
ROOT = Path(__file__).resolve().parents[2]


def _base_available() -> str:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{BEFORE_THE_MOVE}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return "" if proc.returncode == 0 else f"commit {BEFORE_THE_MOVE} is not in this clone"


@pytest.mark.parametrize(
    ("stack_name", "overrides"),
    [("dev", {}), ("local", {}), ("kind", {}), ("dev", {"quotaEnabled": False})],
)
def test_upgrading_from_before_the_move_keeps_every_kubernetes_object(
    stack_name: str, overrides: dict[str, object]
):
    missing = _base_available()
    if missing:
        pytest.skip(missing)
    old = upgrade.record_commit(BEFORE_THE_MOVE, stack_name, overrides=overrides)
    new = stack.evaluate(stack_name, **overrides).resources  # the same stand-in outputs
    steps = upgrade.plan_upgrade(old, new)
    # No Kubernetes object is created, deleted or replaced, but the fortio Job when the load
    # runs again (a new image since that commit re-runs it, by design: components/rerun.py).
    changed = [
        (s.step, s.name)
        for s in steps
        if s.kind.startswith("kubernetes:") and s.step in ("create", "replace", "delete")
    ]
    assert changed in ([], [("replace", "loadgen-job")])
    moved = {s.name for s in steps if s.moved}
    assert {"namespace", "default-deny"} <= moved
    assert all(s.step == "same" for s in steps if s.moved)  # not even an update


def test_without_the_alias_the_namespace_would_be_deleted_and_created_again():
    """The check can fail: an old namespace matched by nothing is a delete (of everything in it)."""
    old = [
        offline.RecordedResource(
            type="kubernetes:core/v1:Namespace",
            name="app-namespace",
            inputs={"metadata": {"name": "ns"}},
            custom=True,
            parent_urn="",
            urn="urn:pulumi:dev::p::selfheal-lb:app:ArticleApp$kubernetes:core/v1:Namespace::app-namespace",
        )
    ]
    new = [
        offline.RecordedResource(
            type="kubernetes:core/v1:Namespace",
            name="namespace",
            inputs={"metadata": {"name": "ns"}},
            custom=True,
            parent_urn="",
            urn="urn:pulumi:dev::p::selfheal-lb:namespace:StackNamespace$kubernetes:core/v1:Namespace::namespace",
        )
    ]
    steps = [(s.step, s.name) for s in upgrade.plan_upgrade(old, new)]
    assert steps == [("create", "namespace"), ("delete", "app-namespace")]


def test_the_executor_takes_over_the_state_of_an_aliased_command(tmp_path: Path):
    """A command moved under a new name with an alias is the same resource: not run again."""
    before = run_inline(
        tmp_path,
        """
        from pulumi_command import local
        local.Command("old-name", create="echo once")
        """,
    )
    after = run_inline(
        tmp_path,
        """
        import pulumi
        from pulumi_command import local
        local.Command("new-name", create="echo once",
                      opts=pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-name")]))
        """,
    )
    d = stack.Deployer(
        kubectl="kubectl", kubeconfig="/nonexistent", context="x", log=lambda _: None
    )
    d.up(before)
    new = after.named("new-name")
    assert before.named("old-name").urn in new.aliases
    previous = {r.urn: r for r in before.resources}
    assert d.up(after, previous=previous)[1] == []  # nothing run, nothing deleted
    assert d.stdout == {new.urn: "once"}


def test_the_e2e_check_names_what_lost_its_identity():
    ns_old, ns_new = "urn:a$Namespace::app-namespace", "urn:b$Namespace::namespace"
    job = "urn:a$Job::loadgen-job"
    steps = [
        upgrade.Step("namespace", "kubernetes:core/v1:Namespace", "same", True),
        upgrade.Step("loadgen-job", "kubernetes:batch/v1:Job", "replace", False),
    ]
    before = {ns_old: "uid-1", job: "uid-2"}
    kept = upgrade.kept_identity(steps, before, {ns_new: "uid-1", job: "uid-3"}, {ns_old: ns_new})
    assert kept.startswith("1 of 2 objects kept their UID (moved by alias: namespace)")
    assert "replaced as planned: loadgen-job" in kept
    with pytest.raises(upgrade.CheckFailed, match="deleted and created again: app-namespace"):
        upgrade.kept_identity(steps, before, {ns_new: "uid-9", job: "uid-3"}, {ns_old: ns_new})
    deleting = [
        *steps,
        upgrade.Step("app-namespace", "kubernetes:core/v1:Namespace", "delete", False),
    ]
    with pytest.raises(upgrade.CheckFailed, match="would delete app-namespace"):
        upgrade.kept_identity(deleting, before, {ns_new: "uid-1"}, {ns_old: ns_new})


def test_a_new_node_loss_toleration_rolls_the_pods_out_and_replaces_no_deployment():
    """nodeLossTolerationSeconds is in the pod template: a change (and the upgrade that first
    adds the tolerations) is an update of the Deployment, a rolling update of its pods, never a
    delete-and-create of the Deployment (which would drop every serving pod at once)."""
    old = stack.evaluate("dev").resources
    new = stack.evaluate("dev", nodeLossTolerationSeconds=30).resources
    steps = upgrade.plan_upgrade(old, new)
    assert [(s.name, s.step) for s in steps if s.kind.endswith(":Deployment")] == [
        ("app-deployment", "update")
    ]
    # Nothing else of Kubernetes' is created, replaced or deleted (that the load and the check
    # re-run over the new pods is tests/test_reverification.py's).
    assert not [
        s.name
        for s in steps
        if s.kind.startswith("kubernetes:") and s.step in ("create", "replace", "delete")
    ]
