"""Per-resource rules. Each `check_*` takes a resource type token and its inputs and returns
one message per problem; `RESOURCE_POLICIES` wraps them for the policy pack.

The checks read the inputs exactly as the engine sends them (see podspec.py). A value that
is not known during preview (e.g. an image digest that only exists after the build) raises
`UnknownValueError` from the proxy; the SDK then reports "can't run policy during preview"
as advisory and the rule runs for real on `pulumi up`, before the resource is created.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from podspec import Container, PodSpec, dig, is_mapping, kubernetes_kind, pod_spec_of
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

Check = Callable[[str, Mapping[str, Any]], list[str]]

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# The one Service allowed to be a LoadBalancer: the one in front of the article pods.
# A selector naming the article pods is enough: whatever else it adds only narrows it.
APP_SELECTOR = {"app.kubernetes.io/name": "articles"}


def image_problem(image: Any) -> str | None:
    """Why an image reference is not pinned, or None when it has a real tag or a digest."""
    if not isinstance(image, str) or not image.strip():
        return "has no image"
    if "@" in image:
        digest = image.split("@", 1)[1]
        return None if DIGEST_RE.match(digest) else f"image '{image}' has a malformed digest"
    last_segment = image.rsplit("/", 1)[-1]  # a registry port (host:5000/x) is not a tag
    if ":" not in last_segment:
        return f"image '{image}' has no tag (Kubernetes would pull :latest)"
    tag = last_segment.rsplit(":", 1)[1]
    if tag in ("", "latest"):
        return f"image '{image}' uses the floating tag 'latest'"
    return None


def check_image_pinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    pod = pod_spec_of(resource_type, props)
    if pod is None:
        return []
    problems = []
    for c in pod.containers():
        why = image_problem(c.spec.get("image"))
        if why:
            problems.append(f"{c.label} {why}; pin a version tag or a sha256 digest")
    return problems


def check_resources(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    pod = pod_spec_of(resource_type, props)
    if pod is None:
        return []
    problems = []
    # Ephemeral (debug) containers may not declare resources, so they are not checked.
    for c in pod.containers("initContainers", "containers"):
        missing = [
            f"{section}.{res}"
            for section in ("requests", "limits")
            for res in ("cpu", "memory")
            if dig(c.spec, "resources", section, res) in (None, "", 0)
        ]
        if missing:
            problems.append(f"{c.label} has no resources.{', resources.'.join(missing)}")
    return problems


def check_probes(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Long-running containers need liveness and readiness probes.

    Pods that run to completion (Jobs, CronJobs, bare pods with restartPolicy Never or
    OnFailure, e.g. the fortio load Job) are exempt: nothing routes traffic to them, so
    readiness means nothing, and a liveness restart would only abort a finite run.
    """
    pod = pod_spec_of(resource_type, props)
    if pod is None or pod.runs_to_completion:
        return []
    problems = []
    for c in pod.containers("containers"):
        missing = [p for p in ("livenessProbe", "readinessProbe") if not is_mapping(c.spec.get(p))]
        if missing:
            problems.append(f"{c.label} has no {' and no '.join(missing)}")
    return problems


def _effective(pod: PodSpec, c: Container, field: str) -> Any:
    """A securityContext field as the kubelet sees it: the container's, else the pod's."""
    value = dig(c.spec, "securityContext", field)
    return dig(pod.spec, "securityContext", field) if value is None else value


def check_non_root(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    pod = pod_spec_of(resource_type, props)
    if pod is None:
        return []
    problems = []
    for c in pod.containers():
        run_as_user = _effective(pod, c, "runAsUser")
        if run_as_user is not None and float(run_as_user) == 0:
            problems.append(f"{c.label} runs as root (runAsUser 0)")
        elif _effective(pod, c, "runAsNonRoot") is not True and run_as_user is None:
            problems.append(
                f"{c.label} may run as root: set securityContext.runAsNonRoot: true "
                "(or a non-zero runAsUser)"
            )
    return problems


def check_no_privilege_escalation(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    pod = pod_spec_of(resource_type, props)
    if pod is None:
        return []
    problems = []
    for c in pod.containers():
        if dig(c.spec, "securityContext", "privileged") is True:
            problems.append(f"{c.label} is privileged")
        elif dig(c.spec, "securityContext", "allowPrivilegeEscalation") is not False:
            # Unset means allowed: Linux lets a setuid binary gain privileges.
            problems.append(
                f"{c.label} allows privilege escalation: set "
                "securityContext.allowPrivilegeEscalation: false"
            )
    return problems


def check_read_only_root(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    pod = pod_spec_of(resource_type, props)
    if pod is None:
        return []
    return [
        f"{c.label} has a writable root filesystem: set "
        "securityContext.readOnlyRootFilesystem: true (mount an emptyDir for scratch space)"
        for c in pod.containers()
        if dig(c.spec, "securityContext", "readOnlyRootFilesystem") is not True
    ]


def is_app_selector(selector: Any) -> bool:
    return is_mapping(selector) and all(selector.get(k) == v for k, v in APP_SELECTOR.items())


def check_load_balancer(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    if kubernetes_kind(resource_type) != "Service" or dig(props, "spec", "type") != "LoadBalancer":
        return []
    if is_app_selector(dig(props, "spec", "selector")):
        return []
    wanted = ", ".join(f"{k}={v}" for k, v in APP_SELECTOR.items())
    return [
        "Service of type LoadBalancer that does not front the article pods "
        f"(selector must include {wanted}); use ClusterIP or NodePort"
    ]


def _as_policy(name: str, description: str, check: Check) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in check(args.resource_type, args.props):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


RESOURCE_POLICIES: list[ResourceValidationPolicy] = [
    _as_policy(
        "image-pinned",
        "Container images carry a version tag other than 'latest' or a sha256 digest.",
        check_image_pinned,
    ),
    _as_policy(
        "container-resources",
        "Containers declare CPU and memory requests and limits.",
        check_resources,
    ),
    _as_policy(
        "container-probes",
        "Long-running containers have liveness and readiness probes (run-to-completion "
        "pods such as Jobs are exempt).",
        check_probes,
    ),
    _as_policy(
        "pod-runs-as-non-root",
        "Pods cannot run as root: runAsNonRoot true or a non-zero runAsUser.",
        check_non_root,
    ),
    _as_policy(
        "no-privilege-escalation",
        "Containers set allowPrivilegeEscalation: false and are not privileged.",
        check_no_privilege_escalation,
    ),
    _as_policy(
        "read-only-root-filesystem",
        "Containers set readOnlyRootFilesystem: true.",
        check_read_only_root,
    ),
    _as_policy(
        "load-balancer-only-for-app",
        "Only the article Service may be of type LoadBalancer.",
        check_load_balancer,
    ),
]
