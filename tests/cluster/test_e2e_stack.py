"""make e2e's executor: the program's resources in dependency order, commands as written."""

from __future__ import annotations

import hashlib
from pathlib import Path

import inline_program
import pytest
from inline_program import run_inline, write_project

from cluster.e2e import stack
from components import offline


def test_verify_reads_the_snapshots_real_stdout(tmp_path: Path):
    run = stack.evaluate("local")
    snapshot = run.named("verification-snapshot")
    verify = run.named("verification-verify")
    assert verify.inputs["stdin"] == stack._stdout_token(snapshot)


@pytest.fixture
def two_commands(tmp_path: Path) -> offline.ProgramRun:
    return run_inline(
        tmp_path,
        """
        import pulumi
        from pulumi_command import local
        first = local.Command("first", create="echo baseline-$((20 + 22))")
        local.Command("second", create="read x; echo got:$x", stdin=first.stdout,
                      opts=pulumi.ResourceOptions(depends_on=[first]))
        """,
    )


def test_commands_run_for_real_and_pass_stdout_on(two_commands: offline.ProgramRun):
    d = stack.Deployer(
        kubectl="kubectl", kubeconfig="/nonexistent", context="x", log=lambda _: None
    )
    d.up(two_commands)
    second = two_commands.named("second")
    assert d.stdout[second.urn] == "got:baseline-42"


def test_a_failing_command_names_itself(tmp_path: Path, two_commands: offline.ProgramRun):
    d = stack.Deployer(
        kubectl="kubectl", kubeconfig="/nonexistent", context="x", log=lambda _: None
    )
    second = two_commands.named("second")
    with pytest.raises(stack.DeployError, match="has not run"):
        d.create(second)  # its stdin refers to `first`, which has not run


def test_an_update_reruns_only_what_changed(tmp_path: Path):
    body = """
        from pulumi_command import local
        local.Command("fixed", create="echo same")
        local.Command("changing", create="echo {}")
    """
    first = run_inline(tmp_path, body.format("one"))
    d = stack.Deployer(
        kubectl="kubectl", kubeconfig="/nonexistent", context="x", log=lambda _: None
    )
    assert sorted(d.up(first)[1]) == ["changing", "fixed"]  # independent: run at once
    second = run_inline(tmp_path, body.format("two"))
    previous = {r.urn: r for r in first.resources}
    assert d.up(second, previous=previous)[1] == ["changing"]
    assert d.stdout[second.named("changing").urn] == "two"


def test_what_is_derived_from_a_commands_output_sees_the_real_output(tmp_path: Path):
    """As the engine hands a command's stdout on: a digest of it (the fortio Job's stamp is one)
    is computed from the real output, not from a stand-in."""
    body = """
        import hashlib
        from pulumi_command import local
        first = local.Command("first", create="echo baseline-$((20 + 22))")
        local.Command(
            "second",
            create=first.stdout.apply(lambda v: "echo " + hashlib.sha256(v.encode()).hexdigest()),
        )
    """
    project = write_project(tmp_path, body)

    def evaluate(stdout, names):
        return inline_program.evaluate(project, stdout=stdout, names=names)

    d = stack.Deployer(
        kubectl="kubectl", kubeconfig="/nonexistent", context="x", log=lambda _: None
    )
    run, acted = d.up(evaluate)
    assert acted == ["first", "second"]
    expected = hashlib.sha256(b"baseline-42").hexdigest()
    assert d.stdout[run.named("second").urn] == expected
