"""Does the cluster already serve the metrics API (metrics.k8s.io), and who provides it?

One GET of the APIService `v1beta1.metrics.k8s.io` with the official `kubernetes` client and
the stack's kubeconfig context. It runs in the program itself (plain Python, before any
resource is declared), so `pulumi preview` and `pulumi up` decide the same way and the
decision is a plain value, not an Output: whether metrics-server's objects exist at all must
be known when the program declares them. Under the SDK's mocks (tests, `make render`) the
answer is handed in instead (components/metrics_plan.OFFLINE), so a render never depends on
which cluster the machine happens to reach.

`python -m components.metrics_api [--context NAME]` prints the answer as JSON (for a look by
hand; `scripts/stack.sh` uses `components.metrics_plan` for its preflight line).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

APISERVICE = "v1beta1.metrics.k8s.io"
# Marks on every object the stack's chart install creates (components/metrics_server.py): the
# label selects them for removal by hand, the annotations name the owning stack.
INSTALLED_LABEL = "selfheal-lb/installed"
INSTALLED_VALUE = "metrics-server"
OWNER_STACK_ANNOTATION = "selfheal-lb/owner-stack"  # "<project>/<stack>"
OWNER_NAMESPACE_ANNOTATION = "selfheal-lb/owner-namespace"  # that stack's app namespace
PROBE_TIMEOUT_SECONDS = 10

Status = Literal["absent", "available", "unavailable", "unknown"]


@dataclass(frozen=True)
class MetricsApiState:
    """What the probe found. `provider` says in words who serves the API."""

    status: Status
    provider: str = ""  # e.g. "minikube addon (kube-system/metrics-server)"
    owner_stack: str = ""  # "<project>/<stack>" when a selfheal-lb stack installed it
    owner_namespace: str = ""
    detail: str = ""  # why unknown / why not Available

    def owned_by(self, stack_id: str, namespace: str) -> bool:
        return self.owner_stack == stack_id and self.owner_namespace == namespace

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


ABSENT = MetricsApiState("absent", detail=f"no APIService {APISERVICE}")
# A metrics-server the cluster came with (minikube's addon and the like): the offline default.
CLUSTER_ADDON = MetricsApiState("available", provider="cluster addon (kube-system/metrics-server)")


def describe_provider(apiservice: Mapping[str, Any]) -> str:
    """Who serves the API, from the APIService's labels/annotations and its backing Service."""
    metadata = apiservice.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    service = (apiservice.get("spec") or {}).get("service") or {}
    where = f"{service.get('namespace', '?')}/{service.get('name', '?')}" if service else "local"
    owner = annotations.get(OWNER_STACK_ANNOTATION)
    if owner:
        return f"installed by selfheal-lb stack {owner} ({where})"
    if "kubernetes.io/minikube-addons" in labels:
        return f"minikube addon ({where})"
    if "addonmanager.kubernetes.io/mode" in labels:
        return f"cluster addon ({where})"
    if labels.get("app.kubernetes.io/managed-by") == "Helm":
        release = annotations.get("meta.helm.sh/release-name") or labels.get(
            "app.kubernetes.io/instance", "?"
        )
        return f"Helm release {release} ({where})"
    if labels.get("k8s-app") == "metrics-server":  # the upstream manifests' label
        return f"metrics-server add-on ({where})"
    return f"APIService without an owner label ({where})"


def state_from_apiservice(apiservice: Mapping[str, Any]) -> MetricsApiState:
    """The state an APIService object (as the API returns it, camelCase JSON) stands for."""
    annotations = (apiservice.get("metadata") or {}).get("annotations") or {}
    conditions = (apiservice.get("status") or {}).get("conditions") or []
    available = next((c for c in conditions if c.get("type") == "Available"), None)
    is_available = available is not None and available.get("status") == "True"
    detail = ""
    if not is_available:
        detail = (
            f"Available={available.get('status')}: {available.get('reason', '')} "
            f"{available.get('message', '')}".strip()
            if available
            else "no Available condition yet"
        )
    return MetricsApiState(
        status="available" if is_available else "unavailable",
        provider=describe_provider(apiservice),
        owner_stack=annotations.get(OWNER_STACK_ANNOTATION, ""),
        owner_namespace=annotations.get(OWNER_NAMESPACE_ANNOTATION, ""),
        detail=detail,
    )


def probe(
    kube_context: str = "", kubeconfig: str | None = None, timeout: float = PROBE_TIMEOUT_SECONDS
) -> MetricsApiState:
    """Read the APIService; never raises: an unreachable cluster is status "unknown"."""
    # Imported here: the client is heavy and only the real program and preflight need it.
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException

    # KUBECONFIG as it is now: the client reads it only once, when it is first imported.
    config_file = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        api_client = config.new_client_from_config(
            config_file=config_file, context=kube_context or None
        )
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        return MetricsApiState("unknown", detail=f"no usable kubeconfig: {_one_line(exc)}")
    try:
        with api_client:
            api = client.ApiregistrationV1Api(api_client)
            response = api.read_api_service(
                APISERVICE, _request_timeout=timeout, _preload_content=False
            )
            body = json.loads(response.data)
    except ApiException as exc:
        if exc.status == 404:
            return ABSENT
        reason = f"HTTP {exc.status} {exc.reason}"
        if exc.status in (401, 403):
            reason += f" (the kubeconfig's user may not read apiservices {APISERVICE})"
        return MetricsApiState("unknown", detail=f"reading APIService {APISERVICE}: {reason}")
    except Exception as exc:  # urllib3/ssl/socket errors alike: all mean "cannot tell"
        return MetricsApiState("unknown", detail=f"cluster unreachable: {_one_line(exc)}")
    return state_from_apiservice(body)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.metrics_api")
    parser.add_argument("--context", default="", help="kubeconfig context ('' = current)")
    parser.add_argument("--kubeconfig", default=None)
    args = parser.parse_args(argv)
    state = probe(args.context, args.kubeconfig)
    print(json.dumps(state.as_dict()))
    return 0 if state.status != "unknown" else 1


if __name__ == "__main__":
    sys.exit(main())
