"""Hand-made resource inputs, shaped as pulumi-kubernetes sends them (camelCase, floats)."""

from __future__ import annotations

import copy
from typing import Any

APP_LABELS = {
    "app.kubernetes.io/name": "articles",
    "app.kubernetes.io/instance": "dev",
    "app.kubernetes.io/part-of": "selfheal-lb",
}
NAMESPACE = "selfheal-lb-dev"


def secure_container(name: str = "articles", image: str = "selfheal-lb/articles:3f2a9c1") -> dict:
    return {
        "name": name,
        "image": image,
        "ports": [{"containerPort": 8080.0}],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080.0}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8080.0}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


def pod_spec(*containers: dict, **extra: Any) -> dict:
    spec = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001.0,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": list(containers) or [secure_container()],
    }
    spec.update(extra)
    return spec


def deployment(replicas: float = 3.0, spec: dict | None = None, labels: dict | None = None) -> dict:
    labels = labels or APP_LABELS
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec or pod_spec()},
        },
    }


def fortio_job() -> dict:
    container = secure_container("fortio", "fortio/fortio:1.68.2")
    del container["livenessProbe"], container["readinessProbe"]
    container["args"] = ["load", "-c", "100", "-n", "1000", "http://articles:8080/article1"]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"namespace": NAMESPACE},
        "spec": {
            "parallelism": 3.0,
            "completions": 3.0,
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "fortio"}},
                "spec": pod_spec(container, restartPolicy="Never"),
            },
        },
    }


def pdb(match_labels: dict | None = None, namespace: str = NAMESPACE) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"namespace": namespace},
        "spec": {"maxUnavailable": 1.0, "selector": {"matchLabels": match_labels or APP_LABELS}},
    }


def service(kind: str = "LoadBalancer", selector: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": NAMESPACE},
        "spec": {
            "type": kind,
            "selector": selector if selector is not None else dict(APP_LABELS),
            "ports": [{"port": 8080.0, "targetPort": 8080.0}],
        },
    }


def mutated(doc: dict, path: str, value: Any) -> dict:
    """Deep copy of `doc` with the dotted path set (value DELETE removes the key).

    Integer steps index lists: 'spec.template.spec.containers.0.image'.
    """
    out = copy.deepcopy(doc)
    node: Any = out
    steps = path.split(".")
    for step in steps[:-1]:
        node = node[int(step)] if isinstance(node, list) else node.setdefault(step, {})
    last = steps[-1]
    if value is DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


DELETE = object()
