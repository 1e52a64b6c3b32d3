"""Rules over the whole stack: a replicated Deployment needs a PodDisruptionBudget.

A PDB is a separate resource, so this can only be judged with every resource in view
(a StackValidationPolicy runs once, after the engine has seen all registrations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from label_selectors import selector_matches
from podspec import dig, kubernetes_kind, pod_labels
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

REPLICATED_KINDS = frozenset({"Deployment", "StatefulSet"})
_UNKNOWN = object()


@dataclass(frozen=True)
class StackResource:
    resource_type: str
    name: str
    urn: str
    props: Mapping[str, Any]


def _known(props: Mapping[str, Any], *path: str) -> Any:
    """dig() that returns _UNKNOWN instead of raising for a value unknown during preview."""
    try:
        return dig(props, *path)
    except UnknownValueError:
        return _UNKNOWN


def _same_namespace(a: Any, b: Any) -> bool:
    if a is _UNKNOWN or b is _UNKNOWN:
        return True  # e.g. the namespace's name is computed: do not guess a mismatch
    return (a or "") == (b or "")


def check_pdb_coverage(resources: Iterable[StackResource]) -> list[tuple[StackResource, str]]:
    """(resource, message) for each Deployment/StatefulSet of 2+ replicas no PDB selects."""
    resources = list(resources)
    pdbs = [r for r in resources if kubernetes_kind(r.resource_type) == "PodDisruptionBudget"]
    problems = []
    for r in resources:
        if kubernetes_kind(r.resource_type) not in REPLICATED_KINDS:
            continue
        replicas = _known(r.props, "spec", "replicas")
        if replicas is _UNKNOWN or float(1 if replicas is None else replicas) < 2:
            continue  # unknown replicas: judged on `pulumi up`, when the value exists
        labels = pod_labels(r.resource_type, r.props)
        namespace = _known(r.props, "metadata", "namespace")
        covered = any(
            _same_namespace(namespace, _known(p.props, "metadata", "namespace"))
            and selector_matches(_known(p.props, "spec", "selector"), labels)
            for p in pdbs
        )
        if not covered:
            problems.append(
                (
                    r,
                    f"{kubernetes_kind(r.resource_type)} '{r.name}' runs {int(float(replicas))} "
                    "replicas but no PodDisruptionBudget in its namespace selects its pods",
                )
            )
    return problems


def _validate_pdb(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    resources = [StackResource(r.resource_type, r.name, r.urn, r.props) for r in args.resources]
    for resource, message in check_pdb_coverage(resources):
        report_violation(message, resource.urn)


STACK_POLICIES: list[StackValidationPolicy] = [
    StackValidationPolicy(
        name="replicated-deployments-have-pdb",
        description=(
            "Deployments of 2 or more replicas have a PodDisruptionBudget selecting their pods."
        ),
        validate=_validate_pdb,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
]
