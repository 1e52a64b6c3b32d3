"""The pack as the Pulumi engine meets it: started the way the CLI starts a Python pack
(`python -m pulumi.policy <engine> policy/`), it prints its port, and answers the analyzer
gRPC calls on loopback. Properties travel as a protobuf Struct, so numbers arrive as floats
and preview unknowns as the engine's sentinel strings, exactly as in `pulumi preview`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grpc
import policy_path
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from workloads import DELETE, deployment, mutated, pdb

MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")
ADVISORY = analyzer_pb2.EnforcementLevel.Value("ADVISORY")
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    proc = subprocess.Popen(
        # The engine address is not used by a pack that only validates.
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(policy_path.POLICY_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = proc.stdout.readline().strip()
        assert port.isdigit(), f"no port from the pack: {port!r} {proc.stderr.read()}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def urn(rtype: str, name: str) -> str:
    return f"urn:pulumi:dev::selfheal-lb::{rtype}::{name}"


def struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def analyze(stub, rtype: str, props: dict, name: str = "articles"):
    request = analyzer_pb2.AnalyzeRequest(
        type=rtype, properties=struct(props), urn=urn(rtype, name), name=name
    )
    return stub.Analyze(request, timeout=30).diagnostics


def test_the_pack_describes_itself_with_every_policy_mandatory(analyzer):
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "selfheal-lb-guardrails"
    assert {p.name: p.enforcementLevel for p in info.policies} == {
        name: MANDATORY
        for name in (
            "image-pinned", "container-resources", "container-probes", "pod-runs-as-non-root",
            "no-privilege-escalation", "read-only-root-filesystem", "load-balancer-only-for-app",
            "replicated-deployments-have-pdb",
        )
    }


def test_a_compliant_deployment_gets_no_diagnostic(analyzer):
    assert list(analyze(analyzer, DEPLOYMENT, deployment())) == []


def test_a_deployment_without_probes_is_a_mandatory_violation(analyzer):
    bad = mutated(deployment(), "spec.template.spec.containers.0.livenessProbe", DELETE)
    (diag,) = analyze(analyzer, DEPLOYMENT, bad)
    assert (diag.policyName, diag.enforcementLevel) == ("container-probes", MANDATORY)
    assert "no livenessProbe" in diag.message


def test_an_image_unknown_during_preview_is_deferred_as_advisory(analyzer):
    pending = mutated(deployment(), "spec.template.spec.containers.0.image", UNKNOWN_STRING_VALUE)
    (diag,) = analyze(analyzer, DEPLOYMENT, pending)
    assert diag.enforcementLevel == ADVISORY
    assert "can't run policy 'image-pinned'" in diag.message


def test_the_stack_policy_runs_over_all_resources(analyzer):
    def resource(rtype: str, name: str, props: dict) -> analyzer_pb2.AnalyzerResource:
        return analyzer_pb2.AnalyzerResource(
            type=rtype, properties=struct(props), urn=urn(rtype, name), name=name
        )

    alone = analyzer_pb2.AnalyzeStackRequest(
        resources=[resource(DEPLOYMENT, "articles", deployment())]
    )
    (diag,) = analyzer.AnalyzeStack(alone, timeout=30).diagnostics
    assert diag.policyName == "replicated-deployments-have-pdb"
    assert diag.urn.endswith("::articles")
    covered = analyzer_pb2.AnalyzeStackRequest(
        resources=[resource(DEPLOYMENT, "articles", deployment()), resource(PDB, "articles", pdb())]
    )
    assert list(analyzer.AnalyzeStack(covered, timeout=30).diagnostics) == []
