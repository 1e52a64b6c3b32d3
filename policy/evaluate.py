"""Run the pack's policies in-process over a list of resources, as the engine would.

Used by the tests (hand-made resources, and the resources the real program registers under
Pulumi mocks). Inputs are wrapped in the SDK's unknown-checking proxy, like the engine does,
so the rules are exercised against the same Mapping/Sequence types they meet for real.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pack import POLICIES
from pulumi_policy import (
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy


@dataclass(frozen=True)
class Resource:
    resource_type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str  # name of the resource (the stack policy reports the offender's)
    message: str

    def __str__(self) -> str:
        return f"[{self.policy}] {self.resource}: {self.message}"


@dataclass
class Evaluation:
    violations: list[Violation]
    unknown: list[str]  # policies that could not run on some resource (preview unknowns)


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], False, [], None, [], None)


def evaluate(resources: Iterable[Resource], policies: list | None = None) -> Evaluation:
    resources = [
        Resource(r.resource_type, r.name, r.props, r.urn or f"urn:test::{r.name}")
        for r in resources
    ]
    by_urn = {r.urn: r.name for r in resources}
    result = Evaluation([], [])
    for policy in POLICIES if policies is None else policies:

        def report(message: str, urn: str | None = None, _p=policy, _r: str = "") -> None:
            result.violations.append(Violation(_p.name, by_urn.get(urn or "", _r), message))

        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(
                    r.resource_type, unknown_checking_proxy(dict(r.props)), r.urn, r.name,
                    _options(), None,
                )
                try:
                    policy.validate(args, lambda m, u=None, _n=r.name: report(m, u, _r=_n))
                except UnknownValueError as e:
                    result.unknown.append(f"{policy.name} on {r.name}: {e.message}")
        elif isinstance(policy, StackValidationPolicy):
            stack = [
                PolicyResource(
                    r.resource_type, unknown_checking_proxy(dict(r.props)), r.urn, r.name,
                    _options(), None, None, [], {},
                )
                for r in resources
            ]
            try:
                policy.validate(StackValidationArgs(stack), report)
            except UnknownValueError as e:
                result.unknown.append(f"{policy.name}: {e.message}")
    return result
