"""Kubernetes recommended labels shared by the app and the load generator.

The selector labels (name + instance) never change for the life of a Deployment: its
`spec.selector` is immutable, so everything that can change (part-of, component) stays out.
"""

from __future__ import annotations

from collections.abc import Mapping

PART_OF = "selfheal-lb"
APP_NAME = "articles"
LOADGEN_NAME = "fortio"

NAME_KEY = "app.kubernetes.io/name"
INSTANCE_KEY = "app.kubernetes.io/instance"
PART_OF_KEY = "app.kubernetes.io/part-of"
COMPONENT_KEY = "app.kubernetes.io/component"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"


def selector_labels(name: str, instance: str) -> dict[str, str]:
    """The labels that identify one workload's pods (Deployment/Service/PDB selectors)."""
    return {NAME_KEY: name, INSTANCE_KEY: instance}


def pod_labels(name: str, instance: str, component: str) -> dict[str, str]:
    """Every label a workload's pods carry: the selector labels plus part-of and component."""
    return {**selector_labels(name, instance), PART_OF_KEY: PART_OF, COMPONENT_KEY: component}


def object_labels(name: str, instance: str, component: str) -> dict[str, str]:
    """Labels for the objects themselves (Deployment, Service, …): pod labels + managed-by."""
    return {**pod_labels(name, instance, component), MANAGED_BY_KEY: "pulumi"}


def selector_string(labels: Mapping[str, str]) -> str:
    """`k1=v1,k2=v2` in the given order: the form `kubectl -l` and the Kubernetes API take."""
    return ",".join(f"{key}={value}" for key, value in labels.items())
