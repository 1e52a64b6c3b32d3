"""The policy pack over the resources the real program registers (Pulumi mocks, each committed
stack's config): the stack as written passes every rule, and a change that breaks one is caught.

The offline default is a cluster whose addon serves metrics.k8s.io, so the stack declares no
metrics-server here; the upstream chart's objects (registered one by one from the verified
archive) are judged by the pack where the archive can be fetched, and on a real engine.
"""

from __future__ import annotations

import copy
from pathlib import Path

import policy_path  # noqa: F401  (policy/ on sys.path, as the CLI runs the pack)
import pytest
from evaluate import Resource, evaluate

from components.offline import run_program, stack_config

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


def stack_resources(stack: str, **overrides) -> list[Resource]:
    config = stack_config(stack)
    config.update({f"selfheal-lb:{k}": v for k, v in overrides.items()})
    run = run_program(config, stack=stack)
    return [
        Resource(r.type, r.name, copy.deepcopy(r.inputs), r.urn) for r in run.resources if r.custom
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_the_stack_passes_every_policy(stack):
    resources = stack_resources(stack)
    types = {r.resource_type for r in resources}
    # The workloads the rules are about are really there.
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"} <= types
    result = evaluate(resources)
    assert [str(v) for v in result.violations] == []
    assert result.unknown == []


@pytest.mark.parametrize(
    "overrides",
    [
        # The long-running fortio Deployment: probes and a PDB of its own are needed then.
        {"loadgenMode": "continuous", "loadgenQps": 10, "verifyEnabled": False},
        {"appReplicas": 1},  # no PDB needed, none required
        {"serviceType": "NodePort", "hpaEnabled": False, "networkPolicy": False},
    ],
    ids=["continuous-loadgen", "one-replica", "nodeport"],
)
def test_config_variants_pass_every_policy(overrides):
    result = evaluate(stack_resources("dev", **overrides))
    assert [str(v) for v in result.violations] == []


def test_a_stack_whose_pdb_no_longer_selects_the_pods_is_rejected():
    resources = stack_resources("dev")
    for r in resources:
        if r.resource_type.endswith(":PodDisruptionBudget"):
            r.props["spec"]["selector"] = {"matchLabels": {"app.kubernetes.io/name": "nothing"}}
    found = [v.policy for v in evaluate(resources).violations]
    assert found == ["replicated-deployments-have-pdb"]


def test_a_stack_serving_fortio_through_a_load_balancer_is_rejected():
    resources = stack_resources("dev")
    service = next(r for r in resources if r.resource_type == "kubernetes:core/v1:Service")
    service.props["spec"]["selector"] = {"app.kubernetes.io/name": "fortio"}
    assert [v.policy for v in evaluate(resources).violations] == ["load-balancer-only-for-app"]


def test_a_floating_prebuilt_image_is_rejected_before_any_cluster_sees_it():
    # settings.py already refuses imageRef ':latest'; a tag-less repository is the other way.
    resources = stack_resources("dev")
    deployment = next(r for r in resources if r.resource_type == "kubernetes:apps/v1:Deployment")
    deployment.props["spec"]["template"]["spec"]["containers"][0]["image"] = "articles"
    assert [v.policy for v in evaluate(resources).violations] == ["image-pinned"]
