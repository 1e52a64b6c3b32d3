"""The StackNamespace: the namespace with Pod Security, the namespace-wide default-deny and the
quota, created before any pod; and the URNs these objects had before they moved here, so that
upgrading a deployed stack replaces nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from stack_fixtures import dev_config

from components import offline
from components.namespace import TYPE_TOKEN

RECORDINGS = Path(__file__).resolve().parents[1] / "previewdiff" / "recordings"


def test_namespace_is_named_and_enforces_pod_security_restricted(run_app):
    ns = run_app(namespace="selfheal-lb-ci").one("Namespace")
    assert ns.parent_type == TYPE_TOKEN
    meta = ns.inputs["metadata"]
    assert meta["name"] == "selfheal-lb-ci"
    for mode in ("enforce", "audit", "warn"):
        assert meta["labels"][f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert meta["labels"][f"pod-security.kubernetes.io/{mode}-version"]
    assert meta["labels"]["pod-security.kubernetes.io/enforce-version"] == "v1.30"


def test_namespace_default_denies_everything(run_app):
    run = run_app()
    [deny] = [p for p in run.kind("NetworkPolicy") if not p.inputs["spec"]["podSelector"]]
    assert deny.parent_type == TYPE_TOKEN
    assert deny.inputs["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert not deny.inputs["spec"].get("ingress") and not deny.inputs["spec"].get("egress")


def _stack(**overrides: Any) -> offline.ProgramRun:
    return offline.run_program(dev_config(**overrides), stack="dev")


@pytest.mark.parametrize("quota", [True, False])
def test_every_pod_of_the_stack_waits_for_the_namespace_wide_rules(quota: bool):
    run = _stack(quotaEnabled=quota)
    inside = [r for r in run.resources if r.custom and TYPE_TOKEN in r.urn.split("::")[2]]
    kinds = sorted(r.inputs["kind"] for r in inside)
    assert kinds == (
        ["LimitRange", "Namespace", "NetworkPolicy", "ResourceQuota"]
        if quota
        else ["Namespace", "NetworkPolicy"]
    )
    gates = {r.urn for r in inside if r.inputs["kind"] != "Namespace"}
    assert gates <= set(run.named("app-deployment").dependencies)


def test_the_program_still_declares_every_object_a_real_engine_recorded():
    """Real `pulumi preview`s of the local stack (tests/previewdiff/recordings) name objects by
    the engine's URNs: each is still declared at its URN or under an alias, so the URNs the
    offline harness makes are the engine's and no recorded object would be deleted. (The
    recordings hold only the objects their previews touched; the namespace's move is proven
    against the older program itself: tests/cluster/test_upgrade.py.)"""
    recorded = {urn for urn in _recorded_urns() if "$kubernetes:" in urn}
    run = offline.run_program(offline.stack_config("local"), stack="local")
    declared = {r.urn for r in run.resources if r.custom}
    aliased = {alias for r in run.resources for alias in r.aliases}
    assert recorded and sorted(recorded - declared - aliased) == []


def _recorded_urns() -> set[str]:
    urns: set[str] = set()
    for path in RECORDINGS.glob("preview-*.json"):
        urns |= {step["urn"] for step in json.loads(path.read_text())["steps"]}
    return urns


def test_the_quota_keeps_the_urns_it_had_as_a_top_level_component():
    """Before, the quota was a component of its own at the top of the stack: its URN and its
    children's (as the engine makes them, the parent's type chain first) are aliases now."""
    run = _stack(quotaEnabled=True)
    old = "urn:pulumi:dev::selfheal-lb::selfheal-lb:quota:NamespaceQuota"
    expected = {
        "quota": f"{old}::quota",
        "quota-resourcequota": f"{old}$kubernetes:core/v1:ResourceQuota::quota-resourcequota",
        "quota-limitrange": f"{old}$kubernetes:core/v1:LimitRange::quota-limitrange",
    }
    for name, urn in expected.items():
        rec = run.named(name)
        assert rec.urn != urn and urn in rec.aliases, (name, rec.urn, rec.aliases)
