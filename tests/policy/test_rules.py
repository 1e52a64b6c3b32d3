"""Every rule of the policy pack, fed resources that pass and resources that fail.

Resources go through policy/evaluate.py, which calls each Policy object's validate() with
the SDK's own argument types and unknown-checking proxy, as the analyzer does.
"""

from __future__ import annotations

import policy_path  # noqa: F401  (policy/ on sys.path, as the CLI runs the pack)
import pytest
from evaluate import Resource, evaluate
from pack import POLICIES
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from rules import image_problem
from workloads import (
    DELETE,
    deployment,
    fortio_job,
    mutated,
    pdb,
    pod_spec,
    secure_container,
    service,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
POD = "kubernetes:core/v1:Pod"
CRONJOB = "kubernetes:batch/v1:CronJob"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
C0 = "spec.template.spec.containers.0"


def violations(*resources: tuple[str, str, dict]) -> list[str]:
    result = evaluate(Resource(t, n, p) for t, n, p in resources)
    assert not result.unknown
    return [f"{v.policy}: {v.message}" for v in result.violations]


def the_compliant_stack() -> list[tuple[str, str, dict]]:
    return [
        (DEPLOYMENT, "articles", deployment()),
        (PDB, "articles", pdb()),
        (SERVICE, "articles", service()),
        (JOB, "fortio", fortio_job()),
    ]


def test_the_compliant_stack_passes_every_policy():
    assert violations(*the_compliant_stack()) == []


def test_every_policy_is_mandatory():
    assert {p.enforcement_level for p in POLICIES} == {EnforcementLevel.MANDATORY}
    assert len({p.name for p in POLICIES}) == len(POLICIES) == 8


# (policy, resource type, inputs, substring of the one expected message)
FAILING = [
    ("image-pinned", DEPLOYMENT, mutated(deployment(), f"{C0}.image", "nginx"), "has no tag"),
    ("image-pinned", DEPLOYMENT, mutated(deployment(), f"{C0}.image", "nginx:latest"), "latest"),
    ("image-pinned", DEPLOYMENT, mutated(deployment(), f"{C0}.image", DELETE), "has no image"),
    ("image-pinned", JOB, mutated(fortio_job(), f"{C0}.image", "fortio/fortio"), "no tag"),
    (
        "image-pinned",
        DEPLOYMENT,
        mutated(deployment(), "spec.template.spec.initContainers", [
            {**secure_container("init"), "image": "registry:5000/busybox"}
        ]),
        "init container 'init'",
    ),
    ("container-resources", DEPLOYMENT,
     mutated(deployment(), f"{C0}.resources.limits", DELETE),
     "limits.cpu, resources.limits.memory"),
    ("container-resources", DEPLOYMENT,
     mutated(deployment(), f"{C0}.resources.requests.memory", DELETE), "requests.memory"),
    ("container-resources", JOB, mutated(fortio_job(), f"{C0}.resources", DELETE), "requests.cpu"),
    ("container-probes", DEPLOYMENT,
     mutated(deployment(), f"{C0}.livenessProbe", DELETE), "no livenessProbe"),
    ("container-probes", DEPLOYMENT,
     mutated(deployment(), f"{C0}.readinessProbe", DELETE), "no readinessProbe"),
    (
        "container-probes",
        POD,
        {"kind": "Pod", "spec": pod_spec(mutated(secure_container(), "livenessProbe", DELETE))},
        "no livenessProbe",
    ),
    ("pod-runs-as-non-root", DEPLOYMENT,
     mutated(deployment(), "spec.template.spec.securityContext", DELETE), "may run as root"),
    ("pod-runs-as-non-root", DEPLOYMENT,
     mutated(deployment(), f"{C0}.securityContext.runAsUser", 0.0), "runs as root"),
    ("no-privilege-escalation", DEPLOYMENT,
     mutated(deployment(), f"{C0}.securityContext.allowPrivilegeEscalation", DELETE),
     "allows privilege escalation"),
    ("no-privilege-escalation", JOB,
     mutated(fortio_job(), f"{C0}.securityContext.allowPrivilegeEscalation", True),
     "allows privilege escalation"),
    ("no-privilege-escalation", DEPLOYMENT,
     mutated(deployment(), f"{C0}.securityContext.privileged", True), "is privileged"),
    ("read-only-root-filesystem", DEPLOYMENT,
     mutated(deployment(), f"{C0}.securityContext.readOnlyRootFilesystem", False), "writable root"),
    ("read-only-root-filesystem", JOB,
     mutated(fortio_job(), f"{C0}.securityContext.readOnlyRootFilesystem", DELETE),
     "writable root"),
    ("load-balancer-only-for-app", SERVICE,
     service(selector={"app.kubernetes.io/name": "fortio"}), "does not front the article pods"),
    ("load-balancer-only-for-app", SERVICE, service(selector={}), "does not front"),
]


@pytest.mark.parametrize(("policy", "rtype", "props", "expected"), FAILING)
def test_a_violating_resource_is_rejected_by_exactly_its_rule(policy, rtype, props, expected):
    extra = [] if rtype != DEPLOYMENT else [(PDB, "pdb", pdb())]
    found = violations((rtype, "bad", props), *extra)
    assert len(found) == 1, found
    assert found[0].startswith(f"{policy}: ")
    assert expected in found[0]


PASSING = [
    # The exemption: a run-to-completion pod needs no probes (fortio Job, CronJob, bare pod).
    (JOB, fortio_job()),
    (CRONJOB, {"kind": "CronJob", "spec": {"jobTemplate": fortio_job()}}),
    (POD, {"kind": "Pod", "spec": fortio_job()["spec"]["template"]["spec"]}),
    # Digest pins and registry ports.
    (DEPLOYMENT, mutated(deployment(), f"{C0}.image", "ghcr.io/x/articles@sha256:" + "a" * 64)),
    (DEPLOYMENT, mutated(deployment(), f"{C0}.image", "localhost:5000/articles:1.2.3")),
    # Non-root from the container's own securityContext only.
    (
        DEPLOYMENT,
        mutated(
            mutated(deployment(), "spec.template.spec.securityContext", DELETE),
            f"{C0}.securityContext.runAsNonRoot",
            True,
        ),
    ),
    # A non-zero runAsUser without runAsNonRoot cannot be root either.
    (JOB, mutated(fortio_job(), "spec.template.spec.securityContext.runAsNonRoot", DELETE)),
    # Other Service types are fine for anything.
    (SERVICE, service("ClusterIP", {"app.kubernetes.io/name": "fortio"})),
    (SERVICE, service("NodePort", {"app.kubernetes.io/name": "other"})),
    # A single replica needs no PDB.
    (DEPLOYMENT, deployment(replicas=1.0)),
    (DEPLOYMENT, mutated(deployment(), "spec.replicas", DELETE)),
    # Not Kubernetes, or not a workload.
    ("docker:index/image:Image", {"imageName": "selfheal-lb/articles:latest"}),
    ("command:local:Command", {"create": "python -m loadgen snapshot"}),
    ("kubernetes:core/v1:Namespace", {"metadata": {"name": "selfheal-lb-dev"}}),
]


@pytest.mark.parametrize(("rtype", "props"), PASSING)
def test_compliant_resources_pass(rtype, props):
    extra = [] if rtype != DEPLOYMENT else [(PDB, "pdb", pdb())]
    assert violations((rtype, "ok", props), *extra) == []


def test_a_container_overriding_a_safe_pod_context_with_root_is_rejected():
    bad = mutated(deployment(), f"{C0}.securityContext.runAsNonRoot", False)
    bad = mutated(bad, "spec.template.spec.securityContext.runAsUser", DELETE)
    assert violations((DEPLOYMENT, "bad", bad), (PDB, "pdb", pdb())) == [
        "pod-runs-as-non-root: container 'articles' may run as root: set "
        "securityContext.runAsNonRoot: true (or a non-zero runAsUser)"
    ]


def test_every_bad_container_is_reported_not_only_the_first():
    two = deployment(spec=pod_spec(
        {**secure_container("a"), "image": "a"}, {**secure_container("b"), "image": "b:latest"}
    ))
    found = violations((DEPLOYMENT, "d", two), (PDB, "pdb", pdb()))
    assert [m.split(" ", 3)[1:3] for m in found] == [["container", "'a'"], ["container", "'b'"]]


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("articles:1", True),
        ("docker.io/library/nginx:1.27.3", True),
        ("host:5000/team/app@sha256:" + "0" * 64, True),
        ("articles", False),
        ("host:5000/team/app", False),
        ("app:latest", False),
        ("app@sha256:abc", False),
        ("", False),
        (None, False),
    ],
)
def test_image_reference_parsing(image, pinned):
    assert (image_problem(image) is None) is pinned


# --- the stack rule: replicated Deployments need a PDB that selects their pods ------------


def test_a_replicated_deployment_without_pdb_is_rejected():
    assert violations((DEPLOYMENT, "articles", deployment(replicas=2.0))) == [
        "replicated-deployments-have-pdb: Deployment 'articles' runs 2 replicas but no "
        "PodDisruptionBudget in its namespace selects its pods"
    ]


@pytest.mark.parametrize(
    "the_pdb",
    [
        pdb({"app.kubernetes.io/name": "fortio"}),  # selects other pods
        pdb(namespace="elsewhere"),  # right labels, wrong namespace
        pdb({"app.kubernetes.io/name": "articles", "tier": "web"}),  # asks for a missing label
        mutated(pdb(), "spec.selector", DELETE),  # no selector selects nothing
    ],
)
def test_a_pdb_that_does_not_select_the_pods_does_not_count(the_pdb):
    found = violations((DEPLOYMENT, "articles", deployment()), (PDB, "pdb", the_pdb))
    assert [m.split(":")[0] for m in found] == ["replicated-deployments-have-pdb"]


@pytest.mark.parametrize(
    "selector",
    [
        {"matchLabels": {"app.kubernetes.io/name": "articles"}},
        {"matchExpressions": [
            {"key": "app.kubernetes.io/name", "operator": "In", "values": ["articles", "x"]},
            {"key": "tier", "operator": "DoesNotExist"},
        ]},
        {"matchExpressions": [{"key": "app.kubernetes.io/part-of", "operator": "Exists"}]},
        {},  # policy/v1: an empty selector selects every pod in the namespace
    ],
)
def test_pdb_selectors_are_matched_like_the_api_server(selector):
    the_pdb = mutated(pdb(), "spec.selector", selector)
    assert violations((DEPLOYMENT, "articles", deployment()), (PDB, "pdb", the_pdb)) == []


def test_a_not_in_expression_excluding_the_pods_does_not_count():
    the_pdb = mutated(pdb(), "spec.selector", {"matchExpressions": [
        {"key": "app.kubernetes.io/name", "operator": "NotIn", "values": ["articles"]}
    ]})
    assert len(violations((DEPLOYMENT, "articles", deployment()), (PDB, "pdb", the_pdb))) == 1


# --- preview: values that are not known yet --------------------------------------------------


def test_an_unknown_image_during_preview_defers_the_rule_instead_of_passing_it():
    pending = mutated(deployment(), f"{C0}.image", UNKNOWN_STRING_VALUE)
    result = evaluate([Resource(DEPLOYMENT, "articles", pending), Resource(PDB, "pdb", pdb())])
    assert result.violations == []
    assert any(u.startswith("image-pinned on articles") for u in result.unknown)


def test_an_unknown_namespace_does_not_invent_a_missing_pdb():
    pending = mutated(deployment(), "metadata.namespace", UNKNOWN_STRING_VALUE)
    result = evaluate([Resource(DEPLOYMENT, "articles", pending), Resource(PDB, "pdb", pdb())])
    assert result.violations == [] and result.unknown == []
